"""Loss weights that change during training, for `kx.CustomModel.compile(loss_weights=...)`.

Besides numbers, a `loss_weights` value may be a non-trainable `keras.Variable` (its current value,
every step), a schedule of the training step (any `keras.optimizers.schedules.LearningRateSchedule`,
`kx.schedules` among them, evaluated inside the step from the optimizer's iteration count) or
`kx.UncertaintyWeight()` (a learned weight); the whole argument may be `"uncertainty"` (every loss
learned) or `"dwa"` (Dynamic Weight Average, updated at each epoch end).

`LossWeights` is what compile makes of the argument: it validates it, gives the weighted term of
each loss inside the step, and owns (`state`) every variable and tracker that non-constant weights
need, which `attach` makes the model's own, so that the model trains, saves and loads them and
JAX's stateless step sees them. Only `UncertaintyWeight` is public.
"""

import math
import threading
from collections.abc import Mapping

import keras
import numpy as np
from keras import ops

from kx import _keras
from kx.backend import (
    CurrentValue,
    as_keras_variable,
    compiled,
    float32,
    read_variable,
    schedule_reader,
    snapshot,
    step_count,
)

__all__ = ["UncertaintyWeight"]

_PACKAGE = "kx"
_ATTRIBUTE = "_kx_loss_weights"  # the model attribute holding their state; saved files name it
_DWA_TEMPERATURE = 2.0  # Liu, Johns & Davison's T
_TASKS = {"regression": 0.5, "classification": 1.0}  # factor of exp(-s) in the loss term
# How far below 0, relative to its largest value, a schedule's value is float32 rounding of 0.
_ROUNDING = 1e-6
# Steps at which a schedule is checked at compile: the first ones, then around powers of two.
_PROBE_STEPS = sorted({*range(17), *(2**k + d for k in range(5, 31) for d in (-1, 0, 1))})


@keras.saving.register_keras_serializable(package=_PACKAGE)
class UncertaintyWeight:
    """Learned weighting of one loss by homoscedastic uncertainty (Kendall, Gal & Cipolla, 2018).

    The loss gets a trainable log-variance `s = log(sigma**2)`, a model variable (in
    `model.trainable_variables`, saved with the model). Its term in the total is the paper's
    negative log-likelihood: a noisier task (larger `s`) weighs less, and the `log(sigma)` term
    keeps `s` from growing without bound. `compile(loss_weights="uncertainty")` gives every
    loss `UncertaintyWeight()`. The effective weight is logged as `<name>_weight`.

    Formula:

        regression:      0.5 * exp(-s) * loss + 0.5 * s   # 1 / (2 sigma^2) * loss + log(sigma)
        classification:        exp(-s) * loss + 0.5 * s   #     1 / sigma^2 * loss + log(sigma)

    Args:
        task: `"regression"` (a Gaussian likelihood, the paper's eq. 7) or `"classification"`
            (a scaled softmax likelihood, eq. 10). Defaults to `"regression"`.
        initial_log_variance: the value of `s` before training. Defaults to `0.0`.

    Example:

    >>> import keras, numpy as np, kx
    >>> inputs = keras.Input((3,), name="x")
    >>> model = kx.CustomModel(inputs, {"a": keras.layers.Dense(1)(inputs),
    ...                                 "b": keras.layers.Dense(1)(inputs)})
    >>> model.compile(optimizer="sgd", loss={
    ...     "a": kx.LossDefinition("a", "a", "mse"), "b": kx.LossDefinition("b", "b", "mae")},
    ...     loss_weights={"a": kx.UncertaintyWeight(), "b": kx.UncertaintyWeight()})
    >>> sorted(v.path for v in model.trainable_variables if "log_variance" in v.path)
    ['kx_loss_weights/a_log_variance', 'kx_loss_weights/b_log_variance']
    """

    def __init__(self, task="regression", initial_log_variance=0.0):
        if task not in _TASKS:
            raise ValueError(
                f"UncertaintyWeight: expected `task` to be one of {sorted(_TASKS)}. "
                f"Received: task={task!r}"
            )
        try:
            initial = float(initial_log_variance)
        except (TypeError, ValueError) as e:
            raise TypeError(
                "UncertaintyWeight: expected `initial_log_variance` to be a number. "
                f"Received: {initial_log_variance!r}"
            ) from e
        if not math.isfinite(initial):
            raise ValueError(
                "UncertaintyWeight: expected a finite `initial_log_variance`. "
                f"Received: {initial_log_variance!r}"
            )
        self.task = task
        self.initial_log_variance = initial

    def get_config(self):
        return {"task": self.task, "initial_log_variance": self.initial_log_variance}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return (
            f"UncertaintyWeight(task={self.task!r}, "
            f"initial_log_variance={self.initial_log_variance!r})"
        )


