"""The only backend-specific code of kx: trainer fixes per backend (`TrainStep`: TensorFlow's
multi-worker ones and train functions without Keras' per-step Optional; JAX's packed logs, output
order, per-step state in `fit` and the loss-weight state around Keras' steps), and a few primitives
that some backend runs much faster natively than through generic `keras.ops`: counting ids and
invalid values, looking up a table and the range of values, casting and clipping scalars in every
step, reading a schedule from a table (torch, and TensorFlow without accelerators), the
index of the largest score (all three), and compiling a pure function for eager calls (TensorFlow
and JAX dispatch each eager op separately). Also what a step weighs a loss with: `step_count`
and `read_variable` (the optimizer's iteration count, a variable given as a loss weight, as the
running step sees them: JAX's stateless step sees only the model's state where the loss runs, and
kx's compiled JAX steps are given the rest, a variable weight of Keras' own loss too),
`as_keras_variable` (which variables a weight may be: TensorFlow adopts a `tf.Variable`), and
`CurrentValue` (`_current_value.py`, the same on every backend), the metric that logs a weight in
effect: it holds no state, each step logs the value it weighed with, and every backend's
`TrainStep` keeps the last logs for it.

Everything else, `fit(class_weight=...)` included (`kx/_class_weight.py`, folded before the
outermost `train_step` by `kx/model.py`), is written once; Keras' own steps do the rest (loss
scaling for mixed precision, the unscaled loss in the logs, distribution scaling, the JAX state
tuple, `torch.no_grad` in evaluation).
"""

import keras
import numpy as np
from keras import ops

from kx.backend._current_value import CurrentValue  # the same on every backend


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


def count_marginals(t, p, num_classes, keep=None, weights=None):
    """`(3, num_classes)` counts (sums of `weights` when given) of flat true classes `t` and
    predicted classes `p`: per class, how often it is true, predicted, and both (correct).
    Entries where `keep` is False (None: keep all) are not counted.

    One count over 3C bins: true classes, predicted classes (+C), correct ones (+2C).
    """
    c = num_classes
    hit = ops.equal(t, p)
    t_ids, p_ids = t, p + c
    if keep is not None:
        hit = ops.logical_and(keep, hit)
        t_ids, p_ids = ops.where(keep, t_ids, -1), ops.where(keep, p_ids, -1)
    ids = ops.concatenate([t_ids, p_ids, ops.where(hit, t + 2 * c, -1)])
    weights = None if weights is None else ops.concatenate([weights, weights, weights])
    return ops.reshape(count_ids(ids, 3 * c, weights=weights), (3, c))


def lookup(table, ids):
    """`table[ids]` for ids in [0, len(table) - 1); any other id reads the last entry."""
    n = table.shape[0] - 1
    return ops.take(table, ops.where(ops.logical_and(ids >= 0, ids < n), ids, n))


def value_range(x):
    """`[min, max]` of all entries of `x`, stacked."""
    return ops.stack([ops.min(x), ops.max(x)])


def concrete_value(x):
    """The NumPy value of `x` when it is known now (eager), `None` while it is being traced."""
    return _generic_concrete_value(x)


def _generic_concrete_value(x):
    # A second name so that torch's `concrete_value`, which replaces the one above, can fall
    # back to it for values that are not torch tensors.
    if isinstance(x, np.ndarray):
        return x
    if isinstance(x, keras.KerasTensor):
        return None
    try:
        return ops.convert_to_numpy(x)
    except Exception:  # a tracer (JAX jit) or a symbolic tensor (tf.function): no value yet
        return None


def count_true(mask, axis=None):
    """int32 number of True entries of the boolean `mask` (along `axis`; None: all)."""
    return ops.sum(ops.cast(mask, "int32"), axis=axis)


def count_nan(x):
    """int32 number of NaN entries of `x`."""
    return count_true(ops.isnan(x))


def count_outside(x, low, high):
    """int32 number of entries of `x` outside `[low, high]`, NaN included."""
    return count_true(ops.logical_not(ops.logical_and(x >= low, x <= high)))


def first_argmax(x):
    """int32 index of the largest entry along the last axis (the first one on ties)."""
    return ops.cast(ops.argmax(x, axis=-1), "int32")


def float32(x):
    """`x` (a number, tensor or variable) as a float32 tensor; no op where it is one already."""
    return _generic_float32(x)


