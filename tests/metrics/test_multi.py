"""MultiMetric: one precompute per batch, children's results as one dict, config round trip."""

import keras
import numpy as np

import kx
from kx.metrics import MultiMetric

RTOL, ATOL = 1e-5, 1e-6


class CountingArgmax(MultiMetric):
    calls = 0

    def precompute(self, y_true, y_pred, sample_weight):
        type(self).calls += 1
        return y_true, keras.ops.argmax(y_pred, axis=-1), sample_weight


def test_precompute_once_feeds_every_child_and_results_merge():
    rng = np.random.default_rng(0)
    y, scores = rng.integers(0, 3, 32), rng.dirichlet(np.ones(3), 32).astype("float32")
    w = rng.uniform(size=32).astype("float32")
    m = CountingArgmax([
        keras.metrics.Accuracy(),
        kx.metrics.MatthewsCorrelation(num_classes=3),
        kx.metrics.ClassificationMetrics(num_classes=3, metrics=["precision", "recall"],
                                         name="cls"),
    ])
    CountingArgmax.calls = 0
    m.update_state(y[:10], scores[:10], sample_weight=w[:10])
    m.update_state(y[10:], scores[10:], sample_weight=w[10:])
    assert CountingArgmax.calls == 2
    res = {k: float(v) for k, v in m.result().items()}
    assert set(res) == {"accuracy", "mcc", "cls_precision", "cls_recall"}
    ref_acc = keras.metrics.Accuracy()
    ref_acc.update_state(y, scores.argmax(-1), sample_weight=w)
    ref = kx.metrics.ClassificationMetrics(num_classes=3, metrics=["precision", "recall", "mcc"])
    ref.update_state(y, scores, sample_weight=w)
    expected = {"accuracy": float(ref_acc.result()), "mcc": float(ref.result()["mcc"]),
                "cls_precision": float(ref.result()["precision"]),
                "cls_recall": float(ref.result()["recall"])}
    for k, v in expected.items():
        np.testing.assert_allclose(res[k], v, rtol=RTOL, atol=ATOL, err_msg=k)
    m.reset_state()
    assert float(m.result()["accuracy"]) == 0.0
    # Every child's state is tracked by the parent (needed by JAX's stateless steps).
    assert len(m.variables) == sum(len(c.variables) for c in m.children)


def test_config_round_trip_and_fit():
    m = MultiMetric([kx.metrics.Specificity(num_classes=3),
                     kx.metrics.CohenKappa(num_classes=3, weights="quadratic")], name="multi")
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(m))
    assert type(clone) is MultiMetric and clone.get_config() == m.get_config()
    x = np.random.default_rng(1).normal(size=(32, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int32") + (x[:, 1] > 0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=[clone])
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    assert {"specificity", "cohen_kappa"} <= set(logs)


def test_bad_children():
    import pytest

    with pytest.raises(TypeError, match="list of keras.metrics.Metric"):
        MultiMetric(keras.metrics.Accuracy())
    with pytest.raises(TypeError, match="Received: 'acc'"):
        MultiMetric(["acc"])
    with pytest.raises(ValueError, match="distinct names.*'accuracy', 'accuracy'"):
        MultiMetric([keras.metrics.Accuracy(), keras.metrics.Accuracy()])
