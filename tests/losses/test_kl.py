"""kx/losses/kl.py against the closed form of Kingma & Welling 2014 (appendix B)."""

import keras
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from losses._reference import ATOL, RTOL, check_reduction, ref_kl

import kx

np_ = keras.ops.convert_to_numpy


@given(st.sampled_from(["sum_over_batch_size", "sum", None]), st.booleans(),
       st.integers(0, 2**16))
def test_matches_reference(reduction, weighted, seed):
    rng = np.random.default_rng(seed)
    mean = rng.normal(0, 2, (6, 3)).astype("float32")
    log_var = rng.normal(0, 1, (6, 3)).astype("float32")
    expected = ref_kl(mean.astype("f8"), log_var.astype("f8"))
    np.testing.assert_allclose(np_(kx.losses.kl_divergence_to_standard_normal(mean, log_var)),
                               expected, rtol=RTOL, atol=ATOL)
    stacked = np.concatenate([mean, log_var], -1)
    check_reduction(lambda r: kx.losses.GaussianKLDivergence(reduction=r),
                    np.zeros(6), stacked, expected, reduction, weighted, rng)


def test_latent_of_higher_rank_and_bad_input():
    rng = np.random.default_rng(7)
    mean, log_var = rng.normal(size=(2, 4, 4, 3)), rng.normal(size=(2, 4, 4, 3))
    np.testing.assert_allclose(np_(kx.losses.kl_divergence_to_standard_normal(mean, log_var)),
                               ref_kl(mean, log_var), rtol=RTOL, atol=1e-5)
    with pytest.raises(ValueError, match=r"\[mean, log_var\].*even.*\(2, 5\)"):
        kx.losses.GaussianKLDivergence()(np.zeros(2), np.zeros((2, 5)))
    with pytest.raises(ValueError, match=r"mean.shape=\(2, 3\), log_var.shape=\(2, 4\)"):
        kx.losses.kl_divergence_to_standard_normal(np.zeros((2, 3)), np.zeros((2, 4)))
