"""TensorBoardData: event files read back by tensorboard's own reader, on every backend."""

import io
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import confusion_matrix
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
from tensorboard.util import tensor_util

import kx
from kx.callbacks import tensorboard as kx_tensorboard


def _events(run_dir):
    """{tag: [(step, plugin name, ndarray)]} of every event file in a run folder."""
    found = {}
    for name in sorted(os.listdir(run_dir)):
        for event in EventFileLoader(os.path.join(run_dir, name)).Load():
            for value in event.summary.value:
                found.setdefault(value.tag, []).append((
                    event.step, value.metadata.plugin_data.plugin_name,
                    tensor_util.make_ndarray(value.tensor)))
    return found


def _png(data):
    return np.asarray(Image.open(io.BytesIO(data)))


def test_images_histograms_text_and_pr_curves_read_back(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(90, 5)).astype("float32")
    y = np.argmax(x[:, :3] + 0.5 * rng.normal(size=(90, 3)), axis=1)
    xv, yv = x[60:], y[60:]
    keras.utils.set_random_seed(0)
    scores = kx.metrics.ClassificationMetrics(num_classes=3, metrics=("f1",))
    inputs = keras.Input((5,), name="x")
    hidden = keras.layers.Dense(4, activation="relu", name="hidden")(inputs)
    probs = keras.layers.Dense(3, activation="softmax", name="probs")(hidden)
    model = kx.CustomModel(inputs, {"probs": probs, "hidden": hidden})
    model.compile(keras.optimizers.SGD(0.2), loss={"ce": kx.LossDefinition(
        "label", "probs", "sparse_categorical_crossentropy")},
        metrics={"scores": kx.MetricDefinition("label", "probs", scores)})

    def handler(writer, data, step):
        hidden = data["outputs"]["hidden"]  # (n, 4): one grey image per sample, 2 x 2 pixels
        writer.image("hidden", hidden.reshape(-1, 2, 2, 1) / max(hidden.max(), 1e-6), step)
        writer.histogram("probs", data["outputs"]["probs"], step, buckets=10)
        writer.text("note", f"epoch {step}", step)

    board = kx.callbacks.TensorBoardData(
        tmp_path, [handler, kx.callbacks.ConfusionMatrixImage(scores, cell=4),
                   kx.callbacks.PRCurves(target="label", output="probs", num_thresholds=11)],
        validation_data=({"x": xv}, {"label": yv}), n=20)
    model.fit({"x": x[:60]}, {"label": y[:60]}, epochs=2, verbose=0,
              validation_data=({"x": xv}, {"label": yv}), callbacks=[board])

    assert os.listdir(tmp_path) == ["validation"]
    events = _events(tmp_path / "validation")
    assert set(events) == {"hidden", "probs", "note", f"confusion_matrix/{scores.name}",
                           "pr_curves/0", "pr_curves/1", "pr_curves/2"}
    assert all([step for step, _, _ in v] == [0, 1] for v in events.values())
    out = model.predict({"x": xv[:20]}, verbose=0)

    _, plugin, image = events["hidden"][-1]
    assert plugin == "images" and image[:2].tolist() == [b"2", b"2"] and len(image) == 2 + 20
    assert _png(image[2]).shape == (2, 2)

    _, plugin, histogram = events["probs"][-1]
    counts, edges = np.histogram(out["probs"], bins=10)
    assert plugin == "histograms"
    np.testing.assert_allclose(histogram, np.stack([edges[:-1], edges[1:], counts], 1), atol=1e-6)

    assert events["note"][-1][1] == "text" and events["note"][-1][2] == b"epoch 1"

    # the confusion image: 3 x 3 cells of 4 pixels, grey level = 255 * count / max count,
    # the counts of the whole validation set (the metric's state after validation)
    _, plugin, image = events[f"confusion_matrix/{scores.name}"][-1]
    assert plugin == "images" and image[:2].tolist() == [b"12", b"12"]
    pixels = _png(image[2])
    assert pixels.shape == (12, 12)
    reference = confusion_matrix(yv, np.argmax(model.predict({"x": xv}, verbose=0)["probs"], 1),
                                 labels=range(3))
    np.testing.assert_array_equal(pixels[::4, ::4], np.round(255 * reference / reference.max()))
    assert np.all(pixels == np.repeat(np.repeat(pixels[::4, ::4], 4, 0), 4, 1))

    # PR curves of the 20 fixed samples: tp, fp, tn, fn, precision, recall per threshold
    for c in range(3):
        _, plugin, curve = events[f"pr_curves/{c}"][-1]
        assert plugin == "pr_curves" and curve.shape == (6, 11)
        for i, threshold in enumerate(np.linspace(0, 1, 11)):
            tn, fp, fn, tp = confusion_matrix(yv[:20] == c, out["probs"][:, c] >= threshold,
                                              labels=[False, True]).ravel()
            np.testing.assert_allclose(curve[:4, i], [tp, fp, tn, fn])


