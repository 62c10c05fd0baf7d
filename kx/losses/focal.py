"""Sparse categorical focal cross-entropy (Lin et al., ICCV 2017) for integer labels."""

import keras
from keras import ops

from kx.losses import _checks, _utils
from kx.losses._base import LossFunctionWrapper
from kx.losses.crossentropy import _check_sparse_args

__all__ = ["SparseCategoricalFocalCrossentropy", "sparse_categorical_focal_crossentropy"]

_PACKAGE = "kx"


def _check_args(owner, *, gamma, alpha, from_logits, ignore_class, label_smoothing):
    return {
        "gamma": _checks.non_negative(gamma, "gamma", owner),
        "alpha": _checks.vector_or_scalar(alpha, "alpha", owner, allow_none=True),
        **_check_sparse_args(owner, from_logits=from_logits, label_smoothing=label_smoothing,
                             ignore_class=ignore_class),
    }


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
        y_true: integer labels in `[0, num_classes)` (or `ignore_class`), shape
            `y_pred.shape[:-1]`; see `sparse_categorical_crossentropy`.
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
    args = _check_args(loss_name, gamma=gamma, alpha=alpha, from_logits=from_logits,
                       ignore_class=ignore_class, label_smoothing=label_smoothing)
    labels, target, log_p = _utils.sparse_log_probs(
        y_true, y_pred, args["from_logits"], loss_name, args["ignore_class"]
    )
    target = _utils.smooth_targets(target, args["label_smoothing"])
    alpha = _utils.check_class_vector(args["alpha"], log_p, "alpha", loss_name)
    terms = target * _utils.safe_pow(1.0 - ops.exp(log_p), args["gamma"]) * log_p
    if alpha is not None:
        terms = alpha * terms
    values = -ops.sum(terms, axis=-1)
    return _utils.apply_ignore_class(values, labels, args["ignore_class"])


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SparseCategoricalFocalCrossentropy(LossFunctionWrapper):
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

    fn = staticmethod(sparse_categorical_focal_crossentropy)
    check_args = staticmethod(_check_args)

    def __init__(
        self, gamma=2.0, alpha=None, from_logits=False, ignore_class=None, label_smoothing=0.0,
        reduction="sum_over_batch_size", name="sparse_categorical_focal_crossentropy",
        dtype=None,
    ):
        super().__init__(reduction, name, dtype, gamma=gamma, alpha=alpha,
                         from_logits=from_logits, ignore_class=ignore_class,
                         label_smoothing=label_smoothing)
