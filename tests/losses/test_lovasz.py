"""Tests of kx/losses/lovasz.py against a NumPy reference of the Lovasz extension (Berman et al.,
CVPR 2018): the sorted-errors formula, evaluated on the valid pixels only, and its gradient."""

import math

import keras
import numpy as np
import pytest
from conftest import assert_close, value_and_grad
from hypothesis import given, settings
from hypothesis import strategies as st

import kx
from kx.losses import lovasz

IGNORE = 255


# --------------------------------------------------------------------------------------------
# NumPy reference and autodiff


def ref_lovasz_grad(gt_sorted):
    """Jaccard loss of the top-k errors, differenced: J(k) - J(k-1)."""
    p = len(gt_sorted)
    jac = np.empty(p)
    total = gt_sorted.sum()
    for k in range(1, p + 1):
        inter = total - gt_sorted[:k].sum()
        union = total + (1 - gt_sorted[:k]).sum()
        jac[k - 1] = 1 - inter / union
    return np.diff(jac, prepend=0.0)


def ref_extension(errors, gt):
    """Value of the Lovasz extension and its gradient with respect to `errors` (1-D)."""
    if errors.size == 0:
        return 0.0, np.zeros(0)
    order = np.argsort(-errors, kind="stable")
    g = ref_lovasz_grad(gt[order])
    grad = np.empty_like(errors)
    grad[order] = g
    return float(errors[order] @ g), grad


def ref_hinge(labels, logits, per_image, ignore):
    """Per-sample values and the gradient with respect to the logits."""
    rows = range(len(labels)) if per_image else [slice(None)]
    values, grad = [], np.zeros_like(logits)
    for r in rows:
        y, f = labels[r].ravel(), logits[r].ravel()
        keep = y != ignore if ignore is not None else np.ones(y.shape, bool)
        sign = 2 * y[keep] - 1
        errors = 1 - f[keep] * sign
        value, g = ref_extension(np.maximum(errors, 0), y[keep])
        g_full = np.zeros(y.shape)
        g_full[keep] = -sign * g * (errors > 0)
        grad[r] = g_full.reshape(grad[r].shape)
        values.append(value)
    values = np.array(values)
    return (values if per_image else np.full(len(labels), values[0])), grad


def ref_softmax(labels, probs, per_image, ignore, classes):
    """Per-sample values and the gradient with respect to the probabilities."""
    n_classes = probs.shape[-1]
    rows = range(len(labels)) if per_image else [slice(None)]
    values, grad = [], np.zeros_like(probs)
    for r in rows:
        y, p = labels[r].ravel(), probs[r].reshape(-1, n_classes)
        keep = y != ignore if ignore is not None else np.ones(y.shape, bool)
        losses, grads = [], []
        for c in range(n_classes):
            fg = (y[keep] == c).astype("float64")
            value, g = ref_extension(np.abs(fg - p[keep, c]), fg)
            g_full = np.zeros(y.shape)
            g_full[keep] = g * np.sign(p[keep, c] - fg)
            if classes == "all" or fg.sum() > 0:
                losses.append(value)
                grads.append((c, g_full))
        g_row = np.zeros_like(p)
        for c, g in grads:
            g_row[:, c] = g / len(losses)
        grad[r] = g_row.reshape(grad[r].shape)
        values.append(np.mean(losses) if losses else 0.0)
    values = np.array(values)
    return (values if per_image else np.full(len(labels), values[0])), grad


def ref_reduce(values, weights, reduction):
    v = values * (1.0 if weights is None else weights)
    if reduction is None:
        return v
    return v.sum() / len(values) if reduction == "sum_over_batch_size" else v.sum()


SHAPES = [(2, (3, 4)), (1, (2, 2, 3))]


@st.composite
def problems(draw, n_classes):
    seed = draw(st.integers(0, 2**31 - 1))
    batch, spatial = draw(st.sampled_from(SHAPES))
    ignore = draw(st.booleans())
    rng = np.random.default_rng(seed)
    shape = (batch, *spatial)
    labels = rng.integers(0, n_classes, size=shape)
    if ignore:
        labels = np.where(rng.random(shape) < 0.25, IGNORE, labels)
    weights = [None, 0.5, rng.uniform(0, 2, batch).astype("float32"), np.zeros(batch, "float32")]
    return labels, rng, ignore, weights