@keras.saving.register_keras_serializable(package=_PACKAGE)
class _SavedVariable:
    """A variable given as a loss weight, as the compile config saves it: its current value.

    Loading makes a new non-trainable variable holding that value.
    """

    def __init__(self, variable):
        self.variable = variable

    def get_config(self):
        value = keras.ops.convert_to_numpy(self.variable.value)
        return {"value": value.item(), "dtype": self.variable.dtype, "name": self.variable.name}

    @classmethod
    def from_config(cls, config):
        return keras.Variable(
            config["value"], dtype=config["dtype"], trainable=False, name=config["name"]
        )


class _Variable:
    def __init__(self, variable):
        self.variable = variable


class _Schedule:
    def __init__(self, schedule, clamped, reads):
        self.schedule = schedule
        self.clamped = clamped  # read as max(value, 0): it rounds below 0 (`_check_schedule`)
        self.reads = reads  # the keras.Variables it reads (a callback may assign them)


class _DynamicWeightAverage:
    def __init__(self, index):
        self.index = index


class LossWeights(Mapping):
    """`compile`'s `loss_weights`, validated: `{loss key: float | non-constant weight}`.

    Keys missing from the mapping weigh 1.0.

    Args:
        loss_weights: the `compile` argument: None, a dict `{loss key or output name: weight}`,
            `"uncertainty"` or `"dwa"`.
        losses: the loss keys, in order.
        taken: other keys that the logs hold (metric keys), which `<name>_weight` must not
            repeat.
    """

    def __init__(self, loss_weights, losses, taken=()):
        losses = list(losses)
        self._weights = _parse(loss_weights, losses)
        dynamic = {k: w for k, w in self._weights.items() if not isinstance(w, float)}
        for key in dynamic:
            if f"{key}_weight" in (*losses, *taken):
                raise ValueError(
                    f"The weight of loss {key!r} is logged as {key + '_weight'!r}, which is "
                    f"also a loss or metric key. Rename that loss or metric."
                )
        self.state = _LossWeightsState(dynamic) if dynamic else None
        # What `get_compile_config` saves: variables as their values (see _SavedVariable).
        self.compile_argument = saveable(loss_weights)

    def __getitem__(self, key):
        return self._weights[key]

    def __iter__(self):
        return iter(self._weights)

    def __len__(self):
        return len(self._weights)

    def term(self, model, key, value):
        """The term of loss `key` (float32 value `value`) in the total, inside the step."""
        weight = self._weights.get(key, 1.0)
        if isinstance(weight, float):
            return value if weight == 1.0 else value * weight
        return self.state.term(model, key, weight, value)

    def callbacks(self, callbacks):
        """`fit`'s callbacks with the ones these weights need first: DWA's epoch-end update, the
        check of the losses that uncertainty weights, and of the values that variable weights
        are assigned."""
        own = []
        if self.state is not None and self.state.dwa_keys is not None:
            own.append(_DWACallback(self.state))
        if self.state is not None and self.state.log_variances:
            own.append(_UncertaintyCheck(self._weights, list(self.state.log_variances)))
        if self._assigned_keys():
            own.append(_AssignedValueCheck(self))
        return [*own, *(callbacks or [])] if own else callbacks

    def check_variables(self, when):
        """Raises if a variable weight holds a value that is not finite and >= 0 (assigned since
        compile checked it); `when` says when, for the message. One host read per variable."""
        for key in self._variable_keys():
            stored = _keras.stored_value(self._weights[key].variable)
            if stored is not None:  # None: on JAX, in a fit's state (its batches are checked)
                _check_assigned(key, float(ops.convert_to_numpy(stored)), when)

    def _variable_keys(self):
        return [key for key, weight in self._weights.items() if isinstance(weight, _Variable)]

    def _assigned_keys(self):
        """The keys whose weight follows variables that may be assigned after compile: a
        variable weight, a schedule that reads variables."""
        return [
            key for key, weight in self._weights.items()
            if isinstance(weight, _Variable) or (isinstance(weight, _Schedule) and weight.reads)
        ]  # fmt: skip


