"""Cross-entropy variants Keras lacks: sparse with label smoothing, `pos_weight` BCE, and
class-weighted CE."""

import numbers

import keras
import numpy as np
from keras import ops

from kx.losses import _checks, _utils
from kx.losses._base import LossFunctionWrapper

__all__ = [
    "ClassWeightedCrossentropy",
    "SparseCategoricalCrossentropy",
    "WeightedBinaryCrossentropy",
    "class_weighted_crossentropy",
    "sparse_categorical_crossentropy",
    "weighted_binary_crossentropy",
]

_PACKAGE = "kx"


def _check_sparse_args(owner, *, from_logits, label_smoothing, ignore_class):
    return {
        "from_logits": _checks.flag(from_logits, "from_logits", owner),
        "label_smoothing": _checks.number(label_smoothing, "label_smoothing", owner, low=0.0,
                                          high=1.0),
        "ignore_class": _checks.ignore_class(ignore_class, owner),
    }


def sparse_categorical_crossentropy(
    y_true, y_pred, *, from_logits=False, label_smoothing=0.0, ignore_class=None
):
    """Sparse categorical cross-entropy with label smoothing and an ignored class.

    Formula:

    ```python
    q = (1 - label_smoothing) * one_hot(y_true) + label_smoothing / num_classes
    loss = -sum(q * log(p), axis=-1)       # 0 where y_true == ignore_class
    ```

    Equal to `keras.losses.categorical_crossentropy(one_hot(y_true), y_pred,
    label_smoothing=...)`; with `label_smoothing=0` equal to Keras' sparse cross-entropy.

    Args:
        y_true: integer labels in `[0, num_classes)` (or `ignore_class`), shape
            `y_pred.shape[:-1]` (a trailing axis of 1 is accepted). A label out of range is a
            `ValueError`, or a NaN loss inside a compiled step (see the losses guide).
        y_pred: probabilities or logits, classes on the last axis.
        from_logits: whether `y_pred` holds logits. Defaults to `False`.
        label_smoothing: float in [0, 1]. Defaults to `0.0`.
        ignore_class: a label whose entries count as 0 and are left out of the mean (e.g. 255
            in segmentation masks). Defaults to `None`.

    Returns:
        Per-sample (per-pixel for segmentation) losses, shape `y_pred.shape[:-1]`.

    Example:

    >>> import kx
    >>> loss = kx.losses.sparse_categorical_crossentropy(
    ...     [0, 1], [[0.9, 0.1], [0.2, 0.8]], label_smoothing=0.1)
    >>> [round(float(v), 4) for v in loss]
    [0.2152, 0.2925]
    """
    loss_name = "sparse_categorical_crossentropy"
    args = _check_sparse_args(loss_name, from_logits=from_logits,
                              label_smoothing=label_smoothing, ignore_class=ignore_class)
    labels, target, log_p = _utils.sparse_log_probs(
        y_true, y_pred, args["from_logits"], loss_name, args["ignore_class"]
    )
    target = _utils.smooth_targets(target, args["label_smoothing"])
    values = -ops.sum(target * log_p, axis=-1)
    return _utils.apply_ignore_class(values, labels, args["ignore_class"])


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SparseCategoricalCrossentropy(LossFunctionWrapper):
    """Sparse categorical cross-entropy with `label_smoothing` and `ignore_class`.

    See `kx.losses.sparse_categorical_crossentropy` for the formula.

    Args:
        from_logits: whether `y_pred` holds logits. Defaults to `False`.
        label_smoothing: float in [0, 1]. Defaults to `0.0`.
        ignore_class: label left out of the loss and of the mean. Defaults to `None`.
        reduction: as for `keras.losses.Loss`. Defaults to `"sum_over_batch_size"`.
        name: Defaults to `"sparse_categorical_crossentropy"`.
        dtype: as for `keras.losses.Loss`. Defaults to `None`.

    Example:

    >>> import kx
    >>> loss = kx.losses.SparseCategoricalCrossentropy(label_smoothing=0.1)
    >>> round(float(loss([0, 1], [[0.9, 0.1], [0.2, 0.8]])), 4)
    0.2538
    """

    fn = staticmethod(sparse_categorical_crossentropy)
    check_args = staticmethod(_check_sparse_args)

    def __init__(
        self, from_logits=False, label_smoothing=0.0, ignore_class=None,
        reduction="sum_over_batch_size", name="sparse_categorical_crossentropy", dtype=None,
    ):
        super().__init__(reduction, name, dtype, from_logits=from_logits,
                         label_smoothing=label_smoothing, ignore_class=ignore_class)


