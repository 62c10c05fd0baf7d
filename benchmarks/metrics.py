"""ClassificationMetrics vs separate Keras metrics (and torchmetrics on torch): time per batch.

Outputs compared: precision, recall, f1 (macro) from kx's single confusion state, computing also
specificity, MCC and Cohen's kappa, against keras.metrics.Precision + Recall + F1Score (which
cannot give the other three). Two measurements per class count:

- `update`: 50 eager `update_state` calls and one `result()`, per batch; fastest of 5 runs
  after a warm-up (the cost outside `fit`, e.g. in a custom loop or a callback);
- `step`: `update_state` and `result()` per step as `fit` runs them: compiled on TensorFlow
  and JAX, eager on torch (no model, no input pipeline: the metrics' own cost);
- `fit`: steps/s of `model.fit` on the same one-layer softmax model with one-hot targets,
  without metrics, with kx's and with Keras' (compiled as Keras does by default); epochs of the
  variants interleave, and each figure is its fastest epoch. The metrics' own cost is the time per
  step minus that of the model without metrics; also for kx computing only Keras' three
  outputs (precision, recall, f1).

On the torch backend torchmetrics' MulticlassStatScores-based collection is timed as well
(past 10,000 classes without MCC and kappa: torchmetrics keeps a (C, C) int64 matrix for them,
20 GB at 50,000 classes).

Many classes (`--classes 1000 10000 50000`): fewer batches and repeats (`_iterations`), and a
`state` row: the bytes of the metrics' variables (kx, Keras' three, torchmetrics' states).

Usage: KERAS_BACKEND=jax python benchmarks/metrics.py [--classes 10 100]
       [--measures update step fit state]
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import kx  # noqa: E402

NAMES = ("precision", "recall", "f1", "specificity", "mcc", "cohen_kappa")


def kx_metrics(c, from_logits=True):
    return [kx.metrics.ClassificationMetrics(num_classes=c, metrics=NAMES, from_logits=from_logits)]


def keras_metrics(c):
    # Keras' Precision/Recall are binary/multilabel: with one-hot targets and top_k=1 they give
    # micro-averaged multiclass values (Keras has no macro average for them); F1Score is macro.
    return [
        keras.metrics.Precision(top_k=1, name="precision"),
        keras.metrics.Recall(top_k=1, name="recall"),
        keras.metrics.F1Score(average="macro", name="f1"),
    ]


def _one_hot(labels, c):
    out = np.zeros((*labels.shape, c), "float32")  # np.eye(c) would take c**2 floats
    np.put_along_axis(out, labels[..., None], 1.0, axis=-1)
    return out


CLOCK = time.perf_counter  # `--clock cpu`: time.process_time


def timed(fn, repeat):
    """Fastest of `repeat` runs after a warm-up (tracing, compilation), by `CLOCK`."""
    fn()
    best = float("inf")
    for _ in range(repeat):
        start = CLOCK()
        fn()
        best = min(best, CLOCK() - start)
    return best


def _iterations(c, batches):
    """(batches per eager run, timed repeats, compiled steps): fewer at many classes, where one
    batch of scores alone holds 256 x C floats."""
    if c <= 1000:
        return batches, 5, 20
    return max(2, batches * 1000 // (10 * c)), 2, 3


def _torchmetrics_collection(c):
    from torchmetrics import MetricCollection
    from torchmetrics import classification as tmc

    members = {"precision": tmc.MulticlassPrecision(c), "recall": tmc.MulticlassRecall(c),
               "f1": tmc.MulticlassF1Score(c), "specificity": tmc.MulticlassSpecificity(c)}
    if c <= 10_000:  # a (C, C) int64 confusion matrix each
        members.update(mcc=tmc.MulticlassMatthewsCorrCoef(c), kappa=tmc.MulticlassCohenKappa(c))
    return MetricCollection(members)  # compute groups share state between compatible metrics


def state_bytes(c):
    """Bytes of the metrics' state: kx's, Keras' three (built by one update), torchmetrics'."""
    def size(metrics):
        return sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize
                   for m in metrics for v in m.variables)

    y = np.zeros((2, c), "float32")
    y[[0, 1], [0, 1]] = 1.0
    keras_set = keras_metrics(c)
    for m in keras_set:
        m.update_state(y, y)
    out = {"kx": size(kx_metrics(c)), "keras": size(keras_set)}
    if keras.backend.backend() == "torch":
        import torch

        coll = _torchmetrics_collection(c)
        coll.update(torch.as_tensor(y), torch.tensor([0, 1]))
        seen = {}
        for m in coll.values():
            for name in m._defaults:
                t = getattr(m, name)
                for part in (t if isinstance(t, list) else [t]):
                    seen[part.data_ptr()] = part.numel() * part.element_size()
        out["torchmetrics"] = sum(seen.values())  # shared (compute-group) tensors once
    return out


def bench_update(c, batches, batch_size=256):
    batches, repeat, _ = _iterations(c, batches)
    rng = np.random.default_rng(0)
    y = rng.integers(0, c, (batches, batch_size))
    logits = rng.normal(size=(batches, batch_size, c)).astype("float32")
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    onehot = _one_hot(y, c)
    ys, ps, hs = ([keras.ops.convert_to_tensor(a[i]) for i in range(batches)]
                  for a in (y, logits, onehot))
    prs = [keras.ops.convert_to_tensor(probs[i]) for i in range(batches)]

    def run_kx():
        m = kx_metrics(c)[0]
        for i in range(batches):
            m.update_state(ys[i], ps[i])
        {k: float(v) for k, v in m.result().items()}

    def run_keras():
        ms = keras_metrics(c)
        for i in range(batches):
            for m in ms:
                m.update_state(hs[i], prs[i])
        [float(keras.ops.mean(m.result())) for m in ms]

    out = {"kx": timed(run_kx, repeat) / batches, "keras": timed(run_keras, repeat) / batches}
    if keras.backend.backend() == "torch":
        import torch

        tys = [torch.as_tensor(y[i]) for i in range(batches)]
        tps = [torch.as_tensor(logits[i]) for i in range(batches)]

        def run_tm():
            coll = _torchmetrics_collection(c)
            for i in range(batches):
                coll.update(tps[i], tys[i])
            {k: float(v) for k, v in coll.compute().items()}

        out["torchmetrics"] = timed(run_tm, repeat) / batches
    return out


def bench_step(c, steps=None, batch_size=256):
    """Per-step cost of `update_state` and `result()` as `fit` runs them (Keras reads the
    results on every step): inside compiled code on TensorFlow (one tf.function of `steps`
    unrolled steps) and JAX (a jitted stateless step), eagerly on torch (Keras' torch steps are
    eager). One-hot targets and probabilities, as in `bench_fit`."""
    _, repeat, default_steps = _iterations(c, 1)
    steps = steps or default_steps
    rng = np.random.default_rng(2)
    y = _one_hot(rng.integers(0, c, (steps, batch_size)), c)
    logits = rng.normal(size=(steps, batch_size, c)).astype("float32")
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    ys = [keras.ops.convert_to_tensor(a) for a in y]
    ps = [keras.ops.convert_to_tensor(a) for a in probs]
    out = {}
    for label, metrics in (("kx", kx_metrics(c, from_logits=False)),
                           ("keras", keras_metrics(c))):
        for m in metrics:  # builds lazily-built state (F1Score) outside compiled code
            m.update_state(ys[0], ps[0])
            m.reset_state()
        out[label] = timed(_steps_runner(metrics, ys, ps), repeat + 2) / steps
    return out


def _steps_runner(metrics, ys, ps):
    def step(y, p):
        for m in metrics:
            m.update_state(y, p)
        return [m.result() for m in metrics]

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        steps = tf.function(lambda: [step(y, p) for y, p in zip(ys, ps)], autograph=False)
        return steps
    if backend == "jax":
        import jax

        variables = [v for m in metrics for v in m.variables]

        @jax.jit
        def stateless_step(values, y, p):
            with keras.StatelessScope(state_mapping=list(zip(variables, values))) as scope:
                results = step(y, p)
                return [scope.get_current_value(v) for v in variables], results

        def steps():
            values = [v.value for v in variables]
            for y, p in zip(ys, ps):
                values, results = stateless_step(values, y, p)
            jax.block_until_ready(results)

        return steps
    return lambda: [step(y, p) for y, p in zip(ys, ps)]


class _EpochTimes(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.times = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self._start)


def bench_fit(c, steps, rounds, batch_size=256):
    """Fastest epoch's steps/s of the same softmax model without metrics, with kx's and with
    Keras' metrics (one-hot targets and probabilities, which both accept); epochs interleave."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(steps * batch_size, 32)).astype("float32")
    y = np.eye(c, dtype="float32")[rng.integers(0, c, steps * batch_size)]
    variants = {"none": [], "kx": kx_metrics(c, from_logits=False), "keras": keras_metrics(c),
                "kx3": [kx.metrics.ClassificationMetrics(num_classes=c, metrics=NAMES[:3])]}
    models, timers = {}, {}
    for label, metrics in variants.items():
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((32,)), keras.layers.Dense(c),
                                  keras.layers.Softmax()])
        model.compile("sgd", "categorical_crossentropy", metrics=metrics)
        model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)  # trace / compile
        models[label], timers[label] = model, _EpochTimes()
    labels = list(models)
    for r in range(rounds):  # one epoch each, in an order that rotates every round
        for label in labels[r % len(labels):] + labels[:r % len(labels)]:
            models[label].fit(x, y, batch_size=batch_size, epochs=1, verbose=0,
                              callbacks=[timers[label]])
    return {label: steps / min(t.times) for label, t in timers.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=50, help="batches per eager update run")
    parser.add_argument("--steps", type=int, default=300, help="fit steps per epoch")
    parser.add_argument("--rounds", type=int, default=8, help="interleaved rounds of one epoch")
    parser.add_argument("--classes", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--measures", nargs="+", default=["update", "step", "fit"],
                        choices=["update", "step", "fit", "state"])
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="cpu: the process's CPU time (all threads), steadier than wall "
                             "time on a machine shared with other work; `fit` is always wall")
    args = parser.parse_args()
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    backend = keras.backend.backend()
    print(f"backend={backend}  batch=256  batches={args.batches}  steps={args.steps}  "
          f"clock={args.clock}")
    print(f"{'classes':>7} {'measure':<26} {'kx':>9} {'keras':>9} {'keras/kx':>9}"
          + (f" {'torchmetrics':>12} {'tm/kx':>6}" if backend == "torch" else ""))
    for c in args.classes:
        if "update" in args.measures:
            update_row(c, args.batches)
        if "step" in args.measures:
            step_row(c)
        if "fit" in args.measures:
            fit_rows(c, args.steps, args.rounds)
        if "state" in args.measures:
            state_row(c)


