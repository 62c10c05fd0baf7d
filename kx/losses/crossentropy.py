"""Cross-entropy variants Keras lacks: sparse with label smoothing, `pos_weight` BCE, and
class-weighted CE."""

import numbers

import keras
import numpy as np
from keras import ops

from kx.losses import _utils
from kx.losses.combined import LossArithmetic

__all__ = [
    "ClassWeightedCrossentropy",
    "SparseCategoricalCrossentropy",
    "WeightedBinaryCrossentropy",
    "class_weighted_crossentropy",
    "sparse_categorical_crossentropy",
    "weighted_binary_crossentropy",
]

_PACKAGE = "kx"


def _check_label_smoothing(value, loss_name):
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not 0 <= value <= 1:
        raise ValueError(
            f"{loss_name}: expected `label_smoothing` to be a float in [0, 1]. Received: "
            f"label_smoothing={value!r}"
        )
    return float(value)


def _check_ignore_class(value, loss_name):
    if value is not None and (not isinstance(value, numbers.Integral) or isinstance(value, bool)):
        raise TypeError(
            f"{loss_name}: expected `ignore_class` to be None or an integer class id. Received: "
            f"ignore_class={value!r}"
        )
    return None if value is None else int(value)


def sparse_log_probs(y_true, y_pred, from_logits, loss_name):
    """Shared start of the sparse losses: float32 tensors, labels checked against the class
    axis, probabilities checked, log-probabilities. Returns `(labels, log_p)`."""
    y_true, y_pred = _utils.prepare(y_true, y_pred)
    labels = _utils.check_sparse_shape(y_true, y_pred, loss_name)
    if not from_logits:
        y_pred = _utils.check_probabilities(y_pred, loss_name)
    return labels, _utils.log_probs(y_pred, from_logits)



def targets_and_log_probs(y_true, y_pred, sparse, from_logits, loss_name):
    """Shared start of the losses that take sparse labels or one-hot/probability targets:
    returns `(targets, log_p)`, targets one-hot (or as given) on the class axis."""
    if sparse:
        labels, log_p = sparse_log_probs(y_true, y_pred, from_logits, loss_name)
        return _utils.one_hot(labels, log_p.shape[-1]), log_p
    target, y_pred = _utils.prepare(y_true, y_pred)
    target, y_pred = _utils.check_same_shape(target, y_pred, loss_name)
    if not from_logits:
        y_pred = _utils.check_probabilities(y_pred, loss_name)
    return target, _utils.log_probs(y_pred, from_logits)

def smoothed_one_hot(labels, num_classes, label_smoothing):
    """One-hot targets smoothed as Keras does: `(1 - ls) * one_hot + ls / num_classes`."""
    target = _utils.one_hot(labels, num_classes)
    if label_smoothing:
        target = target * (1.0 - label_smoothing) + label_smoothing / num_classes
    return target


