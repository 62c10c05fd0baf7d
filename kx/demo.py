"""The kx demo: `python -m kx.demo`.

Trains a two-output model (digit logits and a reconstruction of the image) on scikit-learn's
bundled digits, made imbalanced, with a LossDefinition, an ExtendedLoss, loss weights,
`class_weight="balanced"` and a validation split; prints every loss and metric per epoch and a
per-class report at the end. Runs on any Keras backend (`KERAS_BACKEND`), on the CPU.
"""

import argparse
import time

import keras
import numpy as np
from sklearn.datasets import load_digits
from sklearn.metrics import classification_report

import kx


def imbalanced_digits(seed=0, keep_rare=0.15):
    """Digits with classes 5-9 down-sampled to `keep_rare` of their samples, shuffled."""
    digits = load_digits()
    x = (digits.data / 16.0).astype("float32")
    y = digits.target.astype("int32")
    rng = np.random.default_rng(seed)
    keep = (y < 5) | (rng.random(len(y)) < keep_rare)
    order = rng.permutation(int(keep.sum()))
    return x[keep][order], y[keep][order]


@keras.saving.register_keras_serializable(package="kx_demo")
def reconstruction_error(inputs_targets, outputs):
    """Per-sample mean absolute error between the image and its reconstruction."""
    return keras.ops.mean(keras.ops.abs(outputs["recon"] - inputs_targets["image"]), axis=-1)


def build_model():
    image = keras.Input((64,), name="image")
    h = keras.layers.Dense(64, activation="relu")(image)
    h = keras.layers.Dense(32, activation="relu")(h)
    logits = keras.layers.Dense(10, name="logits")(h)
    recon = keras.layers.Dense(64, activation="sigmoid", name="recon")(h)
    return kx.CustomModel({"image": image}, {"logits": logits, "recon": recon})


class _EpochPrinter(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        items = sorted(logs.items())
        train = "  ".join(f"{k}={v:.4f}" for k, v in items if not k.startswith("val_"))
        val = "  ".join(f"{k}={v:.4f}" for k, v in items if k.startswith("val_"))
        print(f"epoch {epoch + 1:2d}  {train}\n          {val}")


def main(epochs=15, seed=0):
    keras.utils.set_random_seed(seed)
    x, y = imbalanced_digits(seed)
    counts = np.bincount(y, minlength=10)
    print(f"kx demo on the {keras.backend.backend()} backend: {len(y)} digits, class counts "
          f"{counts.tolist()}")
    model = build_model()
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
            "acc": kx.MetricDefinition(
                "label", "logits", keras.metrics.SparseCategoricalAccuracy()
            ),
            "cls": kx.MetricDefinition(
                "label", "logits",
                kx.metrics.ClassificationMetrics(
                    num_classes=10, metrics=("recall", "f1"), from_logits=True
                ),
            ),
        },
    )
    start = time.perf_counter()
    model.fit(
        {"image": x}, {"label": y},
        validation_split=0.25, class_weight="balanced", epochs=epochs, batch_size=32,
        verbose=0, callbacks=[_EpochPrinter()],
    )  # fmt: skip
    print(f"trained {epochs} epochs in {time.perf_counter() - start:.1f} s")
    split = int(np.floor(len(y) * 0.75))
    logits = model.predict({"image": x[split:]}, verbose=0)["logits"]
    print("validation report (classes 5-9 are the rare ones):")
    print(classification_report(y[split:], np.argmax(logits, -1), digits=3, zero_division=0))
    return model


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    main(epochs=args.epochs, seed=args.seed)