def attach(model, loss_weights):
    """Sets `model._kx_loss_weights` to the variables and trackers of `loss_weights` (a tuple,
    tracked by the model; None: none)."""
    state = None if loss_weights is None else loss_weights.state
    new = () if state is None else state.tracked
    old = getattr(model, _ATTRIBUTE, None) or ()
    if len(old) != len(new) or any(a is not b for a, b in zip(old, new)):
        _keras.replace_tracked_attribute(model, _ATTRIBUTE, new or None)


def check_beside_keras_losses(loss_weights):
    """Refuses, at compile, the `loss_weights` that only kx's loss definitions can apply when
    `compile` got Keras' own `loss` (which Keras weighs itself, with numbers and
    `keras.Variable`s): a schedule, `UncertaintyWeight`, `"uncertainty"` and `"dwa"` (Keras
    would fail in the first step, or at compile without naming the way out)."""
    if isinstance(loss_weights, str) and loss_weights in ("uncertainty", "dwa"):
        raise ValueError(
            f"loss_weights={loss_weights!r} weighs kx loss definitions, but `loss` is Keras' own "
            f"(by output), which Keras weighs itself with numbers. {_DEFINITIONS_HINT}"
        )
    if isinstance(loss_weights, dict):
        entries = [(f"[{k!r}]", w) for k, w in loss_weights.items()]
    elif isinstance(loss_weights, (list, tuple)):
        entries = [(f"[{i}]", w) for i, w in enumerate(loss_weights)]
    elif as_keras_variable(loss_weights) is not None:  # Keras: "cannot be used as a boolean"
        raise TypeError(
            "`loss_weights` is a variable: with Keras' own `loss`, give variables by output, "
            "e.g. loss_weights=[v] (one per output) or {'output_name': v}. Received: "
            f"loss_weights={loss_weights!r}"
        )
    else:
        entries = [("", loss_weights)]
    for where, weight in entries:
        if isinstance(weight, (UncertaintyWeight, keras.optimizers.schedules.LearningRateSchedule)):
            kind = "a learned weight" if isinstance(weight, UncertaintyWeight) else "a schedule"
            raise TypeError(
                f"`loss_weights{where}` is {kind} ({weight!r}): kx applies it to kx loss "
                f"definitions, but `loss` is Keras' own (by output), which Keras weighs itself, "
                f"with numbers and keras.Variables only. {_DEFINITIONS_HINT}"
            )


_DEFINITIONS_HINT = (
    "Give the losses as kx definitions, e.g. loss={'out': kx.LossDefinition('target', 'out', "
    "'mse')} (a target, an output, a Keras loss), with loss_weights keyed by those loss names."
)


def _non_trainable(value, name):
    return keras.Variable(np.asarray(value, "float32"), dtype="float32", trainable=False, name=name)


