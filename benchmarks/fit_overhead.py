"""Steps per second of kx.CustomModel.fit with definitions vs keras.Model.fit, same run.

Variants: plain float32; with `class_weight` (a dict: the one form stock Keras accepts);
`jit_compile=True` (TensorFlow and JAX; torch.compile is left out, its C++ code generation
takes minutes on a CPU); the `mixed_bfloat16` policy.

Same model, data, optimizer and initial weights on both sides. The first fit of each model
(tracing/compilation) is not timed. Then the models' fits run in threads that take turns of
`--turn` steps (see `interleaved_times`), so that both see the same machine: on a shared CPU
whose speed drifts by up to 2x within seconds, comparing each side's fastest or median epoch
over minutes read 0.8-1.3 for identical work. Reported: steps/s of each side over all turns,
the ratio of those, and the median and quartiles of the turns' ratios. One subprocess per
backend.

`--suite loss_weights`: kx.CustomModel alone (a digits MLP and CNN, one loss; and the loss-weights
guide's VAE, its KL term weighted: `--models`), its loss weighted by a constant (0.5), by a
non-trainable `keras.Variable` and by a schedule (`kx.schedules.LinearWarmup`, in its ramp
throughout), with a second constant-weight model as an A/A control, and a constant-weight model
that logs one more scalar each step (`LoggedConstant`: what a non-constant weight's
`<name>_weight` log adds, without the weight), the five fits taking turns; ratios against the
constant, and the variable's and the schedule's also against the logging constant (the weight's
own cost). `--suite loss_weights_steps`: the same models' training steps alone, called in turn
on each batch (`step_times`). Both build each weight's model `--instances` times (3) and average
each turn over them: two identical models differed by up to 5% over a whole run on this CPU
(where their state and compiled code happen to lie), as much as one model per weight could tell.

    python benchmarks/fit_overhead.py                  # all backends
    python benchmarks/fit_overhead.py --backend jax    # one backend
    python benchmarks/fit_overhead.py --suite loss_weights
    python benchmarks/fit_overhead.py --suite loss_weights_steps   # the steps alone
    python benchmarks/fit_overhead.py --suite loss_weights_steps --jit-compile  # XLA
"""

import argparse
import json
import os
import subprocess
import sys

BACKENDS = ("tensorflow", "jax", "torch")


def interleaved_times(models, x, y, epochs, turn, fit_kwargs):
    """Seconds per turn of `turn` training steps, for each model's `fit` (one thread each).

    The fits take turns: a callback at each `turn`-th batch hands over to the next model and
    waits for its own turn, so exactly one fit runs at any time, and turn i of every model falls
    within the same fraction of a second (round i, in an order drawn anew each round). A
    turn's time covers everything `fit` does for those steps (data, step, callbacks, epoch
    ends) until their computation has finished (JAX: see `_finisher`); each fit's set-up
    before its first batch is left out. Returns {name: [seconds per turn]}, entries paired by
    position.
    """
    import itertools
    import threading
    import time

    import keras

    names = list(models)
    shuffled = _shuffled(names)
    finish = _finisher()
    for m in models.values():  # the first fit traces/compiles; not timed
        m.fit(x, y, epochs=1, **fit_kwargs)
    turns = {k: threading.Semaphore(0) for k in names}
    ready = threading.Barrier(len(names) + 1)
    times = {k: [] for k in names}

    def rounds():  # each model once per round, in an order drawn anew: see `_shuffled`
        for _ in itertools.count():
            yield from shuffled()

    order = rounds()
    first = next(order)  # the first turn, started below

    class Turns(keras.callbacks.Callback):
        def __init__(self, name):
            super().__init__()
            self.name, self.steps, self.start = name, 0, None

        def on_train_batch_begin(self, batch, logs=None):
            if self.steps == 0:
                ready.wait()
            if self.steps % turn == 0:
                self.hand_over()
                turns[self.name].acquire()
                self.start = time.perf_counter()
            self.steps += 1

        def on_train_end(self, logs=None):
            self.hand_over()

        def hand_over(self):
            if self.start is not None:
                finish(self.model)
                times[self.name].append(time.perf_counter() - self.start)
                turns[next(order)].release()  # one fit runs at a time: no lock needed

    errors = []

    def run(name):
        try:
            models[name].fit(x, y, epochs=epochs, callbacks=[Turns(name)], **fit_kwargs)
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            errors.append(e)
            ready.abort()
            for s in turns.values():
                s.release()

    threads = [threading.Thread(target=run, args=(k,)) for k in names]
    for t in threads:
        t.start()
    ready.wait()
    turns[first].release()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return times


