"""Loss arithmetic: `loss_a + 0.5 * loss_b` as one serializable `keras.losses.Loss`."""

import numbers

import keras
from keras import ops

from kx import _keras

__all__ = ["CombinedLoss", "LossArithmetic"]

_PACKAGE = "kx"


class LossArithmetic:
    """Mixin giving a `keras.losses.Loss` the operators `+`, scalar `*` and `sum(...)`.

    Every kx loss class inherits it, so `kx.losses.PolyLoss() + 0.5 * kx.losses.Jaccard()` and
    `sum([loss_a, loss_b])` return a `CombinedLoss`. A Keras loss on the right-hand side of `+`
    works too (`kx_loss + keras.losses.MeanSquaredError()`); to scale a Keras loss on its own,
    use `CombinedLoss([keras_loss], weights=[0.5])`.
    """

    def __add__(self, other):
        if isinstance(other, numbers.Number) and other == 0:
            return self  # so that sum([...]) works
        return CombinedLoss._flatten(self, other)

    def __radd__(self, other):
        if isinstance(other, numbers.Number) and other == 0:
            return self
        return CombinedLoss._flatten(other, self)

    def __mul__(self, scalar):
        if not isinstance(scalar, numbers.Real) or isinstance(scalar, bool):
            return NotImplemented
        if isinstance(self, CombinedLoss):
            return CombinedLoss(
                self.losses, [w * float(scalar) for w in self.weights], reduction=self.reduction
            )
        return CombinedLoss([self], [float(scalar)])

    __rmul__ = __mul__


def _per_sample(loss, y_true, y_pred):
    """Unreduced values of one component: `Loss.call` (no weights, no reduction) or `fn`."""
    if isinstance(loss, keras.losses.Loss):
        y_pred_t = ops.convert_to_tensor(y_pred, dtype=loss.dtype)
        y_true_t = ops.convert_to_tensor(y_true, dtype=loss.dtype)
        values = loss.call(y_true_t, y_pred_t)
    else:
        values = loss(y_true, y_pred)
    values = ops.cast(ops.convert_to_tensor(values), "float32")
    mask = _keras.get_keras_mask(values)
    if mask is not None:
        # A component that masks entries (ignore_class) averages over the valid ones, as it
        # does alone with "sum_over_batch_size": scale valid entries by total / valid.
        mask = ops.cast(mask, "float32")
        total = ops.cast(ops.size(mask), "float32")
        values = values * mask * ops.divide_no_nan(total, ops.sum(mask))
    return values


@keras.saving.register_keras_serializable(package=_PACKAGE)
class CombinedLoss(LossArithmetic, keras.losses.Loss):
    """A weighted sum of losses, reduced once.

    Formula:

    ```python
    values = sum(w_k * loss_k.call(y_true, y_pred) for each component k)
    loss = reduction(values * sample_weight)
    ```

    Each component gives its unreduced values (`Loss.call`, or the function's output); its own
    `reduction` is not used. Sample weights and the reduction of this loss are applied once, to
    the sum. Components whose values have different ranks (a per-pixel cross-entropy of shape
    `(batch, H, W)` and a per-image Dice of shape `(batch,)`) are brought to the lowest rank by
    averaging the trailing axes, which with `"sum_over_batch_size"` gives each component the
    value it has alone; a scalar (batch-level) component is broadcast over the batch. A component
    with `ignore_class` averages over the valid entries, as it does alone.

    Usually built with the operators: `loss_a + 0.5 * loss_b`, `sum([loss_a, loss_b])`.

    Args:
        losses: list of `keras.losses.Loss` instances or loss functions `fn(y_true, y_pred)`.
        weights: list of floats, one per loss. Defaults to `None` (all 1.0).
        reduction: as for `keras.losses.Loss`. Defaults to `"sum_over_batch_size"`.
        name: name of the loss. Defaults to `"combined_loss"`.
        dtype: as for `keras.losses.Loss`. Defaults to `None`.

    Example:

    >>> import keras, kx
    >>> y_true = keras.ops.convert_to_tensor([0, 2])
    >>> y_pred = keras.ops.convert_to_tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]])
    >>> ce = kx.losses.SparseCategoricalCrossentropy(from_logits=True)
    >>> poly = kx.losses.PolyLoss(epsilon=1.0, from_logits=True)
    >>> both = ce + 0.5 * poly
    >>> both.weights
    [1.0, 0.5]
    >>> round(float(both(y_true, y_pred)), 4) == round(
    ...     float(ce(y_true, y_pred)) + 0.5 * float(poly(y_true, y_pred)), 4)
    True
    """

    def __init__(
        self, losses, weights=None, reduction="sum_over_batch_size", name="combined_loss",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if not isinstance(losses, (list, tuple)) or not losses:
            raise ValueError(
                "CombinedLoss: expected `losses` to be a non-empty list of losses. "
                f"Received: losses={losses!r}"
            )
        for loss in losses:
            if not callable(loss):
                raise TypeError(
                    "CombinedLoss: expected every entry of `losses` to be a keras.losses.Loss "
                    f"or a loss function. Received: {loss!r}"
                )
        if weights is None:
            weights = [1.0] * len(losses)
        if len(weights) != len(losses):
            raise ValueError(
                f"CombinedLoss: expected one weight per loss ({len(losses)}). Received: "
                f"weights={list(weights)!r}"
            )
        for w in weights:
            if not isinstance(w, numbers.Real) or isinstance(w, bool):
                raise TypeError(
                    f"CombinedLoss: expected `weights` to be numbers. Received: weights="
                    f"{list(weights)!r}"
                )
        self.losses = list(losses)
        self.weights = [float(w) for w in weights]

    @staticmethod
    def _flatten(left, right):
        losses, weights = [], []
        for part in (left, right):
            if isinstance(part, CombinedLoss):
                losses += part.losses
                weights += part.weights
            elif isinstance(part, keras.losses.Loss) or callable(part):
                losses.append(part)
                weights.append(1.0)
            else:
                raise TypeError(
                    "Loss arithmetic: expected a keras.losses.Loss or a loss function on both "
                    f"sides of `+`. Received: {part!r}"
                )
        reduction = left.reduction if isinstance(left, CombinedLoss) else "sum_over_batch_size"
        return CombinedLoss(losses, weights, reduction=reduction)

    def call(self, y_true, y_pred):
        parts = [_per_sample(loss, y_true, y_pred) for loss in self.losses]
        ranks = [len(p.shape) for p in parts if len(p.shape) > 0]
        if ranks:
            rank = min(ranks)
            shape = next(ops.shape(p) for p in parts if len(p.shape) == rank)
            parts = [
                ops.mean(p, axis=tuple(range(rank, len(p.shape)))) if len(p.shape) > rank
                else (ops.broadcast_to(p, shape) if len(p.shape) == 0 else p)
                for p in parts
            ]
        total = parts[0] * self.weights[0]
        for w, p in zip(self.weights[1:], parts[1:], strict=True):
            total = total + w * p
        return total

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "losses": [keras.saving.serialize_keras_object(loss) for loss in self.losses],
                "weights": list(self.weights),
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["losses"] = [keras.saving.deserialize_keras_object(c) for c in config["losses"]]
        return cls(**config)

    def __repr__(self):
        terms = " + ".join(f"{w:g} * {getattr(loss, 'name', loss)}"
                           for w, loss in zip(self.weights, self.losses, strict=True))
        return f"CombinedLoss({terms})"