class _LossWeightsState:
    """The variables and `<name>_weight` trackers of non-constant loss weights.

    Not a layer: `attach` makes its variables and trackers the model's own (tracked) state, so that
    uncertainty log-variances are model trainable variables, DWA's weights and epoch losses
    non-trainable ones, all saved with the model, and the trackers (`kx.backend.CurrentValue`) are
    metrics of the model. A step reads each weight through `kx.backend.read_variable` and
    `step_count` (on JAX, a variable the model does not own and a test step's iteration count are
    given to kx's compiled steps). (A sublayer would do the same, but Keras walks every layer
    several times per step: on eager torch that walk cost as much as the weights themselves.)
    Variable paths start with `kx_loss_weights/`.
    """

    def __init__(self, weights):
        self.trackers = {
            key: CurrentValue(
                f"{key}_weight",
                variable=weight.variable if isinstance(weight, _Variable) else None,
                needs_count=isinstance(weight, _Schedule),
                reads=weight.reads if isinstance(weight, _Schedule) else (),
            )
            for key, weight in weights.items()
        }
        self.log_variances = {}
        self.schedules = {}  # key: the schedule's value as a function of the step
        self.dwa_keys = None
        with keras.name_scope("kx_loss_weights"):
            for key, weight in weights.items():
                if isinstance(weight, UncertaintyWeight):
                    self.log_variances[key] = keras.Variable(
                        weight.initial_log_variance, dtype="float32", trainable=True,
                        name=f"{key}_log_variance",
                    )  # fmt: skip
                elif isinstance(weight, _Schedule):
                    self.schedules[key] = _reader(weight)
            dwa = [k for k, weight in weights.items() if isinstance(weight, _DynamicWeightAverage)]
            if dwa:
                self.dwa_keys = dwa
                n = len(dwa)
                self.dwa_weights = _non_trainable(np.ones(n), "dwa_weights")
                # Rows: the epoch average of each loss one and two epochs ago.
                self.dwa_epoch_losses = _non_trainable(np.zeros((2, n)), "dwa_epoch_losses")
                self.dwa_epochs = _non_trainable(0.0, "dwa_epochs")

    @property
    def tracked(self):
        """The variables and trackers, as `attach` gives them to the model."""
        variables = [
            *self.log_variances.values(),
            *(() if self.dwa_keys is None else (
                self.dwa_weights, self.dwa_epoch_losses, self.dwa_epochs)),
        ]  # fmt: skip
        return (*variables, *self.trackers.values())

    def term(self, model, key, weight, value):
        if isinstance(weight, _Variable):
            factor = read_variable(weight.variable)
        elif isinstance(weight, _Schedule):
            count = step_count(model)
            factor = None if count is None else self.schedules[key](count)
        elif isinstance(weight, UncertaintyWeight):
            s = read_variable(self.log_variances[key])
            factor = None if s is None else _TASKS[weight.task] * ops.exp(-ops.cast(s, "float32"))
        else:
            weights = read_variable(self.dwa_weights)
            factor = None if weights is None else weights[weight.index]
        if factor is None:  # JAX: a trace where the step cannot read the weight's current value
            raise ValueError(_unreadable(key, weight))
        factor = float32(factor)
        if not isinstance(weight, UncertaintyWeight):
            # Read from a variable, the weight may be its storage (torch), which the next
            # assignment overwrites in place: the log keeps a copy.
            read = isinstance(weight, (_Variable, _DynamicWeightAverage))
            self.trackers[key].update_state(snapshot(factor) if read else factor)
            return factor * value
        self.trackers[key].update_state(ops.stop_gradient(factor))  # the one kind with gradients
        s = ops.cast(self.log_variances[key], "float32")
        # Loss values are already scaled for distribution (1/replicas); so must this be.
        return factor * value + _keras.scale_loss_for_distribution(0.5 * s)


def _check_assigned(key, value, when):
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(_assigned_message(key, value, when))


