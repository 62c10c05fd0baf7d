"""The TensorFlow trainer fixes, and two primitives.

Two Keras 3.15 defects under `tf.distribute.MultiWorkerMirroredStrategy` are worked around here
(they break stock `keras.Model.fit` too; tensorflow/tensorflow#72388):
- the symbolic build reduces the whole nested first batch with one `strategy.reduce` call, which
  the multi-worker strategy rejects for tuples and dicts;
- the per-step logs are reduced with `strategy.reduce("MEAN", value, axis=0)`, which fails on
  scalars. Step logs get a length-1 axis there; epoch logs come from `get_metrics_result()` in
  cross-replica context as usual, so History is exact.

With one step per execution, kx's train and test functions return a step's logs as they are.
Keras' functions wrap them in a `tf.experimental.Optional`, whose `has_value` and `get_value`
ops and structure rebuilding cost about 0.5 ms per step on a 2-core CPU (the function alone,
digits MLP with three logs: fastest 1.44 ms a step with Keras', 0.96 ms with kx's), and about
20 us more per log (`TrainStep._make_function`).

A `kx.DataGenerator` with `shard="auto"` under a multi-worker strategy becomes a distributed
dataset in which each worker computes only its part of every global batch (`distribute_source`);
Keras would otherwise turn it into a `tf.data` pipeline that every worker computes whole before
`tf.distribute` keeps each worker's part.

The train and test functions run their steps `marked` (in each replica's thread) and keep their
last logs, for `CurrentValue`.

Five primitives: `as_keras_variable` adopts a `tf.Variable` (given as a loss weight, as stock
Keras on TensorFlow allows); `schedule_reader` reads a kx schedule from a table of its values
(without accelerators); `compiled` runs a pure function as a `tf.function` when called eagerly
(one graph call instead of one dispatch per op), and inline when already inside a graph;
`first_argmax` is TensorFlow's own argmax (Keras' adds a flush-to-zero fix: about 20 ops, 4x
the time inside a compiled step); `float32` reads a variable once, as a tensor of its own.
"""

import itertools

import keras
import numpy as np
import tensorflow as tf
from keras import tree

from kx import _keras
from kx.backend._current_value import marked, recording


def float32(x):
    """`x` (a number, tensor or variable) as a float32 tensor, a variable read once. Keras'
    conversion of a variable returns the `tf.Variable` itself: each use of it in a graph reads
    it again (a loss weight's term and its log: two reads), and eagerly it is no value of its
    own (the next assignment changes it). A read is: TensorFlow copies a variable's buffer
    before updating it while a read of it is alive."""
    from kx.backend import _generic_float32

    if isinstance(x, keras.Variable):
        x = tf.convert_to_tensor(x.value)  # under tf.distribute, the replica's own
    return _generic_float32(x)


def as_keras_variable(x):
    """`x` if it is a `keras.Variable`; a `tf.Variable` adopted by a `keras.Variable` (Keras
    keeps the one it is given: assignments to either are seen by both); None for anything
    else."""
    if isinstance(x, keras.Variable):
        return x
    if not isinstance(x, tf.Variable):
        return None
    name = x.name.split(":")[0].replace("/", "_")  # Keras refuses "/" in a name
    return keras.Variable(x, trainable=x.trainable, dtype=x.dtype.name, name=name)


def first_argmax(x):
    """int32 index of the largest entry along the last axis (the first one on ties, on CPU;
    TensorFlow does not promise which one elsewhere)."""
    return tf.argmax(x, axis=-1, output_type=tf.int32)


def schedule_reader(schedule):
    """A function: the optimizer's iteration count -> the value of `schedule` at that step.

    Without accelerators, a kx schedule is read from the table of its values
    (`kx.backend.schedule_table`, kept on the CPU): a clamp or remainder and a gather, where
    its formula takes up to a dozen graph ops, each a few microseconds of the executor's time
    per step on a small CPU (a linear warm-up took a digits MLP's step 19 more ops in all and
    cost it 4%; 11 and 0.6-1.8% with the table). With a GPU or TPU the formula is evaluated
    as written (under XLA, Keras' default there, its ops fuse; a table would be copied to the
    device every step). Any other schedule, or a longer one, is evaluated as written.
    """
    from kx.backend import schedule_table

    found = None if _accelerated() else schedule_table(schedule)
    if found is None:
        return schedule
    values, n, periodic = found
    with tf.device("CPU:0"):
        table = tf.constant(values)

    def read(step):
        step = tf.convert_to_tensor(step)
        with tf.device("CPU:0"):
            step = tf.math.floormod(step, n) if periodic else tf.minimum(step, n - 1)
            return tf.gather(table, step)

    return read


def _accelerated():
    return any(d.device_type != "CPU" for d in tf.config.list_physical_devices())


