"""Asymmetric loss for multi-label classification (Ridnik et al., ICCV 2021)."""

import numbers

import keras
from keras import ops

from kx.losses import _utils
from kx.losses.combined import LossArithmetic
from kx.losses.focal import check_gamma

__all__ = ["AsymmetricLoss", "asymmetric_loss"]

_PACKAGE = "kx"


def _check_clip(clip, loss_name):
    if not isinstance(clip, numbers.Real) or isinstance(clip, bool) or not 0 <= clip < 1:
        raise ValueError(
            f"{loss_name}: expected `clip` (the probability margin) to be a number in [0, 1). "
            f"Received: clip={clip!r}"
        )
    return float(clip)


def asymmetric_loss(
    y_true, y_pred, *, gamma_pos=0.0, gamma_neg=4.0, clip=0.05, from_logits=False
):
    """Asymmetric loss (ASL): focal terms with separate exponents for positive and negative
    labels, and a probability margin that discards easy negatives.

    Formula:

    ```python
    p_m = max(p - clip, 0)                               # shifted probability of negatives
    loss_pos = (1 - p) ** gamma_pos * log(p)
    loss_neg = p_m ** gamma_neg * log(1 - p_m)
    loss = mean(-(y_true * loss_pos + (1 - y_true) * loss_neg), axis=-1)
    ```

    The paper's reference code sums over labels; the mean over the last axis here (as
    `keras.losses.binary_crossentropy`) divides it by the number of labels, so that
    `gamma_pos=gamma_neg=clip=0` gives Keras' binary cross-entropy.

    Args:
        y_true: 0/1 targets, the shape of `y_pred`.
        y_pred: sigmoid probabilities or logits, labels on the last axis.
        gamma_pos: focusing exponent of positive labels, >= 0. Defaults to `0.0`.
        gamma_neg: focusing exponent of negative labels, >= 0. Defaults to `4.0`.
        clip: probability margin `m` in [0, 1) for negatives. Defaults to `0.05`.
        from_logits: whether `y_pred` holds logits. Defaults to `False`.

    Returns:
        Per-sample losses, shape `y_pred.shape[:-1]`.

    Example:

    >>> import kx
    >>> loss = kx.losses.asymmetric_loss([[1.0, 0.0, 0.0]], [[0.7, 0.2, 0.04]])
    >>> round(float(loss[0]), 5)
    0.11892
    """
    loss_name = "asymmetric_loss"
    gamma_pos = check_gamma(gamma_pos, loss_name, "gamma_pos")
    gamma_neg = check_gamma(gamma_neg, loss_name, "gamma_neg")
    clip = _check_clip(clip, loss_name)
    y_true, y_pred = _utils.prepare(y_true, y_pred)
    y_true, y_pred = _utils.check_same_shape(y_true, y_pred, loss_name)
    if from_logits:
        p, not_p = ops.sigmoid(y_pred), ops.sigmoid(-y_pred)
    else:
        y_pred = _utils.check_probabilities(y_pred, loss_name)
        p, not_p = y_pred, 1.0 - y_pred
    log_p, log_not_p = _utils.log_sigmoid_pair(y_pred, from_logits)
    if clip > 0:
        not_p = ops.minimum(not_p + clip, 1.0)  # 1 - p_m, at least `clip`: its log is finite
        log_not_p = ops.log(not_p)
    loss_pos = _utils.safe_pow(1.0 - p, gamma_pos) * log_p
    loss_neg = _utils.safe_pow(1.0 - not_p, gamma_neg) * log_not_p
    return ops.mean(-(y_true * loss_pos + (1.0 - y_true) * loss_neg), axis=-1)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class AsymmetricLoss(LossArithmetic, keras.losses.Loss):
    """Asymmetric loss for multi-label classification (Ridnik et al., ICCV 2021).

    See `kx.losses.asymmetric_loss` for the formula.

    Args:
        gamma_pos: focusing exponent of positive labels. Defaults to `0.0`.
        gamma_neg: focusing exponent of negative labels. Defaults to `4.0`.
        clip: probability margin for negatives, in [0, 1). Defaults to `0.05`.
        from_logits: whether `y_pred` holds logits. Defaults to `False`.
        reduction: as for `keras.losses.Loss`. Defaults to `"sum_over_batch_size"`.
        name: Defaults to `"asymmetric_loss"`.
        dtype: as for `keras.losses.Loss`. Defaults to `None`.

    Example:

    >>> import kx
    >>> loss = kx.losses.AsymmetricLoss(from_logits=True)
    >>> round(float(loss([[1.0, 0.0]], [[2.0, -3.0]])), 5)
    0.06346
    """

    def __init__(
        self, gamma_pos=0.0, gamma_neg=4.0, clip=0.05, from_logits=False,
        reduction="sum_over_batch_size", name="asymmetric_loss", dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        owner = type(self).__name__
        self.gamma_pos = check_gamma(gamma_pos, owner, "gamma_pos")
        self.gamma_neg = check_gamma(gamma_neg, owner, "gamma_neg")
        self.clip = _check_clip(clip, owner)
        self.from_logits = bool(from_logits)

    def call(self, y_true, y_pred):
        return asymmetric_loss(
            y_true, y_pred, gamma_pos=self.gamma_pos, gamma_neg=self.gamma_neg, clip=self.clip,
            from_logits=self.from_logits,
        )

    def get_config(self):
        return {
            **super().get_config(),
            "gamma_pos": self.gamma_pos,
            "gamma_neg": self.gamma_neg,
            "clip": self.clip,
            "from_logits": self.from_logits,
        }
