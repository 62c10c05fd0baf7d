"""Labels and targets out of range are never a silent finite loss (issue 11, item 9).

The rule (kx/losses/_utils.py, guides/losses.md): a sparse label outside `[0, num_classes)` that
is not `ignore_class`, or a dense target outside [0, 1], raises a `ValueError` when the values
are concrete (eager); inside a compiled step the loss of that sample is NaN (JAX, TensorFlow
with XLA), and TensorFlow's CPU kernels raise, as they do for Keras' own sparse cross-entropy.
Keras' `SparseCategoricalCrossentropy` on the same labels is the bar: kx is never weaker.
"""

import keras
import numpy as np
import pytest
from conftest import BACKEND, assert_close

import kx

L = kx.losses
np_ = keras.ops.convert_to_numpy

rng = np.random.default_rng(0)
Z = rng.normal(size=(4, 3)).astype("float32")  # logits of 3 classes
SEG = rng.normal(size=(2, 3, 3, 3)).astype("float32")  # segmentation logits, 3 classes
MASK_LOGITS = rng.normal(size=(2, 3, 3, 1)).astype("float32")
GOOD = np.array([0, 1, 2, 1])
BAD = np.array([0, 7, 2, 1])  # label 7 of 3 classes
SEG_BAD = np.zeros((2, 3, 3), "int32")
SEG_BAD[1, 2, 2] = 5  # mask label 5 on 3 channels
MASK_255 = np.zeros((2, 3, 3, 1), "float32")
MASK_255[:, :2] = 255.0  # a 0/255 mask, not divided by 255

# name -> (loss, y_true, y_pred, message): a ValueError with that message when eager
CASES = {
    "sparse_ce": (L.SparseCategoricalCrossentropy(from_logits=True), BAD, Z, r"labels 7"),
    "sparse_ce_negative": (L.SparseCategoricalCrossentropy(from_logits=True), -GOOD, Z,
                           r"\[0, 3\).*labels -2, -1"),
    "focal": (L.SparseCategoricalFocalCrossentropy(from_logits=True), BAD, Z, r"labels 7"),
    "class_weighted": (L.ClassWeightedCrossentropy([1.0, 2.0, 3.0], from_logits=True), BAD, Z,
                       r"labels 7"),
    "class_balanced": (L.ClassBalancedLoss("focal", [5, 3, 2], from_logits=True), BAD, Z,
                       r"labels 7"),
    "class_balanced_keras_base": (
        L.ClassBalancedLoss(keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                            [5, 3, 2]), BAD, Z, r"labels 7"),
    "poly": (L.PolyLoss(from_logits=True), BAD, Z, r"labels 7"),
    "kappa": (L.WeightedKappaLoss(3, from_logits=True), BAD, Z, r"\[0, 3\).*labels 7"),
    "jaccard": (L.Jaccard(from_logits=True), SEG_BAD, SEG, r"jaccard.*\[0, 3\).*labels 5"),
    "focal_tversky": (L.FocalTversky(from_logits=True), SEG_BAD, SEG, r"labels 5"),
    "log_cosh_dice": (L.LogCoshDice(from_logits=True), SEG_BAD, SEG, r"labels 5"),
    "log_dice": (L.LogDice(from_logits=True), SEG_BAD, SEG, r"labels 5"),
    "generalized_dice": (L.GeneralizedDice(from_logits=True), SEG_BAD, SEG, r"labels 5"),
    "lovasz_softmax": (L.LovaszSoftmax(from_logits=True), SEG_BAD, SEG, r"labels 5"),
    "jaccard_binary_sparse": (L.Jaccard(from_logits=True), MASK_255[..., 0].astype("int32"),
                              MASK_LOGITS, r"0/1 labels.*labels 255"),
    "jaccard_binary_mask": (L.Jaccard(from_logits=True), MASK_255, MASK_LOGITS,
                            r"`y_true` to hold targets in \[0, 1\].*255"),
    "lovasz_hinge": (L.LovaszHinge(), MASK_255, MASK_LOGITS, r"targets in \[0, 1\].*255"),
    "weighted_bce": (L.WeightedBinaryCrossentropy(2.0, from_logits=True), np.eye(3)[GOOD] * 2,
                     Z, r"targets in \[0, 1\]"),
    "asymmetric": (L.AsymmetricLoss(from_logits=True), np.eye(3)[GOOD] * 2, Z,
                   r"targets in \[0, 1\]"),
    "one_hot_ce": (L.ClassWeightedCrossentropy([1.0, 2.0, 3.0], sparse=False, from_logits=True),
                   np.eye(3)[GOOD] * 2, Z, r"targets in \[0, 1\]"),
}


