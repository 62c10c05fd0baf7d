"""kx.backend's scalar primitives for loss weights, the same on every backend (torch has native
versions of them): cast, clip, snapshot; `CurrentValue`, the `<name>_weight` log; and how JAX's
compiled steps use their state buffers."""

import re

import keras
import numpy as np
import pytest
from conftest import BACKEND, assert_close

import kx
from kx.backend import CurrentValue, clip, float32, snapshot
from kx.backend._current_value import step_logs


def test_float32_casts_numbers_tensors_and_variables():
    for x in (3, 2.5, np.int64(7), keras.ops.convert_to_tensor(4, "int32"),
              keras.Variable(1.5, dtype="float64", trainable=False),
              keras.Variable(6, dtype="int32", trainable=False)):  # fmt: skip
        got = float32(x)
        assert keras.backend.standardize_dtype(got.dtype) == "float32"
        want = x.numpy() if hasattr(x, "numpy") else keras.ops.convert_to_numpy(x)
        assert_close(got, np.float32(want), rtol=0, atol=0)


def test_clip_bounds_both_sides():
    x = keras.ops.convert_to_tensor([-1.0, 0.25, 3.0])
    assert_close(clip(x, 0.0, 1.0), [0.0, 0.25, 1.0], rtol=0, atol=0)


def test_a_snapshot_of_a_variable_read_keeps_its_value_when_the_variable_changes():
    """A `<name>_weight` log of a variable weight is a snapshot: the next step's assignment must
    not change it (on torch a variable's value is its storage, assigned in place; on TensorFlow
    Keras converts a variable to the `tf.Variable` itself)."""
    variable = keras.Variable(0.5, dtype="float32", trainable=False)
    logged = snapshot(float32(variable))
    variable.assign(3.0)
    variable.assign_add(1.0)  # in place where nothing else holds the buffer
    assert_close(logged, 0.5, rtol=0, atol=0)
    assert_close(variable, 4.0, rtol=0, atol=0)


def test_a_current_value_logs_its_step_value_in_the_step_and_the_last_logs_outside():
    """In a kx step `result()` is what the step gave it (a traced value stays in its trace);
    outside, the value in the last logs of the model's train or test function, or one given
    outside a step after those."""
    metric = CurrentValue("w_weight")
    assert_close(metric.result(), 0.0, rtol=0, atol=0)
    metric.update_state(keras.ops.convert_to_tensor(0.75))
    assert_close(metric.result(), 0.75, rtol=0, atol=0)
    with step_logs():
        value = keras.ops.convert_to_tensor(0.5)
        metric.update_state(value)
        assert metric.result() is value
    assert_close(metric.result(), 0.75, rtol=0, atol=0)
    metric.holder.logs = {"loss": 1.0, "w_weight": keras.ops.convert_to_tensor([0.25])}
    assert_close(metric.result(), 0.25, rtol=0, atol=0)  # a length-1 axis (multi-worker logs)
    metric.update_state(keras.ops.convert_to_tensor(2.0))
    assert_close(metric.result(), 2.0, rtol=0, atol=0)
    metric.reset_state()  # the weight in effect stays
    assert_close(metric.result(), 2.0, rtol=0, atol=0)
    assert metric.variables == []


def _aliases(step, state, *args):
    """{donated input index: output index} of `step` (a jitted step, as kx compiles it) on
    `state`: with every input kept, input indices are positions in the state."""
    text = step.lower(state, *args).as_text()
    pairs = re.findall(r"%arg(\d+): tensor<[^>]*> \{[^}]*?tf\.aliasing_output = (\d+)", text)
    return {int(a): int(b) for a, b in pairs}


@pytest.mark.skipif(BACKEND != "jax", reason="donated state buffers are JAX's jit")
@pytest.mark.parametrize("weight", ["variable", "schedule"])
def test_jax_steps_update_every_state_buffer_in_place(weight):
    """jit gives each output the first donated buffer of its shape: with the logs first (as
    Keras returns them), every scalar state would land in another variable's buffer, and XLA
    copies them all; kx's compiled steps flatten the state first, so each buffer stays its own
    (the packed logs come last and take none). A variable weight's value, and a test step's
    iteration count for a schedule, are given apart from the state (not donated, no output)."""
    import jax

    rng = np.random.default_rng(0)
    x, y = rng.random((32, 8), dtype="float32"), rng.integers(0, 3, 32)
    inputs = keras.Input((8,), name="x")
    hidden = keras.layers.Dense(4, activation="relu")(inputs)
    model = kx.CustomModel(inputs, keras.layers.Dense(3, name="logits")(hidden))
    ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    accuracy = keras.metrics.SparseCategoricalAccuracy(name="acc")
    model.compile(
        "adam", loss={"ce": kx.LossDefinition("logits", "logits", ce)},
        loss_weights={"ce": keras.Variable(0.5, trainable=False) if weight == "variable"
                      else kx.schedules.LinearWarmup(10)},
        metrics={"acc": kx.MetricDefinition("logits", "logits", accuracy)},
    )  # fmt: skip
    model.fit(x, y, batch_size=32, verbose=0)
    trainable, non_trainable, metrics = (
        [v.value for v in model.trainable_variables],
        [v.value for v in model.non_trainable_variables],
        [v.value for v in model.metrics_variables],
    )
    optimizer = [v.value for v in model.optimizer.variables]
    data = (x, y, None)
    train_state = (trainable, non_trainable, optimizer, metrics)
    test_state = (trainable, non_trainable, metrics)
    from kx.backend.jax import _compiled_step  # what make_train_function compiles

    def copy(state):  # a compiled step donates (deletes) the state it is given
        return jax.tree_util.tree_map(lambda a: jax.numpy.array(a, copy=True), state)

    steps = (_compiled_step(model, "train_step", None), _compiled_step(model, "test_step", None))
    for (step, given), state in zip(steps, (train_state, test_state)):
        values = [v.value for v in given]
        assert len(values) == (weight == "variable" or state is test_state)
        n = sum(len(group) for group in state)
        assert _aliases(step, state, data, values) == {i: i for i in range(n)}
        logs, out = step(copy(state), data, values)  # still unpacks as Keras' steps do
        assert [len(group) for group in out] == [len(group) for group in state]
        assert set(logs) == {"loss", "ce", "acc", "ce_weight"}
    logs, state = model.train_step(train_state, data)  # Keras' own outputs, for subclasses
    assert set(logs) == {"loss", "ce", "acc", "ce_weight"} and isinstance(logs["loss"], jax.Array)
