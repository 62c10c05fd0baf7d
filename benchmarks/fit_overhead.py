"""Steps per second of kx.CustomModel.fit with definitions vs keras.Model.fit, same run.

Variants: plain float32; with `class_weight` (a dict: the one form stock Keras accepts);
`jit_compile=True` (TensorFlow and JAX; torch.compile is left out, its C++ code generation
takes minutes on a CPU); the `mixed_bfloat16` policy.

Same model, data, optimizer and initial weights on both sides; epochs alternate between the two
models (A B A B ...) so drift in machine load hits both; the first epoch (tracing/compilation)
is not timed; each figure is the fastest epoch of each side (the least disturbed by other
load on the machine, which on a shared 2-core box swings medians by 15%). One subprocess per
backend.

`--suite loss_weights`: kx.CustomModel alone, its loss weighted by a constant (0.5), by a
non-trainable `keras.Variable` and by a schedule (`kx.schedules.LinearWarmup`), epochs of the
three interleaved; ratios against the constant.

    python benchmarks/fit_overhead.py                  # all backends
    python benchmarks/fit_overhead.py --backend jax    # one backend
    python benchmarks/fit_overhead.py --suite loss_weights
"""

import argparse
import json
import os
import subprocess
import sys

BACKENDS = ("tensorflow", "jax", "torch")