def _check_bce_args(owner, *, pos_weight, from_logits):
    return {
        "pos_weight": _checks.vector_or_scalar(pos_weight, "pos_weight", owner),
        "from_logits": _checks.flag(from_logits, "from_logits", owner),
    }


def weighted_binary_crossentropy(y_true, y_pred, *, pos_weight=1.0, from_logits=False):
    """Binary cross-entropy whose positive term is weighted, for one or many labels.

    Formula:

    ```python
    loss = mean(-(pos_weight * y_true * log(p) + (1 - y_true) * log(1 - p)), axis=-1)
    ```

    As TensorFlow's `weighted_cross_entropy_with_logits` (then averaged over the last axis, as
    `keras.losses.binary_crossentropy`); `pos_weight=1` gives Keras' binary cross-entropy.
    `pos_weight > 1` raises recall, `< 1` precision; a common choice per label is
    `n_negative / n_positive`.

    Args:
        y_true: 0/1 (or soft) targets in [0, 1], the shape of `y_pred`.
        y_pred: probabilities or logits, labels on the last axis.
        pos_weight: non-negative number, or one per label (the last axis). Defaults to `1.0`.
        from_logits: whether `y_pred` holds logits. Defaults to `False`.

    Returns:
        Per-sample losses, shape `y_pred.shape[:-1]`.

    Example:

    >>> import kx
    >>> loss = kx.losses.weighted_binary_crossentropy(
    ...     [[1.0, 0.0]], [[0.8, 0.3]], pos_weight=[2.0, 1.0])
    >>> round(float(loss[0]), 4)
    0.4015
    """
    loss_name = "weighted_binary_crossentropy"
    args = _check_bce_args(loss_name, pos_weight=pos_weight, from_logits=from_logits)
    from_logits = args["from_logits"]
    y_true, y_pred = _utils.prepare(y_true, y_pred)
    y_true, y_pred = _utils.check_same_shape(y_true, y_pred, loss_name)
    y_true = _utils.check_unit_interval(y_true, loss_name, "y_true")
    pos_weight = _utils.check_class_vector(
        args["pos_weight"], y_pred, "pos_weight", loss_name, "label"
    )
    if not from_logits:
        y_pred = _utils.check_probabilities(y_pred, loss_name)
    log_p, log_not_p = _utils.log_sigmoid_pair(y_pred, from_logits)
    values = -(pos_weight * y_true * log_p + (1.0 - y_true) * log_not_p)
    return ops.mean(values, axis=-1)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class WeightedBinaryCrossentropy(LossFunctionWrapper):
    """Binary cross-entropy with a positive-class weight (scalar or per label).

    See `kx.losses.weighted_binary_crossentropy` for the formula.

    Args:
        pos_weight: non-negative number or one per label. Defaults to `1.0`.
        from_logits: whether `y_pred` holds logits. Defaults to `False`.
        reduction: as for `keras.losses.Loss`. Defaults to `"sum_over_batch_size"`.
        name: Defaults to `"weighted_binary_crossentropy"`.
        dtype: as for `keras.losses.Loss`. Defaults to `None`.

    Example:

    >>> import kx
    >>> loss = kx.losses.WeightedBinaryCrossentropy(pos_weight=3.0, from_logits=True)
    >>> round(float(loss([[1.0], [0.0]], [[0.0], [0.0]])), 4)
    1.3863
    """

    fn = staticmethod(weighted_binary_crossentropy)
    check_args = staticmethod(_check_bce_args)

    def __init__(
        self, pos_weight=1.0, from_logits=False, reduction="sum_over_batch_size",
        name="weighted_binary_crossentropy", dtype=None,
    ):
        super().__init__(reduction, name, dtype, pos_weight=pos_weight, from_logits=from_logits)


def _check_class_weights(class_weights, loss_name):
    """A per-class sequence stays a tuple; a dict `{class: weight}` (keys may be strings after
    a JSON round trip) becomes a sorted tuple of `(class, weight)` pairs."""
    if isinstance(class_weights, dict):
        pairs = []
        for key, weight in class_weights.items():
            try:
                cls = int(key)
            except (TypeError, ValueError):
                cls = -1
            if cls < 0 or isinstance(key, bool):
                raise ValueError(
                    f"{loss_name}: expected the keys of `class_weights` to be class ids "
                    f"(non-negative integers). Received: key {key!r}"
                )
            if not isinstance(weight, numbers.Real) or not np.isfinite(weight) or weight < 0:
                raise ValueError(
                    f"{loss_name}: expected non-negative finite class weights. Received: "
                    f"class_weights[{key!r}]={weight!r}"
                )
            pairs.append((cls, float(weight)))
        if not pairs:
            raise ValueError(f"{loss_name}: expected `class_weights` to be non-empty. "
                             "Received: class_weights={}")
        return dict(sorted(pairs))
    weights = _checks.vector_or_scalar(class_weights, "class_weights", loss_name)
    if not isinstance(weights, tuple):
        raise ValueError(
            f"{loss_name}: expected `class_weights` to be a sequence with one weight per class "
            f"or a dict {{class: weight}}. Received: class_weights={class_weights!r}"
        )
    return weights


