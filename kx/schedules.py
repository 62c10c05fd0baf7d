"""Schedules of the training step for loss weights: warm-up, cyclical annealing, step-wise values.

Each is a `keras.optimizers.schedules.LearningRateSchedule`: called with the optimizer's iteration
count (0 before the first update), it returns a float32 scalar. Each also says (`_horizon`) after
how many steps its values repeat or hold, which lets eager torch read a loss weight from a table
(`kx.backend.schedule_reader`). `kx.CustomModel.compile` takes
them (and any other Keras schedule) as `loss_weights` values and evaluates them inside the
compiled step; they work as learning-rate schedules too.

Written with Python operators on tensors and `kx.backend`'s cast, clip, count and lookup (native
torch ops on eager torch, where every `keras.ops` call costs microseconds of dispatch per step), so
the same code runs in TensorFlow graphs, JAX's jit and torch.
"""

import math

import keras
from keras import ops

from kx.backend import clip, count_true, float32, lookup

__all__ = ["CyclicalAnnealing", "LinearWarmup", "StepwiseConstant"]

_PACKAGE = "kx"


def _check_value(owner, arg, value):
    if callable(getattr(value, "assign", None)):  # a variable: `float` would read it once
        raise TypeError(
            f"{owner}: expected `{arg}` to be a number. Received a variable ({value!r}), whose "
            "value the schedule would keep from now on: assigning it later would change "
            "nothing. To change a loss weight during training, give the variable itself as "
            "the weight, or write a LearningRateSchedule whose __call__ reads it."
        )
    try:
        value = float(value)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{owner}: expected `{arg}` to be a number. Received: {value!r}") from e
    if not math.isfinite(value) or value < 0:
        raise ValueError(
            f"{owner}: expected `{arg}` to be a finite number >= 0 (a loss weight). "
            f"Received: {arg}={value}"
        )
    return value


def _check_steps(owner, arg, value, minimum):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(
            f"{owner}: expected `{arg}` to be an integer >= {minimum}. Received: {arg}={value!r}"
        )
    return value


@keras.saving.register_keras_serializable(package=_PACKAGE)
class LinearWarmup(keras.optimizers.schedules.LearningRateSchedule):
    """Holds `start_value` for `delay_steps`, then rises linearly to `value` over `warmup_steps`.

    The usual KL warm-up of variational auto-encoders (Bowman et al., CoNLL 2016): the KL weight
    starts at 0 so that the decoder learns to use the latent code first.

    Formula:

        weight(step) = start_value + (value - start_value) * clip((step - delay_steps)
                                                                  / warmup_steps, 0, 1)

    Args:
        warmup_steps: number of steps of the linear ramp (an integer >= 1).
        value: the weight after the ramp. Defaults to `1.0`.
        start_value: the weight before and at the start of the ramp. Defaults to `0.0`.
        delay_steps: steps at `start_value` before the ramp begins. Defaults to `0`.

    Example:

    >>> import kx
    >>> warmup = kx.schedules.LinearWarmup(warmup_steps=4)
    >>> [round(float(warmup(step)), 2) for step in range(6)]
    [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    """

    def __init__(self, warmup_steps, value=1.0, start_value=0.0, delay_steps=0):
        owner = "LinearWarmup"
        self.warmup_steps = _check_steps(owner, "warmup_steps", warmup_steps, 1)
        self.value = _check_value(owner, "value", value)
        self.start_value = _check_value(owner, "start_value", start_value)
        self.delay_steps = _check_steps(owner, "delay_steps", delay_steps, 0)

    def __call__(self, step):
        progress = clip((float32(step) - self.delay_steps) / self.warmup_steps, 0.0, 1.0)
        return self.start_value + (self.value - self.start_value) * progress

    def _horizon(self):
        # (steps, periodic): the value holds from step delay + warmup on (see kx.backend).
        return self.delay_steps + self.warmup_steps + 1, False

    def get_config(self):
        return {
            "warmup_steps": self.warmup_steps,
            "value": self.value,
            "start_value": self.start_value,
            "delay_steps": self.delay_steps,
        }


