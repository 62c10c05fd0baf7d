"""Overlap losses for segmentation: soft Jaccard, focal Tversky, log-cosh Dice, log Dice and
generalized Dice.

All of them read predictions of shape `(batch, *spatial, channels)` (any number of spatial axes,
classes on the last axis) and targets given either

- sparse: an integer class map of shape `(batch, *spatial)` or `(batch, *spatial, 1)`; with a
  single channel (a binary mask model) the labels are 0/1; or
- dense: one-hot (or soft) targets of the shape of the predictions.

Labels are checked: a sparse label at or above the number of channels (or other than 0/1 for a
single channel), or a dense target outside [0, 1] (a 0/255 mask), is a `ValueError`, or NaN
inside a compiled step, unless it is `ignore_class`.

Overlaps are computed per class and averaged over the classes, either per image (the default: one
value per sample, weighted like any Keras loss) or over the whole batch (`per_image=False`: the
batch value, returned once per sample so that the default `"sum_over_batch_size"` reduction gives
it unchanged; a sample weight `w_i` then scales sample `i`'s copy, so the reduced loss is
`mean(w) * batch value`; to weigh images inside the statistics use `per_image=True`).

With `smooth = 0` and one channel these losses agree with Keras' own: `focal_tversky(alpha, beta,
gamma=1)` equals `keras.losses.tversky(alpha=alpha, beta=beta, axis=spatial+channel axes)` and with
`alpha = beta = 0.5` also `keras.losses.dice` (the tests check both).
"""

import math

import keras
from keras import ops

from kx.losses import _checks
from kx.losses._base import LossFunctionWrapper
from kx.losses._utils import segmentation_targets, spread_over_batch

__all__ = [
    "FocalTversky",
    "GeneralizedDice",
    "Jaccard",
    "LogCoshDice",
    "LogDice",
    "focal_tversky",
    "generalized_dice",
    "jaccard",
    "log_cosh_dice",
    "log_dice",
]

_PACKAGE = "kx"
_SMOOTH = 1e-5


def _check_args(owner, *, smooth, per_image, from_logits, ignore_class):
    return {
        "smooth": _checks.non_negative(smooth, "smooth", owner),
        "per_image": _checks.flag(per_image, "per_image", owner),
        "from_logits": _checks.flag(from_logits, "from_logits", owner),
        "ignore_class": _checks.ignore_class(ignore_class, owner),
    }


# ---------------------------------------------------------------------------------------------
# Shared tensor math


def _class_sums(target, probs, per_image):
    """Per-class `(sum(t * p), sum(t), sum(p))`, shape `(batch, C)` per image or `(C,)`."""
    rank = len(probs.shape)
    axes = tuple(range(1, rank - 1)) if per_image else tuple(range(rank - 1))
    tp, st, sp = target * probs, target, probs
    if axes:
        tp, st, sp = ops.sum(tp, axis=axes), ops.sum(st, axis=axes), ops.sum(sp, axis=axes)
    return tp, st, sp


def _ratio(numerator, denominator, smooth):
    if smooth == 0:
        # An empty class (0 / 0) scores 0, as in keras.losses.dice.
        return numerator / ops.maximum(denominator, keras.config.epsilon())
    # smooth > 0: (0 + smooth) / (0 + smooth) = 1 for a class absent from both, however small
    # smooth is (a clamp at epsilon would give smooth / epsilon). The denominator is >= 0 in
    # exact arithmetic; the maximum keeps float rounding from making it negative.
    return (numerator + smooth) / (ops.maximum(denominator, 0.0) + smooth)


def _finish(per_class_loss, probs, per_image):
    """Mean over classes, then one value per sample."""
    value = ops.mean(per_class_loss, axis=-1)
    return value if per_image else spread_over_batch(value, probs)


def _overlap_sums(y_true, y_pred, args, loss_name):
    """`(sum(t * p), sum(t), sum(p), probs)` per class, from the checked arguments."""
    target, probs, _ = segmentation_targets(
        y_true, y_pred, args["from_logits"], args["ignore_class"], loss_name
    )
    tp, st, sp = _class_sums(target, probs, args["per_image"])
    return tp, st, sp, probs