# --------------------------------------------------------------------------------------------
# LovaszHinge


@settings(max_examples=5)
@given(
    problem=problems(2),
    per_image=st.booleans(),
    channel_axis=st.booleans(),
    weight_kinds=st.lists(st.integers(0, 3), min_size=3, max_size=3),
)
def test_hinge_matches_reference(problem, per_image, channel_axis, weight_kinds):
    labels, rng, ignore, weights = problem
    ignore_class = IGNORE if ignore else None
    logits = rng.normal(0, 2, size=labels.shape).astype("float32")
    want, want_grad = ref_hinge(labels.astype("float64"), logits.astype("float64"), per_image,
                                ignore_class)
    y_pred = logits[..., None] if channel_axis else logits
    args = dict(per_image=per_image, ignore_class=ignore_class)
    got = kx.losses.lovasz_hinge(labels.astype("float32"), y_pred, **args)
    assert keras.backend.standardize_dtype(got.dtype) == "float32"
    assert_close(got, want, atol=1e-5)
    scale = 1.0 if per_image else 1.0 / len(labels)  # the batch value appears once per sample
    _, grad = value_and_grad(lambda x: kx.losses.lovasz_hinge(labels, x, **args), logits)
    assert_close(grad * scale, want_grad, atol=1e-5)
    for reduction, kind in zip(("sum_over_batch_size", "sum", None), weight_kinds):
        loss = kx.losses.LovaszHinge(reduction=reduction, **args)
        got = loss(labels, y_pred, sample_weight=weights[kind])
        assert_close(got, ref_reduce(want, weights[kind], reduction), atol=1e-5)


# --------------------------------------------------------------------------------------------
# LovaszSoftmax


@settings(max_examples=5)
@given(
    problem=problems(3),
    per_image=st.booleans(),
    classes=st.sampled_from(["present", "all"]),
    one_hot=st.booleans(),
    weight_kinds=st.lists(st.integers(0, 3), min_size=3, max_size=3),
)
def test_softmax_matches_reference(problem, per_image, classes, one_hot, weight_kinds):
    labels, rng, ignore, weights = problem
    ignore = ignore and not one_hot
    ignore_class = IGNORE if ignore else None
    if not ignore:
        labels = np.where(labels == IGNORE, 0, labels)
    logits = rng.normal(0, 2, size=(*labels.shape, 3)).astype("float32")
    probs = keras.ops.convert_to_numpy(keras.ops.softmax(logits))
    want, want_grad = ref_softmax(labels, probs.astype("float64"), per_image, ignore_class,
                                  classes)
    y_true = np.eye(3, dtype="float32")[labels] if one_hot else labels
    args = dict(per_image=per_image, ignore_class=ignore_class, classes=classes)
    got = kx.losses.lovasz_softmax(y_true, probs, **args)
    assert_close(got, want, atol=1e-5)
    got = kx.losses.lovasz_softmax(y_true, logits, from_logits=True, **args)
    assert_close(got, want, atol=1e-5)
    scale = 1.0 if per_image else 1.0 / len(labels)
    _, grad = value_and_grad(lambda x: kx.losses.lovasz_softmax(y_true, x, **args), probs)
    assert_close(grad * scale, want_grad, atol=1e-5)
    for reduction, kind in zip(("sum_over_batch_size", "sum", None), weight_kinds):
        loss = kx.losses.LovaszSoftmax(reduction=reduction, **args)
        got = loss(y_true, probs, sample_weight=weights[kind])
        assert_close(got, ref_reduce(want, weights[kind], reduction), atol=1e-5)


# --------------------------------------------------------------------------------------------
# Both


