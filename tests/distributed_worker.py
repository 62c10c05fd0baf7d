"""Subprocess entry points of the distribution tests (devices must be set before a backend starts).

    python tests/distributed_worker.py MODE OUT.npz [TASK_INDEX]

MODE is `mirrored` (TF, 2 logical CPUs), `data_parallel` (JAX, 2 host devices) or
`multi_worker` (TF, one of two worker processes; TF_CONFIG set by the caller). Each mode trains
the model of `train()` and writes its History and final weights to OUT.npz; the first two modes
also run the single-device reference in the same process. `multi_worker` also trains from
`generator()` and records the ids the worker loaded.
"""

import json
import os
import sys

import numpy as np

N, BATCH, EPOCHS = 64, 16, 2


def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, 6)).astype("float32")
    y = rng.integers(0, 3, N)
    recon = rng.normal(size=(N, 2)).astype("float32")
    return {"x": x}, {"logits": y, "recon": recon}


def layers():
    """The model's graph: a kernel regularizer and activity regularization (an `add_loss`)."""
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((6,), name="x")
    h = keras.layers.Dense(8, activation="tanh",
                           kernel_regularizer=keras.regularizers.L2(0.01))(inputs)
    logits = keras.layers.Dense(3, name="logits")(h)
    recon = keras.layers.ActivityRegularization(l2=0.01, name="recon")(keras.layers.Dense(2)(h))
    return {"x": inputs}, {"logits": logits, "recon": recon}


def build(l1_weight=0.3):
    """LossDefinition, ExtendedLoss, add_loss, a regularizer, loss weights and a metric:
    everything whose scaling distribution can get wrong. `l1_weight="schedule"`: a warm-up over
    the first 6 of the 8 steps instead of 0.3; a `keras.Variable`: the variable."""
    import keras

    import kx

    if isinstance(l1_weight, str) and l1_weight == "schedule":
        l1_weight = kx.schedules.LinearWarmup(6, value=0.6, start_value=0.1)
    model = kx.CustomModel(*layers())
    model.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss={
            "ce": kx.LossDefinition("logits", "logits", keras.losses.SparseCategoricalCrossentropy(
                from_logits=True)),
            "l1": kx.ExtendedLoss(l1_recon),
        },
        loss_weights={"l1": l1_weight},
        metrics={"acc": kx.MetricDefinition("logits", "logits",
                                            keras.metrics.SparseCategoricalAccuracy())},
    )
    return model


def build_stock(recon_weight=0.3, cls=None):
    """build()'s model as a keras.Model (or `cls`) compiled with the equivalent stock
    arguments, the recon loss weighted by `recon_weight`."""
    import keras

    model = (cls or keras.Model)(*layers())
    model.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss={"logits": keras.losses.SparseCategoricalCrossentropy(from_logits=True),
              "recon": keras.losses.MeanAbsoluteError()},
        loss_weights={"logits": 1.0, "recon": recon_weight},
    )
    return model


def l1_recon(inputs_targets, outputs):
    import keras

    return keras.ops.mean(keras.ops.abs(outputs["recon"] - inputs_targets["recon"]), axis=-1)


CLASS_WEIGHT = {"logits": {0: 2.0, 2: 0.5}}


def train(model, x=None, y=None, callbacks=None, class_weight=CLASS_WEIGHT):
    if x is None:
        x, y = data()
    h = model.fit(x, y, batch_size=BATCH, shuffle=False, epochs=EPOCHS, verbose=0,
                  class_weight=class_weight, callbacks=callbacks)
    return h.history, model.get_weights()