def _check_class_weighted_args(owner, *, class_weights, sparse, from_logits):
    return {
        "class_weights": _check_class_weights(class_weights, owner),
        "sparse": _checks.flag(sparse, "sparse", owner),
        "from_logits": _checks.flag(from_logits, "from_logits", owner),
    }


def _class_weight_vector(class_weights, y_pred, loss_name):
    """The per-class weights as a float32 tensor with one entry per class of `y_pred`; classes
    missing from a dict weigh 1.0."""
    num_classes = y_pred.shape[-1]
    if isinstance(class_weights, dict):
        if num_classes is not None and max(class_weights) >= num_classes:
            raise ValueError(
                f"{loss_name}: expected the classes in `class_weights` to be below the number "
                f"of classes ({num_classes}, the last axis of y_pred). Received: class "
                f"{max(class_weights)}"
            )
        vector = np.ones(num_classes, dtype="float32")
        for cls, weight in class_weights.items():
            vector[cls] = weight
        return ops.convert_to_tensor(vector)
    return _utils.check_class_vector(class_weights, y_pred, "class_weights", loss_name)


def class_weighted_crossentropy(
    y_true, y_pred, *, class_weights, sparse=True, from_logits=False
):
    """Cross-entropy in which each class's term is weighted.

    Formula:

    ```python
    loss = -sum(class_weights * y_one_hot * log(p), axis=-1)
    ```

    With sparse labels this is `class_weights[y_true] * crossentropy`. Unlike PyTorch's
    `CrossEntropyLoss(weight=...)` the mean is not divided by the sum of the weights (as Keras'
    `class_weight` in `fit`); the weights are a loss property, so they also apply in `evaluate`.

    Args:
        y_true: integer labels (`sparse=True`), or one-hot / soft targets shaped as `y_pred`.
        y_pred: probabilities or logits, classes on the last axis.
        class_weights: one non-negative weight per class, or a dict `{class: weight}` in which
            missing classes weigh 1.0.
        sparse: whether `y_true` holds integer labels. Defaults to `True`.
        from_logits: whether `y_pred` holds logits. Defaults to `False`.

    Returns:
        Per-sample losses, shape `y_pred.shape[:-1]`.

    Example:

    >>> import kx
    >>> loss = kx.losses.class_weighted_crossentropy(
    ...     [0, 1], [[0.5, 0.5], [0.5, 0.5]], class_weights={1: 3.0})
    >>> [round(float(v), 4) for v in loss]
    [0.6931, 2.0794]
    """
    loss_name = "class_weighted_crossentropy"
    args = _check_class_weighted_args(loss_name, class_weights=class_weights, sparse=sparse,
                                      from_logits=from_logits)
    target, log_p = _utils.targets_and_log_probs(
        y_true, y_pred, args["sparse"], args["from_logits"], loss_name
    )
    weights = _class_weight_vector(args["class_weights"], log_p, loss_name)
    return -ops.sum(weights * target * log_p, axis=-1)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ClassWeightedCrossentropy(LossFunctionWrapper):
    """Cross-entropy with a weight per class, for sparse or one-hot targets.

    See `kx.losses.class_weighted_crossentropy` for the formula.

    Args:
        class_weights: one weight per class, or a dict `{class: weight}` (missing classes 1.0).
        sparse: whether `y_true` holds integer labels. Defaults to `True`.
        from_logits: whether `y_pred` holds logits. Defaults to `False`.
        reduction: as for `keras.losses.Loss`. Defaults to `"sum_over_batch_size"`.
        name: Defaults to `"class_weighted_crossentropy"`.
        dtype: as for `keras.losses.Loss`. Defaults to `None`.

    Example:

    >>> import kx
    >>> loss = kx.losses.ClassWeightedCrossentropy([1.0, 3.0], sparse=False)
    >>> round(float(loss([[1, 0], [0, 1]], [[0.5, 0.5], [0.5, 0.5]])), 4)
    1.3863
    """

    fn = staticmethod(class_weighted_crossentropy)
    check_args = staticmethod(_check_class_weighted_args)

    def __init__(
        self, class_weights, sparse=True, from_logits=False, reduction="sum_over_batch_size",
        name="class_weighted_crossentropy", dtype=None,
    ):
        super().__init__(reduction, name, dtype, class_weights=class_weights, sparse=sparse,
                         from_logits=from_logits)
