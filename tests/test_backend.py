"""kx.backend's scalar primitives for loss weights, the same on every backend (torch has native
versions of them): cast, clip, assign, snapshot."""

import keras
import numpy as np
from conftest import assert_close

from kx.backend import assign, clip, float32, snapshot


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


def test_assign_writes_the_variable_and_nothing_else():
    variable = keras.Variable(0.0, dtype="float32", trainable=False)
    value = keras.ops.convert_to_tensor(0.75)
    assign(variable, value)
    assert_close(variable, 0.75, rtol=0, atol=0)
    assign(variable, keras.ops.convert_to_tensor(2.0))
    assert_close(value, 0.75, rtol=0, atol=0)  # a copy: the source is not aliased
    assert_close(variable, 2.0, rtol=0, atol=0)


def test_assign_inside_a_stateless_scope_is_recorded_not_applied():
    """Keras' stateless steps (JAX's trainer, `stateless_call`) collect assignments in a scope."""
    variable = keras.Variable(1.0, dtype="float32", trainable=False)
    with keras.StatelessScope() as scope:
        assign(variable, keras.ops.convert_to_tensor(5.0))
    assert_close(variable, 1.0, rtol=0, atol=0)
    assert_close(scope.get_current_value(variable), 5.0, rtol=0, atol=0)


def test_a_snapshot_keeps_its_value_when_the_variable_changes():
    """A `<name>_weight` log is a snapshot: the next step's assignment must not change it (on
    torch, Keras' own conversion of a variable returns its storage)."""
    variable = keras.Variable(0.5, dtype="float32", trainable=False)
    logged = snapshot(variable)
    assign(variable, keras.ops.convert_to_tensor(3.0))
    variable.assign(4.0)
    assert_close(logged, 0.5, rtol=0, atol=0)
