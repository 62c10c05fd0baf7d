"""Evaluator: Python metrics over the validation set at each epoch end, logged as `val_<name>`."""

import keras
import numpy as np

from kx import _structure
from kx.callbacks import _sources
from kx.metrics.python_metric import PythonMetric

__all__ = ["Evaluator"]


class Evaluator(keras.callbacks.Callback):
    """Computes `kx.metrics.PythonMetric`s on validation data and logs them as `val_<name>`.

    At the end of every epoch the model predicts `validation_data` (arrays with `model.predict`,
    a data set batch by batch), each metric is reset, fed the targets and outputs as NumPy
    arrays and its result is written into the epoch logs: `val_<name>` for a float,
    `val_<name>_<key>` for a dict.

    Keras calls callbacks in list order with one shared logs dict, so the callbacks listed
    *after* the Evaluator see its keys: list it before `EarlyStopping`, `ModelCheckpoint`,
    `kx.callbacks.BestModel`, `CSVLogger` or `TensorBoard` when they read them (Keras appends
    `History` and the progress bar last, so they always do). `kx.CustomModel.fit` puts the
    Evaluator of its compiled Python metrics first.

    Args:
        metrics: a dict `{name: metric}`. A metric is a `kx.metrics.PythonMetric` (the model
            then has one output and one target) or a `kx.MetricDefinition(target, output,
            python_metric)` naming which target and output it reads.
        validation_data: what `fit(validation_data=...)` takes: a tuple `(x, y)` or `(x, y,
            sample_weight)` of arrays or dicts of arrays (`sample_weight` may be a dict keyed
            by target), a `keras.utils.PyDataset` (`kx.DataGenerator`), a `tf.data.Dataset`, a
            torch `DataLoader`, or a generator of such tuples (read once: give an endless one
            with `steps`).
        batch_size: batch size of `model.predict` for arrays. Defaults to `None` (Keras'
            default, 32).
        verbose: verbosity of `model.predict`. Defaults to `0`.
        steps: number of batches read from a data set per epoch. Defaults to `None` (all of a
            finite one).

    Example:

    >>> import keras, numpy as np, kx
    >>> x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    >>> y = (x[:, 0] > 0).astype("int32")
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, "sigmoid")])
    >>> model.compile("adam", "binary_crossentropy")
    >>> evaluator = kx.callbacks.Evaluator({"auc": kx.metrics.RocAuc()}, (x, y))
    >>> stop = keras.callbacks.EarlyStopping(monitor="val_auc", mode="max")
    >>> history = model.fit(x, y, epochs=2, verbose=0, callbacks=[evaluator, stop])
    >>> len(history.history["val_auc"])
    2
    """

    def __init__(self, metrics, validation_data, batch_size=None, verbose=0, steps=None):
        super().__init__()
        if not isinstance(metrics, dict) or not metrics:
            raise TypeError(
                "Evaluator: expected `metrics` to be a non-empty dict {log name: PythonMetric or "
                f"kx.MetricDefinition}}. Received: metrics={metrics!r}"
            )
        for name, metric in metrics.items():
            if not isinstance(name, str) or not name:
                raise TypeError(
                    f"Evaluator: expected the keys of `metrics` to be non-empty strings (log "
                    f"names). Received: {name!r}"
                )
            inner = getattr(metric, "metric", metric)
            is_definition = hasattr(metric, "target") and hasattr(metric, "output")
            if not isinstance(inner, PythonMetric) or (inner is not metric and not is_definition):
                raise TypeError(
                    f"Evaluator: expected metrics[{name!r}] to be a kx.metrics.PythonMetric or a "
                    "kx.MetricDefinition holding one (Keras metrics belong in `compile`). "
                    f"Received: {metric!r}"
                )
        _sources.check_source("Evaluator", validation_data, steps)
        self.metrics = dict(metrics)
        if _sources.is_arrays(validation_data):
            validation_data = tuple(validation_data)
        self.validation_data = validation_data
        self.batch_size = batch_size
        self.verbose = verbose
        self.steps = steps

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs.update(self.evaluate())

    def evaluate(self):
        """Predicts the validation data and returns `{"val_<name>[_<key>]": float}`."""
        readers = self._readers()
        for _, _, python_metric in readers.values():
            python_metric.reset()
        for x, y, sample_weight in _sources.batches("Evaluator", self.validation_data, self.steps):
            if _sources.is_arrays(self.validation_data):
                y_pred = self.model.predict(x, batch_size=self.batch_size, verbose=self.verbose)
            else:
                y_pred = self.model.predict_on_batch(x)
            targets = _numpy(_structure.named_targets(self.model, y))
            outputs = _numpy(_structure.named_outputs(self.model, y_pred))
            for name, (target, output, python_metric) in readers.items():
                if target is None:
                    target, output = self._single(name, targets, outputs)
                else:
                    _check_key(name, "target", target, targets)
                    _check_key(name, "output", output, outputs)
                weight = sample_weight
                if isinstance(weight, dict):
                    weight = weight.get(target)
                python_metric.update(
                    targets[target], outputs[output],
                    None if weight is None else np.asarray(weight),
                )  # fmt: skip
        logs = {}
        for name, (_, _, python_metric) in readers.items():
            value = python_metric.result()
            if isinstance(value, dict):
                logs.update({f"val_{name}_{k}": float(v) for k, v in value.items()})
            else:
                logs[f"val_{name}"] = float(value)
        return logs

    def _readers(self):
        """`{name: (target or None, output or None, PythonMetric)}` (None: the only one)."""
        return {
            name: (None, None, metric)
            if isinstance(metric, PythonMetric)
            else (metric.target, metric.output, metric.metric)
            for name, metric in self.metrics.items()
        }

    @staticmethod
    def _single(name, targets, outputs):
        if len(targets) != 1 or len(outputs) != 1:
            raise ValueError(
                f"Evaluator: metrics[{name!r}] is a bare PythonMetric, which needs one "
                f"target and one output; the model has targets {sorted(targets)} and "
                f"outputs {sorted(outputs)}. Wrap it as kx.MetricDefinition(target, "
                "output, metric)."
            )
        return next(iter(targets)), next(iter(outputs))


def _numpy(named):
    return {k: keras.ops.convert_to_numpy(v) for k, v in named.items()}


def _check_key(name, kind, key, available):
    if key not in available:
        raise ValueError(
            f"Evaluator: metrics[{name!r}] reads {kind} {key!r}, but the {kind}s are "
            f"{sorted(available)}."
        )