def _generic_float32(x):
    # A second name, as for `concrete_value`: torch's `float32` falls back to it.
    if isinstance(x, keras.Variable):
        x = ops.convert_to_tensor(x)  # a read (under tf.distribute, `.value` is the variable)
    dtype = getattr(x, "dtype", None)
    if dtype is not None and keras.backend.standardize_dtype(dtype) == "float32":
        return x
    return ops.cast(x, "float32")


def clip(x, low, high):
    """`x` (a float tensor) clipped to `[low, high]` (numbers)."""
    return ops.clip(x, low, high)


def snapshot(x):
    """`x` (a tensor, maybe read from a variable) as a tensor that a later assignment to the
    variable leaves alone (a `<name>_weight` log may be read after the next step's callbacks
    assigned the weight): here `x` itself, as tensors are immutable."""
    return x


def compiled(fn):
    """`fn` (pure: tensors in, tensors out, no variable access), compiled for eager calls.

    Inside a traced step (`tf.function`, `jax.jit`) it is traced inline like any other code.
    """
    return fn


def as_keras_variable(x):
    """`x` if it is a `keras.Variable`, or (TensorFlow) a `keras.Variable` holding `x` if it
    is a `tf.Variable` (the same variable: assignments to either are seen by both); None for
    anything else."""
    return x if isinstance(x, keras.Variable) else None


def step_count(model):
    """The optimizer's iteration count that the running step weighs a schedule with (0 without
    an optimizer); None where a step cannot read it (JAX: a trace outside kx's steps)."""
    optimizer = getattr(model, "optimizer", None)
    return ops.zeros((), "int32") if optimizer is None else optimizer.iterations


def read_variable(variable):
    """What the running step reads for `variable` (a loss weight's: a variable given as the
    weight, log-variances, DWA's weights): here `variable` itself; None where a step cannot read
    its current value (JAX: a trace that neither maps it nor was given it)."""
    return variable


def schedule_reader(schedule):
    """A function: the optimizer's iteration count -> the value of `schedule` (a loss weight) at
    that step. Here the schedule itself: compiled steps fuse its few scalar ops."""
    return schedule


_MAX_TABLE = 2**20  # entries (4 MiB) of a schedule's table; longer ones are evaluated as written


def schedule_table(schedule):
    """`(values, n, periodic)` for a backend to read a kx schedule from a table, or None.

    A kx schedule says (`_horizon`) after how many steps `n` its values hold (the last one) or
    repeat (`periodic`); `values` (float32 NumPy) are its values at steps 0 .. n - 1, computed
    once by the schedule itself (the same float32 ops on the same int64 steps, so the same
    values). A reader then takes one clamp or remainder and one gather where the formula takes
    6-10 ops. None for any other schedule, or one longer than 2**20 steps.
    """
    horizon = getattr(schedule, "_horizon", None)
    if horizon is None:
        return None
    n, periodic = horizon()
    if n > _MAX_TABLE:
        return None
    values = ops.convert_to_numpy(float32(schedule(ops.arange(n, dtype="int64"))))
    return values, n, periodic


def distribute_source(model, data):
    """`data` as `model.fit` should receive it under the model's distribution (TensorFlow:
    a `kx.DataGenerator` sharded over the workers of a multi-worker strategy)."""
    return data


_backend = keras.backend.backend()
if _backend == "tensorflow":
    from kx.backend.tensorflow import (  # noqa: F811
        TrainStep,
        as_keras_variable,
        compiled,
        distribute_source,
        first_argmax,
        float32,
        schedule_reader,
    )
elif _backend == "jax":
    from kx.backend.jax import (  # noqa: F811
        TrainStep,
        compiled,
        first_argmax,
        read_variable,
        step_count,
    )
elif _backend == "torch":
    from kx.backend.torch import (  # noqa: F811
        TrainStep,
        clip,
        concrete_value,
        count_ids,
        count_marginals,
        count_nan,
        count_outside,
        count_true,
        first_argmax,
        float32,
        lookup,
        schedule_reader,
        snapshot,
        value_range,
    )
else:
    raise ImportError(
        f"kx supports the tensorflow, jax and torch Keras backends. Received: {_backend!r}"
    )

__all__ = [
    "CurrentValue",
    "TrainStep",
    "as_keras_variable",
    "clip",
    "compiled",
    "concrete_value",
    "count_ids",
    "count_marginals",
    "count_nan",
    "count_outside",
    "count_true",
    "distribute_source",
    "first_argmax",
    "float32",
    "lookup",
    "read_variable",
    "schedule_reader",
    "snapshot",
    "step_count",
    "value_range",
]
