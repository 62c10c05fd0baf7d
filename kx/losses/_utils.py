"""Tensor helpers shared by the kx losses: preparation, shape and value checks of `y_true` /
`y_pred`, targets from labels, and `from_logits` handling. (Argument checks: `_checks.py`.)

Every loss function starts with `prepare` (float32 math whatever the input dtype), then checks
shapes with `check_same_shape` or `check_sparse_shape`, probabilities with `check_unit_interval`
when `from_logits=False`, and turns sparse labels into targets with `label_targets`, which
checks their range.

Values checked inside traced functions: a Python `if` on tensor values is only possible when the
values are concrete (eager TensorFlow, un-jitted JAX, PyTorch). There a probability outside
[0, 1], a target outside [0, 1] or a label outside `[0, num_classes)` raises a `ValueError`.
Inside `tf.function` or `jax.jit` (where `fit` runs on those backends unless `run_eagerly=True`)
the values are not known, so the offending entries become NaN instead: the loss of that sample
is NaN, visible in the logs and caught by `keras.callbacks.TerminateOnNaN`, rather than a
silently wrong finite value. (For labels, TensorFlow's CPU kernels also raise inside the graph,
as they do for Keras' own sparse cross-entropy; see `label_targets`.)
"""

import math

import keras
import numpy as np
from keras import ops

from kx import _keras


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


# ---- value checks (see the module docstring) ----------------------------------------------


def check_unit_interval(x, loss_name, arg="y_pred", skip=None):
    """Checks that `x` lies in [0, 1] (entries where the boolean `skip` is True, broadcast to
    `x`, are not checked): a `ValueError` when the values are concrete, NaN in place of
    out-of-range entries when traced. Returns `x`."""
    outside = ops.logical_or(ops.less(x, 0.0), ops.greater(x, 1.0))
    if skip is not None:
        outside = ops.logical_and(outside, ops.logical_not(skip))
    if not is_concrete(x):
        return ops.where(outside, float("nan"), x)
    if math.prod(x.shape) == 0 or not bool(ops.convert_to_numpy(ops.any(outside))):
        return x
    bad = ops.convert_to_numpy(x)[np.broadcast_to(ops.convert_to_numpy(outside), x.shape)]
    received = f"values in [{float(bad.min()):.6g}, {float(bad.max()):.6g}]"
    if arg == "y_pred":
        raise ValueError(
            f"{loss_name}: expected `y_pred` to hold probabilities in [0, 1] (pass "
            f"`from_logits=True` for logits). Received: {received}."
        )
    raise ValueError(
        f"{loss_name}: expected `{arg}` to hold targets in [0, 1] (a 0/1 mask, one-hot or soft "
        f"targets; a 0/255 mask must be divided by 255). Received: {received} outside [0, 1]."
    )


def check_probabilities(y_pred, loss_name):
    """`check_unit_interval` of predictions given as probabilities."""
    return check_unit_interval(y_pred, loss_name, "y_pred")


def label_targets(labels, num_classes, loss_name, ignore_class=None):
    """float32 one-hot targets `(..., num_classes)` of int32 `labels`, or with `num_classes=1`
    the `(..., 1)` indicator of label 1 (a binary mask, labels 0/1).

    A label equal to `ignore_class` gives a row of zeros (the caller drops it). Any other label
    outside `[0, num_classes)` (`[0, 2)` for a binary mask) is an error: a `ValueError` naming
    the labels when they are concrete, a row of NaN when traced."""
    high = max(num_classes, 2)
    bad = ops.logical_or(ops.less(labels, 0), ops.greater_equal(labels, high))
    if ignore_class is not None:
        bad = ops.logical_and(bad, ops.not_equal(labels, ignore_class))
    if num_classes == 1:
        target = ops.expand_dims(ops.cast(ops.equal(labels, 1), "float32"), -1)
    else:
        classes = ops.arange(num_classes, dtype="int32")
        target = ops.cast(ops.equal(ops.expand_dims(labels, -1), classes), "float32")
    if is_concrete(labels):
        if math.prod(labels.shape) and bool(ops.convert_to_numpy(ops.any(bad))):
            values = np.unique(ops.convert_to_numpy(labels)[ops.convert_to_numpy(bad)])
            shown = ", ".join(str(v) for v in values[:5]) + (", ..." if len(values) > 5 else "")
            what = ("0/1 labels (a binary mask; one channel in y_pred)" if num_classes == 1
                    else f"integer labels in [0, {num_classes}) (the size of the last axis of "
                    "y_pred)")
            also = "" if ignore_class is None else f" or ignore_class={ignore_class}"
            raise ValueError(f"{loss_name}: expected {what}{also}. Received: labels {shown}.")
        return target
    # Traced: NaN rows. The gather adds zeros; its indices are the bad labels themselves, so
    # that TensorFlow's CPU kernel raises inside the graph, as it does for Keras' own sparse
    # cross-entropy (JAX fills with NaN; GPUs and XLA return 0 and the NaN rows remain).
    index = labels if ignore_class is None else ops.where(
        ops.equal(labels, ignore_class), 0, labels)
    zero = ops.take(ops.zeros((high,), "float32"), index)
    target = target + ops.expand_dims(zero, -1)
    return ops.where(ops.expand_dims(bad, -1), float("nan"), target)


