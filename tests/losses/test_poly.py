"""kx/losses/poly.py against a NumPy reference of Leng et al. 2022 (Poly-1)."""

import keras
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from losses._reference import ATOL, RTOL, check_reduction, one_hot, probs, ref_poly

import kx

np_ = keras.ops.convert_to_numpy


@given(st.floats(-1, 3), st.sampled_from(["ce", "focal"]), st.floats(0, 3), st.booleans(),
       st.booleans(), st.sampled_from(["sum_over_batch_size", "sum", None]), st.booleans(),
       st.integers(0, 2**16))
def test_matches_reference(epsilon, base, gamma, sparse, from_logits, reduction, weighted,
                           seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, 6)
    y_pred = rng.normal(0, 3, (6, 4)) if from_logits else rng.dirichlet(np.ones(4), 6)
    y_pred = y_pred.astype("float32")
    q = one_hot(labels, 4)
    expected = ref_poly(q, probs(y_pred.astype("f8"), from_logits), epsilon, base, gamma)
    check_reduction(
        lambda r: kx.losses.PolyLoss(epsilon, base, gamma, sparse=sparse,
                                     from_logits=from_logits, reduction=r),
        labels if sparse else q.astype("float32"), y_pred, expected, reduction, weighted, rng,
    )


def test_epsilon_zero_is_the_base():
    rng = np.random.default_rng(6)
    labels = rng.integers(0, 4, 6)
    z = rng.normal(0, 3, (6, 4)).astype("float32")
    np.testing.assert_allclose(
        np_(kx.losses.PolyLoss(0.0, from_logits=True)(labels, z)),
        np_(keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, z)),
        rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(
        np_(kx.losses.PolyLoss(0.0, "focal", gamma=2.0, from_logits=True)(labels, z)),
        np_(kx.losses.SparseCategoricalFocalCrossentropy(2.0, from_logits=True)(labels, z)),
        rtol=RTOL, atol=ATOL)
    with pytest.raises(ValueError, match=r"base.*'ce', 'focal'.*'dice'"):
        kx.losses.PolyLoss(base="dice")
