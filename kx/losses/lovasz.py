"""Lovasz losses (Berman, Rannen Triki and Blaschko, CVPR 2018): convex surrogates of the Jaccard
loss, optimised directly through the Lovasz extension of the set function `1 - IoU`.

For one class, with pixel errors `e` sorted in decreasing order and the targets `g` in that order,
the Lovasz extension is `sum_k e_(k) * (J_k - J_(k-1))`, where `J_k` is the Jaccard loss of
predicting wrong exactly the `k` pixels with the largest errors (`J_0 = 0`). Its gradient with
respect to the sorted errors is the vector of those differences.

`LovaszHinge` takes one logit per pixel (binary segmentation), `LovaszSoftmax` class
probabilities (or logits) with classes on the last axis. Both work per image (one value per
sample, the default) or over the whole batch (`per_image=False`: the batch value once per sample,
as the batch variants of `kx.losses.jaccard`), and skip the pixels labelled `ignore_class`.
"""

import math

import keras
from keras import ops

from kx.losses import _checks, _utils
from kx.losses._base import LossFunctionWrapper

__all__ = ["LovaszHinge", "LovaszSoftmax", "lovasz_hinge", "lovasz_softmax"]

_PACKAGE = "kx"
_CLASSES = ("present", "all")


def _check_hinge_args(owner, *, per_image, ignore_class):
    return {
        "per_image": _checks.flag(per_image, "per_image", owner),
        "ignore_class": _checks.ignore_class(ignore_class, owner),
    }


def _check_softmax_args(owner, *, per_image, from_logits, ignore_class, classes):
    return {
        **_check_hinge_args(owner, per_image=per_image, ignore_class=ignore_class),
        "from_logits": _checks.flag(from_logits, "from_logits", owner),
        "classes": _checks.choice(classes, "classes", owner, _CLASSES),
    }


def _lovasz_grad(gt_sorted):
    """Gradient of the Lovasz extension of the Jaccard loss at sorted errors, given the targets
    (0/1) in the order of decreasing error, along the last axis."""
    total = ops.sum(gt_sorted, axis=-1, keepdims=True)
    intersection = total - ops.cumsum(gt_sorted, axis=-1)
    union = total + ops.cumsum(1.0 - gt_sorted, axis=-1)
    jaccard = 1.0 - intersection / ops.maximum(union, keras.config.epsilon())
    return ops.concatenate([jaccard[..., :1], jaccard[..., 1:] - jaccard[..., :-1]], axis=-1)


def _lovasz_extension(errors, gt, hinge):
    """Lovasz extension along the last axis; `hinge` applies `relu` to the sorted errors."""
    order = ops.argsort(-errors, axis=-1)
    errors_sorted = ops.take_along_axis(errors, order, axis=-1)
    gt_sorted = ops.take_along_axis(gt, order, axis=-1)
    if hinge:
        errors_sorted = ops.relu(errors_sorted)
    grad = ops.stop_gradient(_lovasz_grad(gt_sorted))
    return ops.sum(errors_sorted * grad, axis=-1)


def _flat(x, per_image, keep_last=False):
    """`(batch, ...)` -> `(batch, n)` per image or `(1, batch * n)`; with `keep_last` the last
    axis is kept: `(batch, n, C)` or `(1, batch * n, C)`."""
    last = (x.shape[-1],) if keep_last else ()
    if not per_image:
        return ops.reshape(x, (1, -1, *last))
    middle = x.shape[1:-1] if keep_last else x.shape[1:]
    if all(d is not None for d in middle):
        return ops.reshape(x, (-1, math.prod(middle), *last))
    return ops.reshape(x, (ops.shape(x)[0], -1, *last))


