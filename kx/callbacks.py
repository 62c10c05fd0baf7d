"""Callbacks: Evaluator, which computes Python metrics over the validation set at each epoch end."""

import sys

import keras
import numpy as np

from kx import _structure
from kx.metrics.python_metric import PythonMetric

__all__ = ["Evaluator"]


class Evaluator(keras.callbacks.Callback):
    """Computes `kx.metrics.PythonMetric`s on validation data and logs them as `val_<name>`.

    At the end of every epoch the model predicts `validation_data` with `model.predict`, each
    metric is reset, fed the whole set as NumPy arrays and its result is written into the epoch
    logs: `val_<name>` for a float, `val_<name>_<key>` for a dict. `History`, `EarlyStopping`,
    `ModelCheckpoint`, `CSVLogger`, `TensorBoard` and the progress bar therefore see it.

    Wherever it is listed in `fit(callbacks=...)`, an Evaluator runs its epoch end before every
    other callback: when Keras attaches the model, it moves itself ahead of the non-Evaluator
    callbacks of `fit`'s `CallbackList` (Evaluators keep their order). Keras calls callbacks in
    list order with one shared logs dict, so without this an `EarlyStopping(monitor="val_auc")`
    listed first would look for `val_auc` before it exists.

    Args:
        metrics: a dict `{name: metric}`. A metric is a `kx.metrics.PythonMetric` (the model
            then has one output and one target) or a `kx.MetricDefinition(target, output,
            python_metric)` naming which target and output it reads.
        validation_data: a tuple `(x, y)` or `(x, y, sample_weight)` of arrays or dicts of
            arrays, as `fit`'s `validation_data`; `sample_weight` may be a dict keyed by target.
        batch_size: batch size of `model.predict`. Defaults to `None` (Keras' default, 32).
        verbose: verbosity of `model.predict`. Defaults to `0`.

    Example:

    >>> import keras, numpy as np, kx
    >>> x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    >>> y = (x[:, 0] > 0).astype("int32")
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, "sigmoid")])
    >>> model.compile("adam", "binary_crossentropy")
    >>> evaluator = kx.callbacks.Evaluator({"auc": kx.metrics.RocAuc()}, (x, y))
    >>> history = model.fit(x, y, epochs=2, verbose=0, callbacks=[evaluator])
    >>> len(history.history["val_auc"])
    2
    """

    def __init__(self, metrics, validation_data, batch_size=None, verbose=0):
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
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise ValueError(
                "Evaluator: expected `validation_data` to be a tuple (x, y) or "
                f"(x, y, sample_weight). Received: {type(validation_data).__name__}"
                f"{'' if not isinstance(validation_data, (tuple, list)) else ' of length '}"
                f"{len(validation_data) if isinstance(validation_data, (tuple, list)) else ''}"
            )
        self.metrics = dict(metrics)
        self.validation_data = tuple(validation_data)
        self.batch_size = batch_size
        self.verbose = verbose

    def set_model(self, model):
        super().set_model(model)
        owner = _calling_callback_list(self)
        if owner is not None:
            _run_before_others(owner.callbacks, self)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs.update(self.evaluate())

    def evaluate(self):
        """Predicts the validation data and returns `{"val_<name>[_<key>]": float}`."""
        x, y = self.validation_data[:2]
        sample_weight = self.validation_data[2] if len(self.validation_data) == 3 else None
        y_pred = self.model.predict(x, batch_size=self.batch_size, verbose=self.verbose)
        targets = _numpy(_structure.named_targets(self.model, y))
        outputs = _numpy(_structure.named_outputs(self.model, y_pred))
        logs = {}
        for name, metric in self.metrics.items():
            if isinstance(metric, PythonMetric):
                if len(targets) != 1 or len(outputs) != 1:
                    raise ValueError(
                        f"Evaluator: metrics[{name!r}] is a bare PythonMetric, which needs one "
                        f"target and one output; the model has targets {sorted(targets)} and "
                        f"outputs {sorted(outputs)}. Wrap it as kx.MetricDefinition(target, "
                        "output, metric)."
                    )
                target, output, python_metric = next(iter(targets)), next(iter(outputs)), metric
            else:
                target, output, python_metric = metric.target, metric.output, metric.metric
                _check_key(name, "target", target, targets)
                _check_key(name, "output", output, outputs)
            weight = sample_weight
            if isinstance(weight, dict):
                weight = weight.get(target)
            python_metric.reset()
            python_metric.update(
                targets[target], outputs[output], None if weight is None else np.asarray(weight)
            )
            value = python_metric.result()
            if isinstance(value, dict):
                logs.update({f"val_{name}_{k}": float(v) for k, v in value.items()})
            else:
                logs[f"val_{name}"] = float(value)
        return logs


def _numpy(named):
    return {k: keras.ops.convert_to_numpy(v) for k, v in named.items()}


def _check_key(name, kind, key, available):
    if key not in available:
        raise ValueError(
            f"Evaluator: metrics[{name!r}] reads {kind} {key!r}, but the {kind}s are "
            f"{sorted(available)}."
        )


def _calling_callback_list(callback, depth=4):
    """The `keras.callbacks.CallbackList` whose `set_model` loop is calling `callback`, if any."""
    frame = sys._getframe(2)
    for _ in range(depth):
        if frame is None:
            return None
        owner = frame.f_locals.get("self")
        if isinstance(owner, keras.callbacks.CallbackList) and any(
            c is callback for c in owner.callbacks
        ):
            return owner
        frame = frame.f_back
    return None


def _run_before_others(callbacks, evaluator):
    """Moves `evaluator` ahead of every non-Evaluator callback, keeping Evaluators in order.

    Called from inside `CallbackList.set_model`'s loop at the evaluator's own index: every
    element it moves over has been visited already, so none is skipped or visited twice.
    """
    index = next(i for i, c in enumerate(callbacks) if c is evaluator)
    front = 0
    while front < index and isinstance(callbacks[front], Evaluator):
        front += 1
    if front < index:
        callbacks.insert(front, callbacks.pop(index))
