"""kx.schedules against NumPy references of their formulas (cyclical annealing: Fu et al. 2019)."""

import math

import keras
import numpy as np
import pytest
from conftest import assert_close
from hypothesis import given
from hypothesis import strategies as st

import kx

# -- NumPy references ------------------------------------------------------------------------------


def linear_warmup_ref(step, warmup_steps, value, start_value, delay_steps):
    progress = min(max((step - delay_steps) / warmup_steps, 0.0), 1.0)
    return start_value + (value - start_value) * progress


def cyclical_ref(t, total_steps, cycles, ratio, value):
    """Fu et al. (NAACL 2019), eq. 6 with a linear f, for iteration t counted from 1."""
    period = total_steps / cycles
    tau = ((t - 1) % math.ceil(period)) / period
    return value * (tau / ratio if tau <= ratio else 1.0)


def stepwise_ref(step, boundaries, values):
    return values[int(np.searchsorted(boundaries, step, side="right"))]


steps = st.integers(0, 5000)


@given(steps, st.integers(1, 500), st.floats(0, 10), st.floats(0, 10), st.integers(0, 300))
def test_linear_warmup_equals_reference(step, warmup_steps, value, start_value, delay_steps):
    schedule = kx.schedules.LinearWarmup(warmup_steps, value, start_value, delay_steps)
    want = linear_warmup_ref(step, warmup_steps, value, start_value, delay_steps)
    assert_close(schedule(step), want, rtol=1e-5, atol=1e-5)


@given(steps, st.integers(1, 2000), st.integers(1, 8), st.floats(0.05, 1.0), st.floats(0, 5))
def test_cyclical_annealing_equals_reference(step, total_steps, cycles, ratio, value):
    cycles = min(cycles, total_steps)
    schedule = kx.schedules.CyclicalAnnealing(total_steps, cycles, ratio, value)
    want = cyclical_ref(step + 1, total_steps, cycles, ratio, value)
    assert_close(schedule(step), want, rtol=1e-4, atol=1e-5)


def test_cyclical_annealing_has_the_papers_shape():
    """M = 4 cycles of T / M steps, rising over the first R = 0.5 of each (Fu et al., fig. 1)."""
    schedule = kx.schedules.CyclicalAnnealing(total_steps=400, cycles=4, ratio=0.5)
    values = np.array([float(schedule(t)) for t in range(400)])
    for start in range(0, 400, 100):
        assert values[start] == 0.0
        assert np.all(np.diff(values[start : start + 51]) > 0)
        assert np.all(values[start + 50 : start + 100] == 1.0)


@given(steps, st.lists(st.integers(1, 3000), min_size=0, max_size=5, unique=True),
       st.data())  # fmt: skip
def test_stepwise_constant_equals_reference(step, boundaries, data):
    boundaries = sorted(boundaries)
    values = data.draw(st.lists(st.floats(0, 10), min_size=len(boundaries) + 1,
                                max_size=len(boundaries) + 1))  # fmt: skip
    schedule = kx.schedules.StepwiseConstant(boundaries, values)
    assert_close(schedule(step), stepwise_ref(step, boundaries, values), rtol=1e-6)


@pytest.mark.parametrize(
    "schedule",
    [
        kx.schedules.LinearWarmup(10, value=0.5, start_value=0.1, delay_steps=3),
        kx.schedules.CyclicalAnnealing(100, cycles=3, ratio=0.25, value=2.0),
        kx.schedules.StepwiseConstant([5, 9], [0.0, 0.5, 1.0]),
    ],
    ids=lambda s: type(s).__name__,
)
def test_config_round_trip(schedule):
    for copy in (
        type(schedule).from_config(schedule.get_config()),
        keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(schedule)),
    ):
        assert type(copy) is type(schedule)
        assert copy.get_config() == schedule.get_config()
        for step in (0, 4, 7, 50, 99):
            assert_close(copy(step), float(schedule(step)))