def _assigned_message(key, value, when, schedule=None):
    if schedule is not None:
        return (
            f"`loss_weights[{key!r}]` is the schedule {type(schedule).__name__}, which gave "
            f"{value} {when}; a loss weight must be finite and >= 0. It reads keras.Variables "
            "assigned since compile (by a callback or your own code): assign them values for "
            "which it stays >= 0."
        )
    return (
        f"`loss_weights[{key!r}]` is a keras.Variable that held {value} {when}; a loss weight "
        "must be finite and >= 0. It was assigned since compile (by a callback or your own "
        "code): assign it values >= 0."
    )


class _AssignedValueCheck(keras.callbacks.Callback):
    """Raises when a variable loss weight is assigned a value that is not finite and >= 0 (a
    negative one would train to increase its loss), or a schedule that reads variables gives
    one: before the first batch from the variable (not the schedule's: it is checked at
    compile), then from each batch's logged `<name>_weight`, the value that batch used (the logs are
    floats by then: nothing more is read). Async-safe: on JAX and torch Keras keeps dispatching
    batch ends to its threads, and the error reaches `fit` a batch or two later; Keras may then
    raise a later batch's error first, so every failing check raises the message of the first
    recorded (in practice the earliest batch: each check waits for its step's logs)."""

    async_safe = True

    def __init__(self, loss_weights):
        super().__init__()
        self._loss_weights = loss_weights
        self._logged = {f"{key}_weight": key for key in loss_weights._assigned_keys()}
        self._epoch = 0
        self._first = None  # the message of the first failing check
        self._lock = threading.Lock()

    def on_train_begin(self, logs=None):
        self._first = None
        self._loss_weights.check_variables("when fit began")

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        self._check(logs, "in training batch {} of epoch {} (its update is applied)",
                    batch, self._epoch)  # fmt: skip

    def on_test_batch_end(self, batch, logs=None):
        self._check(logs, "in evaluation batch {}", batch)

    def _check(self, logs, when, *where):
        for name, key in self._logged.items():
            value = logs.get(name) if logs else None
            if value is not None and not 0.0 <= float(value) < math.inf:  # NaN too
                with self._lock:
                    if self._first is None:
                        weight = self._loss_weights[key]
                        self._first = _assigned_message(
                            key, float(value), when.format(*where),
                            weight.schedule if isinstance(weight, _Schedule) else None)
                raise ValueError(self._first)


def _unreadable(key, weight):
    kind = {_Variable: "a keras.Variable", _Schedule: "a schedule",
            UncertaintyWeight: "kx.UncertaintyWeight"}.get(type(weight), '"dwa"')
    fix = "call `super().train_step(state, data)` in your `train_step`"
    if isinstance(weight, _Variable):
        holder = "kx's compiled train and test steps are given its current value"
        fix = "compute the loss inside the model's `train_step` or `test_step`"
    elif isinstance(weight, _Schedule):
        holder = "kx's `train_step` reads it from the optimizer's iteration count in its state"
    else:
        holder = "its variables are part of the state Keras' trainer passes to `train_step`"
        fix += (", or compute the loss with `self.stateless_compute_loss(...)` or inside "
                "`keras.StatelessScope(state_mapping=...)` mapping the model's variables to the "
                "step's state")
    return (
        f"loss_weights[{key!r}] ({kind}) changes during training, and on JAX {holder}. This "
        "`compute_loss` runs in a JAX trace without it (a `train_step` or jitted function of "
        "your own), where the weight would read as empty or as a constant of the trace. To "
        f"weigh with it, {fix}."
    )


class _UncertaintyCheck(keras.callbacks.Callback):
    """Raises at an epoch end where a loss weighed by `UncertaintyWeight` averaged <= 0 (or not
    finite): its term `c * exp(-s) * L + s / 2` then has no minimum in `s`, and the learned
    weight `c * exp(-s)` grows without bound, the total falling with it (a cosine-similarity
    loss near -0.5: the weight from 0.55 to 103 in 30 epochs), where the paper's losses (squared
    errors, cross-entropies) are > 0. Read from the epoch logs: nothing more per step."""

    def __init__(self, weights, keys):
        super().__init__()
        self._weights = weights
        self._keys = keys

    def on_epoch_end(self, epoch, logs=None):
        for key in self._keys:
            value = (logs or {}).get(key)
            if value is not None and not float(value) > 0:  # NaN too
                raise ValueError(
                    f"`loss_weights[{key!r}]` is {self._weights[key]!r}, which expects a loss "
                    f"> 0 (a negative log-likelihood, as a squared error or a cross-entropy). "
                    f"Received: {key}={float(value)} averaged over epoch {epoch}. For a loss "
                    "<= 0 its term has no minimum: the learned weight would grow without bound. "
                    "Weigh this loss with a number, a variable or a schedule instead."
                )