def train_annealed(class_weight=CLASS_WEIGHT):
    """build() with a `keras.Variable` l1 weight that a callback sets to 0.1 * (batch + 1)
    before each batch. The variable is created where the caller is (outside any
    distribution's scope: on one device). `class_weight=None` for a model compiled with Keras'
    own losses (Keras takes no class weights for several outputs)."""
    import keras

    weight = keras.Variable(0.1, trainable=False)

    class Anneal(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            weight.assign(0.1 * (batch + 1))

    return weight, lambda model: train(model, callbacks=[Anneal()], class_weight=class_weight)


def generator(loaded=None):
    """data() as a shuffling kx.DataGenerator over ids whose loader appends each id it loads
    to `loaded` (per epoch: the generator's epoch when the id was read)."""
    import kx

    x, y = data()

    def load_batch(ids):
        if loaded is not None:
            loaded.extend((gen.epoch, i) for i in ids)
        ids = np.asarray(ids)
        return {"x": x["x"][ids]}, {"logits": y["logits"][ids], "recon": y["recon"][ids]}

    gen = kx.DataGenerator(np.arange(N), batch_size=BATCH, seed=5, loader=load_batch,
                           loader_batched=True)
    return gen


def train_generator(model, loaded=None):
    h = model.fit(generator(loaded), shuffle=False, epochs=EPOCHS, verbose=0,
                  class_weight=CLASS_WEIGHT)
    return h.history, model.get_weights()


def save(path, history, weights, prefix=""):
    arrays = {f"{prefix}w{i}": w for i, w in enumerate(weights)}
    arrays[f"{prefix}history"] = np.array(json.dumps(history))
    return arrays


def main():
    mode, out = sys.argv[1], sys.argv[2]
    arrays = {}
    if mode == "mirrored":
        os.environ["KERAS_BACKEND"] = "tensorflow"
        import tensorflow as tf

        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2
        )
        arrays.update(save(out, *train(build()), prefix="ref_"))
        strategy = tf.distribute.MirroredStrategy(["CPU:0", "CPU:1"])
        assert strategy.num_replicas_in_sync == 2
        with strategy.scope():
            model = build()
        arrays.update(save(out, *train(model)))
        # The same batches from tf.data: class weights folded inside each replica's step.
        with strategy.scope():
            model = build()
        x, y = data()
        dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH)
        h = model.fit(dataset, epochs=EPOCHS, verbose=0, class_weight=CLASS_WEIGHT)
        arrays.update(save(out, h.history, model.get_weights(), prefix="dataset_"))
        arrays.update(save(out, *train(build("schedule")), prefix="sched_ref_"))
        with strategy.scope():
            model = build("schedule")
        arrays.update(save(out, *train(model), prefix="sched_"))
        weight, run = train_annealed()
        arrays.update(save(out, *run(build(weight)), prefix="var_ref_"))
        weight, run = train_annealed()  # outside the strategy's scope, read by both replicas
        with strategy.scope():
            model = build(weight)
        arrays.update(save(out, *run(model), prefix="var_"))
        # A global batch of 15 splits 8/7 over two replicas, and each replica averages its own
        # loss: kx refuses it with a clear error (stock Keras fails on it too, less clearly).
        x, y = data()
        x, y = {"x": x["x"][:45]}, {k: v[:45] for k, v in y.items()}
        for name, make in (("uneven_kx", build), ("uneven_keras", build_stock)):
            with strategy.scope():
                model = make()
            try:
                model.fit(x, y, batch_size=15, shuffle=False, epochs=1, verbose=0)
                arrays[name] = np.array("no error")
            except Exception as e:  # recorded for the test to read
                arrays[name] = np.array(f"{type(e).__name__}: {e}")
        # A model built outside the strategy's scope and trained inside it: kx must do
        # whatever keras.Model does (the same error, or the same run).
        for name, make in (("outside_kx", build), ("outside_keras", build_stock)):
            model = make()
            try:
                with strategy.scope():
                    h = model.fit(*data(), batch_size=BATCH, shuffle=False, epochs=1, verbose=0)
                arrays[name] = np.array(json.dumps(h.history))
            except Exception as e:  # recorded for the test to read
                arrays[name] = np.array(type(e).__name__)
    elif mode == "data_parallel":
        os.environ["KERAS_BACKEND"] = "jax"
        os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
        import jax
        import keras

        import kx

        assert len(jax.devices()) == 2
        arrays.update(save(out, *train(build()), prefix="ref_"))
        arrays.update(save(out, *train(build("schedule")), prefix="sched_ref_"))
        weight, run = train_annealed()
        arrays.update(save(out, *run(build(weight)), prefix="var_ref_"))
        weight, run = train_annealed(class_weight=None)
        arrays.update(save(out, *run(build_stock(weight, kx.CustomModel)), prefix="stock_var_ref_"))
        weight, run = train_annealed()  # on one device, given to a step on two
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=jax.devices()))
        arrays.update(save(out, *train(build())))
        arrays.update(save(out, *train(build("schedule")), prefix="sched_"))
        arrays.update(save(out, *run(build(weight)), prefix="var_"))
        weight, run = train_annealed(class_weight=None)
        arrays.update(save(out, *run(build_stock(weight, kx.CustomModel)), prefix="stock_var_"))
    elif mode == "multi_worker":
        os.environ["KERAS_BACKEND"] = "tensorflow"
        import tensorflow as tf

        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        assert strategy.num_replicas_in_sync == 2
        with strategy.scope():
            model = build()
        arrays.update(save(out, *train(model)))
        # A DataGenerator (shard="auto"): this worker loads only its half of each global batch.
        with strategy.scope():
            model = build()
        loaded = []
        arrays.update(save(out, *train_generator(model, loaded), prefix="gen_"))
        arrays["gen_loaded"] = np.array(loaded)
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    np.savez(out, **arrays)


if __name__ == "__main__":
    main()