def test_gradients_finite_at_extremes_and_low_precision():
    labels = np.zeros((2, 4, 4), "int32")
    labels[0, 1:3, 1:3] = 1  # class 1 empty in image 1, class 2 empty everywhere
    logits3 = np.where(np.eye(3, dtype=bool)[labels], 100.0, -100.0).astype("float32")
    logits3[1, 0, 0] = [-100.0, 100.0, -100.0]
    hard = np.eye(3, dtype="float32")[labels]
    logits1 = np.where(labels == 1, 100.0, -100.0).astype("float32")
    for per_image in (True, False):
        for classes in ("present", "all"):
            for y_pred, from_logits in ((logits3, True), (hard, False)):
                value, grad = value_and_grad(
                    lambda x, a=(per_image, classes, from_logits): kx.losses.lovasz_softmax(
                        labels, x, per_image=a[0], classes=a[1], from_logits=a[2]
                    ),
                    y_pred,
                )
                assert np.isfinite(value) and np.all(np.isfinite(grad))
        value, grad = value_and_grad(
            lambda x, a=per_image: kx.losses.lovasz_hinge(labels, x, per_image=a), logits1
        )
        assert np.isfinite(value) and np.all(np.isfinite(grad))
    for dtype in ("float16", "bfloat16"):
        low = keras.ops.cast(logits1 / 50.0, dtype)
        got = kx.losses.LovaszHinge()(labels, low)
        assert keras.backend.standardize_dtype(got.dtype) == "float32"
        assert_close(got, kx.losses.LovaszHinge()(labels, keras.ops.cast(low, "float32")))
        probs = keras.ops.cast(hard * 0.8 + 0.1, dtype)
        got = kx.losses.lovasz_softmax(labels, probs)
        assert keras.backend.standardize_dtype(got.dtype) == "float32"
        assert_close(got, kx.losses.lovasz_softmax(labels, keras.ops.cast(probs, "float32")))


def test_config_round_trip():
    assert set(lovasz.__all__) <= set(kx.losses.__all__)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, size=(2, 3, 3))
    logits = rng.normal(size=(2, 3, 3, 3)).astype("float32")
    cases = [
        (kx.losses.LovaszHinge, dict(per_image=False, ignore_class=2), labels, logits[..., 0]),
        (kx.losses.LovaszSoftmax,
         dict(per_image=False, from_logits=True, ignore_class=2, classes="all"), labels, logits),
    ]
    for cls, arguments, y_true, y_pred in cases:
        arguments = dict(arguments, reduction="sum", name="custom")
        loss = cls(**arguments)
        config = loss.get_config()
        assert {k: config[k] for k in arguments} == arguments
        for restored in (
            cls.from_config(config),
            keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss)),
        ):
            assert type(restored) is cls and restored.get_config() == config
            assert_close(restored(y_true, y_pred), loss(y_true, y_pred))


def test_bad_input():
    with pytest.raises(ValueError, match=r"y_true.shape=\(2, 5\).*y_pred.shape=\(2, 4\)"):
        kx.losses.lovasz_hinge(np.zeros((2, 5)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"y_true.shape=\(2, 5\).*y_pred.shape=\(2, 4, 3\)"):
        kx.losses.LovaszSoftmax()(np.zeros((2, 5)), np.zeros((2, 4, 3)))
    with pytest.raises(ValueError, match=r"at least 2 classes.*lovasz_hinge"):
        kx.losses.lovasz_softmax(np.zeros((2, 4)), np.zeros((2, 4, 1)))
    with pytest.raises(ValueError, match=r"lovasz_softmax: expected `y_pred` to hold prob"):
        kx.losses.lovasz_softmax(np.zeros((1, 2)), np.full((1, 2, 3), 2.0))
    with pytest.raises(ValueError, match=r"`classes` to be one of.*classes='some'"):
        kx.losses.LovaszSoftmax(classes="some")
    with pytest.raises(TypeError, match=r"LovaszHinge: expected `per_image`.*per_image=1"):
        kx.losses.LovaszHinge(per_image=1)
    with pytest.raises(TypeError, match=r"`ignore_class` to be None or an integer.*'void'"):
        kx.losses.LovaszSoftmax(ignore_class="void")


@pytest.mark.parametrize("name", ["LovaszHinge", "LovaszSoftmax"])
def test_fits_a_toy_segmentation_model(name):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 8, 8, 1)).astype("float32")
    if name == "LovaszHinge":
        y, channels, loss = (x[..., 0] > 0.3).astype("float32"), 1, kx.losses.LovaszHinge()
    else:
        y = (x[..., 0] > 0.3).astype("int32") + (x[..., 0] > 1.0).astype("int32")
        channels, loss = 3, kx.losses.LovaszSoftmax(from_logits=True)
    model = keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.Conv2D(channels, 3, padding="same")]
    )
    model.compile(optimizer="adam", loss=loss)
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert math.isfinite(history.history["loss"][0])