def measure(backend, epochs, rounds, samples, batch_size, suite="fit"):
    os.environ["KERAS_BACKEND"] = backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import time

    import keras
    import numpy as np
    from sklearn.datasets import load_digits

    import kx

    digits = load_digits()
    reps = -(-samples // len(digits.target))
    x = np.tile((digits.data / 16).astype("float32"), (reps, 1))[:samples]
    y = np.tile(digits.target, reps)[:samples]
    class_weight = {c: 1.0 + 0.1 * c for c in range(10)}

    def mlp(cls):
        inputs = keras.Input((64,), name="image")
        h = keras.layers.Dense(64, activation="relu")(inputs)
        return cls(inputs, keras.layers.Dense(10, name="logits")(h))

    def cnn(cls):
        inputs = keras.Input((64,), name="image")
        h = keras.layers.Reshape((8, 8, 1))(inputs)
        h = keras.layers.Conv2D(16, 3, activation="relu", padding="same")(h)
        h = keras.layers.MaxPooling2D()(h)
        h = keras.layers.Conv2D(32, 3, activation="relu", padding="same")(h)
        h = keras.layers.GlobalAveragePooling2D()(h)
        return cls(inputs, keras.layers.Dense(10, name="logits")(h))

    def compiled(build, use_kx, policy="float32", **compile_kwargs):
        keras.config.set_dtype_policy(policy)
        keras.utils.set_random_seed(0)
        model = build(kx.CustomModel if use_kx else keras.Model)
        ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        acc = keras.metrics.SparseCategoricalAccuracy(name="acc")
        if use_kx:
            model.compile(optimizer=keras.optimizers.Adam(1e-3),
                          loss={"ce": kx.LossDefinition("logits", "logits", ce)},
                          metrics={"acc": kx.MetricDefinition("logits", "logits", acc)},
                          **compile_kwargs)
        else:
            model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=ce, metrics=[acc],
                          **compile_kwargs)
        keras.config.set_dtype_policy("float32")
        return model

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.times.append(time.perf_counter() - self.start)

    steps = -(-samples // batch_size)
    rows = []
    if suite == "loss_weights":
        return loss_weight_rows(backend, mlp, cnn, x, y, epochs, rounds, steps, batch_size)
    variants = {  # name: (dtype policy, compile kwargs, class_weight)
        "plain": ("float32", {}, None),
        "class_weight": ("float32", {}, class_weight),
        "jit_compile": ("float32", {"jit_compile": True}, None),
        "mixed_bfloat16": ("mixed_bfloat16", {}, None),
    }
    if backend == "torch":  # torch.compile spends minutes generating C++ on this CPU
        del variants["jit_compile"]
    for name, build in (("mlp", mlp), ("cnn", cnn)):
        for variant, (policy, compile_kwargs, weights) in variants.items():
            models = {k: compiled(build, k == "kx", policy, **compile_kwargs)
                      for k in ("keras", "kx")}
            times = {k: [] for k in models}
            fit_kwargs = dict(batch_size=batch_size, verbose=0, shuffle=False,
                              class_weight=weights)
            for m in models.values():  # warm-up: trace/compile, not timed
                m.fit(x, y, epochs=1, **fit_kwargs)
            for _ in range(rounds):
                for k, m in models.items():
                    timer = EpochTimer()
                    timer.times = times[k]
                    m.fit(x, y, epochs=epochs, callbacks=[timer], **fit_kwargs)
            sps = {k: steps / float(np.min(t)) for k, t in times.items()}
            rows.append({"backend": backend, "model": name, "variant": variant,
                         "keras": sps["keras"], "kx": sps["kx"]})
    return rows


def loss_weight_rows(backend, mlp, cnn, x, y, epochs, rounds, steps, batch_size):
    import time

    import keras
    import numpy as np

    import kx

    def compiled(build, weight):
        keras.utils.set_random_seed(0)
        model = build(kx.CustomModel)
        ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        acc = keras.metrics.SparseCategoricalAccuracy(name="acc")
        model.compile(optimizer=keras.optimizers.Adam(1e-3),
                      loss={"ce": kx.LossDefinition("logits", "logits", ce)},
                      loss_weights={"ce": weight},
                      metrics={"acc": kx.MetricDefinition("logits", "logits", acc)})
        return model

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.times.append(time.perf_counter() - self.start)

    rows = []
    for name, build in (("mlp", mlp), ("cnn", cnn)):
        weights = {
            "constant": 0.5,
            "variable": keras.Variable(0.5, trainable=False),
            "schedule": kx.schedules.LinearWarmup(steps * epochs * rounds, start_value=0.5),
        }
        models = {k: compiled(build, w) for k, w in weights.items()}
        times = {k: [] for k in models}
        fit_kwargs = dict(batch_size=batch_size, verbose=0, shuffle=False)
        for m in models.values():  # warm-up: trace/compile, not timed
            m.fit(x, y, epochs=1, **fit_kwargs)
        for _ in range(rounds):
            for k, m in models.items():
                timer = EpochTimer()
                timer.times = times[k]
                m.fit(x, y, epochs=epochs, callbacks=[timer], **fit_kwargs)
        sps = {k: steps / float(np.min(t)) for k, t in times.items()}
        for variant in ("variable", "schedule"):
            rows.append({"backend": backend, "model": name, "variant": variant,
                         "keras": sps["constant"], "kx": sps[variant]})
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=BACKENDS)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--samples", type=int, default=16384)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--suite", choices=("fit", "loss_weights"), default="fit")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.backend and args.json:
        rows = measure(args.backend, args.epochs, args.rounds, args.samples, args.batch_size,
                       args.suite)
        print("ROWS " + json.dumps(rows))
        return
    rows = []
    for backend in [args.backend] if args.backend else BACKENDS:
        cmd = [sys.executable, __file__, "--backend", backend, "--json",
               "--epochs", str(args.epochs), "--rounds", str(args.rounds),
               "--samples", str(args.samples), "--batch-size", str(args.batch_size),
               "--suite", args.suite]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        rows += json.loads(next(ln for ln in out.splitlines() if ln.startswith("ROWS "))[5:])
    print(f"steps/s, fastest epoch of {args.epochs * args.rounds}, batch {args.batch_size}, "
          f"{args.samples} samples")
    header = ("backend", "model", "variant", "keras", "kx", "kx/keras")
    if args.suite == "loss_weights":
        header = ("backend", "model", "weight", "constant", "weight", "ratio")
    print("{:<11} {:<5} {:<15} {:>9} {:>9} {:>9}".format(*header))
    for r in rows:
        print(f"{r['backend']:<11} {r['model']:<5} {r['variant']:<15} "
              f"{r['keras']:>9.1f} {r['kx']:>9.1f} {r['kx'] / r['keras']:>9.3f}")


if __name__ == "__main__":
    main()
