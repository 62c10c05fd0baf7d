"""The JAX train step: class weights folded into the batch, then Keras' own stateless step.

The state tuple `(trainable, non_trainable, optimizer, metrics)` passes through untouched, so
jit's `donate_argnums` and `keras.distribution` shardings see exactly what Keras built.
"""


class TrainStep:
    def train_step(self, state, data):
        return super().train_step(state, self._kx_fold_class_weights(data))