# ---- shapes -------------------------------------------------------------------------------


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


# ---- the start of the classification losses ----------------------------------------------


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


def sparse_log_probs(y_true, y_pred, from_logits, loss_name, ignore_class=None):
    """Start of the sparse losses: float32 tensors, labels checked against the class axis,
    probabilities checked. Returns `(labels, targets, log_p)`, the targets one-hot (see
    `label_targets`)."""
    y_true, y_pred = prepare(y_true, y_pred)
    labels = check_sparse_shape(y_true, y_pred, loss_name)
    if not from_logits:
        y_pred = check_probabilities(y_pred, loss_name)
    target = label_targets(labels, y_pred.shape[-1], loss_name, ignore_class)
    return labels, target, log_probs(y_pred, from_logits)


def targets_and_log_probs(y_true, y_pred, sparse, from_logits, loss_name):
    """Start of the losses that take sparse labels or one-hot/probability targets: returns
    `(targets, log_p)`, targets one-hot (or as given, checked in [0, 1]) on the class axis."""
    if sparse:
        _, target, log_p = sparse_log_probs(y_true, y_pred, from_logits, loss_name)
        return target, log_p
    target, y_pred = prepare(y_true, y_pred)
    target, y_pred = check_same_shape(target, y_pred, loss_name)
    target = check_unit_interval(target, loss_name, "y_true")
    if not from_logits:
        y_pred = check_probabilities(y_pred, loss_name)
    return target, log_probs(y_pred, from_logits)


def smooth_targets(target, label_smoothing):
    """Targets smoothed as Keras does: `(1 - ls) * target + ls / num_classes`."""
    if label_smoothing:
        target = target * (1.0 - label_smoothing) + label_smoothing / target.shape[-1]
    return target


def apply_ignore_class(values, labels, ignore_class):
    """Zeroes the entries whose label is `ignore_class` and masks them, so that the Keras
    reduction averages over the valid entries only (as Keras' own `ignore_class`)."""
    if ignore_class is None:
        return values
    valid = ops.not_equal(labels, ignore_class)
    values = ops.where(valid, values, 0.0)
    _keras.set_keras_mask(values, mask=valid)
    return values


def safe_pow(base, exponent):
    """`base ** exponent` for `base >= 0` and a Python float exponent, with finite gradients at
    `base == 0` (where `x ** 0.5` has an infinite derivative and `0 ** 0` a NaN one)."""
    if exponent == 0:
        return ops.ones_like(base)
    if exponent == 1:
        return base
    positive = ops.greater(base, 0.0)
    return ops.where(positive, ops.power(ops.where(positive, base, 1.0), exponent), 0.0)


# ---- the start of the segmentation losses (overlap.py, lovasz.py) ---------------------------


def segmentation_targets(y_true, y_pred, from_logits, ignore_class, loss_name):
    """Returns `(target, probs, valid)`: float32 targets and probabilities of shape
    `(batch, *spatial, channels)`, both zero on ignored pixels, and the float32 mask of valid
    pixels `(batch, *spatial)` (None when nothing is ignored)."""
    y_true, y_pred = prepare(y_true, y_pred)
    rank = len(y_pred.shape)
    if rank < 2:
        raise ValueError(
            f"{loss_name}: expected `y_pred` of shape (batch, ..., channels), the classes on the "
            f"last axis. Received: y_pred.shape={tuple(y_pred.shape)}."
        )
    channels = y_pred.shape[-1]
    true_rank = len(y_true.shape)
    sparse = true_rank == rank - 1 or (
        true_rank == rank and y_true.shape[-1] == 1 and channels != 1
    )
    valid = None
    if sparse:
        labels = check_sparse_shape(y_true, y_pred, loss_name)
        target = label_targets(labels, channels, loss_name, ignore_class)
        if ignore_class is not None:
            valid = ops.cast(ops.not_equal(labels, ignore_class), "float32")
    else:
        y_true, y_pred = check_same_shape(y_true, y_pred, loss_name)
        ignored = None
        if ignore_class is not None:
            if channels != 1:
                raise ValueError(
                    f"{loss_name}: `ignore_class` needs sparse integer labels of shape "
                    f"y_pred.shape[:-1] (or a single-channel mask); one-hot targets cannot mark "
                    f"ignored pixels. Received: y_true.shape={tuple(y_true.shape)}, "
                    f"y_pred.shape={tuple(y_pred.shape)}, ignore_class={ignore_class}."
                )
            ignored = ops.equal(y_true, ignore_class)
            valid = ops.cast(ops.logical_not(ignored[..., 0]), "float32")
        target = check_unit_interval(y_true, loss_name, "y_true", skip=ignored)
    if from_logits:
        probs = ops.sigmoid(y_pred) if channels == 1 else ops.softmax(y_pred, axis=-1)
    else:
        probs = check_probabilities(y_pred, loss_name)
    if valid is not None:
        probs = probs * ops.expand_dims(valid, -1)
        target = target * ops.expand_dims(valid, -1)
    return target, probs, valid


def spread_over_batch(value, like):
    """The batch value `value` (a scalar) once per sample of `like`, shape `(batch,)`."""
    first = like[(slice(None),) + (0,) * (len(like.shape) - 1)]
    return ops.zeros_like(first) + value
