"""BestModel: the best epoch by a monitored value, atomic writes, resuming, compile state."""

import json

import keras
import numpy as np
import pytest
from conftest import assert_close

import kx
from kx import _files


@keras.saving.register_keras_serializable(package="tests_best_model")
class Net(kx.CustomModel):
    def best_logging_settings(self):
        return "max", "val_acc"


def _model():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, name="d")])
    model.compile("sgd", "mse")
    return model


def _mark(model, epoch):
    """Weights that say which epoch they belong to."""
    model.get_layer("d").kernel.assign(np.full((2, 1), float(epoch), "float32"))


def _epoch_of(path):
    return float(keras.models.load_model(path).get_layer("d").kernel.numpy()[0, 0])


def _run(callback, model, values, first_epoch=0, key="val_loss"):
    callback.set_model(model)
    callback.on_train_begin()
    for epoch, value in enumerate(values, first_epoch):
        _mark(model, epoch)
        callback.on_epoch_end(epoch, {"loss": 1.0, key: value})


@pytest.mark.parametrize("mode, values", [
    ("min", [3.0, 2.0, 2.5, 1.0, 1.0, 4.0]),
    ("max", [0.1, 0.5, float("nan"), 0.4, 0.7, 0.7]),
])
def test_keeps_the_epoch_with_the_best_value(tmp_path, mode, values):
    callback = kx.callbacks.BestModel(tmp_path, monitor="val_loss", mode=mode)
    model = _model()
    _run(callback, model, values)
    reference = (np.nanargmin if mode == "min" else np.nanargmax)(values)  # first best
    record = json.loads((tmp_path / "best.json").read_text())
    assert record == {"epoch": int(reference), "value": values[reference], "monitor": "val_loss",
                      "mode": mode, "last_epoch": len(values) - 1}
    assert _epoch_of(tmp_path / "best.keras") == reference
    assert _epoch_of(tmp_path / "last.keras") == len(values) - 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.json", "best.keras", "last.keras"]


def test_resumes_from_the_record(tmp_path):
    model = _model()
    _run(kx.callbacks.BestModel(tmp_path), model, [2.0, 1.0])
    restarted = kx.callbacks.BestModel(tmp_path)
    _run(restarted, model, [1.5, 1.2], first_epoch=2)  # worse than the recorded 1.0
    assert restarted.best == 1.0 and _epoch_of(tmp_path / "best.keras") == 1
    assert _epoch_of(tmp_path / "last.keras") == 3
    _run(kx.callbacks.BestModel(tmp_path), model, [0.5], first_epoch=4)
    assert _epoch_of(tmp_path / "best.keras") == 4
    mismatch = r"records the best 'min' of 'val_loss'.*'max' of 'val_acc'"
    with pytest.raises(ValueError, match=mismatch):
        _run(kx.callbacks.BestModel(tmp_path, monitor="val_acc", mode="max"), model, [1.0])


def test_a_write_interrupted_midway_leaves_the_previous_best(tmp_path, monkeypatch):
    model = _model()
    callback = kx.callbacks.BestModel(tmp_path)
    _run(callback, model, [2.0])
    record = (tmp_path / "best.json").read_text()

    def killed_save(path, *args, **kwargs):
        with open(path, "wb") as f:
            f.write(b"PK\x03\x04 half a zip")  # what a kill mid-write leaves
        raise KeyboardInterrupt("killed while writing")

    monkeypatch.setattr(model, "save", killed_save)
    monkeypatch.setattr(_files, "_remove", lambda path: None)  # a kill runs no clean-up
    _mark(model, 1)
    with pytest.raises(KeyboardInterrupt):
        callback.on_epoch_end(1, {"val_loss": 1.0})
    monkeypatch.undo()
    assert _epoch_of(tmp_path / "best.keras") == 0  # the previous, complete file
    assert (tmp_path / "best.json").read_text() == record
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp.keras")]
    assert len(leftovers) == 1
    restarted = kx.callbacks.BestModel(tmp_path)
    _run(restarted, model, [1.0], first_epoch=1)
    assert restarted.best == 1.0 and _epoch_of(tmp_path / "best.keras") == 1
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp.keras")]


def test_missing_key_lists_the_logs_and_bad_settings(tmp_path):
    model = _model()
    callback = kx.callbacks.BestModel(tmp_path, monitor="val_f1", mode="max")
    callback.set_model(model)
    callback.on_train_begin()
    missing = r"'val_f1' is not in the epoch logs.*\['loss', 'val_loss'\]"
    with pytest.raises(ValueError, match=missing):
        callback.on_epoch_end(0, {"loss": 1.0, "val_loss": 1.0})
    with pytest.warns(UserWarning, match="no validation logs this epoch"):
        callback.on_epoch_end(0, {"loss": 1.0})
    with pytest.raises(ValueError, match="'min' or 'max'"):
        kx.callbacks.BestModel(tmp_path, mode="lowest")

    class Bad(kx.CustomModel):
        def best_logging_settings(self):
            return "val_loss"

    inputs = keras.Input((2,))
    bad = kx.callbacks.BestModel(tmp_path / "bad")
    bad.set_model(Bad(inputs, keras.layers.Dense(1)(inputs)))
    with pytest.raises(ValueError, match=r"Bad.best_logging_settings\(\) to return \(mode"):
        bad.on_train_begin()


def test_fit_with_the_model_settings_and_the_best_file_loads_compiled(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 4)).astype("float32")
    y = (x[:, 0] + x[:, 1] > 0).astype("int32") + (x[:, 2] > 0.5).astype("int32")
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,), name="x")
    model = Net(inputs, {"logits": keras.layers.Dense(3)(inputs)})
    model.compile(
        keras.optimizers.SGD(0.2),
        loss={"ce": kx.LossDefinition(
            "label", "logits", keras.losses.SparseCategoricalCrossentropy(from_logits=True))},
        metrics={"acc": kx.MetricDefinition(
            "label", "logits", keras.metrics.SparseCategoricalAccuracy())},
    )
    data = ({"x": x[64:]}, {"label": y[64:]})
    history = model.fit({"x": x[:64]}, {"label": y[:64]}, epochs=3, batch_size=16, verbose=0,
                        validation_data=data,
                        callbacks=[kx.callbacks.BestModel(tmp_path)]).history
    record = json.loads((tmp_path / "best.json").read_text())
    assert record["monitor"] == "val_acc" and record["mode"] == "max"
    assert record["epoch"] == int(np.argmax(history["val_acc"]))
    assert record["value"] == max(history["val_acc"])
    best = keras.models.load_model(tmp_path / "best.keras")
    assert isinstance(best, Net) and best.compiled
    logs = best.evaluate(*data, verbose=0, return_dict=True)
    assert_close(logs["acc"], record["value"])
    last = keras.models.load_model(tmp_path / "last.keras")
    assert_close(last.evaluate(*data, verbose=0, return_dict=True)["ce"], history["val_ce"][-1],
                 rtol=1e-5)