def _dice_scores(y_true, y_pred, args, loss_name):
    tp, st, sp, probs = _overlap_sums(y_true, y_pred, args, loss_name)
    return _ratio(2.0 * tp, st + sp, args["smooth"]), probs


# ---------------------------------------------------------------------------------------------
# Functions


@keras.saving.register_keras_serializable(package=_PACKAGE)
def jaccard(
    y_true, y_pred, *, smooth=_SMOOTH, per_image=True, from_logits=False, ignore_class=None
):
    """Soft Jaccard (intersection over union) loss, averaged over classes.

    Formula:
    ```
    J_c  = (sum(t_c * p_c) + smooth) / (sum(t_c) + sum(p_c) - sum(t_c * p_c) + smooth)
    loss = 1 - mean_c J_c
    ```
    where the sums run over the spatial axes of each image (`per_image=True`) or over the batch
    and spatial axes (`per_image=False`). A class absent from both targets and predictions
    scores 1 when `smooth > 0`.

    Args:
        y_true: sparse labels `(batch, *spatial)` / `(batch, *spatial, 1)` or one-hot targets
            of the shape of `y_pred` (see the module docstring).
        y_pred: probabilities (or logits with `from_logits=True`), `(batch, *spatial, C)`.
        smooth: added to numerator and denominator. Defaults to `1e-5`.
        per_image: overlaps per image (`True`, default) or over the whole batch (`False`; the
            batch value is returned for every sample).
        from_logits: whether `y_pred` holds logits: softmax over the last axis, or a sigmoid
            when it has size 1. Defaults to `False`.
        ignore_class: a label whose pixels count for nothing (e.g. `255` for "void"); sparse
            labels or single-channel masks only. Defaults to `None`.

    Returns:
        float32 loss per sample, shape `(batch,)`.

    Example:

    >>> import numpy as np, keras, kx
    >>> labels = np.array([[[0, 1], [1, 1]]])            # (1, 2, 2) class map
    >>> probs = np.eye(2, dtype="float32")[labels]       # a perfect prediction
    >>> float(kx.losses.jaccard(labels, probs)[0])
    0.0
    >>> float(kx.losses.jaccard(labels, probs[..., ::-1])[0])   # classes swapped
    1.0
    """
    args = _check_args("jaccard", smooth=smooth, per_image=per_image, from_logits=from_logits,
                       ignore_class=ignore_class)
    tp, st, sp, probs = _overlap_sums(y_true, y_pred, args, "jaccard")
    return _finish(1.0 - _ratio(tp, st + sp - tp, args["smooth"]), probs, args["per_image"])


def _check_tversky_args(owner, *, alpha, beta, gamma, **common):
    alpha = _checks.non_negative(alpha, "alpha", owner)
    beta = _checks.non_negative(beta, "beta", owner)
    gamma = _checks.number(gamma, "gamma", owner, low=0.0, low_open=True)
    if alpha + beta == 0:
        raise ValueError(
            f"{owner}: expected `alpha + beta > 0` (otherwise the Tversky index is 1 for "
            f"any prediction). Received: alpha={alpha}, beta={beta}."
        )
    return {"alpha": alpha, "beta": beta, "gamma": gamma, **_check_args(owner, **common)}


