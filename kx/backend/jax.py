"""JAX: kx's compiled train and test steps (their logs packed, their outputs state first), the
per-step state in `fit`, what loss weights that change read and log around Keras' own stateless
steps, and two primitives.

Packed logs: Keras' callbacks convert every log of every step to a float (`pythonify_logs`), and for
a JAX array its `convert_to_numpy` costs about 11 us a log (most of it comparing the array's dtype
with the string "bfloat16"), on top of the jitted step's output and transfer for each log (about 1.6
us): kx logs every loss and metric by name, so a digits MLP's `fit` spent a tenth of its step there.
kx's `make_train_function` / `make_test_function` compile Keras' steps as Keras does (`jax.jit` or
Flax's `nnx.jit`, the state donated, Keras' `out_shardings` under a `keras.distribution`; also
`keep_unused`, see `_compiled_step`, worth about 1.5% of a digits MLP's 0.15 ms step with a
schedule) with the scalar logs of each dtype stacked in one array (`_PackedLogs`, a dict): each log
is a `_PackedValue` that `float` (and `numpy.asarray`) reads from its array, converted to NumPy once
a step. Other logs (vectors, nested dicts) stay arrays. `train_step` and `test_step` themselves
return Keras' `(logs, state)`, for users' subclasses to extend; run eagerly (`run_eagerly`,
`jit_compile=False`) nothing is packed.

The state tuple `(trainable, non_trainable, optimizer, metrics)` keeps its structure, so jit's
`donate_argnums` and `keras.distribution` shardings see exactly what Keras built.

Output order: a step returns `(logs, state)`, and jit gives each output, in order, the first
donated input buffer of its shape and dtype. The logs come first, so they take the buffers of
the first scalar state (say the learning rate and the loss trackers), and every scalar state
after them lands in another variable's buffer: XLA copies each such buffer before it is
overwritten. On XLA:CPU those copies are thunks ready at the start of the step, and when too
many are ready (from ten on, in jaxlib 0.10) the executor hands half of them to its thread pool:
for a small model that hand-off costs as much as the step (measured: the compiled step of a
digits MLP, 0.16 ms, took 1.9x as long with one more scalar in the state, a variable loss
weight). So the compiled train and test steps return their outputs flattened state first
(`_StateFirst`), and each state buffer is updated in place: Keras still unpacks
`(logs, state)`. Under a `keras.distribution` Keras gives `out_shardings` for the plain tuple,
so there the tuple stays plain.

`_jax_state`: Keras' fit, evaluate and predict set this attribute to the whole state (lists of
arrays) after every step, and Keras' `__setattr__` walks it for variables and layers to track:
about 12 Python calls per array, 520 of the 640 calls of a digits MLP's step in `fit`. Arrays
hold nothing to track, so kx sets it as a plain attribute (not under Flax NNX, whose modules
watch their attributes).

Loss weights that change: Keras' stateless step maps the model's and the metrics' variables (not
the optimizer's) into the scope where the loss runs, so a variable the model does not own is a
constant of the traced step there, and the optimizer's iteration count reads as its initial value
(Keras purges variables while their state is in flight). kx's train step holds the state it
receives (thread-local) while Keras' step runs, for a schedule to read the count from the
optimizer's part (`step_count`); kx's compiled steps are given the stored array of each variable
weight the model does not own, and a test step the optimizer's count for a schedule (not
donated, not part of the state), which `read_variable` returns in the step. A variable of the
model's own is in the step's state already: the step reads it there, as Keras' steps read any model
variable, and kx's train and test functions put an assignment made while `fit` holds the state in
its place there (`_function`). Given values and those copies are strongly typed (`_strong`):
`keras.Variable(0.5)` holds a weakly typed array, each assignment stores a strongly typed one, and
a step traced with the first would be traced and compiled again at the first assignment, mid-fit.
A variable weight of Keras' own loss (`compile` with Keras' `loss` by output), and a variable that
a schedule reads (its `CurrentValue`'s `reads`, found at compile), are given and followed the same
way; while the step is traced the variable stores the given (traced) value, which Keras' loss or
the schedule reads there (`_keras.stored_values`; another thread reading the variable during that
trace would see the traced value). An optimizer's variable that a schedule reads stores its value
in the train step's state instead (`_optimizer_reads`). The `<name>_weight` logs (`CurrentValue`)
hold no state either. So nothing of a weight's is donated or returned but its log in the packed
logs: the compiled train step of a variable weight differs from a constant one's by one scalar
parameter (the same fusions and copies otherwise), a schedule's by the schedule's few scalar ops
(fused).
Measured: 2-4 us a step on a 2-core CPU, of which about 1 us is the log and the Python around the
step (`benchmarks/README.md`).

Also two primitives: `first_argmax` (XLA's CPU argmax, a variadic reduction, is about 4x slower
than a max, a compare and a min) and `compiled` (`jax.jit` for eager calls).
"""

