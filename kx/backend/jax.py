"""JAX: kx's compiled train and test steps (their logs packed, their outputs state first), the
per-step state in `fit`, the loss-weight state around Keras' own stateless steps (the iteration
count, followers), and two primitives.

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

The iteration count and followers: Keras' stateless step maps the model's and the metrics' variables
(not the optimizer's) into the scope where the loss runs, so a variable the model does not own is a
constant of the traced step there, and the optimizer's iteration count reads as its initial value
(Keras purges variables while their state is in flight). kx's train step holds the state it receives
(thread-local) while Keras' step runs, for a schedule to read the count from the optimizer's part
(`step_count`): no state of its own. `follow` makes a metric's variable (a `<name>_weight`
tracker's) follow a source variable: kx's train function puts a copy of a source assigned since its
last call in its follower's place in the state it is given (a callback's change in
`on_train_batch_begin` takes effect in that batch), and `evaluate` and `test_on_batch` copy every
source into its follower first. The tracker is then both what the step reads and what it logs (a
variable of the model's own is in the step's state already: the step reads it there, as Keras' steps
read any model variable). A test step has no optimizer state: there a schedule's tracker holds its
value, written by `evaluate` and `test_on_batch` from the optimizer's count (`follow_schedule`).

Also two primitives: `first_argmax` (XLA's CPU argmax, a variadic reduction, is about 4x slower
than a max, a compare and a min) and `compiled` (`jax.jit` for eager calls).
"""

import contextlib
import threading
import weakref

import jax
import jax.numpy as jnp
import keras
import numpy as np

from kx import _keras

# id(variable) -> (weak reference to the follower, its source: a variable or a `_Scheduled`)
_SOURCES = {}
# .depth: kx train / test steps running (being traced) in this thread; .train_state: the
# innermost one's state (None in a test step)
_STEPS = threading.local()


def _register(variable, source):
    key = id(variable)
    _SOURCES[key] = (weakref.ref(variable, lambda _: _SOURCES.pop(key, None)), source)


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
    """Keras' compiled JAX step `name` ("train_step" or "test_step"), its logs packed and its
    outputs state first (see the module docstring)."""
    if keras.config.is_nnx_enabled():
        method = getattr(type(model), name)

        def call(state, data):
            return method(model, state, data)
    else:
        call = getattr(model, name)
    distributed = keras.distribution.distribution() is not None

    def step(state, data):
        logs, state = call(state, data)
        if distributed:  # Keras gives `out_shardings` for the plain tuple
            return _PackedLogs.pack(logs), state
        return _StateFirst((_PackedLogs.pack(logs), state))

    out_shardings = None
    if distributed:
        out_shardings = (None, shardings(_keras.jax_state_shardings(model)))
    # keep_unused: a state array the step overwrites without reading it (a schedule's tracker)
    # keeps its donated buffer; pruned, its new value would need a new one every step.
    return _keras.jax_step_compiler()(
        step, donate_argnums=0, keep_unused=True, out_shardings=out_shardings
    )


class TrainStep:
    def __setattr__(self, name, value):
        if name == "_jax_state" and not keras.config.is_nnx_enabled():
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def train_step(self, state, data):
        with _in_step(state):
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
            self.train_function = self._make_function(
                _compiled_step(self, "train_step", lambda shardings: shardings)
            )
        self.train_function = _following(self, self.train_function)

    def make_test_function(self, force=False):
        if self.test_function is not None and not force:
            return
        if self.run_eagerly or not self.jit_compile:
            return super().make_test_function(force)
        self.test_function = self._make_function(
            _compiled_step(self, "test_step", lambda s: (s[0], s[1], s[3]))
        )

    def evaluate(self, *args, **kwargs):
        _refresh(self)
        return super().evaluate(*args, **kwargs)

    def test_on_batch(self, *args, **kwargs):
        _refresh(self)
        return super().test_on_batch(*args, **kwargs)


@contextlib.contextmanager
def _in_step(train_state):
    outer = _step_depth(), getattr(_STEPS, "train_state", None)
    _STEPS.depth, _STEPS.train_state = outer[0] + 1, train_state
    try:
        yield
    finally:
        _STEPS.depth, _STEPS.train_state = outer


