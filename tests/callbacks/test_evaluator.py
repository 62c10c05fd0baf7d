"""Evaluator: Python metrics over the validation set at each epoch end, seen by other callbacks."""

import warnings

import keras
import numpy as np
import pytest
from sklearn import metrics as skm

import kx


def _data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype("float32")
    y = ((x[:, 0] + 0.5 * rng.normal(size=n)) > 0).astype("int32")
    return x, y


def _model():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(keras.optimizers.SGD(0.1), "binary_crossentropy")
    return model


def test_logs_val_metric_equal_to_sklearn_and_seen_by_callbacks_listed_after(tmp_path):
    x, y = _data()
    xv, yv = _data(48, seed=1)
    wv = np.random.default_rng(2).uniform(0.5, 1.5, 48)
    model = _model()
    evaluator = kx.callbacks.Evaluator(
        {"auc": kx.metrics.RocAuc(), "ap": kx.metrics.AveragePrecision()}, (xv, yv, wv),
        batch_size=16)
    stop = keras.callbacks.EarlyStopping(monitor="val_auc", mode="max", patience=5)
    path = str(tmp_path / "best.weights.h5")
    checkpoint = keras.callbacks.ModelCheckpoint(path, monitor="val_auc", mode="max",
                                                 save_best_only=True, save_weights_only=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # Keras warns when a monitored key is missing
        history = model.fit(x, y, epochs=3, verbose=0,
                            callbacks=[evaluator, stop, checkpoint])
    assert len(history.history["val_auc"]) == 3 and len(history.history["val_ap"]) == 3
    assert stop.best == max(history.history["val_auc"])
    assert checkpoint.best == max(history.history["val_auc"])
    scores = model.predict(xv, verbose=0)[:, 0]
    np.testing.assert_allclose(history.history["val_auc"][-1],
                               skm.roc_auc_score(yv, scores, sample_weight=wv), rtol=1e-6)
    np.testing.assert_allclose(
        history.history["val_ap"][-1],
        skm.average_precision_score(yv, scores, sample_weight=wv), rtol=1e-6)


def test_dict_results_definitions_and_multi_output():
    x, y = _data()
    inputs = keras.Input((4,), name="x")
    h = keras.layers.Dense(3, name="logits")(inputs)
    p = keras.layers.Dense(1, activation="sigmoid", name="prob")(inputs)
    model = keras.Model(inputs, {"logits": h, "prob": p})
    model.compile("sgd", {"logits": keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                          "prob": "binary_crossentropy"})
    y3 = np.random.default_rng(3).integers(0, 3, len(y))
    targets = {"logits": y3, "prob": y}
    definition = kx.MetricDefinition("logits", "logits",
                                     kx.metrics.RocAuc(average=None, from_logits=True))
    evaluator = kx.callbacks.Evaluator({"auc3": definition}, (x, targets))
    history = model.fit(x, targets, epochs=1, verbose=0, callbacks=[evaluator])
    assert {"val_auc3_0", "val_auc3_1", "val_auc3_2"} <= set(history.history)


def test_bare_python_metric_needs_one_output_and_bad_arguments():
    x, y = _data(16)
    inputs = keras.Input((4,), name="x")
    model = keras.Model(inputs, {"a": keras.layers.Dense(1, name="a")(inputs),
                                 "b": keras.layers.Dense(1, name="b")(inputs)})
    evaluator = kx.callbacks.Evaluator({"auc": kx.metrics.RocAuc()}, (x, {"a": y, "b": y}))
    evaluator.set_model(model)
    with pytest.raises(ValueError, match=r"needs one target and one output.*\['a', 'b'\]"):
        evaluator.evaluate()
    with pytest.raises(TypeError, match="PythonMetric or a kx.MetricDefinition"):
        kx.callbacks.Evaluator({"acc": keras.metrics.Accuracy()}, (x, y))
    with pytest.raises(TypeError, match="non-empty dict"):
        kx.callbacks.Evaluator([kx.metrics.RocAuc()], (x, y))
    with pytest.raises(ValueError, match=r"\(x, y\) or \(x, y, sample_weight\).*length 1"):
        kx.callbacks.Evaluator({"auc": kx.metrics.RocAuc()}, (x,))


def test_keeps_the_callback_order_keras_was_given():
    """Keras calls callbacks in list order: the Evaluator does not move itself (the order is
    the user's, and `kx.CustomModel.fit` puts its own Evaluator first)."""
    x, y = _data(16)
    a = kx.callbacks.Evaluator({"a": kx.metrics.RocAuc()}, (x, y))
    stop = keras.callbacks.EarlyStopping()
    history = keras.callbacks.History()
    callbacks = keras.callbacks.CallbackList([stop, a, history], model=_model())
    assert callbacks.callbacks == [stop, a, history]


def _sources(x, y, w):
    """The same validation set as every source `fit(validation_data=...)` takes."""
    import tensorflow as tf
    import torch

    def generator():
        for i in range(0, len(x), 16):
            yield x[i:i + 16], y[i:i + 16], w[i:i + 16]

    tensors = [torch.from_numpy(a) for a in (x, y, w)]
    return {
        "DataGenerator": kx.DataGenerator(x, y, batch_size=16, shuffle=False, sample_weight=w),
        "tf.data": tf.data.Dataset.from_tensor_slices((x, y, w)).batch(16),
        "DataLoader": torch.utils.data.DataLoader(
            torch.utils.data.TensorDataset(*tensors), batch_size=16),
        "generator": (generator(), {"steps": 3}),
    }


def test_any_validation_source_equals_arrays():
    x, y = _data(48, seed=1)
    w = np.random.default_rng(2).uniform(0.5, 1.5, 48).astype("float32")
    model = _model()
    metrics = {"auc": kx.metrics.RocAuc(), "ap": kx.metrics.AveragePrecision()}
    reference = kx.callbacks.Evaluator(metrics, (x, y, w))
    reference.set_model(model)
    expected = reference.evaluate()
    for name, source in _sources(x, y, w).items():
        source, kwargs = source if isinstance(source, tuple) else (source, {})
        evaluator = kx.callbacks.Evaluator(metrics, source, **kwargs)
        evaluator.set_model(model)
        got = evaluator.evaluate()
        assert got.keys() == expected.keys(), name
        for key in expected:
            np.testing.assert_allclose(got[key], expected[key], rtol=1e-6, err_msg=name)
    # the reference is scikit-learn on the whole set
    scores = model.predict(x, verbose=0)[:, 0]
    np.testing.assert_allclose(expected["val_auc"],
                               skm.roc_auc_score(y, scores, sample_weight=w), rtol=1e-6)


def test_custom_model_python_metric_over_a_data_generator_equals_arrays():
    x, y = _data(64)
    xv, yv = _data(40, seed=1)

    def fit(validation_data):
        keras.utils.set_random_seed(0)
        inputs = keras.Input((4,), name="x")
        model = kx.CustomModel(inputs, {"p": keras.layers.Dense(1, activation="sigmoid")(inputs)})
        model.compile(keras.optimizers.SGD(0.1),
                      loss={"bce": kx.LossDefinition("label", "p", "binary_crossentropy")},
                      metrics={"auc": kx.MetricDefinition("label", "p", kx.metrics.RocAuc())})
        history = model.fit({"x": x}, {"label": y}, batch_size=16, shuffle=False, epochs=2,
                            verbose=0, validation_data=validation_data).history
        return history, model

    arrays, model = fit(({"x": xv}, {"label": yv}))
    generated, _ = fit(kx.DataGenerator({"x": xv}, {"label": yv}, batch_size=16, shuffle=False))
    np.testing.assert_allclose(generated["val_auc"], arrays["val_auc"], rtol=1e-6)
    scores = model.predict({"x": xv}, verbose=0)["p"][:, 0]
    np.testing.assert_allclose(arrays["val_auc"][-1], skm.roc_auc_score(yv, scores), rtol=1e-6)


def test_source_errors_name_what_is_expected():
    x, y = _data(16)
    with pytest.raises(ValueError, match="PyDataset.*Received: int"):
        kx.callbacks.Evaluator({"auc": kx.metrics.RocAuc()}, 3)
    evaluator = kx.callbacks.Evaluator({"auc": kx.metrics.RocAuc()}, iter([(x, y)]))
    evaluator.set_model(_model())
    evaluator.evaluate()
    with pytest.raises(ValueError, match="yielded no batch.*read once"):
        evaluator.evaluate()
    with pytest.raises(ValueError, match="targets"):
        bad = kx.callbacks.Evaluator({"auc": kx.metrics.RocAuc()}, iter([x]))
        bad.set_model(_model())
        bad.evaluate()


def test_custom_model_refuses_a_validation_generator_it_would_share_with_fit():
    x, y = _data(16)
    inputs = keras.Input((4,), name="x")
    model = kx.CustomModel(inputs, {"p": keras.layers.Dense(1, activation="sigmoid")(inputs)})
    model.compile("sgd", loss={"bce": kx.LossDefinition("label", "p", "binary_crossentropy")},
                  metrics={"auc": kx.MetricDefinition("label", "p", kx.metrics.RocAuc())})
    def batches():
        yield {"x": x}, {"label": y}

    with pytest.raises(ValueError, match=r"\['auc'\].*generator, which can be read only once"):
        model.fit({"x": x}, {"label": y}, epochs=1, verbose=0, validation_data=batches())
