"""The only backend-specific code of kx: trainer fixes per backend (`TrainStep`, today only
TensorFlow's multi-worker ones), and a few primitives that some backend runs much faster natively
than through generic `keras.ops`: counting ids, looking up a table and the range of values
(torch), the index of the largest score (TensorFlow, JAX), and compiling a pure function for
eager calls (TensorFlow and JAX dispatch each eager op separately).

Everything else, `fit(class_weight=...)` included (`kx/_class_weight.py`, folded before the
outermost `train_step` by `kx/model.py`), is written once; Keras' own steps do the rest (loss
scaling for mixed precision, the unscaled loss in the logs, distribution scaling, the JAX state
tuple, `torch.no_grad` in evaluation).
"""

import keras
from keras import ops


def count_ids(ids, num_ids, weights=None):
    """Per-id counts (sums of `weights` when given) of flat int ids; ids outside
    [0, num_ids) are dropped.

    `segment_sum` is native, exact for int32 and jit-safe on TensorFlow and JAX (JAX's
    `bincount` is not jit-safe); both drop negative ids, JAX also those past the end, which
    TensorFlow rejects. torch replaces it with `torch.bincount`.
    """
    data = ops.ones_like(ids, dtype="int32") if weights is None else weights
    ids = ops.where(ids < num_ids, ids, -1)
    return ops.segment_sum(data, ids, num_segments=num_ids)


def lookup(table, ids):
    """`table[ids]` for ids in [0, len(table) - 1); any other id reads the last entry."""
    n = table.shape[0] - 1
    return ops.take(table, ops.where(ops.logical_and(ids >= 0, ids < n), ids, n))


def value_range(x):
    """`[min, max]` of all entries of `x`, stacked."""
    return ops.stack([ops.min(x), ops.max(x)])


def first_argmax(x):
    """int32 index of the largest entry along the last axis (the first one on ties)."""
    return ops.cast(ops.argmax(x, axis=-1), "int32")


def compiled(fn):
    """`fn` (pure: tensors in, tensors out, no variable access), compiled for eager calls.

    Inside a traced step (`tf.function`, `jax.jit`) it is traced inline like any other code.
    """
    return fn


_backend = keras.backend.backend()
if _backend == "tensorflow":
    from kx.backend.tensorflow import TrainStep, compiled, first_argmax  # noqa: F811
elif _backend == "jax":
    from kx.backend.jax import TrainStep, compiled, first_argmax  # noqa: F811
elif _backend == "torch":
    from kx.backend.torch import TrainStep, count_ids, lookup, value_range  # noqa: F811
else:
    raise ImportError(
        f"kx supports the tensorflow, jax and torch Keras backends. Received: {_backend!r}"
    )

__all__ = ["TrainStep", "compiled", "count_ids", "first_argmax", "lookup", "value_range"]
