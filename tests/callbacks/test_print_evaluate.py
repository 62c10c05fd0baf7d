"""PrintEvaluate: exactly n un-batched samples per epoch through the model's print_evaluate."""

import re

import keras
import numpy as np
import pytest
from conftest import assert_close

import kx


def _data(n=24, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5)).astype("float32")
    y = np.argmax(x[:, :3], axis=1)
    return x, y


class Recorder(kx.CustomModel):
    """Keeps what PrintEvaluate hands the hook."""

    def print_evaluate(self, sample, print_fn=print):
        self.samples.append(sample)
        super().print_evaluate(sample, print_fn=print_fn)


@pytest.mark.parametrize("source", ["arrays", "DataGenerator"])
def test_n_unbatched_samples_per_epoch(source):
    x, y = _data()
    xv, yv = _data(10, seed=1)
    inputs = keras.Input((5,), name="x")
    model = Recorder(inputs, {"probs": keras.layers.Dense(3, activation="softmax")(inputs)})
    model.samples = []
    model.compile("adam", loss={"ce": kx.LossDefinition(
        "label", "probs", "sparse_categorical_crossentropy")})
    validation = ({"x": xv}, {"label": yv})
    if source == "DataGenerator":  # batches of 2: the 3 samples span two batches
        validation = kx.DataGenerator({"x": xv}, {"label": yv}, batch_size=2, shuffle=False)
    lines = []
    show = kx.callbacks.PrintEvaluate(3, validation_data=validation, print_fn=lines.append)
    model.fit({"x": x}, {"label": y}, epochs=2, verbose=0, callbacks=[show])
    assert len(model.samples) == 6 and len(lines) == 6
    for sample in model.samples:
        assert set(sample) == {"inputs", "targets", "outputs"}
        assert sample["inputs"]["x"].shape == (5,)
        assert sample["targets"]["label"].shape == ()
        assert sample["outputs"]["probs"].shape == (3,)
        assert all(isinstance(v, np.ndarray) for part in sample.values() for v in part.values())
    probs = model.predict({"x": xv[:3]}, verbose=0)["probs"]
    for i, sample in enumerate(model.samples[3:]):
        assert_close(sample["inputs"]["x"], xv[i])
        assert sample["targets"]["label"] == yv[i]
        assert_close(sample["outputs"]["probs"], probs[i], atol=1e-6)
        k = int(np.argmax(probs[i]))
        mark = "==" if k == yv[i] else "!="
        assert lines[3 + i] == f"PRED/GT: {k} {mark} {yv[i]} (p = {probs[i][k]:.3g})"


def test_plain_keras_model_gets_the_default_line():
    x, y = _data(8)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile("sgd", "binary_crossentropy")
    lines = []
    show = kx.callbacks.PrintEvaluate(4, validation_data=(x, y % 2), print_fn=lines.append)
    model.fit(x, y % 2, epochs=1, verbose=0, callbacks=[show])
    assert len(lines) == 4
    p = model.predict(x[:4], verbose=0)[:, 0]
    for line, yi, pi in zip(lines, y[:4] % 2, p):
        match = re.fullmatch(r"PRED/GT: (\d) (==|!=) (\d) \(p = ([\d.e-]+)\)", line)
        assert match, line
        assert int(match[1]) == int(pi > 0.5) and int(match[3]) == yi
        assert_close(float(match[4]), pi, rtol=1e-2)


def test_bad_arguments():
    x, y = _data(4)
    with pytest.raises(ValueError, match="positive integer"):
        kx.callbacks.PrintEvaluate(0, validation_data=(x, y))
    plain = keras.Sequential([keras.Input((5,)), keras.layers.Dense(1)])
    plain.compile("sgd", "mse")
    with pytest.raises(ValueError, match="no validation data"):
        plain.fit(x, y, epochs=1, verbose=0, callbacks=[kx.callbacks.PrintEvaluate(3)])
    with pytest.raises(TypeError, match="callable"):
        kx.callbacks.PrintEvaluate(3, validation_data=(x, y), print_fn="stdout")


@pytest.mark.parametrize("how", ["validation_split", "validation_data"])
def test_custom_model_fit_hands_its_validation_set(how):
    """PrintEvaluate(n) with no data: kx.CustomModel.fit gives it the split it validates on."""
    x, y = _data(20)
    inputs = keras.Input((5,), name="x")
    model = Recorder(inputs, {"probs": keras.layers.Dense(3, activation="softmax")(inputs)})
    model.samples = []
    model.compile("adam", loss={"ce": kx.LossDefinition(
        "label", "probs", "sparse_categorical_crossentropy")})
    kwargs = ({"validation_split": 0.25} if how == "validation_split"
              else {"validation_data": ({"x": x[15:]}, {"label": y[15:]})})
    lines = []
    model.fit({"x": x}, {"label": y}, epochs=2, verbose=0, class_weight={0: 2.0},
              callbacks=[kx.callbacks.PrintEvaluate(2, print_fn=lines.append)], **kwargs)
    assert len(lines) == 4
    for i, sample in enumerate(model.samples[:2]):  # both ways: the last quarter
        assert_close(sample["inputs"]["x"], x[15 + i])
