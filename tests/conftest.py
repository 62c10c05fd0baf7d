"""Shared test set-up: one backend per run (KERAS_BACKEND), seeded, with tolerances in one place."""

import gc
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# JAX compiles every eager op for every new shape; the tests' tiny programs run as fast without
# XLA's optimisation passes, which take most of that compile time (about a fifth of the JAX run).
os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

# Derandomized so that CI is reproducible; deadline off because the first call of a
# backend op compiles.
settings.register_profile(
    "kx",
    max_examples=20,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.load_profile("kx")

BACKEND = keras.backend.backend()

import kx  # noqa: E402, F401  (imported once here, before the freeze below)

# The backend's import leaves millions of long-lived objects; a full garbage collection walks
# them all (0.5-2 s once the suite's own objects pile up). Freezing them once makes the
# collections below cost what the tests allocated.
gc.freeze()

# float32 tolerances used across the suite.
RTOL = 1e-5
ATOL = 1e-6


def assert_close(actual, expected, rtol=RTOL, atol=ATOL, err_msg=""):
    """`np.testing.assert_allclose` on backend tensors or NumPy values."""
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(actual) if not isinstance(actual, (float, int)) else actual,
        expected,
        rtol=rtol,
        atol=atol,
        err_msg=err_msg,
    )


def value_and_grad(fn, x):
    """Loss sum and its gradient with respect to `x`, with the backend's autodiff."""
    if BACKEND == "tensorflow":
        import tensorflow as tf

        x = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            value = tf.reduce_sum(fn(x))
        return value.numpy(), tape.gradient(value, x).numpy()
    if BACKEND == "jax":
        import jax

        value, grad = jax.value_and_grad(lambda v: fn(v).sum())(x)
        return np.asarray(value), np.asarray(grad)
    import torch

    x = torch.tensor(x, requires_grad=True)
    value = fn(x).sum()
    value.backward()
    return value.detach().numpy(), x.grad.numpy()


@pytest.fixture(autouse=True)
def _seed_and_clear():
    keras.utils.set_random_seed(1234)
    yield
    keras.backend.clear_session(free_memory=False)


@pytest.fixture(autouse=True, scope="module")
def _collect_per_module():
    yield
    gc.collect()
