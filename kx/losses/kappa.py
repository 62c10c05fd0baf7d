"""Weighted kappa loss for ordinal classification (de la Torre et al., 2018)."""

import keras
from keras import ops

from kx.losses import _checks, _utils
from kx.losses._base import BatchStatisticWrapper

__all__ = ["WeightedKappaLoss", "weighted_kappa_loss"]

_PACKAGE = "kx"
_WEIGHTAGES = ("linear", "quadratic")


def _check_args(owner, *, num_classes, weightage, sparse, from_logits, epsilon):
    return {
        "num_classes": _checks.integer(num_classes, "num_classes", owner, low=2),
        "weightage": _checks.choice(weightage, "weightage", owner, _WEIGHTAGES),
        "sparse": _checks.flag(sparse, "sparse", owner),
        "from_logits": _checks.flag(from_logits, "from_logits", owner),
        "epsilon": _checks.number(epsilon, "epsilon", owner, low=0.0, low_open=True),
    }


def weighted_kappa_loss(
    y_true, y_pred, *, num_classes, weightage="quadratic", sparse=True, from_logits=False,
    epsilon=1e-6, sample_weight=None,
):
    """`log(1 - kappa)` of the soft confusion matrix: a batch-level loss for ordinal labels.

    Formula (`O` the soft confusion matrix `sum_i w_i * one_hot(y_i) outer p_i`, `E` the outer
    product of its marginals over its total, `W[i, j] = (i - j) ** 2` or `|i - j|`):

    ```python
    loss = log(sum(W * O) / sum(W * E) + epsilon)        # = log(1 - kappa + epsilon)
    ```

    With one-hot predictions `1 - exp(loss)` is scikit-learn's `cohen_kappa_score(...,
    weights=weightage, sample_weight=...)` (up to `epsilon`). Kappa is a batch statistic, so
    the value is a scalar: sample weights weigh the samples inside the statistic (as in
    scikit-learn). Batches should hold a few samples of several classes: a batch of one class
    has `sum(W * E) = 0` and loss `log(epsilon)`. A label outside `[0, num_classes)` is a
    `ValueError` (NaN inside a compiled step), not a sample silently left out.

    Args:
        y_true: integer labels in `[0, num_classes)` (`sparse=True`) or one-hot targets.
        y_pred: probabilities or logits, shape `(batch, num_classes)`.
        num_classes: number of ordered classes, >= 2.
        weightage: `"quadratic"` or `"linear"`. Defaults to `"quadratic"`.
        sparse: whether `y_true` holds integer labels. Defaults to `True`.
        from_logits: whether `y_pred` holds logits. Defaults to `False`.
        epsilon: added inside the log. Defaults to `1e-6`.
        sample_weight: optional per-sample weights, shape `(batch,)`. Defaults to `None`.

    Returns:
        A scalar float32 tensor.

    Example:

    >>> import kx
    >>> loss = kx.losses.weighted_kappa_loss(
    ...     [0, 1, 2], [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], num_classes=3)
    >>> round(float(loss), 2)
    -13.82
    """
    loss_name = "weighted_kappa_loss"
    args = _check_args(loss_name, num_classes=num_classes, weightage=weightage, sparse=sparse,
                       from_logits=from_logits, epsilon=epsilon)
    num_classes, weightage, epsilon = args["num_classes"], args["weightage"], args["epsilon"]
    y_true, y_pred = _utils.prepare(y_true, y_pred)
    if len(y_pred.shape) != 2 or y_pred.shape[-1] not in (None, num_classes):
        raise ValueError(
            f"{loss_name}: expected `y_pred` of shape (batch, num_classes={num_classes}). "
            f"Received: y_pred.shape={tuple(y_pred.shape)}."
        )
    if args["sparse"]:
        labels = _utils.check_sparse_shape(y_true, y_pred, loss_name)
        target = _utils.label_targets(labels, num_classes, loss_name)
    else:
        target, y_pred = _utils.check_same_shape(y_true, y_pred, loss_name)
        target = _utils.check_unit_interval(target, loss_name, "y_true")
    if args["from_logits"]:
        probs = ops.softmax(y_pred, axis=-1)
    else:
        probs = _utils.check_probabilities(y_pred, loss_name)
    if sample_weight is not None:
        sample_weight = ops.reshape(ops.cast(sample_weight, "float32"), (-1, 1))
        target = target * sample_weight
    classes = ops.arange(num_classes, dtype="float32")
    diff = ops.expand_dims(classes, 1) - ops.expand_dims(classes, 0)
    weights = ops.square(diff) if weightage == "quadratic" else ops.abs(diff)
    observed = ops.matmul(ops.transpose(target), probs)  # (true class, predicted class)
    if sample_weight is not None:
        total = ops.sum(sample_weight)
        pred_marginal = ops.sum(probs * sample_weight, axis=0)
        # `observed` already carries the weights through `target`
    else:
        total = ops.cast(ops.shape(probs)[0], "float32")
        pred_marginal = ops.sum(probs, axis=0)
    true_marginal = ops.sum(target, axis=0)
    expected = ops.divide_no_nan(
        ops.expand_dims(true_marginal, 1) * ops.expand_dims(pred_marginal, 0), total
    )
    ratio = ops.divide_no_nan(ops.sum(weights * observed), ops.sum(weights * expected))
    return ops.log(ratio + epsilon)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class WeightedKappaLoss(BatchStatisticWrapper):
    """Weighted kappa loss for ordinal classification: `log(1 - kappa)` of the soft confusion
    matrix (de la Torre et al., 2018; the formulation of TensorFlow Addons).

    See `kx.losses.weighted_kappa_loss`. A batch statistic: `__call__` passes the sample weights
    into the statistic and returns a scalar. Under `tf.distribute` (e.g. `MirroredStrategy`)
    each replica computes kappa on its part of the global batch, and the loss is the mean of
    the replicas' values (scaled like every Keras loss, so not their sum); under JAX's
    `keras.distribution.DataParallel` it is computed on the global batch. Inside a
    `CombinedLoss` the component's value is broadcast over the batch.

    Args:
        num_classes: number of ordered classes, >= 2.
        weightage: `"quadratic"` or `"linear"`. Defaults to `"quadratic"`.
        sparse: whether `y_true` holds integer labels. Defaults to `True`.
        from_logits: whether `y_pred` holds logits. Defaults to `False`.
        epsilon: added inside the log. Defaults to `1e-6`.
        reduction: `None` returns the statistic as it is; any other value (default
            `"sum_over_batch_size"`) returns it as the batch's loss, scaled for distribution
            like every Keras loss.
        name: Defaults to `"weighted_kappa_loss"`.
        dtype: as for `keras.losses.Loss`. Defaults to `None`.

    Example:

    >>> import kx
    >>> loss = kx.losses.WeightedKappaLoss(num_classes=3)
    >>> round(float(loss([0, 1, 2], [[0.8, 0.2, 0.0], [0.1, 0.8, 0.1], [0.0, 0.3, 0.7]])), 4)
    -1.665
    """

    fn = staticmethod(weighted_kappa_loss)
    check_args = staticmethod(_check_args)

    def __init__(
        self, num_classes, weightage="quadratic", sparse=True, from_logits=False,
        epsilon=1e-6, reduction="sum_over_batch_size", name="weighted_kappa_loss", dtype=None,
    ):
        super().__init__(reduction, name, dtype, num_classes=num_classes, weightage=weightage,
                         sparse=sparse, from_logits=from_logits, epsilon=epsilon)