class _DWACallback(keras.callbacks.Callback):
    """Dynamic Weight Average (Liu, Johns & Davison, CVPR 2019), updated at each epoch end.

    With `L_k(t)` the average of loss k over epoch t (the unweighted value in the epoch logs),
    `K` losses and temperature `T = 2`, epoch t + 1 weighs loss k by
    `K * softmax_k(r(t) / T)` where `r_k(t) = L_k(t) / L_k(t - 1)`; the first two epochs weigh 1.
    """

    def __init__(self, state):
        super().__init__()
        self._state = state

    def on_epoch_end(self, epoch, logs=None):
        state = self._state  # on JAX, fit has written the epoch's state back to the variables
        losses = []
        for key in state.dwa_keys:
            value = (logs or {}).get(key)
            value = float("nan") if value is None else float(value)
            if not math.isfinite(value) or value <= 0:
                raise ValueError(
                    f"loss_weights='dwa': expected every loss's epoch average to be finite and "
                    f"> 0 (DWA weighs losses by the ratio of two epochs' averages). Received: "
                    f"{key}={value} at epoch {epoch}."
                )
            losses.append(value)
        losses = np.asarray(losses, "float64")
        previous = ops.convert_to_numpy(state.dwa_epoch_losses.value).astype("float64")[0]
        epochs = int(ops.convert_to_numpy(state.dwa_epochs.value)) + 1
        weights = np.ones_like(losses)
        if epochs >= 2:
            ratios = losses / previous / _DWA_TEMPERATURE
            exp = np.exp(ratios - ratios.max())
            weights = len(losses) * exp / exp.sum()
        state.dwa_epoch_losses.assign(np.stack([losses, previous]).astype("float32"))
        state.dwa_epochs.assign(float(epochs))
        state.dwa_weights.assign(weights.astype("float32"))


def _parse(loss_weights, losses):
    """`{loss key: float | _Variable | _Schedule | UncertaintyWeight | _DynamicWeightAverage}`."""
    if loss_weights is None:
        return {}
    if isinstance(loss_weights, str):
        if loss_weights == "uncertainty":
            return {key: UncertaintyWeight() for key in losses}
        if loss_weights == "dwa":
            if len(losses) < 2:
                raise ValueError(
                    "loss_weights='dwa' balances several losses by their rates of change; "
                    f"it needs at least two losses. Received the losses {losses}."
                )
            return {key: _DynamicWeightAverage(i) for i, key in enumerate(losses)}
        raise ValueError(
            "Expected `loss_weights` to be a dict {loss key: weight}, 'uncertainty' or 'dwa'. "
            f"Received: loss_weights={loss_weights!r}"
        )
    if not isinstance(loss_weights, dict):
        raise TypeError(
            "Expected `loss_weights` to be a dict {loss key: weight} (missing keys weigh 1.0), "
            f"'uncertainty' or 'dwa'. Received: loss_weights={loss_weights!r}"
        )
    parsed = {}
    for name, weight in loss_weights.items():
        key = name if name in losses else f"{name}_loss"
        if key not in losses:
            raise ValueError(
                f"`loss_weights` names {name!r}, which matches no loss. Expected one of "
                f"{losses}."
            )
        parsed[key] = _parse_one(name, weight)
    uncertainty = [k for k, w in parsed.items() if isinstance(w, UncertaintyWeight)]
    scheduled = [k for k, w in parsed.items() if isinstance(w, _Schedule)]
    if uncertainty and scheduled:
        raise ValueError(
            f"`loss_weights` gives the losses {uncertainty} learned uncertainty weights and "
            f"{scheduled} schedules. A schedule beside uncertainty weighting rescales what the "
            "log-variances are learning to balance; use one or the other (a schedule, or "
            "kx.UncertaintyWeight() for every loss whose weight should be learned)."
        )
    return parsed


