"""Custom train steps as the Keras guides write them for each backend, for any model class.

`manual(base)` is a subclass of `base` whose `train_step` does the whole step by hand (TensorFlow
`GradientTape`, torch `backward`, JAX `stateless_call` + `compute_loss` inside
`jax.value_and_grad`); `calling_super(base)` only observes the batch and calls
`super().train_step`. Both log `sw_mean`, the mean sample weight the step received (-1 for none),
as stock Keras users check what `fit(class_weight=...)` gave them.
"""

import keras
from keras import ops

BACKEND = keras.backend.backend()


def _sw_mean(sample_weight):
    if sample_weight is None:
        return ops.convert_to_tensor(-1.0)
    if isinstance(sample_weight, dict):  # one per target: the mean of their means
        values = [ops.mean(ops.cast(w, "float32")) for w in sample_weight.values()]
        return ops.mean(ops.stack(values))
    return ops.mean(ops.cast(sample_weight, "float32"))


def calling_super(base):
    class Observing(base):
        def train_step(self, *args):
            _, _, sample_weight = keras.utils.unpack_x_y_sample_weight(args[-1])
            out = super().train_step(*args)
            if BACKEND == "jax":
                logs, state = out
                return {**logs, "sw_mean": _sw_mean(sample_weight)}, state
            return {**out, "sw_mean": _sw_mean(sample_weight)}

    return Observing


def manual(base):
    if BACKEND == "tensorflow":
        import tensorflow as tf

        class Manual(base):
            def train_step(self, data):
                x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
                with tf.GradientTape() as tape:
                    y_pred = self(x, training=True)
                    loss = self.compute_loss(x, y, y_pred, sample_weight)
                grads = tape.gradient(loss, self.trainable_variables)
                self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
                for metric in self.metrics:
                    if metric.name == "loss":
                        metric.update_state(loss)
                logs = self.compute_metrics(x, y, y_pred, sample_weight)
                return {**logs, "sw_mean": _sw_mean(sample_weight)}

        return Manual

    if BACKEND == "torch":
        import torch

        class Manual(base):
            def train_step(self, data):
                x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
                self.zero_grad()
                y_pred = self(x, training=True)
                loss = self.compute_loss(x, y, y_pred, sample_weight)
                loss.backward()
                grads = [v.value.grad for v in self.trainable_weights]
                with torch.no_grad():
                    self.optimizer.apply(grads, self.trainable_weights)
                for metric in self.metrics:
                    if metric.name == "loss":
                        metric.update_state(loss)
                logs = self.compute_metrics(x, y, y_pred, sample_weight)
                return {**logs, "sw_mean": _sw_mean(sample_weight)}

        return Manual

    import jax

    class Manual(base):
        def compute_loss_and_updates(self, trainable, non_trainable, x, y, sample_weight):
            y_pred, non_trainable = self.stateless_call(trainable, non_trainable, x, training=True)
            loss = self.compute_loss(x, y, y_pred, sample_weight)
            return loss, (y_pred, non_trainable)

        def train_step(self, state, data):
            trainable, non_trainable, optimizer_vars, metrics_vars = state
            x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
            grad_fn = jax.value_and_grad(self.compute_loss_and_updates, has_aux=True)
            (loss, (y_pred, non_trainable)), grads = grad_fn(
                trainable, non_trainable, x, y, sample_weight
            )
            trainable, optimizer_vars = self.optimizer.stateless_apply(
                optimizer_vars, grads, trainable
            )
            mapping = list(zip(self.metrics_variables, metrics_vars))
            with keras.StatelessScope(state_mapping=mapping) as scope:
                for metric in self.metrics:
                    if metric.name == "loss":
                        metric.update_state(loss)
                logs = self.compute_metrics(x, y, y_pred, sample_weight)
            metrics_vars = [scope.get_current_value(v) for v in self.metrics_variables]
            logs = {**logs, "sw_mean": _sw_mean(sample_weight)}
            return logs, (trainable, non_trainable, optimizer_vars, metrics_vars)

    return Manual
