"""The TensorFlow trainer fixes, and two primitives.

Two Keras 3.15 defects under `tf.distribute.MultiWorkerMirroredStrategy` are worked around here
(they break stock `keras.Model.fit` too; tensorflow/tensorflow#72388):
- the symbolic build reduces the whole nested first batch with one `strategy.reduce` call, which
  the multi-worker strategy rejects for tuples and dicts;
- the per-step logs are reduced with `strategy.reduce("MEAN", value, axis=0)`, which fails on
  scalars. Step logs get a length-1 axis there; epoch logs come from `get_metrics_result()` in
  cross-replica context as usual, so History is exact.

Two primitives: `compiled` runs a pure function as a `tf.function` when called eagerly (one
graph call instead of one dispatch per op), and inline when already inside a graph;
`first_argmax` is TensorFlow's own argmax (Keras' adds a flush-to-zero fix: about 20 ops, 4x
the time inside a compiled step).
"""

import tensorflow as tf
from keras import tree

from kx import _keras


def first_argmax(x):
    """int32 index of the largest entry along the last axis (the first one on ties, on CPU;
    TensorFlow does not promise which one elsewhere)."""
    return tf.argmax(x, axis=-1, output_type=tf.int32)


def compiled(fn):
    # One tf.function per argument structure (ranks, dtypes, None): each generalises its
    # varying dimensions (a last, smaller batch) instead of retracing, without losing the rank.
    graphs = {}

    def call(*args):
        if not tf.executing_eagerly():
            return fn(*args)
        key = tuple(None if a is None else (len(a.shape), a.dtype) for a in args)
        if key not in graphs:
            graphs[key] = tf.function(fn, autograph=False, reduce_retracing=True)
        return graphs[key](*args)

    return call


class TrainStep:
    def train_step(self, data):
        logs = super().train_step(data)
        return _reducible_logs(self.distribute_strategy, logs)

    def test_step(self, data):
        return _reducible_logs(self.distribute_strategy, super().test_step(data))

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        strategy = _keras.distribute_strategy(self)
        if strategy is None or iterator is None:
            return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)
        for _, _, it in iterator:  # the build needs shapes only: each leaf's first replica
            batch = next(it)
            _check_even_split(strategy, batch)
            data_batch = tree.map_structure(_first_local_value, batch)
            break
        with strategy.scope():
            self._symbolic_build(data_batch=data_batch)


def _first_local_value(value):
    if isinstance(value, tf.distribute.DistributedValues):
        return value.values[0]
    return value


def _check_even_split(strategy, batch):
    """Replicas average their own losses, so an uneven split weighs samples unequally."""
    for value in tree.flatten(batch):
        if isinstance(value, tf.distribute.DistributedValues):
            sizes = [int(v.shape[0]) for v in value.values if v.shape.rank]
            if len(set(sizes)) > 1:
                raise ValueError(
                    f"The global batch of {sum(sizes)} samples splits unevenly over the "
                    f"{strategy.num_replicas_in_sync} replicas of {type(strategy).__name__} "
                    f"({sizes}). Each replica averages its own loss, so the samples would be "
                    "weighted unequally. Use a batch_size divisible by "
                    f"strategy.num_replicas_in_sync ({strategy.num_replicas_in_sync})."
                )
            return


def _reducible_logs(strategy, logs):
    multi_worker = isinstance(
        strategy, tf.distribute.MultiWorkerMirroredStrategy
    ) and _keras.in_multi_worker_mode(strategy)
    if not multi_worker:
        return logs
    return {k: tf.reshape(v, [1]) if tf.is_tensor(v) and v.shape.rank == 0 else v
            for k, v in logs.items()}
