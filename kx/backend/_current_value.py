"""`CurrentValue`, the metric that logs a loss weight in effect (`<name>_weight`), without state.

A step logs the value it weighed with: in a kx step (`step_logs`: each backend's trainer runs its
steps `marked`) `update_state` keeps its value for `result()` in the same step, and a train or
test function (`recording`) keeps its last logs in a holder that `result()` reads outside a step
(at epoch end, after `evaluate`). A metric variable instead, assigned and read back by every
step, costs those ops in every step (on TensorFlow's graph executor an assign, a read and an
identity), and on JAX a donated array in and out of the step. Backend-neutral: every backend's
trainer code uses it.
"""

import contextlib
import threading

import keras
import numpy as np

# .logged: {id(metric): value} of the `CurrentValue` metrics updated in the kx step running (being
# traced) in this thread; None outside steps.
_STEP = threading.local()


@contextlib.contextmanager
def step_logs():
    """A kx step runs (or is traced) in this thread: `CurrentValue` updates in it are what
    `result()` returns in it. Nested steps share the outermost one's."""
    outer = getattr(_STEP, "logged", None)
    if outer is None:
        _STEP.logged = {}
    try:
        yield
    finally:
        _STEP.logged = outer


class CurrentValue(keras.metrics.Metric):
    """Logs the last value it was given (a loss weight in effect), per step and at epoch end,
    without any state: in a kx step `result()` is the value `update_state` got in that step,
    elsewhere the one in the last logs of the model's train or test function (`recording`), or
    the last concrete one given outside a step (0 before any). Resetting keeps it.

    `variable`: the variable that the weight is, if any (JAX's compiled steps are given its
    value); `needs_count`: the weight is a schedule of the optimizer's iteration count (JAX's
    compiled test steps are given it); `reads`: the variables that such a schedule reads (JAX's
    compiled steps are given their values too).
    """

    def __init__(self, name, variable=None, needs_count=False, reads=()):
        super().__init__(name=name, dtype="float32")
        # Not tracked: the variables are a loss weight's, not this metric's; the logs hold
        # nothing to track.
        object.__setattr__(self, "variable", variable)
        object.__setattr__(self, "reads", tuple(reads))
        object.__setattr__(self, "holder", _Logs())
        self.needs_count = needs_count
        self._given_outside(0.0)

    def _given_outside(self, value):  # a value given outside a step, after the logs held then
        object.__setattr__(self, "_outside", (self.holder.logs, value))

    def update_state(self, value):
        logged = getattr(_STEP, "logged", None)
        if logged is not None:
            logged[id(self)] = value
            return
        from kx.backend import concrete_value

        value = concrete_value(value)  # None: traced outside a kx step (nothing to keep)
        if value is not None:
            self._given_outside(value)

    def result(self):
        logged = getattr(_STEP, "logged", None)
        if logged is not None and id(self) in logged:
            return logged[id(self)]
        logs = self.holder.logs
        before, value = self._outside
        if logs is not before and isinstance(logs, dict) and self.name in logs:
            value = logs[self.name]
        # A step's log may have a length-1 axis (TensorFlow's multi-worker reduction).
        value = np.reshape(keras.ops.convert_to_numpy(value), -1)[0]
        return keras.ops.convert_to_tensor(value, "float32")

    def reset_state(self):
        pass


class _Logs:
    """The last logs of a model's train or test function, for its `CurrentValue` metrics."""

    __slots__ = ("logs",)

    def __init__(self):
        self.logs = None


def logs_holder(model):
    """The one holder of the last logs for all of `model`'s `CurrentValue` metrics (one
    assignment a step), or None when it has none."""
    trackers = [m for m in model.metrics if isinstance(m, CurrentValue)]
    if not trackers:
        return None
    holder = trackers[0].holder
    for tracker in trackers:
        object.__setattr__(tracker, "holder", holder)
    return holder


def marked(function):
    """`function` (a step, or an eager train or test function) run as a kx step (`step_logs`):
    around the user's own `train_step` too, and under `tf.distribute` in each replica's thread."""

    def call(*args, **kwargs):
        with step_logs():
            return function(*args, **kwargs)

    return call


def recording(model, function):
    """`function` (a train or test function that returns a step's logs) keeping its last logs
    for `model`'s `CurrentValue` metrics."""
    holder = logs_holder(model)
    if holder is None:
        return function

    def call(*args, **kwargs):
        logs = function(*args, **kwargs)
        holder.logs = logs
        return logs

    return call
