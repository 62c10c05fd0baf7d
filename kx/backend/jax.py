"""The JAX train step: class weights folded into the batch, then Keras' own stateless step.

The state tuple `(trainable, non_trainable, optimizer, metrics)` passes through untouched, so
jit's `donate_argnums` and `keras.distribution` shardings see exactly what Keras built.

Also two primitives: `first_argmax` (XLA's CPU argmax, a variadic reduction, is about 4x slower
than a max, a compare and a min) and `compiled` (`jax.jit` for eager calls).
"""

import jax
import jax.numpy as jnp


class TrainStep:
    def train_step(self, state, data):
        return super().train_step(state, self._kx_fold_class_weights(data))


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
