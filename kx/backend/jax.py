"""JAX: Keras' own stateless steps need no change (the state tuple passes through untouched,
so jit's `donate_argnums` and `keras.distribution` shardings see exactly what Keras built).

Two primitives: `first_argmax` (XLA's CPU argmax, a variadic reduction, is about 4x slower
than a max, a compare and a min) and `compiled` (`jax.jit` for eager calls).
"""

import jax
import jax.numpy as jnp


class TrainStep:
    """No JAX-specific trainer code."""


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
