"""Subprocess of tests/losses/test_distribution.py: every kx loss class, one SGD step of a plain
`keras.Model`, under a 2-replica strategy and on one device (devices must be configured before
the backend starts, hence a subprocess).

    python tests/losses/_distribution_worker.py MODE OUT.npz

MODE `mirrored`: TensorFlow, `tf.distribute.MirroredStrategy` over 2 logical CPUs. MODE
`data_parallel`: JAX, `keras.distribution.DataParallel` over 2 host devices. For each case the
file holds the loss and the weights after the step for: the distributed run on the global batch
(`dist`), the single-device run on the global batch (`full`), and (`mirrored` only) the
single-device runs on each replica's half (`half0`, `half1`), all from the same initial
weights.
"""

import os
import sys

import numpy as np

N, C, LR = 8, 3, 0.5
# Statistics of the whole batch: under tf.distribute each replica computes its own.
BATCH_STATISTICS = {"WeightedKappaLoss", "WeightedKappaLoss_sum", "CombinedLoss_with_kappa",
                    "Jaccard_batch", "LovaszSoftmax_batch"}


def cases():
    """name -> (loss, x, y): every kx loss class, and the batch statistics among them."""
    import keras

    import kx

    L = kx.losses
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, 4)).astype("float32")
    labels = np.array([0, 1, 2, 1, 2, 0, 1, 2])  # every class in each half
    multi = (rng.random((N, C)) < 0.4).astype("float32")
    xs = rng.normal(size=(N, 3, 3, 4)).astype("float32")
    seg = rng.integers(0, C, size=(N, 3, 3))
    mask = (rng.random((N, 3, 3, 1)) < 0.5).astype("float32")
    return {
        "SparseCategoricalCrossentropy": (
            L.SparseCategoricalCrossentropy(from_logits=True, label_smoothing=0.1), x, labels),
        "SparseCategoricalFocalCrossentropy": (
            L.SparseCategoricalFocalCrossentropy(from_logits=True), x, labels),
        "ClassWeightedCrossentropy": (
            L.ClassWeightedCrossentropy([1.0, 2.0, 0.5], from_logits=True), x, labels),
        "ClassBalancedLoss": (L.ClassBalancedLoss("focal", [10, 5, 2], from_logits=True), x,
                              labels),
        "PolyLoss": (L.PolyLoss(from_logits=True), x, labels),
        "WeightedBinaryCrossentropy": (L.WeightedBinaryCrossentropy(2.0, from_logits=True), x,
                                       multi),
        "AsymmetricLoss": (L.AsymmetricLoss(from_logits=True), x, multi),
        "GaussianKLDivergence": (L.GaussianKLDivergence(), x, np.zeros(N, "float32")),
        "WeightedKappaLoss": (L.WeightedKappaLoss(C, from_logits=True), x, labels),
        "WeightedKappaLoss_sum": (L.WeightedKappaLoss(C, from_logits=True, reduction="sum"), x,
                                  labels),
        "CombinedLoss_with_kappa": (
            L.SparseCategoricalCrossentropy(from_logits=True)
            + 0.5 * L.WeightedKappaLoss(C, from_logits=True), x, labels),
        "Jaccard": (L.Jaccard(from_logits=True), xs, seg),
        "Jaccard_batch": (L.Jaccard(from_logits=True, per_image=False), xs, seg),
        "FocalTversky": (L.FocalTversky(from_logits=True), xs, seg),
        "LogCoshDice": (L.LogCoshDice(from_logits=True), xs, seg),
        "LogDice": (L.LogDice(from_logits=True), xs, seg),
        "GeneralizedDice": (L.GeneralizedDice(from_logits=True), xs, seg),
        "LovaszSoftmax": (L.LovaszSoftmax(from_logits=True), xs, seg),
        "LovaszSoftmax_batch": (L.LovaszSoftmax(from_logits=True, per_image=False), xs, seg),
        "LovaszHinge": (L.LovaszHinge(), xs, mask),
        "keras_reference": (keras.losses.SparseCategoricalCrossentropy(from_logits=True), x,
                            labels),
    }


def units(name):
    if name == "GaussianKLDivergence":
        return 4  # [mean, log_var] of a 2-d latent
    if name == "LovaszHinge":
        return 1
    return C


def make_model(all_cases):
    """One head per loss (a Dense layer named after the case, on the input its targets need),
    so that one `fit` step trains every case: each head's weights move by its own loss only."""
    import keras

    keras.utils.set_random_seed(0)
    inputs = {"x": keras.Input((4,), name="x"), "xs": keras.Input((3, 3, 4), name="xs")}
    outputs = {}
    for name, (_, x, _) in all_cases.items():
        source = inputs["x"] if x.ndim == 2 else inputs["xs"]
        outputs[name] = keras.layers.Dense(units(name), name=name)(source)
    return keras.Model(inputs, outputs)


def step(model, all_cases, weights, part=slice(None), eager=False):
    """One SGD step from `weights` on the samples `part`: per case, the logged loss and the
    head's new weights, flattened."""
    import keras

    model.set_weights(weights)
    model.compile(optimizer=keras.optimizers.SGD(LR), run_eagerly=eager,
                  loss={name: loss for name, (loss, _, _) in all_cases.items()})
    first = next(iter(all_cases.values()))
    x = {"x": first[1][part], "xs": all_cases["Jaccard"][1][part]}
    y = {name: y[part] for name, (_, _, y) in all_cases.items()}
    # fit, not train_on_batch: only fit's data adapter splits the global batch over the
    # replicas (train_on_batch under MirroredStrategy gives every replica the whole batch).
    history = model.fit(x, y, batch_size=len(x["x"]), epochs=1, shuffle=False, verbose=0)
    return {
        name: (history.history[f"{name}_loss"][0],
               np.concatenate([w.ravel() for w in model.get_layer(name).get_weights()]))
        for name in all_cases
    }


def run(scope, halves, eager):
    """`halves`: also the single-device steps on each replica's half; `eager`: single-device
    steps eagerly (faster on TensorFlow, which traces slowly; JAX compiles every eager op)."""
    all_cases = cases()
    model = make_model(all_cases)
    weights = model.get_weights()
    runs = {}
    with scope():
        runs["dist"] = step(make_model(all_cases), all_cases, weights)
    runs["full"] = step(model, all_cases, weights, eager=eager)
    if halves:
        runs["half0"] = step(model, all_cases, weights, slice(None, N // 2), eager=eager)
        runs["half1"] = step(model, all_cases, weights, slice(N // 2, None), eager=eager)
    arrays = {}
    for run_name, results in runs.items():
        for name, (value, w) in results.items():
            arrays[f"{name}/{run_name}/loss"] = np.array(value)
            arrays[f"{name}/{run_name}/weights"] = w
    return arrays


def main():
    mode, out = sys.argv[1], sys.argv[2]
    if mode == "mirrored":
        os.environ["KERAS_BACKEND"] = "tensorflow"
        import tensorflow as tf

        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2
        )
        strategy = tf.distribute.MirroredStrategy(["CPU:0", "CPU:1"])
        assert strategy.num_replicas_in_sync == 2
        arrays = run(strategy.scope, halves=True, eager=True)
    elif mode == "data_parallel":
        os.environ["KERAS_BACKEND"] = "jax"
        os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
        import jax
        import keras

        assert len(jax.devices()) == 2
        parallel = keras.distribution.DataParallel(devices=jax.devices())
        arrays = run(parallel.scope, halves=False, eager=False)
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    np.savez(out, **arrays)


if __name__ == "__main__":
    main()