def _parse_one(name, weight):
    where = f"`loss_weights[{name!r}]`"
    if isinstance(weight, UncertaintyWeight):
        return weight
    if isinstance(weight, str) and weight in ("uncertainty", "dwa"):
        raise TypeError(
            f"{where}: a string weighs the whole dict (loss_weights='uncertainty' or 'dwa'). "
            f"For one loss, use kx.UncertaintyWeight(). Received: {weight!r}"
        )
    variable = as_keras_variable(weight)
    if variable is not None:
        weight = variable
        if weight.trainable:
            raise ValueError(
                f"{where} is a trainable keras.Variable: the optimizer would update it, with no "
                "term that keeps it from collapsing to 0. To learn a loss weight, use "
                "kx.UncertaintyWeight(); to set it yourself (a callback), create the variable "
                "with trainable=False."
            )
        if tuple(weight.shape) != ():
            raise ValueError(
                f"{where}: expected a scalar keras.Variable. Received shape {tuple(weight.shape)}."
            )
        dtype = keras.backend.standardize_dtype(weight.dtype)
        if not keras.backend.is_float_dtype(dtype):
            raise TypeError(
                f"{where}: expected a floating-point keras.Variable. Received dtype {dtype}"
                + (
                    ": it would round every value assigned to it (keras.Variable(1) is int32; "
                    "create it as keras.Variable(1.0, trainable=False))."
                    if keras.backend.is_int_dtype(dtype)
                    else "."
                )
            )
        _check_constant(where, float(ops.convert_to_numpy(weight.value)), "holds")
        return _Variable(weight)
    if isinstance(weight, keras.optimizers.schedules.LearningRateSchedule):
        clamped = _check_schedule(where, weight)
        reads = _keras.variables_read(weight, ops.convert_to_tensor(0, "int32"))
        return _Schedule(weight, clamped, reads)
    if callable(getattr(weight, "assign", None)):  # a variable kx cannot follow: not frozen
        raise TypeError(
            f"{where}: expected a number, a non-trainable keras.Variable or a schedule. "
            f"Received a {type(weight).__module__}.{type(weight).__name__}, which "
            f"{keras.backend.backend()!r} Keras steps would read once; to change the weight "
            "during training, give a keras.Variable(..., trainable=False) and assign it."
        )
    try:
        if isinstance(weight, (bool, str)):
            raise TypeError(type(weight).__name__)
        value = float(weight)
    except (TypeError, ValueError) as e:
        raise TypeError(
            f"{where}: expected a number, a non-trainable keras.Variable, a schedule "
            "(keras.optimizers.schedules.LearningRateSchedule, e.g. kx.schedules.LinearWarmup) "
            f"or kx.UncertaintyWeight(). Received: {weight!r}"
        ) from e
    _check_constant(where, value, "is")
    return value


def _check_constant(where, value, verb):
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{where} {verb} {value}; a loss weight must be finite and >= 0.")


