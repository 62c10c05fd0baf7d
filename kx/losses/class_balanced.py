"""Class-balanced loss: effective-number class weights (Cui et al., CVPR 2019)."""

import keras
import numpy as np
from keras import ops

from kx.losses import _checks, _utils
from kx.losses._base import LossFunctionWrapper

__all__ = ["ClassBalancedLoss", "class_balanced_loss", "class_balanced_weights"]

_PACKAGE = "kx"
_BASES = ("cross_entropy", "focal")


def _check_beta(beta, loss_name):
    return _checks.number(beta, "beta", loss_name, low=0.0, high=1.0, high_open=True)


def _check_counts(samples_per_class, loss_name):
    counts = np.asarray(samples_per_class, dtype="float64")
    if counts.ndim != 1 or counts.size == 0 or not np.all(counts > 0):
        raise ValueError(
            f"{loss_name}: expected `samples_per_class` to be a 1-D sequence of positive counts, "
            f"one per class. Received: samples_per_class={samples_per_class!r}"
        )
    return tuple(int(c) if float(c).is_integer() else float(c) for c in counts)


def _check_base(base_loss, loss_name):
    if isinstance(base_loss, str):
        base = {"ce": "cross_entropy", "crossentropy": "cross_entropy"}.get(base_loss, base_loss)
        if base not in _BASES:
            raise ValueError(
                f"{loss_name}: expected `base_loss` to be one of {list(_BASES)}, a "
                f"keras.losses.Loss or a loss function. Received: base_loss={base_loss!r}"
            )
        return base
    if not callable(base_loss):
        raise TypeError(
            f"{loss_name}: expected `base_loss` to be one of {list(_BASES)}, a keras.losses.Loss "
            f"or a loss function. Received: base_loss={base_loss!r}"
        )
    return base_loss


def _check_args(owner, *, base_loss, samples_per_class, beta, gamma, sparse, from_logits):
    return {
        "base_loss": _check_base(base_loss, owner),
        "samples_per_class": _check_counts(samples_per_class, owner),
        "beta": _check_beta(beta, owner),
        "gamma": _checks.non_negative(gamma, "gamma", owner),
        "sparse": _checks.flag(sparse, "sparse", owner),
        "from_logits": _checks.flag(from_logits, "from_logits", owner),
    }


def class_balanced_weights(samples_per_class, beta=0.999):
    """Class weights from effective numbers of samples, normalised to sum to the class count.

    Formula:

    ```python
    w = (1 - beta) / (1 - beta ** samples_per_class)
    w = w * num_classes / sum(w)
    ```

    `beta=0` gives equal weights; as `beta` approaches 1 the weights approach inverse class
    frequency.

    Args:
        samples_per_class: positive counts, one per class.
        beta: float in [0, 1). Defaults to `0.999`.

    Returns:
        A NumPy float32 array, one weight per class.

    Example:

    >>> import kx
    >>> [round(float(w), 4) for w in kx.losses.class_balanced_weights([100, 10], beta=0.9)]
    [0.7889, 1.2111]
    """
    counts = np.asarray(_check_counts(samples_per_class, "class_balanced_weights"), "float64")
    beta = _check_beta(beta, "class_balanced_weights")
    weights = (1.0 - beta) / (1.0 - np.power(beta, counts))
    return (weights * len(counts) / weights.sum()).astype("float32")