import contextlib
import threading

import jax
import jax.numpy as jnp
import keras
import numpy as np

from kx import _keras
from kx.backend._current_value import CurrentValue, logs_holder, marked, step_logs

# .depth: kx steps running (being traced) in this thread; .train_state: the innermost train step's
# state (None elsewhere); .given: {id(variable): value} of the variables a compiled step was given
_STEPS = threading.local()


class _StateFirst(tuple):
    """`(logs, state)`, whose leaves jit flattens state first."""


jax.tree_util.register_pytree_node(
    _StateFirst,
    lambda pair: ((pair[1], pair[0]), None),
    lambda _, children: _StateFirst((children[1], children[0])),
)


class _PackedLogs(dict):
    """A step's logs, as a compiled step returns them: the scalar logs of each dtype stacked in
    one array (one output, one transfer), the others as they are.

    A dict `{name: value}`: each packed value is a `_PackedValue`, which converts its array to
    NumPy once for all the logs in it (see the module docstring).
    """

    def __init__(self, layout, arrays, others):
        self._layout = layout  # ((name, group or None, index), ...) in the logs' order
        self._arrays = arrays  # one array per dtype
        self._others = others
        self._numpy = [None] * len(arrays)
        super().__init__(
            (name, others[i] if group is None else _PackedValue(self, group, i))
            for name, group, i in layout
        )

    @classmethod
    def pack(cls, logs):
        """`logs` (a step's dict of traced values) packed; other structures as they are."""
        if type(logs) is not dict:
            return logs
        groups, layout, others = {}, [], []
        for name, value in logs.items():
            if isinstance(value, jax.Array) and value.shape == ():
                group = groups.setdefault(value.dtype, [])
                layout.append((name, list(groups).index(value.dtype), len(group)))
                group.append(value)
            else:
                layout.append((name, None, len(others)))
                others.append(value)
        arrays = tuple(jnp.stack(group) for group in groups.values())
        return cls(tuple(layout), arrays, tuple(others))

    def numpy(self, group):
        if self._numpy[group] is None:  # a race only converts twice
            self._numpy[group] = np.asarray(self._arrays[group])
        return self._numpy[group]


jax.tree_util.register_pytree_node(
    _PackedLogs,
    lambda logs: ((logs._arrays, logs._others), logs._layout),
    lambda layout, children: _PackedLogs(layout, *children),
)


class _PackedValue:
    """One packed log: what Keras' callbacks convert with `float` (and NumPy with
    `numpy.asarray`), read from its group's array."""

    __slots__ = ("_logs", "_group", "_index")

    def __init__(self, logs, group, index):
        self._logs, self._group, self._index = logs, group, index

    def numpy(self):
        return self._logs.numpy(self._group)[self._index]

    def __float__(self):
        return float(self.numpy())

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self.numpy(), dtype=dtype)

    def __repr__(self):
        return repr(self.numpy())


def _compiled_step(model, name, shardings):
    """`(step, given)`: Keras' JAX step `name` ("train_step" or "test_step") compiled, its logs
    packed and its outputs state first, `step(state, data, values)` given the stored values of
    the variables `given` (see the module docstring)."""
    if keras.config.is_nnx_enabled():
        method = getattr(type(model), name)

        def call(state, data):
            return method(model, state, data)
    else:
        call = getattr(model, name)
    distributed = keras.distribution.distribution() is not None
    given = _given_variables(model, name)
    read_as_stored = {id(v) for v in _read_as_stored(model)}

    def step(state, data, values=()):
        pairs = list(zip(given, values))
        # Keras' own loss and schedules read their variables as they are stored: the given
        # values, here
        with _in_step(None, {id(v): value for v, value in pairs}), _keras.stored_values(
            [(v, value) for v, value in pairs if id(v) in read_as_stored]
        ):
            logs, state = call(state, data)
        if distributed:  # Keras gives `out_shardings` for the plain tuple
            return _PackedLogs.pack(logs), state
        return _StateFirst((_PackedLogs.pack(logs), state))

    out_shardings = None
    if distributed:
        out_shardings = (None, shardings(_keras.jax_state_shardings(model)))
    # keep_unused: a state array the step overwrites without reading it keeps its donated
    # buffer; pruned, its new value would need a new one every step.
    jitted = _keras.jax_step_compiler()(
        step, donate_argnums=0, keep_unused=True, out_shardings=out_shardings
    )
    return jitted, given


