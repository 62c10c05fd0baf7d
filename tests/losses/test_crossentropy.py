"""kx/losses/crossentropy.py against NumPy references and Keras' own cross-entropies."""

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
    ref_crossentropy,
    ref_smooth,
    ref_weighted_bce,
)

import kx

REDUCTIONS = st.sampled_from(["sum_over_batch_size", "sum", None])
# Few distinct shapes: JAX compiles every eager op once per shape.
BATCH = st.just(6)
CLASSES = st.just(4)
np_ = keras.ops.convert_to_numpy


def close(a, b):
    np.testing.assert_allclose(np_(a), b, rtol=RTOL, atol=ATOL)


@given(BATCH, CLASSES, st.floats(0, 1), st.booleans(), REDUCTIONS,
       st.booleans(), st.integers(0, 2**16))
def test_sparse_ce_matches_reference(n, c, ls, from_logits, reduction, weighted, seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, n)
    z = rng.normal(0, 3, (n, c)).astype("float32")
    y_pred = z if from_logits else rng.dirichlet(np.ones(c), n).astype("float32")
    expected = ref_crossentropy(ref_smooth(labels, c, ls), probs(y_pred.astype("f8"), from_logits))
    check_reduction(
        lambda r: kx.losses.SparseCategoricalCrossentropy(
            from_logits=from_logits, label_smoothing=ls, reduction=r),
        labels, y_pred, expected, reduction, weighted, rng,
    )
    # ... and Keras' categorical cross-entropy with smoothing on one-hot targets.
    keras_cce = keras.losses.categorical_crossentropy(
        one_hot(labels, c), y_pred, from_logits=from_logits, label_smoothing=ls)
    close(kx.losses.sparse_categorical_crossentropy(
        labels, y_pred, from_logits=from_logits, label_smoothing=ls), np_(keras_cce))


@pytest.mark.parametrize("ignore_class", [None, 0, -1])
@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "sum", None])
def test_sparse_ce_without_smoothing_equals_keras(ignore_class, reduction):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, (3, 5))
    labels[0, :2] = -1 if ignore_class == -1 else labels[0, :2]
    z = rng.normal(0, 3, (3, 5, 4)).astype("float32")
    sw = rng.uniform(0, 2, (3, 5)).astype("float32")  # per pixel, as Keras needs
    ours = kx.losses.SparseCategoricalCrossentropy(
        from_logits=True, ignore_class=ignore_class, reduction=reduction)
    theirs = keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, ignore_class=ignore_class, reduction=reduction)
    close(ours(labels, z, sample_weight=sw), np_(theirs(labels, z, sample_weight=sw)))
    close(ours(labels, z), np_(theirs(labels, z)))


def test_sparse_ce_ignore_class_averages_valid_entries_only():
    labels = np.array([0, 255, 1, 255])
    z = np.array([[2.0, 0.0], [5.0, -5.0], [0.0, 1.0], [1.0, 1.0]], "float32")
    loss = kx.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=255,
                                                   label_smoothing=0.2)
    per = ref_crossentropy(ref_smooth(np.array([0, 1]), 2, 0.2), probs(z[[0, 2]], True))
    close(loss(labels, z), per.mean())
    values = kx.losses.sparse_categorical_crossentropy(
        labels, z, from_logits=True, ignore_class=255)
    assert np_(values)[1] == 0 and np_(values)[3] == 0


@given(BATCH, st.just(3), st.booleans(), REDUCTIONS, st.booleans(),
       st.integers(0, 2**16))
def test_weighted_bce_matches_reference(n, k, per_label, reduction, weighted, seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, (n, k)).astype("float32")
    z = rng.normal(0, 3, (n, k)).astype("float32")
    pos_weight = rng.uniform(0, 5, k).tolist() if per_label else float(rng.uniform(0, 5))
    expected = ref_weighted_bce(y, z.astype("f8"), np.asarray(pos_weight))
    check_reduction(
        lambda r: kx.losses.WeightedBinaryCrossentropy(pos_weight, from_logits=True, reduction=r),
        y, z, expected, reduction, weighted, rng,
    )


