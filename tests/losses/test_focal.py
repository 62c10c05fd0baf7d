"""kx/losses/focal.py against a NumPy reference of Lin et al. 2017 and Keras' categorical focal."""

import keras
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from losses._reference import ATOL, RTOL, check_reduction, one_hot, probs, ref_focal, ref_smooth

import kx

np_ = keras.ops.convert_to_numpy


@given(st.floats(0, 4), st.sampled_from([None, 0.25, "vector"]), st.floats(0, 0.5),
       st.booleans(), st.sampled_from(["sum_over_batch_size", "sum", None]), st.booleans(),
       st.integers(0, 2**16))
def test_matches_reference(gamma, alpha, ls, from_logits, reduction, weighted, seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, 6)
    y_pred = rng.normal(0, 3, (6, 4)) if from_logits else rng.dirichlet(np.ones(4), 6)
    y_pred = y_pred.astype("float32")
    alpha = rng.uniform(0, 1, 4).tolist() if alpha == "vector" else alpha
    expected = ref_focal(ref_smooth(labels, 4, ls), probs(y_pred.astype("f8"), from_logits),
                         gamma, 1.0 if alpha is None else alpha)
    check_reduction(
        lambda r: kx.losses.SparseCategoricalFocalCrossentropy(
            gamma, alpha, from_logits=from_logits, label_smoothing=ls, reduction=r),
        labels, y_pred, expected, reduction, weighted, rng,
    )


@pytest.mark.parametrize("from_logits", [True, False])
def test_known_cases(from_logits):
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 4, 6)
    y_pred = rng.normal(0, 3, (6, 4)) if from_logits else rng.dirichlet(np.ones(4), 6)
    y_pred = y_pred.astype("float32")
    # gamma = 0 is cross-entropy
    np.testing.assert_allclose(
        np_(kx.losses.sparse_categorical_focal_crossentropy(
            labels, y_pred, gamma=0.0, from_logits=from_logits)),
        np_(keras.losses.sparse_categorical_crossentropy(labels, y_pred, from_logits=from_logits)),
        rtol=RTOL, atol=ATOL)
    # equal to Keras' categorical focal on one-hot targets (alpha=0.25, smoothing)
    theirs = keras.losses.CategoricalFocalCrossentropy(
        alpha=0.25, gamma=1.5, from_logits=from_logits, label_smoothing=0.1)
    ours = kx.losses.SparseCategoricalFocalCrossentropy(
        alpha=0.25, gamma=1.5, from_logits=from_logits, label_smoothing=0.1)
    np.testing.assert_allclose(np_(ours(labels, y_pred)),
                               np_(theirs(one_hot(labels, 4), y_pred)), rtol=RTOL, atol=ATOL)


def test_ignore_class_and_bad_input():
    z = np.array([[3.0, 0.0], [0.0, 0.0], [1.0, 2.0]], "float32")
    loss = kx.losses.SparseCategoricalFocalCrossentropy(from_logits=True, ignore_class=-1)
    expected = ref_focal(one_hot(np.array([0, 1]), 2), probs(z[[0, 2]], True), 2.0).mean()
    np.testing.assert_allclose(np_(loss([0, -1, 1], z)), expected, rtol=RTOL, atol=ATOL)
    with pytest.raises(ValueError, match=r"alpha.*one entry per class \(2.*length 3"):
        kx.losses.SparseCategoricalFocalCrossentropy(alpha=[1, 2, 3])([0], [[0.5, 0.5]])
    with pytest.raises(ValueError, match=r"gamma.*non-negative.*-1"):
        kx.losses.SparseCategoricalFocalCrossentropy(gamma=-1)
