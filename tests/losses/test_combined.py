"""kx/losses/combined.py: loss arithmetic reduces once and round-trips through keras.saving."""

import keras
import numpy as np
import pytest
from losses._reference import ATOL, RTOL

import kx

np_ = keras.ops.convert_to_numpy


@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "sum", None])
def test_sum_equals_weighted_sum_of_parts(reduction):
    rng = np.random.default_rng(8)
    labels = rng.integers(0, 3, 6)
    z = rng.normal(0, 2, (6, 3)).astype("float32")
    sw = rng.uniform(0, 2, 6).astype("float32")
    a = kx.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=reduction)
    b = kx.losses.PolyLoss(2.0, from_logits=True, reduction=reduction)
    c = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=reduction)
    combined = a + 0.5 * b + c
    combined.reduction = reduction
    assert combined.weights == [1.0, 0.5, 1.0]
    expected = np_(a(labels, z, sw)) + 0.5 * np_(b(labels, z, sw)) + np_(c(labels, z, sw))
    np.testing.assert_allclose(np_(combined(labels, z, sw)), expected, rtol=RTOL, atol=ATOL)
    # sum() and scaling a sum
    total = sum([a, b])
    assert isinstance(total, kx.losses.CombinedLoss) and total.weights == [1.0, 1.0]
    assert (2 * total).weights == [2.0, 2.0]
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(combined))
    np.testing.assert_allclose(np_(restored(labels, z, sw)), expected, rtol=RTOL, atol=ATOL)


def test_components_of_different_rank_and_masks():
    rng = np.random.default_rng(9)
    labels = rng.integers(0, 3, (2, 4, 4))
    labels[0, 0] = 255
    z = rng.normal(0, 2, (2, 4, 4, 3)).astype("float32")
    ce = kx.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=255)

    def per_image(t, p):  # shape (batch,), beside ce's (batch, 4, 4)
        return keras.ops.mean(p[..., :1] ** 2, axis=(1, 2, 3))

    # each component keeps the value it has alone: ce averages over the valid pixels only
    expected = np_(ce(labels, z)) + 0.5 * np.mean(z[..., :1] ** 2)
    got = kx.losses.CombinedLoss([ce, per_image], [1.0, 0.5])(labels, z)
    np.testing.assert_allclose(np_(got), expected, rtol=RTOL, atol=ATOL)
    with pytest.raises(TypeError):
        0.5 * keras.losses.MeanSquaredError()  # Keras losses have no operators: CombinedLoss


def test_bad_input():
    loss = kx.losses.PolyLoss()
    with pytest.raises(TypeError, match=r"keras.losses.Loss or a loss function.*'x'"):
        loss + "x"
    with pytest.raises(ValueError, match=r"one weight per loss \(2\).*\[1.0\]"):
        kx.losses.CombinedLoss([loss, loss], [1.0])
    with pytest.raises(ValueError, match=r"non-empty list"):
        kx.losses.CombinedLoss([])
