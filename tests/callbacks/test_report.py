"""ClassificationReport equals sklearn.metrics.classification_report on the validation set."""

import keras
import numpy as np
import pytest
from conftest import assert_close
from sklearn.metrics import classification_report

import kx


def _assert_report_equal(report, expected):
    assert report.keys() == expected.keys()
    for key, entry in expected.items():
        if isinstance(entry, dict):
            assert report[key].keys() == entry.keys(), key
            for stat, value in entry.items():
                assert_close(report[key][stat], value, rtol=1e-5, err_msg=f"{key} {stat}")
        else:
            assert_close(report[key], entry, rtol=1e-5, err_msg=key)


def _data(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype("float32")
    y = np.argmax(x[:, :4] + rng.normal(size=(n, 4)), axis=1)
    return x, y


def test_multiclass_in_fit_equals_sklearn_weighted_and_logs_keys():
    x, y = _data(96, 0)
    xv, yv = _data(60, 1)
    wv = np.random.default_rng(2).uniform(0.2, 2.0, len(yv)).astype("float32")
    keras.utils.set_random_seed(0)
    scores = kx.metrics.ClassificationMetrics(num_classes=4, metrics=("f1",))
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4, activation="softmax")])
    model.compile(keras.optimizers.SGD(0.3), "sparse_categorical_crossentropy",
                  weighted_metrics=[scores])
    printed = []
    report = kx.callbacks.ClassificationReport(scores, target_names=list("abcd"),
                                               print_fn=printed.append)
    history = model.fit(x, y, epochs=2, batch_size=16, verbose=0,
                        validation_data=(xv, yv, wv), callbacks=[report]).history
    y_pred = np.argmax(model.predict(xv, verbose=0), axis=1)
    expected = classification_report(yv, y_pred, labels=range(4), target_names=list("abcd"),
                                     sample_weight=wv, output_dict=True, zero_division=0)
    _assert_report_equal(report.report, expected)
    assert len(printed) == 2 and printed[-1] == report.text()
    assert "weighted avg" in printed[-1] and printed[-1].splitlines()[1].strip().startswith("a ")
    for key in ("val_report_a_precision", "val_report_d_f1", "val_report_c_support",
                "val_report_accuracy", "val_report_macro_avg_recall",
                "val_report_weighted_avg_f1"):
        assert len(history[key]) == 2, key
    assert_close(history["val_report_b_recall"][-1], expected["b"]["recall"], rtol=1e-5)
    assert_close(history["val_report_macro_avg_f1"][-1], expected["macro avg"]["f1-score"],
                 rtol=1e-5)
    assert_close(history["val_report_macro_avg_f1"][-1], history["val_f1"][-1], rtol=1e-5)


def test_binary_in_custom_model_and_evaluate_equals_sklearn():
    x, y = _data(64, 3)
    y = (y > 1).astype("int32")
    inputs = keras.Input((6,), name="x")
    model = kx.CustomModel(inputs, {"p": keras.layers.Dense(1, activation="sigmoid")(inputs)})
    binary = kx.metrics.ClassificationMetrics(num_classes=1, metrics=("recall",))
    model.compile("adam", loss={"bce": kx.LossDefinition("label", "p", "binary_crossentropy")},
                  metrics={"scores": kx.MetricDefinition("label", "p", binary)})
    model.fit({"x": x}, {"label": y}, epochs=1, verbose=0)
    printed = []
    report = kx.callbacks.ClassificationReport(binary, print_fn=printed.append)
    model.evaluate({"x": x}, {"label": y}, verbose=0, callbacks=[report])
    y_pred = (model.predict({"x": x}, verbose=0)["p"][:, 0] > 0.5).astype("int32")
    expected = classification_report(y, y_pred, labels=[0, 1], output_dict=True,
                                     zero_division=0)
    _assert_report_equal(report.report, expected)
    assert printed == [report.text()]


def test_multilabel_counts_equal_sklearn_without_samples_average():
    rng = np.random.default_rng(4)
    y_true = (rng.random((50, 3)) < 0.4).astype("int32")
    y_prob = np.clip(y_true * 0.4 + rng.random((50, 3)) * 0.7, 0, 1).astype("float32")
    metric = kx.metrics.ClassificationMetrics(num_classes=3, task="multilabel")
    metric.update_state(y_true, y_prob)
    report = kx.callbacks.ClassificationReport(metric, print_fn=None)
    expected = classification_report(y_true, (y_prob > 0.5).astype("int32"), output_dict=True,
                                     zero_division=0)
    del expected["samples avg"]
    _assert_report_equal(report.compute(), expected)


def test_errors_name_the_metric():
    with pytest.raises(TypeError, match="confusion_matrix"):
        kx.callbacks.ClassificationReport(keras.metrics.Accuracy())
    unused = kx.metrics.ClassificationMetrics(num_classes=3, name="unused")
    with pytest.raises(ValueError, match="'unused' holds no counts"):
        kx.callbacks.ClassificationReport(unused).compute()
    unbuilt = kx.metrics.ClassificationMetrics(name="unbuilt")
    with pytest.raises(ValueError, match="'unbuilt' has no state"):
        kx.callbacks.ClassificationReport(unbuilt).compute()
    topk = kx.metrics.ClassificationMetrics(num_classes=4, top_k=2, name="topk")
    topk.update_state(np.array([0, 1]), np.eye(4, dtype="float32")[[0, 2]])
    with pytest.raises(ValueError, match="top_k=1"):
        kx.callbacks.ClassificationReport(topk).compute()
