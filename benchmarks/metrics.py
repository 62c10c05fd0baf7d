"""ClassificationMetrics vs separate Keras metrics (and torchmetrics on torch): time per batch.

Outputs compared: precision, recall, f1 (macro) from kx's single confusion state, computing also
specificity, MCC and Cohen's kappa, against keras.metrics.Precision + Recall + F1Score (which
cannot give the other three). Two measurements per class count:

- `update`: one `update_state` per batch plus `result()`, eager (the cost outside `fit`);
- `fit`: steps/s of `model.fit` on a one-layer model, compiled as Keras does by default.

On the torch backend torchmetrics' MulticlassStatScores-based collection is timed as well.

Usage: KERAS_BACKEND=jax python benchmarks/metrics.py [--batches 50] [--classes 10 100]
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import kx  # noqa: E402

NAMES = ("precision", "recall", "f1", "specificity", "mcc", "cohen_kappa")


def kx_metrics(c):
    return [kx.metrics.ClassificationMetrics(num_classes=c, metrics=NAMES, from_logits=True)]


def keras_metrics(c):
    # Keras' Precision/Recall are binary/multilabel: with one-hot targets and top_k=1 they give
    # micro-averaged multiclass values (Keras has no macro average for them); F1Score is macro.
    return [
        keras.metrics.Precision(top_k=1, name="precision"),
        keras.metrics.Recall(top_k=1, name="recall"),
        keras.metrics.F1Score(average="macro", name="f1"),
    ]


def timed(fn, repeat):
    fn()  # warm-up (compilation)
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat


def bench_update(c, batches, batch_size=256):
    rng = np.random.default_rng(0)
    y = rng.integers(0, c, (batches, batch_size))
    logits = rng.normal(size=(batches, batch_size, c)).astype("float32")
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    onehot = np.eye(c, dtype="float32")[y]
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

    out = {"kx": timed(run_kx, 3) / batches, "keras": timed(run_keras, 3) / batches}
    if keras.backend.backend() == "torch":
        import torch
        import torchmetrics
        from torchmetrics import classification as tmc

        tys = [torch.as_tensor(y[i]) for i in range(batches)]
        tps = [torch.as_tensor(logits[i]) for i in range(batches)]

        def run_tm():
            coll = torchmetrics.MetricCollection({
                "precision": tmc.MulticlassPrecision(c), "recall": tmc.MulticlassRecall(c),
                "f1": tmc.MulticlassF1Score(c), "specificity": tmc.MulticlassSpecificity(c),
                "mcc": tmc.MulticlassMatthewsCorrCoef(c), "kappa": tmc.MulticlassCohenKappa(c),
            })  # compute groups share state between compatible metrics
            for i in range(batches):
                coll.update(tps[i], tys[i])
            {k: float(v) for k, v in coll.compute().items()}

        out["torchmetrics"] = timed(run_tm, 3) / batches
    return out


def bench_fit(c, steps, batch_size=256):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(steps * batch_size, 32)).astype("float32")
    y = rng.integers(0, c, steps * batch_size)
    out = {}
    for label, metrics, targets in (("kx", kx_metrics(c), y),
                                    ("keras", keras_metrics(c), np.eye(c, dtype="float32")[y])):
        if label == "kx":  # logits, sparse labels
            model = keras.Sequential([keras.Input((32,)), keras.layers.Dense(c)])
            loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        else:  # Keras' metrics need probabilities and one-hot targets
            model = keras.Sequential([keras.Input((32,)), keras.layers.Dense(c),
                                      keras.layers.Softmax()])
            loss = "categorical_crossentropy"
        model.compile("sgd", loss, metrics=metrics)
        model.fit(x, targets, batch_size=batch_size, epochs=1, verbose=0)  # compile
        start = time.perf_counter()
        model.fit(x, targets, batch_size=batch_size, epochs=2, verbose=0)
        out[label] = 2 * steps / (time.perf_counter() - start)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=50)
    parser.add_argument("--classes", type=int, nargs="+", default=[10, 100])
    args = parser.parse_args()
    backend = keras.backend.backend()
    print(f"backend={backend}  batch=256  batches={args.batches}")
    print(f"{'classes':>7} {'measure':<22} {'kx':>10} {'keras':>10} {'keras/kx':>9}"
          + (f" {'torchmetrics':>12} {'tm/kx':>6}" if backend == "torch" else ""))
    for c in args.classes:
        u = bench_update(c, args.batches)
        line = (f"{c:>7} {'update+result ms/batch':<22} {u['kx'] * 1e3:>10.3f} "
                f"{u['keras'] * 1e3:>10.3f} {u['keras'] / u['kx']:>9.2f}")
        if "torchmetrics" in u:
            line += f" {u['torchmetrics'] * 1e3:>12.3f} {u['torchmetrics'] / u['kx']:>6.2f}"
        print(line, flush=True)
        f = bench_fit(c, args.batches)
        print(f"{c:>7} {'fit steps/s':<22} {f['kx']:>10.1f} {f['keras']:>10.1f} "
              f"{f['kx'] / f['keras']:>9.2f}", flush=True)


if __name__ == "__main__":
    main()
