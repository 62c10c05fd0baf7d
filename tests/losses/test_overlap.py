"""Tests of kx/losses/overlap.py against NumPy references of the papers' formulas (float64),
Keras' own Dice/Tversky and scikit-learn's Jaccard score."""

import math

import keras
import numpy as np
import pytest
from conftest import assert_close, value_and_grad
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import jaccard_score

import kx
from kx.losses import overlap

IGNORE = 255


# --------------------------------------------------------------------------------------------
# NumPy references (float64): targets t and probabilities p of shape (batch, *spatial, C),
# already zeroed on ignored pixels.


def ref_sums(t, p, per_image):
    axes = tuple(range(1, t.ndim - 1)) if per_image else tuple(range(t.ndim - 1))
    return (t * p).sum(axes), t.sum(axes), p.sum(axes)


def ref_ratio(num, den, smooth):
    return (num + smooth) / np.maximum(den + smooth, 1e-7)


def ref_jaccard(t, p, smooth, per_image, **_):
    inter, st_, sp = ref_sums(t, p, per_image)
    return 1 - ref_ratio(inter, st_ + sp - inter, smooth).mean(-1)


def ref_focal_tversky(t, p, smooth, per_image, alpha=0.7, beta=0.3, gamma=4 / 3):
    axes = tuple(range(1, t.ndim - 1)) if per_image else tuple(range(t.ndim - 1))
    tp = (t * p).sum(axes)
    fn = (t * (1 - p)).sum(axes)
    fp = ((1 - t) * p).sum(axes)
    ti = ref_ratio(tp, tp + alpha * fn + beta * fp, smooth)
    return (np.maximum(1 - ti, 0) ** (1 / gamma)).mean(-1)


def ref_dice(t, p, smooth, per_image):
    inter, st_, sp = ref_sums(t, p, per_image)
    return ref_ratio(2 * inter, st_ + sp, smooth)


def ref_log_cosh_dice(t, p, smooth, per_image, **_):
    return np.log(np.cosh(1 - ref_dice(t, p, smooth, per_image).mean(-1)))


def ref_log_dice(t, p, smooth, per_image, **_):
    return (-np.log(np.maximum(ref_dice(t, p, smooth, per_image), 1e-7))).mean(-1)


def ref_generalized_dice(t, p, smooth, per_image, **_):
    inter, st_, sp = ref_sums(t, p, per_image)
    inter, st_, sp = np.atleast_2d(inter), np.atleast_2d(st_), np.atleast_2d(sp)
    out = []
    for i, s, q in zip(inter, st_, sp, strict=True):
        w = np.zeros_like(s)
        w[s > 0] = 1 / s[s > 0] ** 2
        w[s == 0] = w.max() if (s > 0).any() else 0.0
        w = w / w.sum() if w.sum() > 0 else w
        out.append(1 - ref_ratio(2 * (w * i).sum(), (w * (s + q)).sum(), smooth))
    out = np.array(out)
    return out if per_image else out[0]


LOSSES = {
    "jaccard": (kx.losses.jaccard, kx.losses.Jaccard, ref_jaccard, {}),
    "focal_tversky": (
        kx.losses.focal_tversky,
        kx.losses.FocalTversky,
        ref_focal_tversky,
        {"alpha": 0.6, "beta": 0.4, "gamma": 1.5},
    ),
    "log_cosh_dice": (kx.losses.log_cosh_dice, kx.losses.LogCoshDice, ref_log_cosh_dice, {}),
    "log_dice": (kx.losses.log_dice, kx.losses.LogDice, ref_log_dice, {}),
    "generalized_dice": (
        kx.losses.generalized_dice,
        kx.losses.GeneralizedDice,
        ref_generalized_dice,
        {},
    ),
}


def ref_reduce(values, weights, reduction, batch):
    v = values * (1.0 if weights is None else weights)
    if reduction is None:
        return v
    return v.sum() / batch if reduction == "sum_over_batch_size" else v.sum()


# --------------------------------------------------------------------------------------------
# Generated segmentation problems


# Few distinct shapes, so that JAX's per-shape compilation of eager ops stays cheap.
SHAPES = [(2, (3, 4), 3), (3, (5,), 1), (1, (2, 2, 2), 4), (2, (), 2)]


