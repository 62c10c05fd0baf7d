"""Checks every classification loss of kx.losses shares: config round trip, float16/bfloat16
inputs, finite gradients at the extremes, the probability check (eager and traced), and one
`fit` of a small digits model on the current backend."""

import keras
import numpy as np
import pytest
from conftest import BACKEND
from losses._reference import ATOL, RTOL, gradient
from sklearn.datasets import load_digits

import kx

np_ = keras.ops.convert_to_numpy
C = 10
L = kx.losses

# name -> (logits loss, probabilities loss or None, target kind)
CASES = {
    "sparse_ce": (L.SparseCategoricalCrossentropy(from_logits=True, label_smoothing=0.1),
                  L.SparseCategoricalCrossentropy(label_smoothing=0.1), "sparse"),
    "focal": (L.SparseCategoricalFocalCrossentropy(alpha=[0.5] * C, from_logits=True),
              L.SparseCategoricalFocalCrossentropy(gamma=0.5), "sparse"),
    "weighted_bce": (L.WeightedBinaryCrossentropy([2.0] * C, from_logits=True),
                     L.WeightedBinaryCrossentropy(3.0), "multi_label"),
    "class_weighted": (L.ClassWeightedCrossentropy({1: 2.0}, from_logits=True),
                       L.ClassWeightedCrossentropy([1.0] * C, sparse=False), "sparse"),
    "class_balanced": (L.ClassBalancedLoss("focal", [10 + i for i in range(C)], 0.99,
                                           from_logits=True),
                       L.ClassBalancedLoss("cross_entropy", [5] * C), "sparse"),
    "asymmetric": (L.AsymmetricLoss(from_logits=True), L.AsymmetricLoss(gamma_pos=0.5),
                   "multi_label"),
    "poly": (L.PolyLoss(1.0, "focal", from_logits=True), L.PolyLoss(2.0), "sparse"),
    "kl": (L.GaussianKLDivergence(), None, "ignored"),
    "kappa": (L.WeightedKappaLoss(C, from_logits=True), L.WeightedKappaLoss(C, "linear"),
              "sparse"),
    "combined": (L.SparseCategoricalCrossentropy(from_logits=True)
                 + 0.5 * L.PolyLoss(from_logits=True), None, "sparse"),
}
ONE_HOT_PROBS = {"class_weighted"}  # its probability variant takes one-hot targets


def targets(kind, labels, one_hot=False):
    if kind == "multi_label" or one_hot:
        return np.eye(C, dtype="float32")[labels]
    if kind == "ignored":
        return np.zeros(len(labels), "float32")
    return labels


def sample(n=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, C, n), rng.normal(0, 2, (n, C)).astype("float32")


@pytest.mark.parametrize("name", CASES)
def test_every_loss(name):
    """One test per loss (the per-test session clearing is what costs time): config round
    trip, float16/bfloat16 inputs, finite gradients at the extremes."""
    check_config_round_trip(name)
    for dtype in ("float16", "bfloat16"):
        check_low_precision_inputs(name, dtype)
    check_finite_gradients(name)


def check_config_round_trip(name):
    labels, z = sample()
    for loss in CASES[name][:2]:
        if loss is None:
            continue
        kind = CASES[name][2]
        y_pred = z if loss is CASES[name][0] else keras.ops.convert_to_numpy(
            keras.ops.softmax(z) if kind != "multi_label" else keras.ops.sigmoid(z))
        y_true = targets(kind, labels, loss is CASES[name][1] and name in ONE_HOT_PROBS)
        expected = np_(loss(y_true, y_pred))
        again = type(loss).from_config(loss.get_config())
        restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
        assert again.get_config() == loss.get_config() == restored.get_config()
        np.testing.assert_allclose(np_(again(y_true, y_pred)), expected, rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(np_(restored(y_true, y_pred)), expected, rtol=RTOL, atol=ATOL)


def check_low_precision_inputs(name, dtype):
    loss, _, kind = CASES[name]
    labels, z = sample()
    low = keras.ops.cast(z, dtype)
    got = loss(targets(kind, labels), low)
    assert keras.backend.standardize_dtype(got.dtype) == "float32"
    same_values = np_(keras.ops.cast(low, "float32"))
    np.testing.assert_allclose(np_(got), np_(loss(targets(kind, labels), same_values)),
                               rtol=RTOL, atol=ATOL)


def check_finite_gradients(name):
    loss, prob_loss, kind = CASES[name]
    labels = np.array([0, 0, 0, 1])  # most classes are empty in this batch
    z = np.zeros((4, C), "float32")
    z[:, ::2], z[:, 1::2] = 100.0, -100.0
    if kind == "ignored":
        z[:, C // 2:] = 5.0  # log-variances (exp(100) overflows float32 by design)
    g = gradient(lambda x: loss(targets(kind, labels), x), z)
    assert np.all(np.isfinite(g)), g
    if prob_loss is not None:
        p = (z > 0).astype("float32") / (1.0 if kind == "multi_label" else C / 2)
        p[:, 1] = 0.0 if kind == "multi_label" else p[:, 1]
        y_true = targets(kind, labels, name in ONE_HOT_PROBS)
        g = gradient(lambda x: prob_loss(y_true, x), p)
        assert np.all(np.isfinite(g)), g


def test_probability_check_eager_and_traced():
    loss = L.SparseCategoricalFocalCrossentropy()
    with pytest.raises(ValueError, match=r"SparseCategoricalFocal|sparse_categorical_focal.*"
                                         r"\[0, 1\].*from_logits=True.*values in \[-1, 2\]"):
        loss([0, 1], [[2.0, -1.0], [0.5, 0.5]])
    x = np.ones((16, 4), "float32")
    y = np.zeros(16, "int32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, kernel_initializer="ones")])
    if BACKEND != "torch":  # tf.function / jax.jit trace: NaN marks the bad probabilities
        model.compile("sgd", loss=loss)
        assert np.isnan(model.fit(x, y, epochs=1, verbose=0).history["loss"][0])
    if BACKEND != "jax":  # eager (torch, TF run_eagerly): the ValueError. JAX differentiates
        model.compile("sgd", loss=loss, run_eagerly=True)  # by tracing, so it never is eager
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            model.fit(x, y, epochs=1, verbose=0)


def test_fit_digits_with_every_loss():
    digits = load_digits()
    x = (digits.data[:96] / 16.0).astype("float32")
    labels = digits.target[:96]
    inputs = keras.Input((64,), name="image")
    h = keras.layers.Dense(16, activation="relu")(inputs)
    outputs = {name: keras.layers.Dense(C, name=name)(h) for name in CASES}
    model = keras.Model(inputs, outputs)
    model.compile("adam", loss={name: case[0] for name, case in CASES.items()})
    y = {name: targets(kind, labels) for name, (_, _, kind) in CASES.items()}
    history = model.fit(x, y, batch_size=32, epochs=2, verbose=0)
    first, last = history.history["loss"]
    assert np.isfinite(last) and last < first