def state_row(c):
    b = state_bytes(c)
    line = f"{c:>7} {'state bytes':<26} {b['kx']:>9} {b['keras']:>9} {b['keras'] / b['kx']:>9.2f}"
    if "torchmetrics" in b:
        line += f" {b['torchmetrics']:>12} {b['torchmetrics'] / b['kx']:>6.1f}"
    print(line, flush=True)


def update_row(c, batches):
    u = bench_update(c, batches)
    line = (f"{c:>7} {'update+result ms/batch':<26} {u['kx'] * 1e3:>9.3f} "
            f"{u['keras'] * 1e3:>9.3f} {u['keras'] / u['kx']:>9.2f}")
    if "torchmetrics" in u:
        line += f" {u['torchmetrics'] * 1e3:>12.3f} {u['torchmetrics'] / u['kx']:>6.2f}"
    print(line, flush=True)


def step_row(c):
    t = bench_step(c)
    print(f"{c:>7} {'step update+result ms':<26} {t['kx'] * 1e3:>9.3f} "
          f"{t['keras'] * 1e3:>9.3f} {t['keras'] / t['kx']:>9.2f}", flush=True)


def fit_rows(c, steps, rounds):
    f = bench_fit(c, steps, rounds)
    print(f"{c:>7} {'fit steps/s (none: ' + format(f['none'], '.0f') + ')':<26} "
          f"{f['kx']:>9.1f} {f['keras']:>9.1f} {f['kx'] / f['keras']:>9.2f}", flush=True)
    # The metrics' own cost: time per step minus that of the same model without metrics.
    ms = {k: 1e3 / f[k] - 1e3 / f["none"] for k in ("kx", "keras", "kx3")}
    ratio = lambda a, b: ms[b] / ms[a] if ms[a] > 0 else float("inf")
    print(f"{c:>7} {'fit metric ms/step':<26} {ms['kx']:>9.3f} {ms['keras']:>9.3f} "
          f"{ratio('kx', 'keras'):>9.2f}", flush=True)
    # The same three outputs as Keras' set (precision, recall, f1): the logs Keras reads and
    # returns every step cost per entry.
    print(f"{c:>7} {'fit metric ms/step (3 out)':<26} {ms['kx3']:>9.3f} {ms['keras']:>9.3f} "
          f"{ratio('kx3', 'keras'):>9.2f}", flush=True)


if __name__ == "__main__":
    main()