@st.composite
def problems(draw):
    seed = draw(st.integers(0, 2**31 - 1))
    batch, spatial, channels = draw(st.sampled_from(SHAPES))
    sparse = draw(st.booleans())
    ignore = draw(st.booleans()) and (sparse or channels == 1)
    rng = np.random.default_rng(seed)
    shape = (batch, *spatial)
    labels = rng.integers(0, max(channels, 2), size=shape)
    if ignore:
        labels = np.where(rng.random(shape) < 0.25, IGNORE, labels)
    valid = (labels != IGNORE).astype("float64")
    if channels == 1:
        t = (labels == 1).astype("float64")[..., None]
    else:
        t = np.eye(channels)[np.where(labels == IGNORE, 0, labels)]
    logits = rng.normal(0, 2, size=(*shape, channels))
    if channels == 1:
        p = 1 / (1 + np.exp(-logits))
    else:
        p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    if sparse:
        y_true = labels.astype("int32")
    else:
        y_true = np.where(labels == IGNORE, IGNORE, t[..., 0]) if channels == 1 else t
        y_true = y_true[..., None] if channels == 1 else y_true
    t_ref, p_ref = t * valid[..., None], p * valid[..., None]
    return {
        "y_true": y_true,
        "y_pred": p.astype("float32"),
        "logits": logits.astype("float32"),
        "t": t_ref,
        # the reference sees the float32 probabilities the loss sees
        "p": p.astype("float32").astype("float64") * valid[..., None],
        "ignore_class": IGNORE if ignore else None,
        "batch": batch,
        "weights": rng.uniform(0, 2, size=batch),
        "p_exact": p_ref,
    }


def weight_cases(problem):
    b = problem["batch"]
    return [None, 0.5, problem["weights"].astype("float32"), np.zeros(b, "float32")]


@settings(max_examples=5)
@given(
    problem=problems(),
    per_image=st.booleans(),
    smooth=st.sampled_from([0.0, 1e-5, 1.0]),
    weight_kinds=st.lists(st.integers(0, 3), min_size=3, max_size=3),
)
def test_matches_reference(problem, per_image, smooth, weight_kinds):
    common = dict(smooth=smooth, per_image=per_image, ignore_class=problem["ignore_class"])
    for name, (fn, cls, ref, kwargs) in LOSSES.items():
        expected = ref(problem["t"], problem["p"], smooth, per_image, **kwargs)
        expected = np.broadcast_to(expected, (problem["batch"],))
        got = fn(problem["y_true"], problem["y_pred"], **common, **kwargs)
        assert tuple(got.shape) == (problem["batch"],), name
        assert keras.backend.standardize_dtype(got.dtype) == "float32", name
        assert_close(got, expected, atol=1e-5, err_msg=name)
        # from_logits gives the same as the probabilities computed here
        got = fn(problem["y_true"], problem["logits"], from_logits=True, **common, **kwargs)
        assert_close(got, expected, atol=1e-5, err_msg=name)
        # each reduction with one of: no weight, a scalar, per-sample weights, zero weights
        for reduction, kind in zip(("sum_over_batch_size", "sum", None), weight_kinds):
            weights = weight_cases(problem)[kind]
            loss = cls(reduction=reduction, **common, **kwargs)
            got = loss(problem["y_true"], problem["y_pred"], sample_weight=weights)
            want = ref_reduce(expected, weights, reduction, problem["batch"])
            assert_close(got, want, atol=1e-5, err_msg=f"{name} {reduction} {weights}")


# --------------------------------------------------------------------------------------------
# Known cases


@settings(max_examples=4)
@given(problem=problems(), alpha=st.floats(0.0, 1.0), per_image=st.booleans())
def test_gamma_one_is_keras_tversky_and_half_is_keras_dice(problem, alpha, per_image):
    # Keras' dice/tversky treat all channels jointly: compare on binary masks (one channel).
    t = problem["t"][..., :1].astype("float32")
    p = problem["p"][..., :1].astype("float32")
    beta = 1.0 - alpha
    axis = tuple(range(1, t.ndim)) if per_image else None
    got = kx.losses.focal_tversky(t, p, alpha=alpha, beta=beta, gamma=1.0, smooth=0.0,
                                  per_image=per_image)
    want = keras.losses.tversky(t, p, alpha=alpha, beta=beta, axis=axis)
    assert_close(got, np.broadcast_to(keras.ops.convert_to_numpy(want), got.shape), atol=1e-5)
    got = kx.losses.FocalTversky(alpha=0.5, beta=0.5, gamma=1.0, smooth=0.0,
                                 per_image=per_image)(t, p)
    want = keras.losses.Dice(axis=axis)(t, p)
    assert_close(got, want, atol=1e-5)


