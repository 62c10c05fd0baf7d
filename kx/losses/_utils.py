"""Helpers shared by the kx losses: tensor preparation, `from_logits` handling and input checks.

Every loss function starts with `prepare` (float32 math whatever the input dtype), then checks
shapes with `check_same_shape` or `check_sparse_shape`, and probabilities with
`check_probabilities` when `from_logits=False`.

About the probability check inside traced functions: a Python `if` on tensor values is only
possible when the values are concrete (eager TensorFlow, un-jitted JAX, PyTorch). There
`check_probabilities` raises a `ValueError`. Inside `tf.function` or `jax.jit` (which is where
`fit` runs on those backends unless `run_eagerly=True`) the values are not known, so instead the
offending entries are replaced by NaN: the loss of that sample becomes NaN, visible in the logs
and caught by `keras.callbacks.TerminateOnNaN`, rather than a silently wrong finite value.
"""

import math

import keras
import numpy as np
from keras import ops

from kx import _keras

__all__ = [
    "as_vector_or_scalar",
    "check_class_vector",
    "check_probabilities",
    "check_same_shape",
    "check_sparse_shape",
    "is_concrete",
    "log_probs",
    "log_sigmoid_pair",
    "one_hot",
    "prepare",
    "safe_pow",
    "set_mask",
]


def prepare(y_true, y_pred):
    """Returns `(y_true, y_pred)` as float32 tensors: losses compute in float32 whatever the
    input dtype (float16/bfloat16 predictions are upcast, integer labels are cast)."""
    y_pred = ops.convert_to_tensor(y_pred)
    if keras.backend.standardize_dtype(y_pred.dtype) != "float32":
        y_pred = ops.cast(y_pred, "float32")
    y_true = ops.convert_to_tensor(y_true)
    if keras.backend.standardize_dtype(y_true.dtype) != "float32":
        y_true = ops.cast(y_true, "float32")
    return y_true, y_pred


def is_concrete(x):
    """Whether the values of `x` can be read in Python now (not symbolic, not being traced by
    `tf.function` or `jax.jit`)."""
    if keras.backend.is_keras_tensor(x):
        return False
    if _keras.in_tf_graph():
        return False
    return not _keras.is_in_jax_tracing_scope(x)


def check_probabilities(y_pred, loss_name, arg="y_pred"):
    """Checks that `y_pred` lies in [0, 1]: a `ValueError` when the values are concrete, NaN in
    place of out-of-range entries when traced (see the module docstring). Returns `y_pred`."""
    if is_concrete(y_pred):
        if math.prod(y_pred.shape) == 0:
            return y_pred
        lo = float(ops.convert_to_numpy(ops.min(y_pred)))
        hi = float(ops.convert_to_numpy(ops.max(y_pred)))
        if lo < 0.0 or hi > 1.0:
            raise ValueError(
                f"{loss_name}: expected `{arg}` to hold probabilities in [0, 1] (pass "
                f"`from_logits=True` for logits). Received: values in [{lo:.6g}, {hi:.6g}]."
            )
        return y_pred
    outside = ops.logical_or(ops.less(y_pred, 0.0), ops.greater(y_pred, 1.0))
    return ops.where(outside, float("nan"), y_pred)


def _squeeze_or_expand(y_true, y_pred):
    # As Keras' LossFunctionWrapper: a trailing axis of size 1 on one side only is dropped, so
    # that labels of shape (batch,) meet predictions of shape (batch, 1).
    rt, rp = len(y_true.shape), len(y_pred.shape)
    if rt == rp + 1 and y_true.shape[-1] == 1:
        return ops.squeeze(y_true, -1), y_pred
    if rp == rt + 1 and y_pred.shape[-1] == 1:
        return ops.expand_dims(y_true, -1), y_pred
    return y_true, y_pred


def _shapes_match(a, b):
    if len(a) != len(b):
        return False
    return all(x is None or y is None or x == y for x, y in zip(a, b, strict=True))


def check_same_shape(y_true, y_pred, loss_name):
    """Checks that targets and predictions have the same (static) shape, after dropping a
    trailing axis of size 1 on one side. Returns the possibly reshaped `(y_true, y_pred)`."""
    y_true, y_pred = _squeeze_or_expand(y_true, y_pred)
    if not _shapes_match(tuple(y_true.shape), tuple(y_pred.shape)):
        raise ValueError(
            f"{loss_name}: expected `y_true` and `y_pred` to have the same shape. Received: "
            f"y_true.shape={tuple(y_true.shape)}, y_pred.shape={tuple(y_pred.shape)}."
        )
    return y_true, y_pred


