"""The kx demo: `python -m kx.demo`.

Why kx exists, on scikit-learn's bundled digits with classes 5-9 cut to a few samples each: the
same two-output model (digit logits and a reconstruction of the image) is trained the stock Keras
way and the kx way. Stock Keras refuses `class_weight` for a model with two outputs, so its user
trains without; kx takes `class_weight="balanced"`, weighs the classification loss only, and logs
every loss and per-class metric, keeps the best model (`kx.callbacks.BestModel`), prints a few
validation samples each epoch (`kx.callbacks.PrintEvaluate`) and reads a per-class report from
its metric's state (`kx.callbacks.ClassificationReport`). The per-class recall on the validation
split is printed side by side. Runs on any Keras backend (`KERAS_BACKEND`), on the CPU.
"""

import argparse
import json
import os
import tempfile
import time

import keras
import numpy as np
from sklearn.datasets import load_digits
from sklearn.metrics import recall_score

import kx

RARE = (5, 6, 7, 8, 9)


def imbalanced_digits(seed=0, keep_rare=0.06):
    """Digits with classes 5-9 down-sampled to `keep_rare` of their samples, shuffled."""
    digits = load_digits()
    x = (digits.data / 16.0).astype("float32")
    y = digits.target.astype("int32")
    rng = np.random.default_rng(seed)
    keep = ~np.isin(y, RARE) | (rng.random(len(y)) < keep_rare)
    order = rng.permutation(int(keep.sum()))
    return x[keep][order], y[keep][order]


@keras.saving.register_keras_serializable(package="kx_demo")
def reconstruction_error(inputs_targets, outputs):
    """Per-sample mean absolute error between the image and its reconstruction."""
    return keras.ops.mean(keras.ops.abs(outputs["recon"] - inputs_targets["image"]), axis=-1)


@keras.saving.register_keras_serializable(package="kx_demo")
class DigitsModel(kx.CustomModel):
    """The kx model, with tfaip's per-sample print for `kx.callbacks.PrintEvaluate`."""

    def print_evaluate(self, sample, print_fn=print):
        logits = sample["outputs"]["logits"]
        p = np.exp(logits - logits.max())
        p /= p.sum()
        pred, truth = int(p.argmax()), int(sample["targets"]["label"])
        print_fn(f"PRED/GT: {pred} {'==' if pred == truth else '!='} {truth} (p = {p[pred]:.2f})")


def build_model(cls, seed):
    keras.utils.set_random_seed(seed)
    image = keras.Input((64,), name="image")
    h = keras.layers.Dense(64, activation="relu")(image)
    h = keras.layers.Dense(32, activation="relu")(h)
    logits = keras.layers.Dense(10, name="logits")(h)
    recon = keras.layers.Dense(64, activation="sigmoid", name="recon")(h)
    return cls({"image": image}, {"logits": logits, "recon": recon})


def train_stock(x, y, epochs, seed):
    """What a Keras user writes without kx, and what Keras answers."""
    model = build_model(keras.Model, seed)
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss={"logits": keras.losses.SparseCategoricalCrossentropy(from_logits=True),
              "recon": "mae"},
        loss_weights={"logits": 1.0, "recon": 0.5},
        metrics={"logits": ["accuracy"]},
    )  # fmt: skip
    data = ({"image": x}, {"logits": y, "recon": x})
    weights = kx.class_weights(y)
    try:
        model.fit(*data, class_weight=weights, epochs=1, verbose=0)
        refused = None
    except ValueError as e:
        refused = str(e).splitlines()[0]
    model = build_model(keras.Model, seed)  # a fresh start: the refused fit may have built it
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss={"logits": keras.losses.SparseCategoricalCrossentropy(from_logits=True),
              "recon": "mae"},
        loss_weights={"logits": 1.0, "recon": 0.5},
    )  # fmt: skip
    model.fit(*data, validation_split=0.25, epochs=epochs, batch_size=32, verbose=0)
    return model, refused


