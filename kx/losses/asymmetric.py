"""Asymmetric loss for multi-label classification (Ridnik et al., ICCV 2021)."""

import keras
from keras import ops

from kx.losses import _checks, _utils
from kx.losses._base import LossFunctionWrapper

__all__ = ["AsymmetricLoss", "asymmetric_loss"]

_PACKAGE = "kx"


def _check_args(owner, *, gamma_pos, gamma_neg, clip, from_logits):
    return {
        "gamma_pos": _checks.non_negative(gamma_pos, "gamma_pos", owner),
        "gamma_neg": _checks.non_negative(gamma_neg, "gamma_neg", owner),
        "clip": _checks.number(clip, "clip", owner, low=0.0, high=1.0, high_open=True),
        "from_logits": _checks.flag(from_logits, "from_logits", owner),
    }


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
        y_true: 0/1 targets (soft targets in [0, 1] accepted), the shape of `y_pred`.
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
    args = _check_args(loss_name, gamma_pos=gamma_pos, gamma_neg=gamma_neg, clip=clip,
                       from_logits=from_logits)
    gamma_pos, gamma_neg, clip = args["gamma_pos"], args["gamma_neg"], args["clip"]
    from_logits = args["from_logits"]
    y_true, y_pred = _utils.prepare(y_true, y_pred)
    y_true, y_pred = _utils.check_same_shape(y_true, y_pred, loss_name)
    y_true = _utils.check_unit_interval(y_true, loss_name, "y_true")
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
class AsymmetricLoss(LossFunctionWrapper):
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

    fn = staticmethod(asymmetric_loss)
    check_args = staticmethod(_check_args)

    def __init__(
        self, gamma_pos=0.0, gamma_neg=4.0, clip=0.05, from_logits=False,
        reduction="sum_over_batch_size", name="asymmetric_loss", dtype=None,
    ):
        super().__init__(reduction, name, dtype, gamma_pos=gamma_pos, gamma_neg=gamma_neg,
                         clip=clip, from_logits=from_logits)