def compiled(fn):
    # One tf.function per argument structure (ranks, dtypes, None): each generalises its
    # varying dimensions (a last, smaller batch) instead of retracing, without losing the rank.
    # Each is traced once by design (a new `fn` each time: say a schedule checked at each
    # compile), which TensorFlow's frequent-retracing warning would otherwise count across
    # them all (it counts by the source of `fn`), telling a loop of compiles to stop
    # "creating @tf.function repeatedly".
    graphs = {}

    def call(*args):
        if not tf.executing_eagerly():
            return fn(*args)
        key = tuple(None if a is None else (len(a.shape), a.dtype) for a in args)
        if key not in graphs:
            graphs[key] = tf.function(fn, autograph=False, reduce_retracing=True)
            graphs[key]._omit_frequent_tracing_warning = True
        return graphs[key](*args)

    return call


class TrainStep:
    def train_step(self, data):
        logs = super().train_step(data)
        return _reducible_logs(self.distribute_strategy, logs)

    def test_step(self, data):
        return _reducible_logs(self.distribute_strategy, super().test_step(data))

    def _make_function(self, step_function):
        """Keras' train/test function, without its `tf.experimental.Optional` for one step per
        call: Keras wraps a single step's logs in one, whose `get_value` rebuilds them through
        tf.data's structure code at every step. The step, its tracing, the strategy's
        reduction and the end of data (the iterator's `OutOfRangeError`, which Keras' epoch
        iterator turns into `StopIteration`; Keras' one-step function raises it too) are as
        Keras'. Several steps per call (a `tf.while_loop` that needs the Optional) and
        `run_eagerly` are left to Keras. Either keeps its last logs for `CurrentValue`.
        """
        step_function = marked(step_function)  # in each replica's thread
        if self.steps_per_execution != 1 or self.run_eagerly:
            return recording(self, super()._make_function(step_function))
        strategy = self.distribute_strategy

        def one_step(data):
            outputs = strategy.run(step_function, args=(data,))
            return _keras.reduce_step_logs(outputs, strategy)

        one_step = tf.function(one_step, autograph=False, reduce_retracing=True,
                               jit_compile=self.jit_compile)

        def one_step_on_data(data):  # tf.data gives a missing element as an empty Optional
            return one_step(tree.map_structure(
                lambda v: None if isinstance(v, tf.experimental.Optional) else v, data))

        step_on_iterator = tf.function(
            lambda iterator: one_step_on_data(iterator.get_next()),
            autograph=False, reduce_retracing=True,
        )

        def function(iterator):
            if isinstance(iterator, (tf.data.Iterator, tf.distribute.DistributedIterator)):
                return step_on_iterator(iterator)
            for data in iterator:  # a Python iterator (train_on_batch): its first batch
                return one_step_on_data(data)
            raise StopIteration

        return recording(self, function)

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
    if not _multi_worker(strategy):
        return logs
    return {k: tf.reshape(v, [1]) if tf.is_tensor(v) and v.shape.rank == 0 else v
            for k, v in logs.items()}


def _multi_worker(strategy):
    return isinstance(
        strategy, tf.distribute.MultiWorkerMirroredStrategy
    ) and _keras.in_multi_worker_mode(strategy)


def distribute_source(model, data):
    """`data` as `model.fit` / `evaluate` should receive it: a `kx.DataGenerator` with
    `shard="auto"` under a `MultiWorkerMirroredStrategy` over several workers becomes a
    `tf.distribute` dataset in which worker `i` of `n` reads only `generator.sharded((i, n))`;
    anything else is returned as it is."""
    from kx.data import DataGenerator  # kx.data imports nothing backend-specific

    strategy = _keras.distribute_strategy(model)
    if not (isinstance(data, DataGenerator) and data._auto_shard and _multi_worker(strategy)):
        return data
    epochs = itertools.count(data.epoch)  # every new iterator (Keras: one per epoch) advances

    def dataset_fn(context):
        part = data.sharded((context.input_pipeline_id, context.num_input_pipelines))
        probe = {(part.epoch, 0): part._batch(part.epoch, 0)}  # served, not loaded twice
        spec = tree.map_structure(
            lambda v: tf.TensorSpec((None, *np.shape(v)[1:]), tf.as_dtype(np.asarray(v).dtype)),
            next(iter(probe.values())),
        )

        def batches():
            part.epoch = data.epoch = next(epochs)
            for index in range(len(part)):
                batch = probe.pop((part.epoch, index), None)
                yield part._batch(part.epoch, index) if batch is None else batch

        dataset = tf.data.Dataset.from_generator(batches, output_signature=spec)
        per_replica = context.get_per_replica_batch_size(data.batch_size)
        if per_replica * context.num_input_pipelines == data.batch_size:
            return dataset.apply(tf.data.experimental.assert_cardinality(len(part)))
        return dataset.rebatch(per_replica)  # several replicas per worker: split its part

    return strategy.distribute_datasets_from_function(dataset_fn)