def _given_variables(model, name):
    """The variables that `model`'s compiled step `name` is given: each variable loss weight
    that the model does not own (its stateless step does not see it), kx's or Keras' own loss's
    (`compile` with Keras' `loss`), and in a test step the variable that counts the
    optimizer's steps, for a schedule (`_keras.step_counter`; the train step reads it from its
    state), and the optimizer's variables that a schedule reads (the train step: its state)."""
    trackers = [m for m in model.metrics if isinstance(m, CurrentValue)]
    owned = {id(v) for v in (*model.trainable_variables, *model.non_trainable_variables)}
    given = {id(v): v for v in _variable_weights(model) if id(v) not in owned}
    optimizer = getattr(model, "optimizer", None)
    if name == "train_step" and optimizer is not None:  # in its state (`_optimizer_reads`)
        for variable in optimizer.variables:
            given.pop(id(variable), None)
    if name == "test_step" and optimizer is not None and any(t.needs_count for t in trackers):
        counter, _ = _keras.step_counter(optimizer)
        given[id(counter)] = counter
    return list(given.values())


def _variable_weights(model):
    """The variables that weigh `model`'s losses: kx's (its `CurrentValue` trackers'), those
    that kx's schedules read, and those of Keras' own loss."""
    kx_weights = (m.variable for m in model.metrics if isinstance(m, CurrentValue))
    weights = [*kx_weights, *_read_as_stored(model)]
    return [v for v in weights if v is not None]


def _read_as_stored(model):
    """The variables of `_variable_weights` that code other than kx's reads itself (not through
    `read_variable`): Keras' own loss's variable weights, and the variables kx's schedules read."""
    return [*_schedule_reads(model), *_keras.keras_loss_weight_variables(model)]


def _schedule_reads(model):
    """The variables that `model`'s schedule weights read (their `CurrentValue`'s `reads`)."""
    return [v for m in model.metrics if isinstance(m, CurrentValue) for v in m.reads]


class TrainStep:
    def __setattr__(self, name, value):
        if name == "_jax_state" and not keras.config.is_nnx_enabled():
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def train_step(self, state, data):
        with _in_step(state), _keras.stored_values(_optimizer_reads(self, state)):
            return super().train_step(state, data)

    def test_step(self, state, data):
        with _in_step(None):
            return super().test_step(state, data)

    def make_train_function(self, force=False):
        if self.train_function is not None and not force:
            return
        if self.run_eagerly or not self.jit_compile:
            super().make_train_function(force)
        else:
            step, given = _compiled_step(self, "train_step", lambda shardings: shardings)
            self.train_function = self._make_function(_function(self, step, given))
            return
        self.train_function = _function(self, marked(self.train_function), ())

    def make_test_function(self, force=False):
        if self.test_function is not None and not force:
            return
        if self.run_eagerly or not self.jit_compile:
            super().make_test_function(force)
        else:
            step, given = _compiled_step(self, "test_step", lambda s: (s[0], s[1], s[3]))
            self.test_function = self._make_function(_function(self, step, given))
            return
        self.test_function = _function(self, marked(self.test_function), ())


@contextlib.contextmanager
def _in_step(train_state, given=None):
    """A kx step running (being traced): its train state (None: a test step, or the compiled
    step around the model's) and the variables it was given."""
    outer = (_step_depth(), getattr(_STEPS, "train_state", None), getattr(_STEPS, "given", None))
    _STEPS.depth, _STEPS.train_state = outer[0] + 1, train_state
    if given is not None:
        _STEPS.given = given
    try:
        with step_logs():
            yield
    finally:
        _STEPS.depth, _STEPS.train_state, _STEPS.given = outer


def _optimizer_reads(model, state):
    """`(variable, value)` for each optimizer variable that a schedule reads (say the learning
    rate), with its value in the train step's `state`: Keras' stateless step maps only the
    model's and the metrics' variables where the loss runs, and `fit` empties the optimizer's
    variables while their state is in flight."""
    reads = {id(v) for v in _schedule_reads(model)}
    optimizer = getattr(model, "optimizer", None)
    if not reads or optimizer is None:
        return []
    return [(v, state[2][j]) for j, v in enumerate(optimizer.variables) if id(v) in reads]


