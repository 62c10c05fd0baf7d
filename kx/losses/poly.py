"""Poly-1 loss (Leng et al., ICLR 2022): cross-entropy or focal plus `epsilon * (1 - p_t)`."""

import keras
from keras import ops

from kx.losses import _checks, _utils
from kx.losses._base import LossFunctionWrapper

__all__ = ["PolyLoss", "poly_loss"]

_PACKAGE = "kx"
_BASES = ("ce", "focal")


def _check_args(owner, *, epsilon, base, gamma, sparse, from_logits):
    return {
        # may be negative; >= -1 keeps the loss non-negative
        "epsilon": _checks.number(epsilon, "epsilon", owner),
        "base": _checks.choice(base, "base", owner, _BASES),
        "gamma": _checks.non_negative(gamma, "gamma", owner),
        "sparse": _checks.flag(sparse, "sparse", owner),
        "from_logits": _checks.flag(from_logits, "from_logits", owner),
    }


def poly_loss(
    y_true, y_pred, *, epsilon=1.0, base="ce", gamma=2.0, sparse=True, from_logits=False
):
    """Poly-1 loss: the first polynomial term of the base loss, re-weighted by `epsilon`.

    Formula:

    ```python
    p_t = sum(one_hot(y_true) * p, axis=-1)
    loss = crossentropy + epsilon * (1 - p_t)                                 # base="ce"
    loss = focal(gamma) + epsilon * (1 - p_t) ** (gamma + 1)                  # base="focal"
    ```

    `epsilon=0` gives the base loss. The focal base is the softmax focal cross-entropy
    `-sum(y * (1 - p) ** gamma * log(p))`.

    Args:
        y_true: integer labels (`sparse=True`) or one-hot targets.
        y_pred: probabilities or logits, classes on the last axis.
        epsilon: weight of the polynomial term. Defaults to `1.0`.
        base: `"ce"` or `"focal"`. Defaults to `"ce"`.
        gamma: focusing parameter of the focal base. Defaults to `2.0`.
        sparse: whether `y_true` holds integer labels. Defaults to `True`.
        from_logits: whether `y_pred` holds logits. Defaults to `False`.

    Returns:
        Per-sample losses, shape `y_pred.shape[:-1]`.

    Example:

    >>> import kx
    >>> loss = kx.losses.poly_loss([0], [[0.5, 0.5]], epsilon=1.0)
    >>> round(float(loss[0]), 4)
    1.1931
    """
    loss_name = "poly_loss"
    args = _check_args(loss_name, epsilon=epsilon, base=base, gamma=gamma, sparse=sparse,
                       from_logits=from_logits)
    epsilon, gamma = args["epsilon"], args["gamma"]
    target, log_p = _utils.targets_and_log_probs(
        y_true, y_pred, args["sparse"], args["from_logits"], loss_name
    )
    p = ops.exp(log_p)
    one_minus_pt = ops.maximum(1.0 - ops.sum(target * p, axis=-1), 0.0)
    if base == "ce":
        return -ops.sum(target * log_p, axis=-1) + epsilon * one_minus_pt
    focal = -ops.sum(target * _utils.safe_pow(1.0 - p, gamma) * log_p, axis=-1)
    return focal + epsilon * _utils.safe_pow(one_minus_pt, gamma + 1.0)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class PolyLoss(LossFunctionWrapper):
    """Poly-1 loss (Leng et al., ICLR 2022) over cross-entropy or focal loss.

    See `kx.losses.poly_loss` for the formula.

    Args:
        epsilon: weight of the polynomial term. Defaults to `1.0`.
        base: `"ce"` or `"focal"`. Defaults to `"ce"`.
        gamma: focusing parameter of the focal base. Defaults to `2.0`.
        sparse: whether `y_true` holds integer labels. Defaults to `True`.
        from_logits: whether `y_pred` holds logits. Defaults to `False`.
        reduction: as for `keras.losses.Loss`. Defaults to `"sum_over_batch_size"`.
        name: Defaults to `"poly_loss"`.
        dtype: as for `keras.losses.Loss`. Defaults to `None`.

    Example:

    >>> import kx
    >>> loss = kx.losses.PolyLoss(epsilon=2.0, base="focal", gamma=1.0)
    >>> round(float(loss([1], [[0.5, 0.5]])), 4)
    0.8466
    """

    fn = staticmethod(poly_loss)
    check_args = staticmethod(_check_args)

    def __init__(
        self, epsilon=1.0, base="ce", gamma=2.0, sparse=True, from_logits=False,
        reduction="sum_over_batch_size", name="poly_loss", dtype=None,
    ):
        super().__init__(reduction, name, dtype, epsilon=epsilon, base=base, gamma=gamma,
                         sparse=sparse, from_logits=from_logits)