@pytest.mark.parametrize("name", CASES)
def test_out_of_range_is_a_value_error_when_eager(name):
    loss, y_true, y_pred, message = CASES[name]
    with pytest.raises(ValueError, match=message):
        loss(y_true, y_pred)


def test_ignored_labels_are_not_out_of_range():
    labels = np.array([0, 255, 2, 1])
    got = L.SparseCategoricalCrossentropy(from_logits=True, ignore_class=255)(labels, Z)
    want = keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=255)(
        labels, Z)
    assert_close(got, want)
    with pytest.raises(ValueError, match=r"\[0, 3\).*or ignore_class=255.*labels 7"):
        L.SparseCategoricalCrossentropy(from_logits=True, ignore_class=255)(BAD, Z)
    mask = MASK_255.copy()
    mask[:, 2:] = 1.0  # 0/1 with the 255 pixels ignored: fine
    value = L.LovaszHinge(ignore_class=255)(mask, MASK_LOGITS)
    assert np.isfinite(np_(value))
    value = L.Jaccard(from_logits=True, ignore_class=255)(mask, MASK_LOGITS)
    assert np.isfinite(np_(value))


def test_keras_sparse_crossentropy_is_the_bar():
    """What stock Keras does with label 7 of 3 classes, eagerly, on this backend: kx raises
    wherever Keras does, and where Keras returns a finite number (JAX), kx raises too."""
    keras_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    try:
        keras_value = float(np_(keras_loss(BAD, Z)))
    except Exception:  # TensorFlow: InvalidArgumentError, torch: IndexError
        keras_value = None
    if BACKEND == "jax":
        assert np.isfinite(keras_value)  # Keras is silent here; kx is not
    with pytest.raises(ValueError, match=r"labels 7"):
        L.SparseCategoricalCrossentropy(from_logits=True)(BAD, Z)


def fit_loss(loss, y_true, x_shape, units):
    model = keras.Sequential([keras.Input(x_shape), keras.layers.Dense(units)])
    model.compile(optimizer="sgd", loss=loss)
    x = np.ones((len(y_true), *x_shape), "float32")
    return model.fit(x, y_true, batch_size=len(y_true), epochs=1, verbose=0).history["loss"][0]


@pytest.mark.parametrize("name", ["sparse_ce", "kappa", "jaccard", "lovasz_hinge",
                                  "jaccard_binary_mask"])
def test_out_of_range_inside_fit_is_never_a_finite_loss(name):
    loss, y_true, y_pred, message = CASES[name]
    x_shape, units = y_pred.shape[1:-1] + (2,), y_pred.shape[-1]
    if BACKEND == "torch":  # torch steps run eagerly: the ValueError
        with pytest.raises(ValueError, match=message):
            fit_loss(loss, y_true, x_shape, units)
        return
    sparse = name not in ("lovasz_hinge", "jaccard_binary_mask")
    if BACKEND == "tensorflow" and sparse:
        # TensorFlow's CPU gather checks the labels inside the graph, as for Keras' own loss.
        with pytest.raises(Exception, match=r"is not in \[0, 3\)"):
            fit_loss(loss, y_true, x_shape, units)
        return
    # JAX (and TensorFlow on dense targets): the values are not known while tracing: NaN.
    assert np.isnan(fit_loss(loss, y_true, x_shape, units))


@pytest.mark.parametrize("cls", [L.Jaccard, L.FocalTversky, L.LogDice, L.LogCoshDice,
                                 L.GeneralizedDice])
@pytest.mark.parametrize("smooth", [1e-8, 1e-12])
def test_tiny_smooth_scores_an_empty_prediction_on_an_empty_mask_perfect(cls, smooth):
    """Below epsilon (1e-7) the denominator used to be clamped, giving 0.9 instead of 0."""
    empty = np.zeros((2, 4, 1), "float32")
    assert_close(cls(smooth=smooth)(empty, empty), 0.0)
    # and away from the empty case: the formula (sum(t p) + s) / (sum(t) + sum(p) - ... + s)
    t = np.array([[[1.0], [0.0], [1.0], [0.0]]])
    p = np.array([[[0.8], [0.1], [0.6], [0.0]]], "float32")
    if cls is L.Jaccard:
        inter, union = (t * p).sum(), t.sum() + p.sum() - (t * p).sum()
        assert_close(cls(smooth=smooth)(t, p), 1 - (inter + smooth) / (union + smooth))