@keras.saving.register_keras_serializable(package=_PACKAGE)
def focal_tversky(
    y_true,
    y_pred,
    *,
    alpha=0.7,
    beta=0.3,
    gamma=4.0 / 3.0,
    smooth=_SMOOTH,
    per_image=True,
    from_logits=False,
    ignore_class=None,
):
    """Focal Tversky loss (Abraham and Khan, 2019), averaged over classes.

    Formula:
    ```
    TP_c = sum(t_c * p_c),  FN_c = sum(t_c * (1 - p_c)),  FP_c = sum((1 - t_c) * p_c)
    TI_c = (TP_c + smooth) / (TP_c + alpha * FN_c + beta * FP_c + smooth)
    loss = mean_c (1 - TI_c) ** (1 / gamma)
    ```
    `alpha` weighs false negatives and `beta` false positives, as in the paper and in the
    computation of `keras.losses.tversky` (whose docstring names them the other way round).
    `gamma` is the paper's: the exponent is `1 / gamma`, and `gamma > 1` focuses on the
    harder (lower-index) classes. With `gamma = 1` this is the Tversky loss, and with
    `alpha = beta = 0.5` also the Dice loss. The paper sums over classes; the mean used here
    keeps the loss in [0, 1] whatever the number of classes.

    Args:
        y_true: sparse labels or one-hot targets (see `jaccard`).
        y_pred: probabilities (or logits with `from_logits=True`), `(batch, *spatial, C)`.
        alpha: weight of the false negatives. Defaults to `0.7` (the paper's).
        beta: weight of the false positives. Defaults to `0.3`.
        gamma: focal parameter; the exponent is `1 / gamma`. Defaults to `4/3` (the paper's).
        smooth: added to numerator and denominator. Defaults to `1e-5`.
        per_image: overlaps per image (default) or over the batch (see `jaccard`).
        from_logits: softmax (or sigmoid for one channel) of `y_pred` first. Defaults to `False`.
        ignore_class: a label whose pixels count for nothing. Defaults to `None`.

    Returns:
        float32 loss per sample, shape `(batch,)`.

    Example:

    >>> import numpy as np, kx
    >>> mask = np.array([[[1.0], [1.0], [0.0], [0.0]]])   # (1, 4, 1) binary mask
    >>> probs = np.array([[[0.5], [0.5], [0.5], [0.0]]])
    >>> loss = kx.losses.focal_tversky(mask, probs, alpha=0.5, beta=0.5, gamma=1.0, smooth=0.0)
    >>> round(float(loss[0]), 4)     # the Dice loss: 1 - 2 * 1 / (2 + 1.5)
    0.4286
    """
    args = _check_tversky_args("focal_tversky", alpha=alpha, beta=beta, gamma=gamma,
                               smooth=smooth, per_image=per_image, from_logits=from_logits,
                               ignore_class=ignore_class)
    alpha, beta, gamma = args["alpha"], args["beta"], args["gamma"]
    tp, st, sp, probs = _overlap_sums(y_true, y_pred, args, "focal_tversky")
    index = _ratio(tp, tp + alpha * (st - tp) + beta * (sp - tp), args["smooth"])
    gap = ops.maximum(1.0 - index, 0.0)
    if gamma != 1.0:
        # (1 - TI) ** (1 / gamma) has an infinite slope at 0 when gamma > 1; the double `where`
        # keeps its value 0 and its gradient finite for a perfect prediction.
        positive = ops.greater(gap, 0.0)
        gap = ops.where(positive, ops.power(ops.where(positive, gap, 1.0), 1.0 / gamma), 0.0)
    return _finish(gap, probs, args["per_image"])


@keras.saving.register_keras_serializable(package=_PACKAGE)
def log_cosh_dice(
    y_true, y_pred, *, smooth=_SMOOTH, per_image=True, from_logits=False, ignore_class=None
):
    """Log-cosh Dice loss (Jadon, 2020): `log(cosh(dice loss))`, a smoothed Dice loss.

    Formula:
    ```
    D_c  = (2 * sum(t_c * p_c) + smooth) / (sum(t_c) + sum(p_c) + smooth)
    loss = log(cosh(1 - mean_c D_c))
    ```

    Args:
        y_true: sparse labels or one-hot targets (see `jaccard`).
        y_pred: probabilities (or logits with `from_logits=True`), `(batch, *spatial, C)`.
        smooth: added to numerator and denominator. Defaults to `1e-5`.
        per_image: overlaps per image (default) or over the batch (see `jaccard`).
        from_logits: softmax (or sigmoid for one channel) of `y_pred` first. Defaults to `False`.
        ignore_class: a label whose pixels count for nothing. Defaults to `None`.

    Returns:
        float32 loss per sample, shape `(batch,)`.

    Example:

    >>> import numpy as np, kx
    >>> mask = np.array([[[1.0], [1.0], [0.0], [0.0]]])
    >>> probs = np.array([[[0.5], [0.5], [0.5], [0.0]]])
    >>> round(float(kx.losses.log_cosh_dice(mask, probs, smooth=0.0)[0]), 4)  # log(cosh(3/7))
    0.0892
    """
    args = _check_args("log_cosh_dice", smooth=smooth, per_image=per_image,
                       from_logits=from_logits, ignore_class=ignore_class)
    dice, probs = _dice_scores(y_true, y_pred, args, "log_cosh_dice")
    x = 1.0 - ops.mean(dice, axis=-1)
    # log(cosh(x)) written without overflow: |x| + log1p(exp(-2|x|)) - log(2).
    value = ops.abs(x) + ops.log1p(ops.exp(-2.0 * ops.abs(x))) - math.log(2.0)
    return value if args["per_image"] else spread_over_batch(value, probs)


