"""Loss and metric definitions: which target and output a loss or metric reads.

A definition only names things; `kx.CustomModel` resolves the names against the batch's inputs,
targets and outputs at every step.
"""

import re

import keras

from kx import _keras

__all__ = ["ExtendedLoss", "ExtendedMetric", "LossDefinition", "MetricDefinition"]

_PACKAGE = "kx"


def _check_name(owner, arg, value):
    if not isinstance(value, str) or not value:
        raise TypeError(
            f"{owner}: expected `{arg}` to be a non-empty string naming a "
            f"{'target' if arg == 'target' else 'model output'}. Received: {arg}={value!r}"
        )


def _check_optional_name(owner, arg, value):
    if value is not None:
        _check_name(owner, arg, value)


def _function_config(self):
    return {
        "fn": keras.saving.serialize_keras_object(self.fn),
        "sample_weight_target": self.sample_weight_target,
    }


def _function_from_config(cls, config):
    config = dict(config)
    config["fn"] = keras.saving.deserialize_keras_object(config["fn"])
    return cls(**config)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class LossDefinition:
    """A Keras loss applied to one target and one model output.

    At each step the loss is called as `loss(targets[target], outputs[output], sample_weight)`,
    where `sample_weight` is the target's sample weight times its class weight (when `fit` was
    given either). The value is logged unweighted under the definition's key in `compile`.

    Args:
        target: name of the target (a key of the `y` dict; a plain `y` tensor is named after
            the model's single output).
        output: name of the model output (a key of the model's output dict, or an output layer
            name).
        loss: a `keras.losses.Loss`, a loss function `fn(y_true, y_pred)` returning per-sample
            values, or a Keras loss identifier such as `"mse"`.

    Example:

    >>> import keras, kx
    >>> d = kx.LossDefinition("label", "logits",
    ...     keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    >>> d.target, d.output
    ('label', 'logits')
    """

    def __init__(self, target, output, loss):
        _check_name("LossDefinition", "target", target)
        _check_name("LossDefinition", "output", output)
        self.target = target
        self.output = output
        self.loss = _get_loss(loss, f"LossDefinition({target!r}, {output!r})")

    def get_config(self):
        loss = getattr(self.loss, "identifier", None) or self.loss
        return {
            "target": self.target,
            "output": self.output,
            "loss": keras.saving.serialize_keras_object(loss),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["loss"] = keras.saving.deserialize_keras_object(config["loss"])
        return cls(**config)

    def __repr__(self):
        return f"LossDefinition({self.target!r}, {self.output!r}, {self.loss!r})"


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ExtendedLoss:
    """A loss computed from all inputs, targets and outputs.

    `fn(inputs_targets, outputs)` receives the inputs dict joined with the targets dict and the
    outputs dict, and returns one value per sample, shape `(batch,)`. The values are reduced as a
    Keras loss with the default `"sum_over_batch_size"` reduction: `sum(values * sample_weight) /
    batch`, scaled for distribution like any `keras.losses.Loss`, and computed in float32.

    Args:
        fn: the function. Use a named function registered with
            `keras.saving.register_keras_serializable` if the model is to be saved with its
            compile state; a lambda works but is not restored by `load_model`.
        sample_weight_target: the target whose sample weight (class weights included, in
            training) weighs this loss when the batch has a weight per target. Defaults to
            `None`: the batch's sample weight when it is a single tensor (a plain `y`; with
            `fit(class_weight=...)` it holds the class weights, as in Keras), or that of the
            first target in sorted order when it is a dict (with one `sample_weight` array,
            Keras gives every target the same array).

    Example:

    >>> import keras, kx
    >>> def l1_gap(inputs_targets, outputs):
    ...     return keras.ops.mean(keras.ops.abs(outputs["recon"] - inputs_targets["image"]), -1)
    >>> loss = kx.ExtendedLoss(l1_gap)
    >>> loss.fn is l1_gap
    True
    """

    def __init__(self, fn, sample_weight_target=None):
        if not callable(fn):
            raise TypeError(
                "ExtendedLoss: expected `fn` to be a callable `fn(inputs_targets, outputs)` "
                f"returning per-sample values. Received: fn={fn!r}"
            )
        _check_optional_name("ExtendedLoss", "sample_weight_target", sample_weight_target)
        self.fn = fn
        self.sample_weight_target = sample_weight_target

    get_config = _function_config
    from_config = classmethod(_function_from_config)

    def __repr__(self):
        return f"ExtendedLoss({getattr(self.fn, '__name__', self.fn)!r})"


@keras.saving.register_keras_serializable(package=_PACKAGE)
class MetricDefinition:
    """A Keras metric fed with one target and one model output.

    At each step `metric.update_state(targets[target], outputs[output])` runs; with
    `weighted=True` the target's sample weight (times its class weight in training) is passed too,
    as Keras does for `weighted_metrics`. A metric whose `result()` is a dict (a
    `kx.metrics.MultiMetric`, `kx.metrics.ClassificationMetrics`) is logged as one key per entry,
    `<key>_<entry>`.

    Args:
        target: name of the target.
        output: name of the model output.
        metric: a `keras.metrics.Metric` instance, a Keras metric identifier such as
            `"accuracy"`, or a validation-only `kx.metrics.PythonMetric`, which
            `kx.CustomModel.fit` computes over the whole validation set at each epoch end
            (through a `kx.callbacks.Evaluator`) and logs as `val_<key>`.
        weighted: whether sample and class weights reach the metric. Defaults to `False`,
            like Keras' `metrics` (as opposed to `weighted_metrics`).

    Example:

    >>> import keras, kx
    >>> d = kx.MetricDefinition("label", "class", keras.metrics.Accuracy())
    >>> d.metric.name
    'accuracy'
    """

    def __init__(self, target, output, metric, weighted=False):
        _check_name("MetricDefinition", "target", target)
        _check_name("MetricDefinition", "output", output)
        self.target = target
        self.output = output
        self.metric = _get_metric(metric, f"MetricDefinition({target!r}, {output!r})")
        self.weighted = bool(weighted)

    def get_config(self):
        metric = getattr(self.metric, "identifier", None) or self.metric
        return {
            "target": self.target,
            "output": self.output,
            "metric": keras.saving.serialize_keras_object(metric),
            "weighted": self.weighted,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["metric"] = keras.saving.deserialize_keras_object(config["metric"])
        return cls(**config)

    def __repr__(self):
        return f"MetricDefinition({self.target!r}, {self.output!r}, {self.metric.name!r})"


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ExtendedMetric:
    """A metric computed from all inputs, targets and outputs, reported as its mean.

    `fn(inputs_targets, outputs)` returns one value per sample, shape `(batch,)`; the logged value
    is their running mean over the epoch, sample-weighted when weights are given (chosen as for
    `ExtendedLoss`).

    Args:
        fn: the function; see `ExtendedLoss` about saving.
        sample_weight_target: see `ExtendedLoss`. Defaults to `None`.

    Example:

    >>> import keras, kx
    >>> def hit(inputs_targets, outputs):
    ...     return keras.ops.cast(inputs_targets["label"] == outputs["class"], "float32")
    >>> kx.ExtendedMetric(hit).fn is hit
    True
    """

    def __init__(self, fn, sample_weight_target=None):
        if not callable(fn):
            raise TypeError(
                "ExtendedMetric: expected `fn` to be a callable `fn(inputs_targets, outputs)` "
                f"returning per-sample values. Received: fn={fn!r}"
            )
        _check_optional_name("ExtendedMetric", "sample_weight_target", sample_weight_target)
        self.fn = fn
        self.sample_weight_target = sample_weight_target

    get_config = _function_config
    from_config = classmethod(_function_from_config)

    def __repr__(self):
        return f"ExtendedMetric({getattr(self.fn, '__name__', self.fn)!r})"


def _get_loss(loss, owner):
    if isinstance(loss, keras.losses.Loss):
        return loss
    _refuse_class(loss, owner, "loss", keras.losses.Loss)
    if isinstance(loss, str):
        if loss.lower() in ("crossentropy", "ce"):
            return _Crossentropy(loss)
        try:
            fn = keras.losses.get(loss)
        except ValueError as e:
            raise ValueError(f"{owner}: unknown Keras loss identifier {loss!r}.") from e
        return fn if isinstance(fn, keras.losses.Loss) else _keras.LossFunctionWrapper(
            fn, name=loss
        )
    if callable(loss):
        return _keras.LossFunctionWrapper(loss, name=_scope_name(loss))
    raise TypeError(
        f"{owner}: expected `loss` to be a keras.losses.Loss, a loss function or a Keras loss "
        f"identifier. Received: loss={loss!r}"
    )


def _get_metric(metric, owner):
    from kx.metrics.python_metric import PythonMetric  # kx.metrics imports nothing from here

    if isinstance(metric, (keras.metrics.Metric, PythonMetric)):
        return metric
    _refuse_class(metric, owner, "metric", (keras.metrics.Metric, PythonMetric))
    if isinstance(metric, str):
        if metric.lower() in ("accuracy", "acc"):
            return _Accuracy(metric)
        try:
            m = keras.metrics.get(metric)
        except ValueError as e:
            raise ValueError(f"{owner}: unknown Keras metric identifier {metric!r}.") from e
        if isinstance(m, keras.metrics.Metric):
            return m
        return keras.metrics.MeanMetricWrapper(m, name=metric)
    raise TypeError(
        f"{owner}: expected `metric` to be a keras.metrics.Metric instance or a Keras metric "
        f"identifier. Received: metric={metric!r}"
    )


def _refuse_class(value, owner, arg, base):
    if isinstance(value, type):
        what = "an instance" if issubclass(value, base) else "a loss/metric instance"
        raise TypeError(
            f"{owner}: expected `{arg}` to be {what}, not a class. Received the class "
            f"{value.__module__}.{value.__qualname__}; pass {value.__qualname__}(...) instead."
        )


def _scope_name(fn):
    """A name usable as a TensorFlow name scope (a lambda's `<lambda>` is not one)."""
    name = re.sub(r"[^A-Za-z0-9_.\-]", "_", getattr(fn, "__name__", "") or "").strip("_.-")
    return name or "loss"


def _binary_or_sparse(y_true, y_pred):
    """Keras' compile rule for "accuracy" / "crossentropy": from the static shapes."""
    binary = y_pred.shape[-1] == 1
    sparse = len(y_true.shape) < len(y_pred.shape) or (
        y_true.shape[-1] == 1 and y_pred.shape[-1] != 1
    )
    return binary, sparse


class _Crossentropy(keras.losses.Loss):
    """The "crossentropy" / "ce" string: binary, sparse or categorical cross-entropy, chosen
    from the shapes as Keras' compile chooses (probabilities, not logits)."""

    def __init__(self, identifier):
        super().__init__(name=identifier)
        self.identifier = identifier

    def call(self, y_true, y_pred):
        binary, sparse = _binary_or_sparse(y_true, y_pred)
        if binary:
            return keras.losses.binary_crossentropy(y_true, y_pred)
        if sparse:
            return keras.losses.sparse_categorical_crossentropy(y_true, y_pred)
        return keras.losses.categorical_crossentropy(y_true, y_pred)

    def get_config(self):
        return {"identifier": self.identifier}


class _Accuracy(keras.metrics.Metric):
    """The "accuracy" / "acc" string: Keras' Binary, SparseCategorical or Categorical accuracy,
    chosen from the first batch's shapes as Keras' compile chooses, then delegated to."""

    def __init__(self, identifier, **kwargs):
        super().__init__(name=identifier, **kwargs)
        self.identifier = identifier
        self.chosen = None

    def update_state(self, y_true, y_pred, sample_weight=None):
        if self.chosen is None:  # the metric's lazy build, like keras.metrics.F1Score's
            binary, sparse = _binary_or_sparse(y_true, y_pred)
            cls = (
                keras.metrics.BinaryAccuracy if binary
                else keras.metrics.SparseCategoricalAccuracy if sparse
                else keras.metrics.CategoricalAccuracy
            )
            self.chosen = cls(name=self.identifier)
        return self.chosen.update_state(y_true, y_pred, sample_weight=sample_weight)

    def result(self):
        if self.chosen is None:
            return keras.ops.zeros((), self.dtype)
        return self.chosen.result()

    def reset_state(self):
        if self.chosen is not None:
            self.chosen.reset_state()

    def get_config(self):
        return {"identifier": self.identifier}