@keras.saving.register_keras_serializable(package=_PACKAGE)
class CyclicalAnnealing(keras.optimizers.schedules.LearningRateSchedule):
    """Cyclical annealing (Fu et al., NAACL 2019): `cycles` linear ramps from 0 to `value`.

    Training is split into `cycles` periods of `total_steps / cycles` steps; in each, the weight
    rises linearly from 0 to `value` over the first `ratio` of the period, then holds `value`.
    Past `total_steps` the cycles go on.

    Formula (step counted from 0, the paper's `t - 1`):

        tau = mod(step, ceil(total_steps / cycles)) / (total_steps / cycles)
        weight(step) = value * min(tau / ratio, 1)

    Args:
        total_steps: the number of training steps the cycles span (an integer >= 1).
        cycles: the number of cycles (an integer >= 1). Defaults to `4`, the paper's choice.
        ratio: the share of each cycle spent rising, in (0, 1]. Defaults to `0.5`, the paper's.
        value: the weight at the top of each cycle. Defaults to `1.0`.

    Example:

    >>> import kx
    >>> beta = kx.schedules.CyclicalAnnealing(total_steps=8, cycles=2, ratio=0.5)
    >>> [round(float(beta(step)), 2) for step in range(8)]
    [0.0, 0.5, 1.0, 1.0, 0.0, 0.5, 1.0, 1.0]
    """

    def __init__(self, total_steps, cycles=4, ratio=0.5, value=1.0):
        owner = "CyclicalAnnealing"
        self.total_steps = _check_steps(owner, "total_steps", total_steps, 1)
        self.cycles = _check_steps(owner, "cycles", cycles, 1)
        if self.cycles > self.total_steps:
            raise ValueError(
                f"{owner}: expected `cycles` <= `total_steps` (each cycle needs a step). "
                f"Received: cycles={cycles}, total_steps={total_steps}"
            )
        ratio = float(ratio)
        if not 0.0 < ratio <= 1.0:
            raise ValueError(f"{owner}: expected `ratio` in (0, 1]. Received: ratio={ratio}")
        self.ratio = ratio
        self.value = _check_value(owner, "value", value)

    def __call__(self, step):
        period = self.total_steps / self.cycles
        tau = float32(step) % float(math.ceil(period)) / period  # steps >= 0: tau >= 0
        return self.value * clip(tau / self.ratio, 0.0, 1.0)

    def _horizon(self):
        # The value repeats every ceil(total_steps / cycles) steps.
        return math.ceil(self.total_steps / self.cycles), True

    def get_config(self):
        return {
            "total_steps": self.total_steps,
            "cycles": self.cycles,
            "ratio": self.ratio,
            "value": self.value,
        }


@keras.saving.register_keras_serializable(package=_PACKAGE)
class StepwiseConstant(keras.optimizers.schedules.LearningRateSchedule):
    """A weight that holds `values[i]` from step `boundaries[i - 1]` until step `boundaries[i]`.

    `values[0]` holds before `boundaries[0]`, the last value from the last boundary on.

    Args:
        boundaries: strictly increasing integer steps (>= 1) at which the weight changes.
        values: one more weight than boundaries, each finite and >= 0.

    Example:

    >>> import kx
    >>> weight = kx.schedules.StepwiseConstant(boundaries=[2, 4], values=[0.0, 0.5, 1.0])
    >>> [float(weight(step)) for step in range(6)]
    [0.0, 0.0, 0.5, 0.5, 1.0, 1.0]
    """

    def __init__(self, boundaries, values):
        owner = "StepwiseConstant"
        boundaries, values = list(boundaries), list(values)
        for b in boundaries:
            _check_steps(owner, "boundaries", b, 1)
        if any(b >= c for b, c in zip(boundaries, boundaries[1:])):
            raise ValueError(
                f"{owner}: expected `boundaries` to increase strictly. Received: {boundaries}"
            )
        if len(values) != len(boundaries) + 1:
            raise ValueError(
                f"{owner}: expected one more value than boundaries ({len(boundaries) + 1}). "
                f"Received {len(values)} values for {len(boundaries)} boundaries."
            )
        self.boundaries = boundaries
        self.values = [_check_value(owner, "values", v) for v in values]
        # Made once, eagerly (a tensor made inside one traced step cannot serve the next).
        self._boundaries = ops.convert_to_tensor(boundaries, "float32")
        self._values = ops.convert_to_tensor(self.values, "float32")

    def __call__(self, step):
        # The value after as many boundaries as the step has reached (per step, for a tensor
        # of steps).
        reached = float32(step)[..., None] >= self._boundaries
        return lookup(self._values, count_true(reached, axis=-1))

    def _horizon(self):
        # The last value holds from the last boundary on.
        return (self.boundaries[-1] if self.boundaries else 0) + 1, False

    def get_config(self):
        return {"boundaries": self.boundaries, "values": self.values}