@keras.saving.register_keras_serializable(package=_PACKAGE)
def log_dice(
    y_true, y_pred, *, smooth=_SMOOTH, per_image=True, from_logits=False, ignore_class=None
):
    """Logarithmic Dice loss: the mean over classes of `-log(Dice)` (the Dice term of Wong et
    al., 2018, with exponent 1), steeper than `1 - Dice` for poorly segmented classes.

    Formula:
    ```
    D_c  = (2 * sum(t_c * p_c) + smooth) / (sum(t_c) + sum(p_c) + smooth)
    loss = mean_c -log(max(D_c, epsilon))
    ```
    The clip at `keras.config.epsilon()` keeps the loss finite when a class has no overlap
    and `smooth = 0`.

    Args:
        y_true: sparse labels or one-hot targets (see `jaccard`).
        y_pred: probabilities (or logits with `from_logits=True`), `(batch, *spatial, C)`.
        smooth: added to numerator and denominator. Defaults to `1e-5`.
        per_image: overlaps per image (default) or over the batch (see `jaccard`).
        from_logits: softmax (or sigmoid for one channel) of `y_pred` first. Defaults to `False`.
        ignore_class: a label whose pixels count for nothing. Defaults to `None`.

    Returns:
        float32 loss per sample, shape `(batch,)`.

    Example:

    >>> import numpy as np, kx
    >>> mask = np.array([[[1.0], [1.0], [0.0], [0.0]]])
    >>> probs = np.array([[[0.5], [0.5], [0.5], [0.0]]])
    >>> round(float(kx.losses.log_dice(mask, probs, smooth=0.0)[0]), 4)  # -log(4/7)
    0.5596
    """
    args = _check_args("log_dice", smooth=smooth, per_image=per_image, from_logits=from_logits,
                       ignore_class=ignore_class)
    dice, probs = _dice_scores(y_true, y_pred, args, "log_dice")
    return _finish(-ops.log(ops.maximum(dice, keras.config.epsilon())), probs, args["per_image"])