def train_kx(x, y, epochs, seed, directory, verbose=True):
    """The kx way: class weights, every loss and per-class metric logged, the best model kept,
    a few validation samples printed each epoch and a per-class report at the end."""
    model = build_model(DigitsModel, seed)
    scores = kx.metrics.ClassificationMetrics(
        num_classes=10, metrics=("recall", "f1"), from_logits=True
    )
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss={
            "ce": kx.LossDefinition(
                "label", "logits", keras.losses.SparseCategoricalCrossentropy(from_logits=True)
            ),
            "recon": kx.ExtendedLoss(reconstruction_error),
        },
        loss_weights={"ce": 1.0, "recon": 0.5},
        metrics={
            "acc": kx.MetricDefinition("label", "logits", "accuracy"),
            "cls": kx.MetricDefinition("label", "logits", scores),
        },
    )
    split = int(np.floor(len(y) * 0.75))  # the last quarter validates, as validation_split
    train = ({"image": x[:split]}, {"label": y[:split]})
    validation = ({"image": x[split:]}, {"label": y[split:]})
    report = kx.callbacks.ClassificationReport(scores, print_fn=None)
    callbacks = [
        kx.callbacks.BestModel(directory),  # best.keras, last.keras and best.json
        kx.callbacks.PrintEvaluate(2, print_fn=_indented if verbose else lambda line: None),
        report,
    ]
    if verbose:
        callbacks.insert(0, _EpochPrinter())
    history = model.fit(
        *train, validation_data=validation, class_weight="balanced", epochs=epochs,
        batch_size=32, verbose=0, callbacks=callbacks,
    )  # fmt: skip
    return model, history, report


def _indented(line):
    print(f"            {line}")


class _EpochPrinter(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        shown = ("loss", "ce", "recon", "acc", "cls_recall", "cls_f1")
        train = "  ".join(f"{k}={logs[k]:.3f}" for k in shown if k in logs)
        val = "  ".join(f"{k}={logs['val_' + k]:.3f}" for k in shown if "val_" + k in logs)
        print(f"  epoch {epoch + 1:2d}  {train}\n            val: {val}")


def recall_table(y_true, stock_pred, kx_pred, train_counts):
    stock = recall_score(y_true, stock_pred, labels=range(10), average=None, zero_division=0)
    ours = recall_score(y_true, kx_pred, labels=range(10), average=None, zero_division=0)
    lines = ["class  train samples  recall stock  recall kx"]
    for c in range(10):
        rare = "  (rare)" if c in RARE else ""
        lines.append(f"{c:5d}  {train_counts[c]:13d}  {stock[c]:12.3f}  {ours[c]:9.3f}{rare}")
    rare = list(RARE)
    lines.append(f"rare classes, mean recall: stock {stock[rare].mean():.3f}, "
                 f"kx {ours[rare].mean():.3f}")
    return "\n".join(lines), stock, ours


def main(epochs=15, seed=0):
    x, y = imbalanced_digits(seed)
    split = int(np.floor(len(y) * 0.75))  # fit's validation_split takes the last quarter
    train_counts = np.bincount(y[:split], minlength=10)
    print(f"kx demo on the {keras.backend.backend()} backend: {len(y)} digits; training class "
          f"counts {train_counts.tolist()} (classes 5-9 cut to a few samples)")
    start = time.perf_counter()
    stock, refused = train_stock(x, y, epochs, seed)
    print(f"\nstock keras.Model, {epochs} epochs: ", end="")
    print(f"fit(class_weight=...) was refused:\n  {refused}\n  so it trains without class "
          "weights." if refused else "trained with class weights.")
    print(f"\nkx.CustomModel, {epochs} epochs, class_weight='balanced' (two validation "
          "samples printed per epoch by kx.callbacks.PrintEvaluate):")
    directory = tempfile.mkdtemp(prefix="kx_demo_")
    model, _, report = train_kx(x, y, epochs, seed, directory)
    elapsed = time.perf_counter() - start
    x_val, y_val = {"image": x[split:]}, y[split:]
    stock_pred = np.argmax(stock.predict(x_val, verbose=0)["logits"], -1)
    kx_pred = np.argmax(model.predict(x_val, verbose=0)["logits"], -1)
    table, _, _ = recall_table(y_val, stock_pred, kx_pred, train_counts)
    print(f"\nper-class recall on the validation split ({len(y_val)} digits):\n{table}")
    with open(os.path.join(directory, "best.json")) as f:
        best = json.load(f)
    print(f"\nkx.callbacks.BestModel kept epoch {best['epoch'] + 1} ({best['monitor']} = "
          f"{best['value']:.4f}) in {directory}/best.keras")
    print(f"kx.callbacks.ClassificationReport of the last epoch: macro F1 "
          f"{report.report['macro avg']['f1-score']:.3f}, accuracy {report.report['accuracy']:.3f}")
    print(f"\nboth models trained in {elapsed:.1f} s")
    return model


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    main(epochs=args.epochs, seed=args.seed)