def _step_depth():
    return getattr(_STEPS, "depth", 0)


def step_count(model):
    """The optimizer's iteration count (`optimizer.iterations`: updates, with gradient
    accumulation) that the running step weighs with: in kx's train step from its state, in kx's
    compiled test step as it was given, eagerly the count itself; None in any other trace."""
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        return jnp.zeros((), "int32")
    counter, divisor = _keras.step_counter(optimizer)
    state = getattr(_STEPS, "train_state", None)
    if state is not None:
        position = next(k for k, v in enumerate(optimizer.variables) if v is counter)
        count = state[2][position]
    else:
        count = read_variable(counter)
    return count if count is None or divisor == 1 else count // divisor


def read_variable(variable):
    """What the running step reads for `variable`: the value a compiled step was given, or the
    variable itself eagerly or where the step's StatelessScope maps it (the model's own); None
    in a trace that does neither (there it would read as a constant of the trace)."""
    given = getattr(_STEPS, "given", None)
    if given and id(variable) in given:
        return given[id(variable)]
    if not _keras.is_in_jax_tracing_scope() or _keras.mapped_in_scope(variable):
        return variable
    return None


def _function(model, step, given):
    """`step(state, data[, values])` (a compiled step given the stored values of the variables
    `given`, or Keras' eager train or test function) as Keras calls it, `(state, data)`: it keeps
    the logs of the last call for the model's `CurrentValue` metrics, and first puts a strongly
    typed copy of each variable loss weight of the model's own (kx's, or Keras' own loss's; read
    from the state) assigned since its last call, or not yet copied, in its place in the state it
    is given: Keras would lose an assignment made while `fit` holds the state, a callback's
    change in `on_train_batch_begin` takes effect in that very batch, and the step is traced with
    the type that assignments store (`_strong`). One Python call for it all; per variable and
    step a read of the stored value (not `.value`, with Keras' scope checks, 3 us).
    Under a `keras.distribution` a given value is placed whole on every device, once per
    assignment."""
    trackers = [m for m in model.metrics if isinstance(m, CurrentValue)]
    positions = {id(v): j for j, v in enumerate(model.non_trainable_variables)}
    followers = [(positions[id(v)], v) for v in _variable_weights(model) if id(v) in positions]
    if not trackers and not given and not followers:
        return step
    holder = logs_holder(model)  # None: no trackers (variable weights of Keras' own loss)
    owned_seen = [None] * len(followers)
    sharding = None
    if given and keras.distribution.distribution() is not None:
        sharding = _keras.jax_replicated_sharding()
    seen, values = [None] * len(given), [None] * len(given)

    def call(state, data):
        for k, (i, variable) in enumerate(followers):
            value = _keras.stored_value(variable)  # None: its state is in flight
            if value is None and owned_seen[k] is None:  # the first call: its value in the state
                value = state[1][i]
            if value is not None and value is not owned_seen[k]:
                owned_seen[k] = value
                state = list(state)
                state[1] = list(state[1])
                state[1][i] = _strong(value, copy=True)  # the step donates the state
                state = tuple(state)
        if given:
            for k, variable in enumerate(given):
                value = _keras.stored_value(variable)
                if value is not seen[k] and value is not None:
                    seen[k] = value
                    value = _strong(value)
                    values[k] = value if sharding is None else jax.device_put(value, sharding)
            logs, state = step(state, data, values)
        else:
            logs, state = step(state, data)
        if holder is not None:
            holder.logs = logs
        return logs, state

    return call


def _strong(value, copy=False):
    """`value` (a copy with `copy`) strongly typed. `keras.Variable(0.5)` holds a weakly typed
    array and its first assignment stores a strongly typed one: a step traced with the first would
    be traced and compiled again for the second (mid-fit, a compile of the whole model)."""
    return jnp.array(value, value.dtype, copy=copy)


def first_argmax(x):
    """int32 index of the largest entry along the last axis (the first on ties, or the first
    NaN, as `numpy.argmax`)."""
    hit = (x == jnp.max(x, axis=-1, keepdims=True)) | jnp.isnan(x)
    index = jnp.arange(x.shape[-1], dtype="int32")
    return jnp.min(jnp.where(hit, index, x.shape[-1]), axis=-1)


def compiled(fn):
    """`jax.jit(fn)`: eager JAX dispatches every op separately; inside a traced step the jitted
    function is inlined."""
    return jax.jit(fn)