def _shuffled(names):
    """A function that returns `names` in a new random order each call (seeded: the same orders
    each run). Rotating one order instead (ABC, BCA, CAB) has B run right after A in two rounds
    of three, and where a model's turn follows another's moved its time on this CPU (its caches
    hold the other's state and code)."""
    import random

    rng = random.Random(0)

    def shuffled():
        order = list(names)
        rng.shuffle(order)
        return order

    return shuffled


def _finisher():
    """A function that waits for a model's dispatched steps to finish. JAX dispatches steps
    asynchronously (its fit runs ahead of the computation): without the wait a turn's work would
    spill into the next model's turn. TensorFlow's and torch's CPU steps return when done."""
    import keras

    if keras.backend.backend() != "jax":
        return lambda model: None
    import jax

    def finish(model):
        model.jax_state_sync()  # the in-flight state into the variables, then wait for it
        jax.block_until_ready([v.value for v in model.variables])

    return finish


def step_times(models, x, y, epochs, batch_size, block=1):
    """Seconds of each training step alone: each model's `train_function` (what `fit` calls once
    per batch) called in turn on the same batch, in an order drawn anew for each batch, until
    its result is ready. No data pipeline, callbacks or logs conversion, nor (JAX) fit's own
    handling of the state between steps: the ratio of two models is what their steps differ by.
    With `block` > 1 each model's turn is `block` consecutive steps (on the same batch), timed
    together: its state stays in the caches, as in a fit. JAX: each round starts every model
    from copies of its state taken after the first fit (new buffers: a step updates its donated
    state in place, and where a model's buffers happen to lie moved its steps' time by up to 5%
    for the whole run on this CPU; new ones each round average that out). Returns
    {name: [seconds per turn]}."""
    import time

    import keras

    backend = keras.backend.backend()
    names = list(models)
    for m in models.values():  # builds the optimizer and the metrics; not timed
        m.fit(x, y, epochs=1, batch_size=batch_size, verbose=0)
    def batch_of(data, i):  # an array or a dict of arrays
        if isinstance(data, dict):
            return {k: batch_of(v, i) for k, v in data.items()}
        return keras.ops.convert_to_tensor(data[i:i + batch_size])

    batches = [(batch_of(x, i), batch_of(y, i)) for i in range(0, len(x), batch_size)]
    if backend == "jax":
        import jax
        import jax.numpy as jnp

        def state_of(m):  # the state tuple of Keras' JAX fit, as copies (the step donates it)
            groups = (m.trainable_variables, m.non_trainable_variables, m.optimizer.variables,
                      m.metrics_variables)  # fmt: skip
            return tuple([jnp.array(v.value, copy=True) for v in group] for group in groups)

        templates = {k: state_of(m) for k, m in models.items()}  # never given to a step
        states = {}

        def new_round():  # the same values in new buffers: see the docstring
            for k, template in templates.items():
                states[k] = jax.tree_util.tree_map(lambda a: jnp.array(a, copy=True), template)

        def step(k, batch):
            logs, states[k] = models[k].train_function(states[k], iter([(*batch, None)]))
            jax.block_until_ready(logs)
    elif backend == "tensorflow":

        def step(k, batch):  # a Python iterator: Keras runs its one-step tf.function
            models[k].train_function(iter([batch]))
    else:

        def step(k, batch):  # eager torch: the step itself
            models[k].train_function([batch])
    if backend != "jax":

        def new_round():  # variables are updated in place
            pass

    new_round()
    for k in names:  # on JAX the first call on these state arrays compiles the step again
        for _ in range(3):
            step(k, batches[0])
    times = {k: [] for k in names}
    shuffled = _shuffled(names)
    for batch in (batches * epochs)[::block]:
        new_round()
        for k in shuffled():
            start = time.perf_counter()
            for _ in range(block):
                step(k, batch)
            times[k].append(time.perf_counter() - start)
    return times


def ratio_row(steps, times, reference, other, steps_per_turn):
    """Steps/s of each side over all its turns, the ratio of those (other's speed relative to
    reference's), the median and quartiles of the turns' ratios (the median ignores the few
    turns a hiccup of the machine or of a runtime made 3-10x longer, which the totals keep),
    and the median of the turns' differences per step in microseconds (other's time minus
    reference's: what other costs a step, whatever the step's length)."""
    import numpy as np

    a, b = np.asarray(times[reference]), np.asarray(times[other])
    q1, median, q3 = np.percentile(a / b, [25, 50, 75])
    return {"keras": steps / float(a.sum()), "kx": steps / float(b.sum()),
            "ratio": float(a.sum() / b.sum()), "median": float(median),
            "q1": float(q1), "q3": float(q3),
            "us": float(np.median(b - a)) / steps_per_turn * 1e6}