def test_works_as_a_learning_rate_schedule():
    """A schedule of the step, so Keras optimizers take it too: SGD's first update uses lr(0)."""
    variable = keras.Variable(np.ones(2, "float32"))
    optimizer = keras.optimizers.SGD(kx.schedules.LinearWarmup(2, value=1.0, start_value=0.5))
    optimizer.apply([keras.ops.ones(2)], [variable])
    optimizer.apply([keras.ops.ones(2)], [variable])
    assert_close(variable, [1.0 - 0.5 - 0.75] * 2)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: kx.schedules.LinearWarmup(0), r"LinearWarmup: expected `warmup_steps`.*>= 1"),
        (lambda: kx.schedules.LinearWarmup(5, value=-1), r"`value`.*>= 0.*value=-1"),
        (lambda: kx.schedules.LinearWarmup(5, value="a"), r"`value` to be a number"),
        (lambda: kx.schedules.CyclicalAnnealing(10, ratio=0), r"`ratio` in \(0, 1\]"),
        (lambda: kx.schedules.CyclicalAnnealing(3, cycles=4), r"`cycles` <= `total_steps`"),
        (lambda: kx.schedules.StepwiseConstant([3, 2], [0, 1, 2]), r"increase strictly"),
        (lambda: kx.schedules.StepwiseConstant([3], [0.0]), r"one more value than boundaries"),
        (lambda: kx.schedules.StepwiseConstant([3], [0.0, float("nan")]), r"finite number"),
        # `float` would read the variable once: later assignments would change nothing
        (lambda: kx.schedules.LinearWarmup(5, value=keras.Variable(1.0, trainable=False)),
         r"LinearWarmup: expected `value` to be a number. Received a variable .*changes? "
         r"nothing.*give the variable itself as the weight"),
        (lambda: kx.schedules.StepwiseConstant([3], [0.0, keras.Variable(1.0)]),
         r"StepwiseConstant: expected `values` to be a number. Received a variable"),
    ],
)
def test_bad_arguments(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


SCHEDULES = [
    kx.schedules.LinearWarmup(10, value=0.5, start_value=0.1, delay_steps=3),
    kx.schedules.CyclicalAnnealing(100, cycles=3, ratio=0.25, value=2.0),  # period 33.3
    kx.schedules.CyclicalAnnealing(7, cycles=7),  # period 1: always 0
    kx.schedules.StepwiseConstant([5, 9], [0.0, 0.5, 1.0]),
    kx.schedules.StepwiseConstant([], [0.3]),
    kx.schedules.LinearWarmup(2**21, start_value=0.5),  # longer than the tables: the formula
]


@pytest.mark.parametrize("schedule", SCHEDULES, ids=lambda s: type(s).__name__)
def test_a_tensor_of_steps_gives_each_steps_value(schedule):
    steps = np.array([0, 1, 3, 4, 5, 8, 9, 10, 13, 14, 33, 34, 67, 99, 100, 1000], "int32")
    values = keras.ops.convert_to_numpy(schedule(keras.ops.convert_to_tensor(steps)))
    assert values.shape == steps.shape
    assert_close(values, [float(schedule(int(t))) for t in steps], rtol=0, atol=0)


@pytest.mark.parametrize("schedule", SCHEDULES, ids=lambda s: type(s).__name__)
def test_the_loss_weight_reader_gives_the_schedules_values(schedule):
    """What a step reads for a scheduled loss weight (on torch, and on TensorFlow without
    accelerators: a table of the schedule's values, read at the iteration count) equals the
    schedule at every step, past its horizon too, to the bit."""
    from kx.backend import schedule_reader

    read = schedule_reader(schedule)
    iterations = keras.Variable(0, dtype="int32", trainable=False)  # as optimizer.iterations
    for step in [*range(120), 2**20 - 1, 2**20, 2**21 + 5, 10**7 + 3]:
        iterations.assign(step)
        got = keras.ops.convert_to_numpy(read(iterations))
        assert got.shape == () and got.dtype == np.float32
        assert got == keras.ops.convert_to_numpy(schedule(step)), step
