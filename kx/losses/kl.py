"""KL divergence of a diagonal Gaussian to the standard normal: the VAE latent term."""

import keras
from keras import ops

from kx.losses import _utils
from kx.losses._base import LossFunctionWrapper

__all__ = [
    "GaussianKLDivergence",
    "gaussian_kl_divergence",
    "kl_divergence_to_standard_normal",
]

_PACKAGE = "kx"


def kl_divergence_to_standard_normal(mean, log_var):
    """`KL(N(mean, exp(log_var)) || N(0, 1))` per sample, summed over the latent dimensions.

    Formula:

    ```python
    kl = 0.5 * sum(exp(log_var) + mean ** 2 - 1 - log_var, over all axes but the first)
    ```

    Use it in a `kx.ExtendedLoss` when the model outputs the mean and log-variance separately:
    `kx.ExtendedLoss(lambda it, out: kx.losses.kl_divergence_to_standard_normal(out["mean"],
    out["log_var"]))`. For a single stacked output, use `GaussianKLDivergence`.

    Args:
        mean: the posterior means, shape `(batch, ...)`.
        log_var: the posterior log-variances, the shape of `mean`.

    Returns:
        Per-sample divergences, shape `(batch,)`, float32.

    Example:

    >>> import kx
    >>> kl = kx.losses.kl_divergence_to_standard_normal([[0.0, 1.0]], [[0.0, 0.5]])
    >>> round(float(kl[0]), 4)
    0.5744
    """
    loss_name = "kl_divergence_to_standard_normal"
    mean, log_var = _utils.prepare(mean, log_var)
    if tuple(mean.shape) != tuple(log_var.shape):
        raise ValueError(
            f"{loss_name}: expected `mean` and `log_var` to have the same shape. Received: "
            f"mean.shape={tuple(mean.shape)}, log_var.shape={tuple(log_var.shape)}."
        )
    terms = ops.exp(log_var) + ops.square(mean) - 1.0 - log_var
    axes = tuple(range(1, len(terms.shape)))
    return 0.5 * (ops.sum(terms, axis=axes) if axes else terms)


def gaussian_kl_divergence(y_true, y_pred):
    """`kl_divergence_to_standard_normal` on a stacked output; `y_true` is ignored.

    Layout: `y_pred = concatenate([mean, log_var], axis=-1)`, so the last axis has even size
    `2 * latent_dim`: the first half holds the means, the second half the log-variances.

    Args:
        y_true: ignored (any array with the batch axis, e.g. `numpy.zeros(n)`, so that a
            `kx.LossDefinition` has a target to name).
        y_pred: the stacked `[mean, log_var]`, shape `(batch, ..., 2 * latent_dim)`.

    Returns:
        Per-sample divergences, shape `(batch,)`.

    Example:

    >>> import kx
    >>> kl = kx.losses.gaussian_kl_divergence(None, [[0.0, 1.0, 0.0, 0.5]])
    >>> round(float(kl[0]), 4)
    0.5744
    """
    y_pred = ops.convert_to_tensor(y_pred)
    size = y_pred.shape[-1]
    if size is None or size % 2:
        raise ValueError(
            "gaussian_kl_divergence: expected `y_pred` to stack [mean, log_var] on its last "
            f"axis (an even size, 2 * latent_dim). Received: y_pred.shape={tuple(y_pred.shape)}."
        )
    mean, log_var = y_pred[..., : size // 2], y_pred[..., size // 2:]
    return kl_divergence_to_standard_normal(mean, log_var)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class GaussianKLDivergence(LossFunctionWrapper):
    """The VAE KL term on a stacked `[mean, log_var]` output; the target is ignored.

    See `kx.losses.gaussian_kl_divergence` for the layout and
    `kx.losses.kl_divergence_to_standard_normal` for the formula. In a `kx.CustomModel`:
    `kx.LossDefinition("x", "latent", kx.losses.GaussianKLDivergence())`, where the output
    `latent` is `keras.ops.concatenate([mean, log_var], axis=-1)` and any target (the input
    itself, say) fills the unused `y_true`.

    Args:
        reduction: as for `keras.losses.Loss`. Defaults to `"sum_over_batch_size"`.
        name: Defaults to `"gaussian_kl_divergence"`.
        dtype: as for `keras.losses.Loss`. Defaults to `None`.

    Example:

    >>> import kx
    >>> loss = kx.losses.GaussianKLDivergence()
    >>> round(float(loss([0.0, 0.0], [[0.0, 1.0, 0.0, 0.5], [0.0, 0.0, 0.0, 0.0]])), 4)
    0.2872
    """

    fn = staticmethod(gaussian_kl_divergence)
    check_args = staticmethod(lambda owner: {})

    def __init__(self, reduction="sum_over_batch_size", name="gaussian_kl_divergence",
                 dtype=None):
        super().__init__(reduction, name, dtype)