def apply_ignore_class(values, labels, ignore_class):
    """Zeroes the entries whose label is `ignore_class` and masks them, so that the Keras
    reduction averages over the valid entries only (as Keras' own `ignore_class`)."""
    if ignore_class is None:
        return values
    valid = ops.not_equal(labels, ignore_class)
    return _utils.set_mask(ops.where(valid, values, 0.0), valid)


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
        y_true: integer labels, shape `y_pred.shape[:-1]` (a trailing axis of 1 is accepted).
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
    label_smoothing = _check_label_smoothing(label_smoothing, loss_name)
    ignore_class = _check_ignore_class(ignore_class, loss_name)
    labels, log_p = sparse_log_probs(y_true, y_pred, from_logits, loss_name)
    target = smoothed_one_hot(labels, log_p.shape[-1], label_smoothing)
    values = -ops.sum(target * log_p, axis=-1)
    return apply_ignore_class(values, labels, ignore_class)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SparseCategoricalCrossentropy(LossArithmetic, keras.losses.Loss):
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

    def __init__(
        self, from_logits=False, label_smoothing=0.0, ignore_class=None,
        reduction="sum_over_batch_size", name="sparse_categorical_crossentropy", dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.from_logits = bool(from_logits)
        self.label_smoothing = _check_label_smoothing(label_smoothing, type(self).__name__)
        self.ignore_class = _check_ignore_class(ignore_class, type(self).__name__)

    def call(self, y_true, y_pred):
        return sparse_categorical_crossentropy(
            y_true, y_pred, from_logits=self.from_logits,
            label_smoothing=self.label_smoothing, ignore_class=self.ignore_class,
        )

    def get_config(self):
        return {
            **super().get_config(),
            "from_logits": self.from_logits,
            "label_smoothing": self.label_smoothing,
            "ignore_class": self.ignore_class,
        }


def _check_pos_weight(pos_weight, loss_name):
    return _utils.as_vector_or_scalar(pos_weight, "pos_weight", loss_name)


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
        y_true: 0/1 (or soft) targets, the shape of `y_pred`.
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
    pos_weight = _check_pos_weight(pos_weight, loss_name)
    y_true, y_pred = _utils.prepare(y_true, y_pred)
    y_true, y_pred = _utils.check_same_shape(y_true, y_pred, loss_name)
    pos_weight = _utils.check_class_vector(pos_weight, y_pred, "pos_weight", loss_name, "label")
    if not from_logits:
        y_pred = _utils.check_probabilities(y_pred, loss_name)
    log_p, log_not_p = _utils.log_sigmoid_pair(y_pred, from_logits)
    values = -(pos_weight * y_true * log_p + (1.0 - y_true) * log_not_p)
    return ops.mean(values, axis=-1)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class WeightedBinaryCrossentropy(LossArithmetic, keras.losses.Loss):
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

    def __init__(
        self, pos_weight=1.0, from_logits=False, reduction="sum_over_batch_size",
        name="weighted_binary_crossentropy", dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.pos_weight = _check_pos_weight(pos_weight, type(self).__name__)
        self.from_logits = bool(from_logits)

    def call(self, y_true, y_pred):
        return weighted_binary_crossentropy(
            y_true, y_pred, pos_weight=self.pos_weight, from_logits=self.from_logits
        )

    def get_config(self):
        pos_weight = self.pos_weight
        return {
            **super().get_config(),
            "pos_weight": list(pos_weight) if isinstance(pos_weight, tuple) else pos_weight,
            "from_logits": self.from_logits,
        }


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
    weights = _utils.as_vector_or_scalar(class_weights, "class_weights", loss_name)
    if not isinstance(weights, tuple):
        raise ValueError(
            f"{loss_name}: expected `class_weights` to be a sequence with one weight per class "
            f"or a dict {{class: weight}}. Received: class_weights={class_weights!r}"
        )
    return weights


def class_weight_vector(class_weights, y_pred, loss_name):
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
    class_weights = _check_class_weights(class_weights, loss_name)
    target, log_p = targets_and_log_probs(y_true, y_pred, sparse, from_logits, loss_name)
    weights = class_weight_vector(class_weights, log_p, loss_name)
    return -ops.sum(weights * target * log_p, axis=-1)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ClassWeightedCrossentropy(LossArithmetic, keras.losses.Loss):
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

    def __init__(
        self, class_weights, sparse=True, from_logits=False, reduction="sum_over_batch_size",
        name="class_weighted_crossentropy", dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.class_weights = _check_class_weights(class_weights, type(self).__name__)
        self.sparse = bool(sparse)
        self.from_logits = bool(from_logits)

    def call(self, y_true, y_pred):
        return class_weighted_crossentropy(
            y_true, y_pred, class_weights=self.class_weights, sparse=self.sparse,
            from_logits=self.from_logits,
        )

    def get_config(self):
        cw = self.class_weights
        return {
            **super().get_config(),
            # JSON turns int keys into strings; __init__ turns them back.
            "class_weights": {str(k): v for k, v in cw.items()} if isinstance(cw, dict)
            else list(cw),
            "sparse": self.sparse,
            "from_logits": self.from_logits,
        }