def test_hard_predictions_match_sklearn_jaccard():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, size=(4, 5, 6))
    pred = rng.integers(0, 3, size=(4, 5, 6))
    probs = np.eye(3, dtype="float32")[pred]
    got = kx.losses.jaccard(labels, probs, smooth=0.0)
    want = [
        1 - jaccard_score(labels[i].ravel(), pred[i].ravel(), average="macro", labels=[0, 1, 2])
        for i in range(4)
    ]
    assert_close(got, want)
    got = kx.losses.Jaccard(smooth=0.0, per_image=False)(labels, probs)
    assert_close(got, 1 - jaccard_score(labels.ravel(), pred.ravel(), average="macro"))


def test_batch_variant_spreads_the_batch_value_over_samples():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, size=(4, 6, 6))
    probs = keras.ops.softmax(rng.normal(size=(4, 6, 6, 3)).astype("float32"))
    loss = kx.losses.Jaccard(per_image=False, reduction=None)
    values = keras.ops.convert_to_numpy(loss(labels, probs))
    assert np.all(values == values[0])
    assert_close(kx.losses.Jaccard(per_image=False)(labels, probs), values[0])
    w = np.array([0.0, 1.0, 2.0, 3.0], "float32")
    # a sample weight scales that sample's copy: the reduced loss is mean(w) * batch value
    assert_close(kx.losses.Jaccard(per_image=False)(labels, probs, sample_weight=w),
                 w.mean() * values[0])


def test_ignored_pixels_count_for_nothing():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 3, size=(2, 5, 5))
    labels[:, :2] = IGNORE
    probs = rng.dirichlet(np.ones(3), size=(2, 5, 5)).astype("float32")
    other = probs.copy()
    other[:, :2] = rng.dirichlet(np.ones(3), size=(2, 2, 5))
    for name, (fn, _, _, _) in LOSSES.items():
        a = fn(labels, probs, ignore_class=IGNORE)
        b = fn(labels, other, ignore_class=IGNORE)
        c = fn(labels[:, 2:], probs[:, 2:])  # the same images without the ignored rows
        assert_close(a, b, err_msg=name)
        assert_close(a, c, err_msg=name)


# --------------------------------------------------------------------------------------------
# Gradients and dtypes


def test_gradients_are_finite_at_extremes():
    labels = np.zeros((2, 4, 4), "int32")
    labels[0, 1:3, 1:3] = 1  # class 2 empty in the batch, class 1 empty in image 1
    logits = np.where(np.eye(3, dtype=bool)[labels], 100.0, -100.0).astype("float32")
    logits[1, 0, 0] = [-100.0, 100.0, -100.0]  # one wrong pixel at saturation
    hard = np.eye(3, dtype="float32")[labels]  # probabilities exactly 0 and 1
    for name, (fn, _, _, kwargs) in LOSSES.items():
        for per_image, smooth in ((True, 0.0), (False, 1e-5)):
            args = dict(per_image=per_image, smooth=smooth, **kwargs)
            case = (name, per_image, smooth)
            value, grad = value_and_grad(
                lambda x, a=args, f=fn: f(labels, x, from_logits=True, **a), logits
            )
            assert np.isfinite(value) and np.all(np.isfinite(grad)), case
        for per_image, smooth in ((False, 0.0), (True, 1e-5)):
            args = dict(per_image=per_image, smooth=smooth, **kwargs)
            case = (name, per_image, smooth)
            value, grad = value_and_grad(lambda x, a=args, f=fn: f(labels, x, **a), hard)
            assert np.isfinite(value) and np.all(np.isfinite(grad)), case
            if smooth:  # a perfect prediction, empty classes included, costs nothing
                assert_close(value, 0.0, err_msg=str(case))


def test_low_precision_inputs_compute_in_float32():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 3, size=(2, 4, 4))
    for dtype in ("float16", "bfloat16"):
        probs = keras.ops.cast(rng.dirichlet(np.ones(3), size=(2, 4, 4)), dtype)
        upcast = keras.ops.cast(probs, "float32")
        for name, (fn, cls, _, _) in LOSSES.items():
            got = fn(labels, probs)
            assert keras.backend.standardize_dtype(got.dtype) == "float32", name
            assert_close(got, fn(labels, upcast), err_msg=name)
            assert keras.backend.standardize_dtype(cls()(labels, probs).dtype) == "float32"


