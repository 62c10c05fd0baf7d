"""NumPy references (float64) of the classification losses' formulas, as written in the papers,
and the helpers the classification loss tests share. Nothing here calls kx."""

import keras
import numpy as np

EPS = 1e-7  # keras.config.epsilon(): probabilities are clipped to [EPS, 1 - EPS]
RTOL, ATOL = 1e-5, 1e-6


# ---- references --------------------------------------------------------------------------

def softmax(z):
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def probs(y_pred, from_logits):
    """Softmax of logits, or Keras' handling of probabilities (renormalise, clip)."""
    if from_logits:
        return softmax(y_pred)
    p = y_pred / y_pred.sum(-1, keepdims=True)
    return np.clip(p, EPS, 1 - EPS)


def one_hot(labels, c):
    return (labels[..., None] == np.arange(c)).astype("float64")


def ref_crossentropy(q, p):
    return -(q * np.log(p)).sum(-1)


def ref_focal(q, p, gamma, alpha=1.0):
    """Lin et al. 2017: -sum alpha * q * (1 - p)^gamma * log p."""
    return -(np.asarray(alpha) * q * (1 - p) ** gamma * np.log(p)).sum(-1)


def ref_smooth(labels, c, ls):
    return one_hot(labels, c) * (1 - ls) + ls / c


def ref_weighted_bce(y, z, pos_weight):
    """TensorFlow's weighted_cross_entropy_with_logits, averaged over the last axis."""
    p = sigmoid(z)
    return (-(pos_weight * y * np.log(p) + (1 - y) * np.log(1 - p))).mean(-1)


def ref_cb_weights(counts, beta):
    """Cui et al. 2019, eq. (effective number): (1 - beta) / (1 - beta^n), summing to C."""
    counts = np.asarray(counts, "float64")
    w = (1 - beta) / (1 - beta ** counts)
    return w / w.sum() * len(counts)


def ref_asymmetric(y, z, gamma_pos, gamma_neg, clip):
    """Ridnik et al. 2021 (official code's structure), divided by the number of labels."""
    p = sigmoid(z)
    p_m = np.maximum(p - clip, 0)
    pos = y * (1 - p) ** gamma_pos * np.log(p)
    neg = (1 - y) * p_m ** gamma_neg * np.log(1 - p_m)
    return -(pos + neg).sum(-1) / y.shape[-1]


def ref_poly(q, p, epsilon, base, gamma):
    """Leng et al. 2022: Poly-1 = base + epsilon * (1 - p_t)^(1 or gamma + 1)."""
    pt = (q * p).sum(-1)
    if base == "ce":
        return ref_crossentropy(q, p) + epsilon * (1 - pt)
    return ref_focal(q, p, gamma) + epsilon * (1 - pt) ** (gamma + 1)


def ref_kl(mean, log_var):
    """Kingma & Welling 2014, appendix B: -0.5 * sum(1 + log_var - mean^2 - var)."""
    axes = tuple(range(1, mean.ndim))
    return -0.5 * (1 + log_var - mean**2 - np.exp(log_var)).sum(axes)


def ref_kappa_loss(labels, p, c, weightage, w=None, epsilon=1e-6):
    """log(1 - kappa) with kappa from the soft confusion matrix (Cohen 1968's weighted kappa)."""
    w = np.ones(len(labels)) if w is None else np.asarray(w, "float64")
    conf = np.zeros((c, c))
    for label, row, wi in zip(labels, p, w, strict=True):
        conf[label] += wi * row
    i, j = np.meshgrid(np.arange(c), np.arange(c), indexing="ij")
    weights = (i - j) ** 2 if weightage == "quadratic" else np.abs(i - j)
    expected = np.outer(conf.sum(1), conf.sum(0)) / conf.sum()
    return np.log((weights * conf).sum() / (weights * expected).sum() + epsilon)


# ---- shared helpers ------------------------------------------------------------------------

def reduce_ref(values, sample_weight, reduction):
    """What keras.losses.Loss.__call__ does with per-sample values (no mask)."""
    v = np.asarray(values, "float64")
    if sample_weight is not None:
        sw = np.asarray(sample_weight, "float64").reshape(v.shape[:1] + (1,) * (v.ndim - 1))
        v = v * sw
    if reduction in (None, "none"):
        return v
    if reduction == "sum":
        return v.sum()
    return v.sum() / v.size


def check_reduction(make_loss, y_true, y_pred, expected, reduction, weighted, rng):
    """`make_loss(reduction)` called with (or without) random sample weights equals the
    reference values reduced the Keras way."""
    sw = rng.uniform(0, 2, size=len(expected)).astype("float32") if weighted else None
    got = make_loss(reduction)(y_true, y_pred, sample_weight=sw)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(got), reduce_ref(expected, sw, reduction),
        rtol=RTOL, atol=ATOL,
    )


def gradient(fn, x):
    """d sum(fn(x)) / dx as NumPy, on the current backend."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        x = tf.Variable(x)
        with tf.GradientTape() as tape:
            value = keras.ops.sum(fn(x))
        return tape.gradient(value, x).numpy()
    if backend == "jax":
        import jax

        return np.asarray(jax.grad(lambda v: keras.ops.sum(fn(v)))(keras.ops.convert_to_tensor(x)))
    import torch

    x = torch.tensor(x, requires_grad=True)
    keras.ops.sum(fn(x)).backward()
    return x.grad.numpy()