@pytest.mark.parametrize("from_logits", [True, False])
def test_weighted_bce_pos_weight_one_equals_keras(from_logits):
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, (8, 3)).astype("float32")
    y_pred = (rng.normal(0, 3, (8, 3)) if from_logits else rng.uniform(0, 1, (8, 3)))
    y_pred = y_pred.astype("float32")
    sw = rng.uniform(0, 2, 8).astype("float32")
    ours = kx.losses.WeightedBinaryCrossentropy(1.0, from_logits=from_logits)
    theirs = keras.losses.BinaryCrossentropy(from_logits=from_logits)
    close(ours(y, y_pred, sample_weight=sw), np_(theirs(y, y_pred, sample_weight=sw)))
    # labels of shape (batch,) against predictions of shape (batch, 1), as Keras accepts
    close(ours(y[:, 0], y_pred[:, :1]), np_(theirs(y[:, 0], y_pred[:, :1])))


@given(BATCH, CLASSES, st.booleans(), st.booleans(), REDUCTIONS,
       st.booleans(), st.integers(0, 2**16))
def test_class_weighted_ce_matches_reference(n, c, sparse, from_logits, reduction, weighted,
                                             seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, n)
    y_true = labels if sparse else one_hot(labels, c).astype("float32")
    y_pred = (rng.normal(0, 3, (n, c)) if from_logits else rng.dirichlet(np.ones(c), n))
    y_pred = y_pred.astype("float32")
    w = rng.uniform(0, 3, c)
    expected = w[labels] * ref_crossentropy(one_hot(labels, c), probs(y_pred.astype("f8"),
                                                                          from_logits))
    check_reduction(
        lambda r: kx.losses.ClassWeightedCrossentropy(
            w.tolist(), sparse=sparse, from_logits=from_logits, reduction=r),
        y_true, y_pred, expected, reduction, weighted, rng,
    )


def test_class_weights_dict_equals_vector_and_survives_json():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 3, 10)
    z = rng.normal(size=(10, 3)).astype("float32")
    by_dict = kx.losses.ClassWeightedCrossentropy({2: 4.0, 0: 0.5}, from_logits=True)
    by_vector = kx.losses.ClassWeightedCrossentropy([0.5, 1.0, 4.0], from_logits=True)
    close(by_dict(labels, z), np_(by_vector(labels, z)))
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(by_dict))
    assert restored.class_weights == {0: 0.5, 2: 4.0}
    close(restored(labels, z), np_(by_vector(labels, z)))


def test_bad_input_messages():
    with pytest.raises(ValueError, match=r"pos_weight.*non-negative.*-1.0"):
        kx.losses.WeightedBinaryCrossentropy(pos_weight=-1.0)
    with pytest.raises(ValueError, match=r"pos_weight.*one entry per label \(3.*length 2"):
        kx.losses.WeightedBinaryCrossentropy([1.0, 2.0])(np.zeros((2, 3)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"y_true.shape=\(2, 3\), y_pred.shape=\(2, 4\)"):
        kx.losses.WeightedBinaryCrossentropy()(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"y_true.shape=\(4,\), y_pred.shape=\(2, 3\)"):
        kx.losses.SparseCategoricalCrossentropy()(np.zeros(4), np.full((2, 3), 1 / 3))
    with pytest.raises(ValueError, match=r"probabilities in \[0, 1\].*from_logits=True"):
        kx.losses.SparseCategoricalCrossentropy()([0, 1], [[2.0, -1.0], [0.5, 0.5]])
    with pytest.raises(ValueError, match=r"label_smoothing.*\[0, 1\].*1.5"):
        kx.losses.SparseCategoricalCrossentropy(label_smoothing=1.5)
    with pytest.raises(ValueError, match=r"class_weights.*one entry per class \(3.*length 2"):
        kx.losses.ClassWeightedCrossentropy([1.0, 2.0])([0], [[0.2, 0.3, 0.5]])
    with pytest.raises(ValueError, match=r"below the number of classes \(2.*class 5"):
        kx.losses.ClassWeightedCrossentropy({5: 2.0})([0], [[0.5, 0.5]])
    with pytest.raises(ValueError, match=r"keys of `class_weights`.*'a'"):
        kx.losses.ClassWeightedCrossentropy({"a": 2.0})