def test_binary_pr_curve_and_bad_handlers(tmp_path):
    with pytest.raises(ValueError, match="pass `validation_data`"):
        kx.callbacks.TensorBoardData(tmp_path, kx.callbacks.PRCurves())
    with pytest.raises(TypeError, match="handler"):
        kx.callbacks.TensorBoardData(tmp_path, "confusion")
    writer = kx_tensorboard._Writer(tmp_path)
    with pytest.raises(ValueError, match=r"c in 1, 3, 4.*\(2, 5, 5, 2\)"):
        writer.image("bad", np.zeros((2, 5, 5, 2)), 0)
    with pytest.raises(ValueError, match="NaN"):
        writer.image("bad", np.full((5, 5), np.nan), 0)
    labels = np.array([0, 1, 1, 0, 1])
    logits = np.array([-2.0, 1.0, 0.5, 0.2, -0.1])
    curves = kx.callbacks.PRCurves(from_logits=True, num_thresholds=5)
    data = {"targets": {"y": labels}, "outputs": {"p": logits[:, None]}}
    curves(writer, data, 0)
    writer.close()
    _, _, curve = _events(tmp_path)["pr_curves/1"][0]
    probabilities = 1 / (1 + np.exp(-logits))
    tp = [int(np.sum((probabilities >= t) & (labels == 1))) for t in np.linspace(0, 1, 5)]
    np.testing.assert_allclose(curve[0], tp)


def test_missing_tensorboard_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard.summary.writer.event_file_writer", None)
    with pytest.raises(ImportError, match=r"pip install 'kx\[tensorboard\]'"):
        kx.callbacks.TensorBoardData("logs", lambda writer, data, step: None)


@pytest.mark.slow  # a fresh interpreter: seconds of imports
@pytest.mark.skipif(keras.backend.backend() == "tensorflow",
                    reason="the TensorFlow backend cannot run without TensorFlow")
def test_writes_without_tensorflow(tmp_path):
    script = textwrap.dedent(f"""
        import sys
        sys.modules["tensorflow"] = None  # import tensorflow raises ImportError
        import numpy as np, keras, kx
        from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
        import os
        x = np.eye(3, dtype="float32")
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(3, "softmax")])
        model.compile("sgd", "sparse_categorical_crossentropy")
        board = kx.callbacks.TensorBoardData(
            {str(tmp_path)!r}, kx.callbacks.PRCurves(num_thresholds=3),
            validation_data=(x, np.arange(3)))
        model.fit(x, np.arange(3), epochs=1, verbose=0, callbacks=[board])
        run = os.path.join({str(tmp_path)!r}, "validation")
        tags = sorted(v.tag for f in os.listdir(run)
                      for e in EventFileLoader(os.path.join(run, f)).Load()
                      for v in e.summary.value)
        assert "tensorflow" not in [m for m in sys.modules if sys.modules[m] is not None]
        print(tags)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env={**os.environ, "KERAS_BACKEND": keras.backend.backend()},
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "['pr_curves/0', 'pr_curves/1', 'pr_curves/2']"