@keras.saving.register_keras_serializable(package=_PACKAGE)
def generalized_dice(
    y_true, y_pred, *, smooth=_SMOOTH, per_image=True, from_logits=False, ignore_class=None
):
    """Generalized Dice loss (Sudre et al., 2017): Dice with classes weighted by the inverse
    square of their target volume, so that small structures count as much as large ones.

    Formula:
    ```
    w_c  = 1 / sum(t_c) ** 2, normalised to sum to 1 over the classes
    loss = 1 - (2 * sum_c w_c * sum(t_c * p_c) + smooth)
               / (sum_c w_c * (sum(t_c) + sum(p_c)) + smooth)
    ```
    A class absent from the targets (infinite weight in the paper) gets the largest weight of
    the present classes, so that predicting it is still penalised. The loss does not depend on
    the scale of the weights; normalising them makes `smooth` act in pixel units, as in the
    other overlap losses. If no class is present (every pixel ignored) the loss is 0.

    Args:
        y_true: sparse labels or one-hot targets (see `jaccard`).
        y_pred: probabilities (or logits with `from_logits=True`), `(batch, *spatial, C)`.
        smooth: added to numerator and denominator. Defaults to `1e-5`.
        per_image: volumes and overlaps per image (default) or over the batch (see `jaccard`).
        from_logits: softmax (or sigmoid for one channel) of `y_pred` first. Defaults to `False`.
        ignore_class: a label whose pixels count for nothing. Defaults to `None`.

    Returns:
        float32 loss per sample, shape `(batch,)`.

    Example:

    >>> import numpy as np, kx
    >>> labels = np.array([[0, 0, 0, 1]])               # (1, 4): class 1 is small
    >>> probs = np.array([[[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [1.0, 0.0]]])
    >>> round(float(kx.losses.generalized_dice(labels, probs, smooth=0.0)[0]), 4)
    0.625
    """
    args = _check_args("generalized_dice", smooth=smooth, per_image=per_image,
                       from_logits=from_logits, ignore_class=ignore_class)
    tp, st, sp, probs = _overlap_sums(y_true, y_pred, args, "generalized_dice")
    present = ops.greater(st, 0.0)
    weights = ops.where(present, 1.0 / ops.square(ops.where(present, st, 1.0)), 0.0)
    weights = ops.where(present, weights, ops.max(weights, axis=-1, keepdims=True))
    total = ops.sum(weights, axis=-1, keepdims=True)
    weights = ops.where(total > 0, weights / ops.where(total > 0, total, 1.0), 0.0)
    weights = ops.stop_gradient(weights)
    score = _ratio(
        2.0 * ops.sum(weights * tp, axis=-1), ops.sum(weights * (st + sp), axis=-1),
        args["smooth"],
    )
    value = 1.0 - score
    return value if args["per_image"] else spread_over_batch(value, probs)


# ---------------------------------------------------------------------------------------------
# Classes


class _OverlapLoss(LossFunctionWrapper):
    """The constructor the overlap losses share; a subclass sets `fn` and `_default_name`."""

    check_args = staticmethod(_check_args)
    _default_name = None

    def __init__(
        self,
        smooth=_SMOOTH,
        per_image=True,
        from_logits=False,
        ignore_class=None,
        reduction="sum_over_batch_size",
        name=None,
        dtype=None,
    ):
        super().__init__(reduction, name or self._default_name, dtype, smooth=smooth,
                         per_image=per_image, from_logits=from_logits, ignore_class=ignore_class)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Jaccard(_OverlapLoss):
    """Soft Jaccard (IoU) loss, `1 - mean_c IoU_c`; see `kx.losses.jaccard`.

    Args: `smooth`, `per_image`, `from_logits` and `ignore_class` as the function (same
    defaults); `reduction` and `dtype` as `keras.losses.Loss` (the math runs in float32
    regardless); `name` defaults to `"jaccard"`.

    Example:

    >>> import numpy as np, kx
    >>> labels = np.array([[[0, 1], [1, 1]]])
    >>> probs = np.eye(2, dtype="float32")[labels]
    >>> float(kx.losses.Jaccard()(labels, probs))
    0.0
    """

    fn = staticmethod(jaccard)
    _default_name = "jaccard"