# --------------------------------------------------------------------------------------------
# Configuration and bad input


def test_config_round_trip():
    assert set(overlap.__all__) <= set(kx.losses.__all__)
    labels = np.array([[0, 1, 7, 1]])
    logits = np.array([[[1.0, -1.0], [0.5, 2.0], [3.0, 0.0], [0.0, 0.2]]], "float32")
    for name, (_, cls, _, kwargs) in LOSSES.items():
        arguments = dict(smooth=0.5, per_image=False, from_logits=True, ignore_class=7,
                         reduction="sum", name="custom", **kwargs)
        loss = cls(**arguments)
        config = loss.get_config()
        assert {k: config[k] for k in arguments} == arguments, name
        for restored in (
            cls.from_config(config),
            keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss)),
        ):
            assert type(restored) is cls and restored.get_config() == config, name
            assert_close(restored(labels, logits), loss(labels, logits), err_msg=name)


def test_bad_input():
    with pytest.raises(ValueError, match=r"y_true.shape=\(2, 4, 3\).*y_pred.shape=\(2, 4, 4, 3\)"):
        kx.losses.jaccard(np.zeros((2, 4, 3)), np.zeros((2, 4, 4, 3)))
    with pytest.raises(ValueError, match=r"y_true.shape=\(2, 5, 3\).*y_pred.shape=\(2, 4, 3\)"):
        kx.losses.Jaccard()(np.zeros((2, 5, 3)), np.zeros((2, 4, 3)))
    with pytest.raises(ValueError, match=r"y_true.shape=\(2, 5\).*y_pred.shape=\(2, 4, 3\)"):
        kx.losses.generalized_dice(np.zeros((2, 5), "int32"), np.zeros((2, 4, 3)))
    with pytest.raises(ValueError, match=r"batch, \.\.\., channels.*y_pred.shape=\(4,\)"):
        kx.losses.log_dice(np.zeros((4,)), np.zeros((4,)))
    with pytest.raises(ValueError, match=r"jaccard: expected `y_pred` to hold probabilities"):
        kx.losses.jaccard(np.array([[0, 1]]), np.array([[[1.5, -0.5], [0.2, 0.8]]]))
    with pytest.raises(ValueError, match=r"`ignore_class` needs sparse.*ignore_class=0"):
        kx.losses.jaccard(np.eye(3)[None], np.eye(3)[None], ignore_class=0)
    with pytest.raises(ValueError, match=r"FocalTversky: expected `alpha`.*alpha=-0.1"):
        kx.losses.FocalTversky(alpha=-0.1)
    with pytest.raises(ValueError, match=r"`gamma` to be a positive.*gamma=0.0"):
        kx.losses.focal_tversky(np.zeros((1, 2, 1)), np.zeros((1, 2, 1)), gamma=0)
    with pytest.raises(ValueError, match=r"alpha \+ beta > 0.*alpha=0.0, beta=0.0"):
        kx.losses.FocalTversky(alpha=0, beta=0)
    with pytest.raises(ValueError, match=r"Jaccard: expected `smooth`.*smooth=-1.0"):
        kx.losses.Jaccard(smooth=-1)
    with pytest.raises(TypeError, match=r"LogDice: expected `per_image`.*per_image='yes'"):
        kx.losses.LogDice(per_image="yes")
    with pytest.raises(TypeError, match=r"`ignore_class` to be None or an integer.*0.5"):
        kx.losses.GeneralizedDice(ignore_class=0.5)


# --------------------------------------------------------------------------------------------
# Training


def _toy_segmentation(channels):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 8, 8, 1)).astype("float32")
    labels = (x[..., 0] > 0.3).astype("int32") + (x[..., 0] > 1.0).astype("int32")
    if channels == 1:
        labels = np.minimum(labels, 1)
    return x, labels


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_fits_a_toy_segmentation_model(name):
    _, cls, _, kwargs = LOSSES[name]
    x, labels = _toy_segmentation(3)
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(3, 3, padding="same")])
    model.compile(optimizer="adam", loss=cls(from_logits=True, **kwargs))
    history = model.fit(x, labels, batch_size=8, epochs=1, verbose=0)
    assert math.isfinite(history.history["loss"][0])