@keras.saving.register_keras_serializable(package=_PACKAGE)
def lovasz_hinge(y_true, y_pred, *, per_image=True, ignore_class=None):
    """Lovasz hinge loss for binary segmentation, on logits.

    Formula:
    ```
    e_i  = max(1 - s_i * f_i, 0),   s_i = 2 * t_i - 1 (the sign of the target)
    loss = Lovasz extension of the Jaccard loss of the foreground at the errors e
    ```
    where `f` are the logits of one image (or of the whole batch with `per_image=False`).

    Args:
        y_true: binary targets (0/1, or `ignore_class`), of the shape of `y_pred` (a trailing
            axis of size 1 on either side is allowed). A value outside [0, 1] (a 0/255 mask)
            is a `ValueError`, or NaN inside a compiled step.
        y_pred: logits (real-valued scores, no sigmoid), `(batch, *spatial)` or
            `(batch, *spatial, 1)`.
        per_image: one Lovasz loss per image (`True`, default), or one for the batch with the
            batch value returned for every sample (`False`).
        ignore_class: a target value whose pixels count for nothing (e.g. `255`). Defaults to
            `None`.

    Returns:
        float32 loss per sample, shape `(batch,)`.

    Example:

    >>> import numpy as np, kx
    >>> mask = np.array([[1.0, 1.0, 0.0, 0.0]])
    >>> logits = np.array([[3.0, -1.0, -2.0, 0.5]])
    >>> round(float(kx.losses.lovasz_hinge(mask, logits)[0]), 4)
    1.25
    """
    args = _check_hinge_args("lovasz_hinge", per_image=per_image, ignore_class=ignore_class)
    per_image, ignore_class = args["per_image"], args["ignore_class"]
    y_true, y_pred = _utils.prepare(y_true, y_pred)
    y_true, y_pred = _utils.check_same_shape(y_true, y_pred, "lovasz_hinge")
    ignored = None if ignore_class is None else ops.equal(y_true, ignore_class)
    y_true = _utils.check_unit_interval(y_true, "lovasz_hinge", "y_true", skip=ignored)
    logits, labels = _flat(y_pred, per_image), _flat(y_true, per_image)
    errors = 1.0 - logits * (2.0 * labels - 1.0)
    if ignore_class is not None:
        # Ignored pixels: no target, and a negative error, so that they sort after every
        # positive error and add nothing after the relu.
        valid = ops.not_equal(labels, ignore_class)
        errors = ops.where(valid, errors, -1.0)
        labels = ops.where(valid, labels, 0.0)
    value = _lovasz_extension(errors, labels, hinge=True)
    return value if per_image else _utils.spread_over_batch(value[0], y_pred)