@keras.saving.register_keras_serializable(package=_PACKAGE)
class FocalTversky(_OverlapLoss):
    """Focal Tversky loss, `mean_c (1 - TI_c) ** (1 / gamma)`; see `kx.losses.focal_tversky`.

    Args:
        alpha: weight of the false negatives. Defaults to `0.7`.
        beta: weight of the false positives. Defaults to `0.3`.
        gamma: focal parameter; the exponent is `1 / gamma`. Defaults to `4/3`.
        smooth: added to numerator and denominator. Defaults to `1e-5`.
        per_image: overlaps per image (default) or over the batch.
        from_logits: softmax (or sigmoid for one channel) of `y_pred` first. Defaults to `False`.
        ignore_class: a label whose pixels count for nothing. Defaults to `None`.
        reduction: as `keras.losses.Loss`. Defaults to `"sum_over_batch_size"`.
        name: defaults to `"focal_tversky"`.
        dtype: as `keras.losses.Loss`; the math runs in float32 regardless.

    Example:

    >>> import numpy as np, kx
    >>> mask = np.array([[[1.0], [1.0], [0.0], [0.0]]])
    >>> probs = np.array([[[0.5], [0.5], [0.5], [0.0]]])
    >>> loss = kx.losses.FocalTversky(alpha=0.5, beta=0.5, gamma=1.0, smooth=0.0)
    >>> round(float(loss(mask, probs)), 4)
    0.4286
    """

    fn = staticmethod(focal_tversky)
    _default_name = "focal_tversky"

    check_args = staticmethod(_check_tversky_args)

    def __init__(
        self,
        alpha=0.7,
        beta=0.3,
        gamma=4.0 / 3.0,
        smooth=_SMOOTH,
        per_image=True,
        from_logits=False,
        ignore_class=None,
        reduction="sum_over_batch_size",
        name=None,
        dtype=None,
    ):
        LossFunctionWrapper.__init__(
            self, reduction, name or self._default_name, dtype, alpha=alpha, beta=beta,
            gamma=gamma, smooth=smooth, per_image=per_image, from_logits=from_logits,
            ignore_class=ignore_class,
        )


@keras.saving.register_keras_serializable(package=_PACKAGE)
class LogCoshDice(_OverlapLoss):
    """Log-cosh Dice loss, `log(cosh(1 - mean_c Dice_c))`; see `kx.losses.log_cosh_dice`.

    Args: `smooth`, `per_image`, `from_logits` and `ignore_class` as the function (same
    defaults); `reduction` and `dtype` as `keras.losses.Loss` (the math runs in float32
    regardless); `name` defaults to `"log_cosh_dice"`.

    Example:

    >>> import numpy as np, kx
    >>> mask = np.array([[[1.0], [1.0], [0.0], [0.0]]])
    >>> probs = np.array([[[0.5], [0.5], [0.5], [0.0]]])
    >>> round(float(kx.losses.LogCoshDice(smooth=0.0)(mask, probs)), 4)
    0.0892
    """

    fn = staticmethod(log_cosh_dice)
    _default_name = "log_cosh_dice"


@keras.saving.register_keras_serializable(package=_PACKAGE)
class LogDice(_OverlapLoss):
    """Logarithmic Dice loss, `mean_c -log(Dice_c)`; see `kx.losses.log_dice`.

    Args: `smooth`, `per_image`, `from_logits` and `ignore_class` as the function (same
    defaults); `reduction` and `dtype` as `keras.losses.Loss` (the math runs in float32
    regardless); `name` defaults to `"log_dice"`.

    Example:

    >>> import numpy as np, kx
    >>> mask = np.array([[[1.0], [1.0], [0.0], [0.0]]])
    >>> probs = np.array([[[0.5], [0.5], [0.5], [0.0]]])
    >>> round(float(kx.losses.LogDice(smooth=0.0)(mask, probs)), 4)
    0.5596
    """

    fn = staticmethod(log_dice)
    _default_name = "log_dice"


@keras.saving.register_keras_serializable(package=_PACKAGE)
class GeneralizedDice(_OverlapLoss):
    """Generalized Dice loss (Sudre et al., 2017); see `kx.losses.generalized_dice`.

    Args: `smooth`, `per_image`, `from_logits` and `ignore_class` as the function (same
    defaults); `reduction` and `dtype` as `keras.losses.Loss` (the math runs in float32
    regardless); `name` defaults to `"generalized_dice"`.

    Example:

    >>> import numpy as np, kx
    >>> labels = np.array([[0, 0, 0, 1]])
    >>> probs = np.array([[[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [1.0, 0.0]]])
    >>> round(float(kx.losses.GeneralizedDice(smooth=0.0)(labels, probs)), 4)
    0.625
    """

    fn = staticmethod(generalized_dice)
    _default_name = "generalized_dice"
