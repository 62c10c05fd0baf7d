"""Sparse categorical focal cross-entropy (Lin et al., ICCV 2017) for integer labels."""

import numbers

import keras
from keras import ops

from kx.losses import _utils
from kx.losses.combined import LossArithmetic
from kx.losses.crossentropy import (
    _check_ignore_class,
    _check_label_smoothing,
    apply_ignore_class,
    smoothed_one_hot,
    sparse_log_probs,
)

__all__ = ["SparseCategoricalFocalCrossentropy", "sparse_categorical_focal_crossentropy"]

_PACKAGE = "kx"


def check_gamma(gamma, loss_name, arg="gamma"):
    if not isinstance(gamma, numbers.Real) or isinstance(gamma, bool) or not gamma >= 0:
        raise ValueError(
            f"{loss_name}: expected `{arg}` to be a non-negative number. Received: {arg}={gamma!r}"
        )
    return float(gamma)


def check_alpha(alpha, loss_name):
    return _utils.as_vector_or_scalar(alpha, "alpha", loss_name, allow_none=True)


def sparse_categorical_focal_crossentropy(
    y_true, y_pred, *, gamma=2.0, alpha=None, from_logits=False, ignore_class=None,
    label_smoothing=0.0,
):
    """Focal cross-entropy for integer labels: cross-entropy down-weighting easy examples.

    Formula:

    ```python
    q = (1 - label_smoothing) * one_hot(y_true) + label_smoothing / num_classes
    loss = -sum(alpha * q * (1 - p) ** gamma * log(p), axis=-1)
    ```

    Equal to `keras.losses.categorical_focal_crossentropy` on one-hot targets (which defaults
    to `alpha=0.25`; here `alpha=None` means no weighting), so `gamma=0` gives cross-entropy.

    Args:
        y_true: integer labels, shape `y_pred.shape[:-1]`.
        y_pred: probabilities or logits, classes on the last axis.
        gamma: focusing parameter, >= 0. Defaults to `2.0`.
        alpha: a number, or one weight per class. Defaults to `None` (1.0).
        from_logits: whether `y_pred` holds logits. Defaults to `False`.
        ignore_class: label left out of the loss and of the mean. Defaults to `None`.
        label_smoothing: float in [0, 1]. Defaults to `0.0`.

    Returns:
        Per-sample losses, shape `y_pred.shape[:-1]`.

    Example:

    >>> import kx
    >>> loss = kx.losses.sparse_categorical_focal_crossentropy(
    ...     [0, 1], [[0.9, 0.1], [0.5, 0.5]], gamma=2.0)
    >>> [round(float(v), 5) for v in loss]
    [0.00105, 0.17329]
    """
    loss_name = "sparse_categorical_focal_crossentropy"
    gamma = check_gamma(gamma, loss_name)
    alpha = check_alpha(alpha, loss_name)
    label_smoothing = _check_label_smoothing(label_smoothing, loss_name)
    ignore_class = _check_ignore_class(ignore_class, loss_name)
    labels, log_p = sparse_log_probs(y_true, y_pred, from_logits, loss_name)
    target = smoothed_one_hot(labels, log_p.shape[-1], label_smoothing)
    alpha = _utils.check_class_vector(alpha, log_p, "alpha", loss_name)
    terms = target * _utils.safe_pow(1.0 - ops.exp(log_p), gamma) * log_p
    if alpha is not None:
        terms = alpha * terms
    values = -ops.sum(terms, axis=-1)
    return apply_ignore_class(values, labels, ignore_class)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SparseCategoricalFocalCrossentropy(LossArithmetic, keras.losses.Loss):
    """Focal cross-entropy for integer labels (Lin et al., ICCV 2017).

    See `kx.losses.sparse_categorical_focal_crossentropy` for the formula.

    Args:
        gamma: focusing parameter, >= 0. Defaults to `2.0`.
        alpha: a number or one weight per class. Defaults to `None` (no weighting).
        from_logits: whether `y_pred` holds logits. Defaults to `False`.
        ignore_class: label left out of the loss and of the mean. Defaults to `None`.
        label_smoothing: float in [0, 1]. Defaults to `0.0`.
        reduction: as for `keras.losses.Loss`. Defaults to `"sum_over_batch_size"`.
        name: Defaults to `"sparse_categorical_focal_crossentropy"`.
        dtype: as for `keras.losses.Loss`. Defaults to `None`.

    Example:

    >>> import kx
    >>> loss = kx.losses.SparseCategoricalFocalCrossentropy(gamma=2.0, alpha=[0.25, 0.75])
    >>> round(float(loss([0, 1], [[0.9, 0.1], [0.5, 0.5]])), 5)
    0.06512
    """

    def __init__(
        self, gamma=2.0, alpha=None, from_logits=False, ignore_class=None, label_smoothing=0.0,
        reduction="sum_over_batch_size", name="sparse_categorical_focal_crossentropy",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        owner = type(self).__name__
        self.gamma = check_gamma(gamma, owner)
        self.alpha = check_alpha(alpha, owner)
        self.from_logits = bool(from_logits)
        self.ignore_class = _check_ignore_class(ignore_class, owner)
        self.label_smoothing = _check_label_smoothing(label_smoothing, owner)

    def call(self, y_true, y_pred):
        return sparse_categorical_focal_crossentropy(
            y_true, y_pred, gamma=self.gamma, alpha=self.alpha, from_logits=self.from_logits,
            ignore_class=self.ignore_class, label_smoothing=self.label_smoothing,
        )

    def get_config(self):
        return {
            **super().get_config(),
            "gamma": self.gamma,
            "alpha": list(self.alpha) if isinstance(self.alpha, tuple) else self.alpha,
            "from_logits": self.from_logits,
            "ignore_class": self.ignore_class,
            "label_smoothing": self.label_smoothing,
        }