def check_sparse_shape(y_true, y_pred, loss_name):
    """Checks that integer labels have the shape of the predictions without their class axis
    (a trailing axis of size 1 on the labels is dropped). Returns the labels as int32."""
    if len(y_true.shape) == len(y_pred.shape) and y_true.shape[-1] == 1:
        y_true = ops.squeeze(y_true, -1)
    if not _shapes_match(tuple(y_true.shape), tuple(y_pred.shape)[:-1]):
        raise ValueError(
            f"{loss_name}: expected integer labels `y_true` of shape y_pred.shape[:-1] "
            f"(one label per prediction vector; classes on the last axis of `y_pred`). Received: "
            f"y_true.shape={tuple(y_true.shape)}, y_pred.shape={tuple(y_pred.shape)}."
        )
    return ops.cast(y_true, "int32")


def as_vector_or_scalar(value, arg, loss_name, allow_none=False, nonnegative=True):
    """Validates a scalar or 1-D per-class/per-label argument; returns a float, a tuple of
    floats, or None. Used in `__init__`, so the stored value is plain Python (config-ready)."""
    if value is None:
        if allow_none:
            return None
        raise TypeError(f"{loss_name}: expected `{arg}` to be a number. Received: {arg}=None")
    if isinstance(value, dict):
        raise TypeError(
            f"{loss_name}: expected `{arg}` to be a number or a 1-D sequence of numbers. "
            f"Received: {arg}={value!r}"
        )
    arr = np.asarray(value, dtype="float64")
    if arr.ndim > 1:
        raise ValueError(
            f"{loss_name}: expected `{arg}` to be a number or a 1-D sequence. Received: "
            f"{arg} with shape {arr.shape}."
        )
    if not np.all(np.isfinite(arr)) or (nonnegative and np.any(arr < 0)):
        kind = "non-negative finite" if nonnegative else "finite"
        raise ValueError(
            f"{loss_name}: expected `{arg}` to be {kind}. Received: {arg}={arr.tolist()!r}"
        )
    return float(arr) if arr.ndim == 0 else tuple(float(v) for v in arr)


def check_class_vector(value, y_pred, arg, loss_name, what="class"):
    """Checks that a per-class tuple has one entry per entry of the last axis of `y_pred`;
    returns it as a float32 tensor (scalars come back as Python floats)."""
    if not isinstance(value, tuple):
        return value
    n = y_pred.shape[-1]
    if n is not None and len(value) != n:
        raise ValueError(
            f"{loss_name}: expected `{arg}` to have one entry per {what} ({n}, the size of the "
            f"last axis of y_pred). Received: {arg} of length {len(value)}."
        )
    return ops.convert_to_tensor(np.asarray(value, dtype="float32"))


def log_sigmoid_pair(y_pred, from_logits):
    """`(log p, log(1 - p))` from logits (stable for |logit| of 100 and more) or from
    probabilities (clipped to [epsilon, 1 - epsilon], so that 0 and 1 give finite values)."""
    if from_logits:
        return ops.log_sigmoid(y_pred), ops.log_sigmoid(-y_pred)
    eps = keras.config.epsilon()
    p = ops.clip(y_pred, eps, 1.0 - eps)
    return ops.log(p), ops.log(1.0 - p)


def log_probs(y_pred, from_logits, axis=-1):
    """Log-probabilities over `axis`: `log_softmax` of logits, or, as Keras' categorical
    cross-entropy does, probabilities renormalised to sum to 1 and clipped to
    [epsilon, 1 - epsilon] before the log."""
    if from_logits:
        return ops.log_softmax(y_pred, axis=axis)
    eps = keras.config.epsilon()
    p = y_pred / ops.sum(y_pred, axis=axis, keepdims=True)
    return ops.log(ops.clip(p, eps, 1.0 - eps))


def safe_pow(base, exponent):
    """`base ** exponent` for `base >= 0` and a Python float exponent, with finite gradients at
    `base == 0` (where `x ** 0.5` has an infinite derivative and `0 ** 0` a NaN one)."""
    if exponent == 0:
        return ops.ones_like(base)
    if exponent == 1:
        return base
    positive = ops.greater(base, 0.0)
    return ops.where(positive, ops.power(ops.where(positive, base, 1.0), exponent), 0.0)


def one_hot(labels, num_classes):
    """float32 one-hot of int labels; out-of-range labels (e.g. an ignored class) give zeros."""
    classes = ops.arange(num_classes, dtype="int32")
    return ops.cast(ops.equal(ops.expand_dims(labels, -1), classes), "float32")


def set_mask(values, mask):
    """Attaches a boolean mask to per-sample values, so that `keras.losses.Loss.__call__`
    averages over the valid entries only (Keras' own `ignore_class` mechanism)."""
    _keras.set_keras_mask(values, mask=mask)
    return values
