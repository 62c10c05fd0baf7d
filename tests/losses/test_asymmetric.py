"""kx/losses/asymmetric.py against a NumPy reference of Ridnik et al. 2021."""

import keras
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from losses._reference import ATOL, RTOL, check_reduction, ref_asymmetric

import kx

np_ = keras.ops.convert_to_numpy


@given(st.floats(0, 3), st.floats(0, 6), st.floats(0, 0.3),
       st.sampled_from(["sum_over_batch_size", "sum", None]), st.booleans(),
       st.integers(0, 2**16))
def test_matches_reference(gamma_pos, gamma_neg, clip, reduction, weighted, seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, (6, 3)).astype("float32")
    z = rng.normal(0, 3, (6, 3)).astype("float32")
    expected = ref_asymmetric(y, z.astype("f8"), gamma_pos, gamma_neg, clip)
    check_reduction(
        lambda r: kx.losses.AsymmetricLoss(gamma_pos, gamma_neg, clip, from_logits=True,
                                           reduction=r),
        y, z, expected, reduction, weighted, rng,
    )
    # probabilities give the same values as logits
    np.testing.assert_allclose(
        np_(kx.losses.asymmetric_loss(y, 1 / (1 + np.exp(-z.astype("f8"))), gamma_pos=gamma_pos,
                                      gamma_neg=gamma_neg, clip=clip)),
        expected, rtol=1e-4, atol=1e-5)


def test_no_focusing_no_clip_is_binary_crossentropy():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, (6, 3)).astype("float32")
    p = rng.uniform(0, 1, (6, 3)).astype("float32")
    ours = kx.losses.AsymmetricLoss(gamma_pos=0, gamma_neg=0, clip=0)
    np.testing.assert_allclose(np_(ours(y, p)), np_(keras.losses.BinaryCrossentropy()(y, p)),
                               rtol=RTOL, atol=ATOL)
    with pytest.raises(ValueError, match=r"clip.*\[0, 1\).*1.5"):
        kx.losses.AsymmetricLoss(clip=1.5)
    with pytest.raises(ValueError, match=r"gamma_neg.*non-negative"):
        kx.losses.AsymmetricLoss(gamma_neg=-2)