@keras.saving.register_keras_serializable(package=_PACKAGE)
def lovasz_softmax(
    y_true, y_pred, *, per_image=True, from_logits=False, ignore_class=None, classes="present"
):
    """Lovasz-softmax loss for multi-class segmentation.

    Formula:
    ```
    e_ic  = |t_ic - p_ic|   (pixel i, class c)
    loss  = mean over classes c of the Lovasz extension of the Jaccard loss of class c at e_c
    ```
    over each image (or the whole batch with `per_image=False`). With `classes="present"` (the
    paper's default) the mean runs over the classes present in the targets of the image (or
    batch); an image with none (every pixel ignored) has loss 0.

    Args:
        y_true: sparse labels `(batch, *spatial)` / `(batch, *spatial, 1)` or one-hot targets of
            the shape of `y_pred`.
        y_pred: class probabilities (or logits with `from_logits=True`), `(batch, *spatial, C)`
            with `C >= 2` (use `lovasz_hinge` for a single channel).
        per_image: one loss per image (`True`, default), or one for the batch with the batch
            value returned for every sample (`False`).
        from_logits: whether to apply a softmax over the last axis first. Defaults to `False`.
        ignore_class: a label whose pixels count for nothing (sparse labels only). Defaults to
            `None`.
        classes: `"present"` (default) or `"all"`: the classes averaged over.

    Returns:
        float32 loss per sample, shape `(batch,)`.

    Example:

    >>> import numpy as np, kx
    >>> labels = np.array([[0, 1, 1]])
    >>> probs = np.array([[[0.8, 0.2], [0.4, 0.6], [0.1, 0.9]]])
    >>> round(float(kx.losses.lovasz_softmax(labels, probs)[0]), 4)
    0.3
    """
    args = _check_softmax_args("lovasz_softmax", per_image=per_image, from_logits=from_logits,
                               ignore_class=ignore_class, classes=classes)
    per_image, classes = args["per_image"], args["classes"]
    target, probs, _ = _utils.segmentation_targets(
        y_true, y_pred, args["from_logits"], args["ignore_class"], "lovasz_softmax"
    )
    if probs.shape[-1] == 1:
        raise ValueError(
            "lovasz_softmax: expected `y_pred` with at least 2 classes on the last axis (use "
            f"`lovasz_hinge` on logits for a single channel). Received: "
            f"y_pred.shape={tuple(probs.shape)}."
        )
    # (rows, C, pixels); ignored pixels have target 0 and error 0, the smallest possible error,
    # so they sort after every positive error and add nothing.
    target = ops.transpose(_flat(target, per_image, keep_last=True), (0, 2, 1))
    probs_rows = ops.transpose(_flat(probs, per_image, keep_last=True), (0, 2, 1))
    per_class = _lovasz_extension(ops.abs(target - probs_rows), target, hinge=False)
    if classes == "all":
        value = ops.mean(per_class, axis=-1)
    else:
        present = ops.cast(ops.greater(ops.sum(target, axis=-1), 0.0), "float32")
        count = ops.sum(present, axis=-1)
        value = ops.sum(per_class * present, axis=-1) / ops.maximum(count, 1.0)
    return value if per_image else _utils.spread_over_batch(value[0], probs)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class LovaszHinge(LossFunctionWrapper):
    """Lovasz hinge loss for binary segmentation, on logits; see `kx.losses.lovasz_hinge`.

    Args:
        per_image: one loss per image (default) or one for the batch (returned for every
            sample).
        ignore_class: a target value whose pixels count for nothing. Defaults to `None`.
        reduction: as `keras.losses.Loss`. Defaults to `"sum_over_batch_size"`.
        name: defaults to `"lovasz_hinge"`.
        dtype: as `keras.losses.Loss`; the math runs in float32 regardless.

    Example:

    >>> import numpy as np, kx
    >>> mask = np.array([[1.0, 1.0, 0.0, 0.0]])
    >>> logits = np.array([[3.0, -1.0, -2.0, 0.5]])
    >>> round(float(kx.losses.LovaszHinge()(mask, logits)), 4)
    1.25
    """

    fn = staticmethod(lovasz_hinge)
    check_args = staticmethod(_check_hinge_args)

    def __init__(
        self,
        per_image=True,
        ignore_class=None,
        reduction="sum_over_batch_size",
        name="lovasz_hinge",
        dtype=None,
    ):
        super().__init__(reduction, name, dtype, per_image=per_image, ignore_class=ignore_class)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class LovaszSoftmax(LossFunctionWrapper):
    """Lovasz-softmax loss for multi-class segmentation; see `kx.losses.lovasz_softmax`.

    Args:
        per_image: one loss per image (default) or one for the batch (returned for every
            sample).
        from_logits: whether to apply a softmax over the last axis first. Defaults to `False`.
        ignore_class: a label whose pixels count for nothing. Defaults to `None`.
        classes: `"present"` (default) or `"all"`: the classes averaged over.
        reduction: as `keras.losses.Loss`. Defaults to `"sum_over_batch_size"`.
        name: defaults to `"lovasz_softmax"`.
        dtype: as `keras.losses.Loss`; the math runs in float32 regardless.

    Example:

    >>> import numpy as np, kx
    >>> labels = np.array([[0, 1, 1]])
    >>> probs = np.array([[[0.8, 0.2], [0.4, 0.6], [0.1, 0.9]]])
    >>> round(float(kx.losses.LovaszSoftmax()(labels, probs)), 4)
    0.3
    """

    fn = staticmethod(lovasz_softmax)
    check_args = staticmethod(_check_softmax_args)

    def __init__(
        self,
        per_image=True,
        from_logits=False,
        ignore_class=None,
        classes="present",
        reduction="sum_over_batch_size",
        name="lovasz_softmax",
        dtype=None,
    ):
        super().__init__(reduction, name, dtype, per_image=per_image, from_logits=from_logits,
                         ignore_class=ignore_class, classes=classes)