def measure(backend, epochs, turn, samples, batch_size, suite="fit", block=1, instances=1,
            models_of_suite=("mlp", "cnn", "vae"), jit_compile="auto"):
    os.environ["KERAS_BACKEND"] = backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
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

    class LoggedConstant(kx.backend.CurrentValue):
        """One more scalar logged each step, as kx's `<name>_weight` log of a non-constant
        weight (the same metric), without any weight."""

        def __init__(self):
            super().__init__("logged")

        def update_state(self, y_true, y_pred, sample_weight=None):
            super().update_state(keras.ops.convert_to_tensor(0.5, "float32"))

    @keras.saving.register_keras_serializable(package="fit_overhead")
    class Sampling(keras.layers.Layer):
        """z = mean + exp(log_var / 2) * eps, eps ~ N(0, 1)."""

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.seed = keras.random.SeedGenerator(0)

        def call(self, z_mean, z_log_var):
            eps = keras.random.normal(keras.ops.shape(z_mean), seed=self.seed)
            return z_mean + keras.ops.exp(0.5 * z_log_var) * eps

    def kl_divergence(inputs_targets, outputs):
        mean, log_var = outputs["z_mean"], outputs["z_log_var"]
        return -0.5 * keras.ops.sum(
            1 + log_var - keras.ops.square(mean) - keras.ops.exp(log_var), axis=-1)

    def vae(loss_weight, log):
        """The loss-weights guide's VAE on digits: a reconstruction loss and a KL divergence,
        the weight on the KL term (its warm-up is the issue's case)."""
        keras.utils.set_random_seed(0)
        image = keras.Input((64,), name="image")
        h = keras.layers.Dense(32, activation="relu")(image)
        z_mean = keras.layers.Dense(2, name="z_mean")(h)
        z_log_var = keras.layers.Dense(2, name="z_log_var")(h)
        h = keras.layers.Dense(32, activation="relu")(Sampling()(z_mean, z_log_var))
        recon = keras.layers.Dense(64, activation="sigmoid", name="recon")(h)
        model = kx.CustomModel(image, {"recon": recon, "z_mean": z_mean, "z_log_var": z_log_var})
        metrics = {"logged": kx.MetricDefinition("pixels", "recon", LoggedConstant())}
        model.compile(optimizer=keras.optimizers.Adam(1e-3),
                      loss={"recon": kx.LossDefinition("pixels", "recon", "binary_crossentropy"),
                            "kl": kx.ExtendedLoss(kl_divergence)},
                      loss_weights={"kl": loss_weight}, metrics=metrics if log else None,
                      jit_compile=jit_compile)
        return model

    def compiled(build, use_kx, policy="float32", loss_weight=None, log=False,
                 **compile_kwargs):
        keras.config.set_dtype_policy(policy)
        keras.utils.set_random_seed(0)
        model = build(kx.CustomModel if use_kx else keras.Model)
        ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        acc = keras.metrics.SparseCategoricalAccuracy(name="acc")
        if use_kx:
            weights = None if loss_weight is None else {"ce": loss_weight}
            metrics = {"acc": kx.MetricDefinition("logits", "logits", acc)}
            if log:
                metrics["logged"] = kx.MetricDefinition("logits", "logits", LoggedConstant())
            model.compile(optimizer=keras.optimizers.Adam(1e-3),
                          loss={"ce": kx.LossDefinition("logits", "logits", ce)},
                          loss_weights=weights, metrics=metrics, **compile_kwargs)
        else:
            model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=ce, metrics=[acc],
                          **compile_kwargs)
        keras.config.set_dtype_policy("float32")
        return model

    rows = []
    fit_kwargs = dict(batch_size=batch_size, verbose=0, shuffle=False)
    steps = epochs * -(-samples // batch_size)
    if suite in ("loss_weights", "loss_weights_steps"):
        families = {  # name: (model of a weight, targets)
            "mlp": (lambda w, log: compiled(mlp, True, loss_weight=w, log=log,
                                            jit_compile=jit_compile), y),
            "cnn": (lambda w, log: compiled(cnn, True, loss_weight=w, log=log,
                                            jit_compile=jit_compile), y),
            "vae": (vae, {"pixels": x}),
        }
        for name in models_of_suite:
            make, targets = families[name]
            weights = {
                "constant": lambda: 0.5,
                "constant A/A": lambda: 0.5,  # another identical model: the method's own spread
                "variable": lambda: keras.Variable(0.5, trainable=False),
                "schedule": lambda: kx.schedules.LinearWarmup(10**6, start_value=0.5),
                "constant + log": lambda: 0.5,
            }
            models = {(k, i): make(w(), k == "constant + log")
                      for i in range(instances) for k, w in weights.items()}
            if suite == "loss_weights":
                times = interleaved_times(models, x, targets, epochs, turn, fit_kwargs)
            else:
                times = step_times(models, x, targets, epochs, batch_size, block)
            times = {k: np.mean([times[k, i] for i in range(instances)], axis=0) for k in weights}
            for reference, variant in (
                ("constant", "constant A/A"), ("constant", "variable"), ("constant", "schedule"),
                ("constant", "constant + log"), ("constant + log", "variable"),
                ("constant + log", "schedule"),
            ):
                rows.append({"backend": backend, "model": name, "variant": variant,
                             "reference": reference,
                             **ratio_row(steps, times, reference, variant,
                                         turn if suite == "loss_weights" else block)})
        return rows
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
            times = interleaved_times(models, x, y, epochs, turn,
                                      dict(fit_kwargs, class_weight=weights))
            rows.append({"backend": backend, "model": name, "variant": variant,
                         **ratio_row(steps, times, "keras", "kx", turn)})
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=BACKENDS)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--turn", type=int, default=8, help="steps per turn of each fit")
    parser.add_argument("--samples", type=int, default=16384)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--suite", choices=("fit", "loss_weights", "loss_weights_steps"),
                        default="fit")
    parser.add_argument("--block", type=int, default=1,
                        help="loss_weights_steps: consecutive steps per model's turn")
    parser.add_argument("--instances", type=int, default=3,
                        help="loss weights: models built per weight, their turns averaged")
    parser.add_argument("--models", default="mlp,cnn,vae",
                        help="loss weights: the models, of mlp, cnn, vae (comma-separated)")
    parser.add_argument("--jit-compile", action="store_true",
                        help="loss weights: compile with jit_compile=True (on a CPU, Keras' "
                             "'auto' leaves TensorFlow's XLA off)")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.backend and args.json:
        rows = measure(args.backend, args.epochs, args.turn, args.samples, args.batch_size,
                       args.suite, args.block, args.instances, args.models.split(","),
                       True if args.jit_compile else "auto")
        print("ROWS " + json.dumps(rows))
        return
    rows = []
    for backend in [args.backend] if args.backend else BACKENDS:
        cmd = [sys.executable, __file__, "--backend", backend, "--json",
               "--epochs", str(args.epochs), "--turn", str(args.turn),
               "--samples", str(args.samples), "--batch-size", str(args.batch_size),
               "--suite", args.suite, "--block", str(args.block),
               "--instances", str(args.instances), "--models", args.models,
               *(["--jit-compile"] if args.jit_compile else [])]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        rows += json.loads(next(ln for ln in out.splitlines() if ln.startswith("ROWS "))[5:])
    if args.jit_compile:
        print("jit_compile=True")
    if args.suite == "loss_weights_steps":
        print(f"steps/s over {args.epochs} epochs of {args.samples} samples, batch "
              f"{args.batch_size}, steps alone (each model's train_function in turns of "
              f"{args.block} step(s) on the same batch), {args.instances} model(s) per weight, "
              "each turn averaged over them; ratio: of the totals; median [quartiles]: of the "
              "turns' ratios; us/step: median of the turns' differences, per step")
    else:
        per_weight = (f" ({args.instances} model(s) per weight, each turn averaged over them)"
                      if args.suite == "loss_weights" else "")
        print(f"steps/s over {args.epochs} epochs of {args.samples} samples, batch "
              f"{args.batch_size}, fits taking turns of {args.turn} steps{per_weight}; ratio: "
              "of the totals; median [quartiles]: of the turns' ratios; us/step: median of the "
              "turns' differences, per step")
    header = ("backend", "model", "variant", "keras", "kx", "kx/keras", "median", "quartiles")
    if args.suite != "fit":
        header = ("backend", "model", "weight", "reference", "weight", "ratio", "median",
                  "quartiles")
        for r in rows:
            r["variant"] = f"{r['variant']} / {r['reference']}"
    print("{:<11} {:<5} {:<31} {:>9} {:>9} {:>9} {:>7}  {:<16} {:>7}".format(*header,
                                                                           "us/step"))
    for r in rows:
        print(f"{r['backend']:<11} {r['model']:<5} {r['variant']:<31} "
              f"{r['keras']:>9.1f} {r['kx']:>9.1f} {r['ratio']:>9.3f} {r['median']:>7.3f}  "
              f"[{r['q1']:.3f}, {r['q3']:.3f}] {r['us']:>7.1f}")


if __name__ == "__main__":
    main()
