"""The only backend-specific code of kx: the train step of each Keras trainer, and two primitives
(counting ids, looking up a table) that torch runs much faster natively than via `keras.ops`.

Each override folds `fit(class_weight=...)` into the batch's sample weights and hands the batch to
Keras' own step, which keeps everything Keras does (loss scaling for mixed precision, the unscaled
loss in the logs, distribution scaling, the JAX state tuple, `torch.no_grad` in evaluation). The
loss and metric assembly is backend-independent: `CustomModel.compute_loss` / `compute_metrics`.
`test_step` needs no override: class weights apply to training only, as in Keras.
"""

import keras
from keras import ops


def count_ids(ids, num_ids, weights=None):
    """Per-id counts (sums of `weights` when given) of flat int ids in [0, num_ids).

    `segment_sum` is native, exact for int32 and jit-safe on TensorFlow and JAX (JAX's
    `bincount` is not jit-safe); torch replaces it with `torch.bincount`.
    """
    data = ops.ones_like(ids, dtype="int32") if weights is None else weights
    return ops.segment_sum(data, ids, num_segments=num_ids)


def lookup(table, ids):
    """`table[ids]` for ids in [0, len(table) - 1); any other id reads the last entry."""
    n = table.shape[0] - 1
    return ops.take(table, ops.where(ops.logical_and(ids >= 0, ids < n), ids, n))


_backend = keras.backend.backend()
if _backend == "tensorflow":
    from kx.backend.tensorflow import TrainStep
elif _backend == "jax":
    from kx.backend.jax import TrainStep
elif _backend == "torch":
    from kx.backend.torch import TrainStep, count_ids, lookup  # noqa: F811
else:
    raise ImportError(
        f"kx supports the tensorflow, jax and torch Keras backends. Received: {_backend!r}"
    )

__all__ = ["TrainStep", "count_ids", "lookup"]