def _check_schedule(where, schedule):
    """Evaluates the schedule at `_PROBE_STEPS` and around its boundaries, if it has any; a
    negative value is traced back to the first step of its run (bisection from the last good
    probe). Returns whether it rounds below 0: a value within `_ROUNDING` of its largest is
    float32 rounding of 0, not a negative weight (XLA computes Keras' `PolynomialDecay` to 0 as
    -1.5e-8 from its last step on, under JAX), and the schedule is then read as max(value, 0)."""
    steps = set(_PROBE_STEPS)
    for boundary in getattr(schedule, "boundaries", None) or ():
        steps.update(int(boundary) + d for d in (-1, 0, 1) if int(boundary) + d >= 0)
    steps = np.asarray(sorted(steps), "int32")
    evaluate = _schedule_values(where, schedule)
    values = evaluate(steps)
    finite = np.isfinite(values)
    floor = -_ROUNDING * (np.abs(values[finite]).max() if finite.any() else 0.0)
    bad = np.flatnonzero(~finite | (values < floor))
    if not bad.size:
        return bool((values < 0).any())
    i = bad[0]
    lo, hi = (int(steps[i - 1]), int(steps[i])) if i else (None, int(steps[0]))
    while lo is not None and hi - lo > 1:
        mid = (lo + hi) // 2
        if evaluate(np.asarray([mid], "int32"))[0] >= floor:
            lo = mid
        else:
            hi = mid
    value = evaluate(np.asarray([hi], "int32"))[0]
    raise ValueError(
        f"{where}: the schedule {type(schedule).__name__} gives {value:.6g} at step {hi}; a loss "
        "weight must be finite and >= 0 at every step."
    )


def _reader(weight):
    """A function: the optimizer's iteration count -> the value of the `_Schedule` `weight`. A
    schedule that reads variables is evaluated as written (a table of its values would keep
    theirs at compile)."""
    read = weight.schedule if weight.reads else schedule_reader(weight.schedule)
    if not weight.clamped:
        return read
    return lambda step: ops.maximum(float32(read(step)), 0.0)


def _schedule_values(where, schedule):
    """A function: int32 steps -> float64 values of `schedule`, compiled (one trace, not one
    eager dispatch per op and step). The schedule sees one scalar step at a time (`ops.map`):
    Keras' `CosineDecay` with warm-up, say, takes no vector of steps, and TensorFlow would log
    the failed call as an error."""
    call = compiled(lambda step: ops.cast(schedule(step), "float32"))
    call_each = compiled(lambda steps: ops.map(lambda step: ops.cast(schedule(step), "float32"),
                                               steps))

    def evaluate(steps):
        try:
            values = ops.convert_to_numpy(call_each(ops.convert_to_tensor(steps)))
            if np.shape(values) == steps.shape:
                return np.asarray(values, "float64")
        except Exception:  # one step at a time below, which says at which step it fails
            pass
        values = []
        for step in steps:
            try:
                value = ops.convert_to_numpy(call(ops.convert_to_tensor(step)))
            except Exception as e:
                raise TypeError(
                    f"{where}: the schedule {type(schedule).__name__} failed at step {int(step)} "
                    f"with {type(e).__name__}: {_first_line(e)}. kx evaluates a schedule "
                    "inside the compiled train step, given the optimizer's iteration count as a "
                    "tensor, as Keras evaluates a learning-rate schedule; Python control flow on "
                    "the step fails there: write it with keras.ops, e.g. keras.ops.where(step < "
                    "100, 0.0, 1.0) for `0.0 if step < 100 else 1.0`."
                ) from e
            if np.shape(value) != ():
                raise ValueError(
                    f"{where}: expected the schedule {type(schedule).__name__} to return a "
                    f"scalar. Received shape {np.shape(value)} at step {int(step)}."
                )
            values.append(float(value))
        return np.asarray(values, "float64")

    return evaluate


def _first_line(error):
    return (str(error).splitlines() or [""])[0].rstrip(".")


def saveable(loss_weights):
    """`loss_weights` as a compile config saves them: each `keras.Variable` (or TensorFlow's
    `tf.Variable`) as its value (`_SavedVariable`; loading makes a new variable holding it)."""
    def saved(w):
        variable = as_keras_variable(w)
        return w if variable is None else _SavedVariable(variable)

    if isinstance(loss_weights, dict):
        return {k: saved(w) for k, w in loss_weights.items()}
    if isinstance(loss_weights, (list, tuple)):
        return type(loss_weights)(saved(w) for w in loss_weights)
    return loss_weights