def _step_depth():
    return getattr(_STEPS, "depth", 0)


def step_count(model):
    """In kx's train step the optimizer's count that it weighs with (from the step's state), in
    its test step None (a schedule's tracker holds its value: `follow_schedule`); elsewhere (an
    eager `compute_loss`) the count itself."""
    if _step_depth():
        state = _STEPS.train_state
        return None if state is None else _iteration_count(model, state)
    optimizer = getattr(model, "optimizer", None)
    return jnp.zeros((), "int32") if optimizer is None else optimizer.iterations


def weight_readable(variable, needs_step=False):
    """Whether a loss weight read from `variable` reads the running step's value: eagerly
    always; in a trace only where a StatelessScope maps it to the step's state, and for a
    schedule's tracker (`needs_step`) only inside kx's own steps, which hold the count."""
    if not _keras.is_in_jax_tracing_scope():
        return True
    if needs_step and not _step_depth():
        return False
    return _keras.mapped_in_scope(variable)


def follow(variable, source):
    """Makes `variable` (a metric's: model state) equal to `source`, and keeps it so before
    every step."""
    variable.assign(_copy(source.value))
    _register(variable, source)


def read_followed(variable, source):
    """The follower `variable`; a variable of the model's own as its step state holds it."""
    return source if _keras.mapped_in_scope(source) else variable


def follow_schedule(variable, schedule):
    """Makes `variable` (a schedule's tracker) hold `schedule` at the optimizer's count before
    `evaluate` and `test_on_batch`, whose steps read it there."""
    _register(variable, _Scheduled(schedule))


class _Scheduled:
    """A tracker's source: a schedule of the iteration count, compiled for eager calls."""

    def __init__(self, schedule):
        self.at = compiled(lambda count: jnp.asarray(schedule(count), "float32"))


def _registered(variables):
    """[(index in `variables`, follower, source)] of the followers among `variables`."""
    found = []
    for index, variable in enumerate(variables):
        entry = _SOURCES.get(id(variable))
        if entry is not None and entry[0]() is variable:
            found.append((index, variable, entry[1]))
    return found


def _iteration_count(model, state):
    """The optimizer's iteration count in a train step's `state`."""
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        return jnp.zeros((), "int32")
    position = next(k for k, v in enumerate(optimizer.variables) if v is optimizer.iterations)
    return state[2][position]


def _refresh(model):
    """Copies each source variable into its follower and writes each schedule's value at the
    optimizer's count into its tracker (for evaluation: the train step reads the count
    itself)."""
    optimizer = getattr(model, "optimizer", None)
    for _, weight, source in _registered(model.metrics_variables):
        if not isinstance(source, _Scheduled):
            weight.assign(_copy(source.value))
        elif optimizer is not None:
            weight.assign(source.at(optimizer.iterations.value))


def _following(model, function):
    """`function` (a train function) that first puts a copy of each source variable assigned
    since its last call in its follower's place in the state it is given: a callback's change
    takes effect in that very batch (`on_train_batch_begin` runs before), and the state in
    flight needs no sync. A source of the model's own (read from the state, see
    `read_followed`) goes to its own place there: Keras would lose an assignment made while
    `fit` holds the state. A read of the stored value (not `.value`, with Keras' scope checks,
    3 us) per source and step."""
    owned = {id(v): j for j, v in enumerate(model.non_trainable_variables)}
    followers = [
        (1, owned[id(source)], source.dtype, source) if id(source) in owned
        else (3, i, weight.dtype, source)
        for i, weight, source in _registered(model.metrics_variables)
        if not isinstance(source, _Scheduled)
    ]  # fmt: skip
    if not followers:
        return function
    seen = [None] * len(followers)

    def call(state, data):
        for k, (group, i, dtype, source) in enumerate(followers):
            value = _keras.stored_value(source)  # None: a model variable whose state is in flight
            if value is not None and value is not seen[k]:
                seen[k] = value
                state = list(state)
                state[group] = list(state[group])
                state[group][i] = _copy(value, dtype)
                state = tuple(state)
        return function(state, data)

    return call


def _copy(value, dtype=None):
    """A new buffer (of `dtype`, if given): the train function donates the state's buffers, and
    the source keeps its own."""
    return jnp.array(value, dtype=dtype, copy=True)


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