def class_balanced_loss(
    y_true, y_pred, *, samples_per_class, beta=0.999, base_loss="cross_entropy", gamma=2.0,
    sparse=True, from_logits=False,
):
    """A loss weighted per sample by the class-balanced weight of its class (Cui et al. 2019).

    Formula:

    ```python
    w = class_balanced_weights(samples_per_class, beta)
    loss = w[y_true] * base_loss(y_true, y_pred)     # one-hot: sum(w * y_true) * base_loss
    ```

    With `base_loss="cross_entropy"` or `"focal"` (softmax focal, exponent `gamma`) the base is
    computed here from `y_pred` (`from_logits` applies); a `keras.losses.Loss` or function base
    gives its own unreduced values (its own `from_logits`). `beta=0` gives the base loss.

    Args:
        y_true: integer labels (`sparse=True`) or one-hot targets.
        y_pred: probabilities or logits, classes on the last axis.
        samples_per_class: positive training counts, one per class.
        beta: float in [0, 1). Defaults to `0.999`.
        base_loss: `"cross_entropy"`, `"focal"`, a `keras.losses.Loss` or a function
            `fn(y_true, y_pred)` returning per-sample values. Defaults to `"cross_entropy"`.
        gamma: focusing parameter of the `"focal"` base. Defaults to `2.0`.
        sparse: whether `y_true` holds integer labels. Defaults to `True`.
        from_logits: whether `y_pred` holds logits (string bases). Defaults to `False`.

    Returns:
        Per-sample losses, shape `y_pred.shape[:-1]`.

    Example:

    >>> import kx
    >>> loss = kx.losses.class_balanced_loss(
    ...     [0, 1], [[0.5, 0.5], [0.5, 0.5]], samples_per_class=[100, 10], beta=0.9)
    >>> [round(float(v), 4) for v in loss]
    [0.5468, 0.8395]
    """
    loss_name = "class_balanced_loss"
    args = _check_args(loss_name, base_loss=base_loss, samples_per_class=samples_per_class,
                       beta=beta, gamma=gamma, sparse=sparse, from_logits=from_logits)
    base, sparse = args["base_loss"], args["sparse"]
    weights = class_balanced_weights(args["samples_per_class"], args["beta"])
    y_true, y_pred = _utils.prepare(y_true, y_pred)
    weights_t = _utils.check_class_vector(
        tuple(weights.tolist()), y_pred, "samples_per_class", loss_name
    )
    if isinstance(base, str):
        target, log_p = _utils.targets_and_log_probs(
            y_true, y_pred, sparse, args["from_logits"], loss_name
        )
        terms = target * log_p
        if base == "focal":
            terms = terms * _utils.safe_pow(1.0 - ops.exp(log_p), args["gamma"])
        return -ops.sum(weights_t * terms, axis=-1)
    if sparse:  # targets first: labels out of range fail here, before the base loss sees them
        labels = _utils.check_sparse_shape(y_true, y_pred, loss_name)
        target = _utils.label_targets(labels, y_pred.shape[-1], loss_name)
    else:
        target, _ = _utils.check_same_shape(y_true, y_pred, loss_name)
        target = _utils.check_unit_interval(target, loss_name, "y_true")
    values = ops.cast(
        base.call(y_true, y_pred) if isinstance(base, keras.losses.Loss) else base(y_true, y_pred),
        "float32",
    )
    return ops.sum(weights_t * target, axis=-1) * values


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ClassBalancedLoss(LossFunctionWrapper):
    """Class-balanced loss (Cui et al., CVPR 2019) around cross-entropy, focal or any loss.

    See `kx.losses.class_balanced_loss` for the formula.

    Args:
        base_loss: `"cross_entropy"`, `"focal"`, a `keras.losses.Loss` or a registered loss
            function.
        samples_per_class: positive training counts, one per class.
        beta: float in [0, 1). Defaults to `0.999`.
        gamma: focusing parameter of the `"focal"` base. Defaults to `2.0`.
        sparse: whether `y_true` holds integer labels. Defaults to `True`.
        from_logits: whether `y_pred` holds logits (string bases). Defaults to `False`.
        reduction: as for `keras.losses.Loss`. Defaults to `"sum_over_batch_size"`.
        name: Defaults to `"class_balanced_loss"`.
        dtype: as for `keras.losses.Loss`. Defaults to `None`.

    Example:

    >>> import kx
    >>> loss = kx.losses.ClassBalancedLoss("focal", samples_per_class=[100, 10], beta=0.9)
    >>> round(float(loss([0, 1], [[0.5, 0.5], [0.5, 0.5]])), 4)
    0.1733
    """

    fn = staticmethod(class_balanced_loss)
    check_args = staticmethod(_check_args)
    serialized = ("base_loss",)

    def __init__(
        self, base_loss, samples_per_class, beta=0.999, gamma=2.0, sparse=True,
        from_logits=False, reduction="sum_over_batch_size", name="class_balanced_loss",
        dtype=None,
    ):
        super().__init__(reduction, name, dtype, base_loss=base_loss,
                         samples_per_class=samples_per_class, beta=beta, gamma=gamma,
                         sparse=sparse, from_logits=from_logits)
