"""kx/losses/class_balanced.py against a NumPy reference of Cui et al. 2019."""

import keras
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from losses._reference import (
    ATOL,
    RTOL,
    check_reduction,
    one_hot,
    probs,
    ref_cb_weights,
    ref_crossentropy,
    ref_focal,
)

import kx

np_ = keras.ops.convert_to_numpy


@given(st.sampled_from(["cross_entropy", "focal"]), st.floats(0, 0.9999), st.booleans(),
       st.sampled_from(["sum_over_batch_size", "sum", None]), st.booleans(),
       st.integers(0, 2**16))
def test_matches_reference(base, beta, sparse, reduction, weighted, seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, 6)
    counts = rng.integers(1, 1000, 4).tolist()
    z = rng.normal(0, 3, (6, 4)).astype("float32")
    q, p = one_hot(labels, 4), probs(z.astype("f8"), True)
    base_values = ref_crossentropy(q, p) if base == "cross_entropy" else ref_focal(q, p, 2.0)
    expected = ref_cb_weights(counts, beta)[labels] * base_values
    np.testing.assert_allclose(kx.losses.class_balanced_weights(counts, beta),
                               ref_cb_weights(counts, beta), rtol=RTOL)
    check_reduction(
        lambda r: kx.losses.ClassBalancedLoss(base, counts, beta, sparse=sparse,
                                              from_logits=True, reduction=r),
        labels if sparse else q.astype("float32"), z, expected, reduction, weighted, rng,
    )


def test_beta_zero_is_the_base_and_loss_instances_wrap():
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 3, 8)
    z = rng.normal(0, 3, (8, 3)).astype("float32")
    base = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    cb = kx.losses.ClassBalancedLoss(base, [5, 50, 500], beta=0.0)
    np.testing.assert_allclose(np_(cb(labels, z)), np_(base(labels, z)), rtol=RTOL, atol=ATOL)
    cb = kx.losses.ClassBalancedLoss(base, [5, 50, 500], beta=0.99)
    w = ref_cb_weights([5, 50, 500], 0.99)
    expected = (w[labels] * ref_crossentropy(one_hot(labels, 3), probs(z.astype("f8"), True)))
    np.testing.assert_allclose(np_(cb(labels, z)), expected.mean(), rtol=RTOL, atol=ATOL)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(cb))
    np.testing.assert_allclose(np_(restored(labels, z)), expected.mean(), rtol=RTOL, atol=ATOL)


def test_bad_input():
    with pytest.raises(ValueError, match=r"samples_per_class.*positive counts.*\[3, 0\]"):
        kx.losses.ClassBalancedLoss("focal", [3, 0])
    with pytest.raises(ValueError, match=r"beta.*\[0, 1\).*1.0"):
        kx.losses.ClassBalancedLoss("focal", [3, 4], beta=1.0)
    with pytest.raises(ValueError, match=r"base_loss.*'cross_entropy', 'focal'.*'hinge'"):
        kx.losses.ClassBalancedLoss("hinge", [3, 4])
    with pytest.raises(ValueError, match=r"samples_per_class.*one entry per class \(3.*length 2"):
        kx.losses.ClassBalancedLoss("focal", [3, 4])([0], [[0.2, 0.3, 0.5]])
