"""Class-balanced loss: effective-number class weights (Cui et al., CVPR 2019)."""

import numbers

import keras
import numpy as np
from keras import ops

from kx.losses import _utils
from kx.losses.combined import LossArithmetic
from kx.losses.crossentropy import targets_and_log_probs
from kx.losses.focal import check_gamma

__all__ = ["ClassBalancedLoss", "class_balanced_loss", "class_balanced_weights"]

_PACKAGE = "kx"
_BASES = ("cross_entropy", "focal")


def _check_beta(beta, loss_name):
    if not isinstance(beta, numbers.Real) or isinstance(beta, bool) or not 0 <= beta < 1:
        raise ValueError(
            f"{loss_name}: expected `beta` to be a number in [0, 1). Received: beta={beta!r}"
        )
    return float(beta)


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
    base = _check_base(base_loss, loss_name)
    gamma = check_gamma(gamma, loss_name)
    counts = _check_counts(samples_per_class, loss_name)
    weights = class_balanced_weights(counts, beta)
    y_true, y_pred = _utils.prepare(y_true, y_pred)
    weights_t = _utils.check_class_vector(
        tuple(weights.tolist()), y_pred, "samples_per_class", loss_name
    )
    if isinstance(base, str):
        target, log_p = targets_and_log_probs(y_true, y_pred, sparse, from_logits, loss_name)
        terms = target * log_p
        if base == "focal":
            terms = terms * _utils.safe_pow(1.0 - ops.exp(log_p), gamma)
        return -ops.sum(weights_t * terms, axis=-1)
    values = ops.cast(
        base.call(y_true, y_pred) if isinstance(base, keras.losses.Loss) else base(y_true, y_pred),
        "float32",
    )
    if sparse:
        labels = _utils.check_sparse_shape(y_true, y_pred, loss_name)
        target = _utils.one_hot(labels, y_pred.shape[-1])
    else:
        target, _ = _utils.check_same_shape(y_true, y_pred, loss_name)
    return ops.sum(weights_t * target, axis=-1) * values


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ClassBalancedLoss(LossArithmetic, keras.losses.Loss):
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

    def __init__(
        self, base_loss, samples_per_class, beta=0.999, gamma=2.0, sparse=True,
        from_logits=False, reduction="sum_over_batch_size", name="class_balanced_loss",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        owner = type(self).__name__
        self.base_loss = _check_base(base_loss, owner)
        self.samples_per_class = _check_counts(samples_per_class, owner)
        self.beta = _check_beta(beta, owner)
        self.gamma = check_gamma(gamma, owner)
        self.sparse = bool(sparse)
        self.from_logits = bool(from_logits)

    def call(self, y_true, y_pred):
        return class_balanced_loss(
            y_true, y_pred, samples_per_class=self.samples_per_class, beta=self.beta,
            base_loss=self.base_loss, gamma=self.gamma, sparse=self.sparse,
            from_logits=self.from_logits,
        )

    def get_config(self):
        base = self.base_loss
        return {
            **super().get_config(),
            "base_loss": base if isinstance(base, str)
            else keras.saving.serialize_keras_object(base),
            "samples_per_class": list(self.samples_per_class),
            "beta": self.beta,
            "gamma": self.gamma,
            "sparse": self.sparse,
            "from_logits": self.from_logits,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if not isinstance(config["base_loss"], str):
            config["base_loss"] = keras.saving.deserialize_keras_object(config["base_loss"])
        return cls(**config)
