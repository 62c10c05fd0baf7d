"""What `CustomModel.compile` makes of its definitions, and the per-step loss and metric assembly.

Written once with `keras.ops`; the same code runs inside TensorFlow's `tf.function`, JAX's jit and
PyTorch's eager steps.
"""

import keras
import numpy as np
from keras import ops

from kx import _keras
from kx._structure import DEFAULT_OUTPUT_NAME, named_inputs, named_outputs, named_targets
from kx.backend import lookup
from kx.definitions import ExtendedLoss, ExtendedMetric, LossDefinition, MetricDefinition
from kx.loss_weights import LossWeights

# Key of a sample-weight dict, made by the train step, that carries the weight of the batch
# before class weights were folded in (the default weight of extended losses and metrics).
DEFAULT_WEIGHT_KEY = "__kx_default_sample_weight__"

_RESERVED_KEYS = ("loss",)


def uses_definitions(*args):
    """Whether any compile argument holds a kx definition (else the model is stock Keras)."""
    kinds = (LossDefinition, ExtendedLoss, MetricDefinition, ExtendedMetric)

    def has(value):
        if isinstance(value, kinds):
            return True
        if isinstance(value, dict):
            return any(has(v) for v in value.values())
        if isinstance(value, (list, tuple)):
            return any(has(v) for v in value)
        return False

    return any(has(a) for a in args)


class _PerSampleValues(keras.losses.Loss):
    """A Loss whose per-sample values are computed elsewhere (extended losses).

    Going through `keras.losses.Loss.__call__` gives extended losses exactly the reduction, sample
    weighting, float32 computation and distribution scaling of every Keras loss.
    """

    def call(self, y_true, y_pred):
        return y_pred


class CompiledDefinitions:
    """Definitions resolved at compile time, plus the trackers that log them.

    Args:
        loss, loss_weights, metrics, weighted_metrics: the `compile` arguments.
        output_names: the model's output names, or `None` when not yet known.
    """

    def __init__(self, loss, loss_weights, metrics, weighted_metrics, output_names):
        self.output_names = output_names
        self.losses = _parse_losses(loss, output_names)
        self.metrics = {}
        for arg, weighted in ((metrics, False), (weighted_metrics, True)):
            for key, d in _parse_metrics(arg, output_names, weighted).items():
                if key in self.metrics:
                    raise ValueError(
                        f"The metric key {key!r} is used twice (in `metrics` and "
                        "`weighted_metrics`). Every logged key must be unique."
                    )
                self.metrics[key] = d
        for key in self.metrics:
            if key in self.losses:
                raise ValueError(
                    f"The key {key!r} names both a loss and a metric; both would be logged as "
                    f"{key!r}. Rename one of them. Loss keys: {list(self.losses)}; metric keys: "
                    f"{list(self.metrics)}."
                )
        for key in (*self.losses, *self.metrics):
            if key in _RESERVED_KEYS or key.startswith("val_"):
                raise ValueError(
                    f"The key {key!r} is reserved by Keras' logs ('loss' is the total, 'val_' "
                    "prefixes validation). Choose another loss/metric key."
                )
        # Validation-only Python metrics run in an Evaluator callback, not in the step.
        self.python_metrics = {
            k: d for k, d in self.metrics.items() if isinstance(d, MetricDefinition)
            and not isinstance(d.metric, keras.metrics.Metric)
        }
        self.metrics = {k: d for k, d in self.metrics.items() if k not in self.python_metrics}
        self.loss_weights = LossWeights(
            loss_weights, self.losses, taken=(*self.metrics, *self.python_metrics)
        )
        if output_names is not None:
            everything = (*self.losses.items(), *self.metrics.items(), *self.python_metrics.items())
            for key, d in everything:
                output = getattr(d, "output", None)
                if output is not None and output not in output_names:
                    raise ValueError(
                        f"{type(d).__name__} {key!r}: expected `output` to name one of "
                        f"{output_names} (the model's outputs). Received: output={output!r}"
                    )
        self.loss_trackers = {k: keras.metrics.Mean(name=k) for k in self.losses}
        self.extended_metric_trackers = {
            k: keras.metrics.Mean(name=k)
            for k, d in self.metrics.items()
            if isinstance(d, ExtendedMetric)
        }
        self._reducer = _PerSampleValues(name="kx_extended_loss")
        self.log_keys = {id(m): key for key, m in self.keras_metrics()}
        # The key of a loss that equals the total (one loss, weight 1, no model.losses): it is
        # logged from Keras' loss tracker instead of a second tracker updated every step.
        self.total_alias = None
        # Set by fit(): {target: float32 table}, the same as tensors with a last entry of 1 for
        # classes outside the table, and output shapes for label forms.
        self.class_weight_tables = {}
        self.class_weight_lookups = {}
        self.output_shapes = {}

    def set_class_weight_tables(self, tables):
        self.class_weight_tables = tables
        self.class_weight_lookups = {
            t: ops.convert_to_tensor(np.append(table, np.float32(1.0)))
            for t, table in tables.items()
        }

    # -- metrics bookkeeping -------------------------------------------------------------------

    def keras_metrics(self):
        """Every metric object kx owns, in a fixed order, with the key it is logged under."""
        named = [(k, t) for k, t in self.loss_trackers.items()]
        for key, d in self.metrics.items():
            if isinstance(d, MetricDefinition):
                named.append((key, d.metric))
            else:
                named.append((key, self.extended_metric_trackers[key]))
        return named

    @property
    def loss_targets(self):
        """Targets read by LossDefinitions, in definition order, each once."""
        return list(dict.fromkeys(d.target for d in self.losses.values() if _is_def(d)))

    def output_for_target(self, target):
        for d in self.losses.values():
            if _is_def(d) and d.target == target:
                return d.output
        return None

    # -- per step --------------------------------------------------------------------------------

    def compute_loss(self, model, x, y, y_pred, sample_weight):
        inputs, targets, outputs = _named(model, x, y, y_pred)
        weights = _Weights(sample_weight)
        batch_size = _batch_size(x, y_pred)
        joined = None
        total = None
        only = next(iter(self.losses)) if len(self.losses) == 1 else None
        unweighted = only is not None and self.loss_weights.get(only, 1.0) == 1.0
        alias = only if unweighted and not model.losses else None
        self.total_alias = alias
        for key, d in self.losses.items():
            if _is_def(d):
                value = d.loss(
                    _get(targets, d.target, "target", key, d),
                    _get(outputs, d.output, "output", key, d),
                    sample_weight=weights.for_target(d.target),
                )
            else:
                if joined is None:
                    joined = _join(inputs, targets)
                values = _check_per_sample(d.fn(joined, outputs), key, d, batch_size)
                value = self._reducer(values, values, sample_weight=weights.for_extended(d))
            value = ops.cast(value, "float32")
            if key != alias:
                self.loss_trackers[key].update_state(
                    _keras.unscale_loss_for_distribution(value), sample_weight=batch_size
                )
            term = self.loss_weights.term(model, key, value)
            total = term if total is None else total + term
        for extra in model.losses:
            extra = ops.cast(model._aggregate_additional_loss(extra), "float32")
            total = extra if total is None else total + extra
        return ops.zeros((), "float32") if total is None else total

    def update_metrics(self, model, x, y, y_pred, sample_weight):
        if not self.metrics:
            return
        inputs, targets, outputs = _named(model, x, y, y_pred)
        weights = _Weights(sample_weight)
        joined = None
        for key, d in self.metrics.items():
            if isinstance(d, MetricDefinition):
                d.metric.update_state(
                    _get(targets, d.target, "target", key, d),
                    _get(outputs, d.output, "output", key, d),
                    sample_weight=weights.for_target(d.target) if d.weighted else None,
                )
            else:
                if joined is None:
                    joined = _join(inputs, targets)
                values = _check_per_sample(d.fn(joined, outputs), key, d, _batch_size(x, y_pred))
                self.extended_metric_trackers[key].update_state(
                    ops.cast(values, "float32"), sample_weight=weights.for_extended(d)
                )

    def fold_class_weights(self, model, y, sample_weight):
        """Sample weights with the class weights of the batch's labels multiplied in.

        Returns a dict keyed by target name (plus `DEFAULT_WEIGHT_KEY` for the batch's own
        weight), or `sample_weight` unchanged when no class weights are set.
        """
        if not self.class_weight_tables:
            return sample_weight
        targets = named_targets(model, y)
        weights = _Weights(sample_weight)
        folded = {t: weights.for_target(t) for t in targets}
        for target, table in self.class_weight_lookups.items():
            labels = _get(targets, target, "target", "class_weight", None)
            cw = _lookup_class_weights(
                labels, table, self.output_shapes.get(self.output_for_target(target))
            )
            own = folded.get(target)
            if own is not None:
                own = ops.cast(own, "float32")
                own = ops.reshape(own, ops.shape(own) + (1,) * (len(cw.shape) - len(own.shape)))
                cw = cw * own
            folded[target] = cw
        folded[DEFAULT_WEIGHT_KEY] = weights.default
        return folded


class _Weights:
    """Reads a batch's sample weight: None, one tensor for all targets, or a dict per target."""

    def __init__(self, sample_weight):
        self.keyed = isinstance(sample_weight, dict)
        if self.keyed:
            self.per_target = {k: v for k, v in sample_weight.items() if k != DEFAULT_WEIGHT_KEY}
            if DEFAULT_WEIGHT_KEY in sample_weight:
                self.default = sample_weight[DEFAULT_WEIGHT_KEY]
            else:  # Keras gives every target the same array when fit() got one.
                present = [self.per_target[k] for k in sorted(self.per_target)]
                present = [w for w in present if w is not None]
                self.default = present[0] if present else None
        else:
            self.per_target = {}
            self.default = sample_weight

    def for_target(self, target):
        return self.per_target.get(target) if self.keyed else self.default

    def for_extended(self, d):
        if d.sample_weight_target is not None:
            return self.for_target(d.sample_weight_target)
        return self.default


def _is_def(d):
    return isinstance(d, LossDefinition)


def _named(model, x, y, y_pred):
    return named_inputs(model, x), named_targets(model, y), named_outputs(model, y_pred)


def _get(named, name, kind, key, d):
    if name not in named:
        owner = f"{type(d).__name__} {key!r}" if d is not None else f"`{key}`"
        raise ValueError(
            f"{owner}: expected `{kind}` to name one of {sorted(named)} (the keys of the "
            f"{kind}s{' given to fit/evaluate' if kind == 'target' else ' of the model'}). "
            f"Received: {kind}={name!r}"
        )
    return named[name]


def _join(inputs, targets):
    shared = sorted(set(inputs) & set(targets))
    if shared:
        raise ValueError(
            f"Extended losses and metrics see inputs and targets joined in one dict, but the "
            f"names {shared} are both an input and a target. Rename the input or the target."
        )
    return {**inputs, **targets}


def _batch_size(x, y_pred):
    first = next((t for t in keras.tree.flatten(x) if t is not None), None)
    if first is None:
        first = keras.tree.flatten(y_pred)[0]
    return ops.shape(first)[0]


def _check_per_sample(values, key, d, batch_size):
    kind = type(d).__name__
    if not hasattr(values, "shape") or not hasattr(values, "dtype"):
        raise TypeError(
            f"{kind} {key!r}: expected the function to return a tensor of shape (batch,). "
            f"Received: {type(values).__name__}"
        )
    dtype = keras.backend.standardize_dtype(values.dtype)
    if not keras.backend.is_float_dtype(dtype):
        raise TypeError(
            f"{kind} {key!r}: expected the function to return float values (one per sample). "
            f"Received dtype {dtype}. Cast with keras.ops.cast(values, 'float32')."
        )
    shape = tuple(values.shape)
    static_batch = batch_size if isinstance(batch_size, int) else None
    if len(shape) != 1 or (
        static_batch is not None and shape[0] is not None and shape[0] != static_batch
    ):
        raise ValueError(
            f"{kind} {key!r}: expected the function to return one value per sample, shape "
            f"({static_batch if static_batch is not None else 'batch'},). Received shape "
            f"{shape}. Reduce the other axes (e.g. keras.ops.mean(values, axis=-1))."
        )
    return values


def _label_form(labels, output_shape):
    """'sparse' (class ids) or 'one_hot' (probability rows), from dtypes and static shapes.

    Works on tensors and NumPy arrays alike, so `fit` reads labels as the step does.
    """
    dtype = keras.backend.standardize_dtype(labels.dtype)
    if not keras.backend.is_float_dtype(dtype):
        return "sparse"
    shape = tuple(labels.shape)
    if output_shape is not None:
        same_rank = len(shape) == len(output_shape)
        if same_rank and shape[-1] == output_shape[-1] and (output_shape[-1] or 0) > 1:
            return "one_hot"
        return "sparse"
    return "one_hot" if len(shape) >= 2 and (shape[-1] or 0) > 1 else "sparse"


def _lookup_class_weights(labels, table, output_shape):
    """One weight per label (per element for labels of any rank); unknown classes weigh 1.

    `table` ends with an extra entry 1.0, read for every id outside the classes.
    """
    if _label_form(labels, output_shape) == "one_hot":
        ids = ops.argmax(labels, axis=-1)
    else:
        ids = labels
        if len(ids.shape) >= 2 and ids.shape[-1] == 1:
            ids = ops.squeeze(ids, axis=-1)
        if not keras.backend.is_int_dtype(ids.dtype):
            ids = ops.cast(ids, "int32")
    return lookup(table, ids)


def _parse_losses(loss, output_names):
    if loss is None:
        return {}
    if isinstance(loss, dict):
        parsed = {}
        for key, value in loss.items():
            _check_key(key, "loss")
            if isinstance(value, (LossDefinition, ExtendedLoss)):
                parsed[key] = value
            else:  # stock Keras: the key is an output name, its target has the same name
                parsed[f"{key}_loss"] = LossDefinition(key, key, value)
        return parsed
    if isinstance(loss, (LossDefinition, ExtendedLoss)):
        raise TypeError(
            "Expected `loss` to be a dict {key: definition} so that each loss has a name to be "
            f"logged under. Received a single {type(loss).__name__}: loss={loss!r}"
        )
    names = output_names or [DEFAULT_OUTPUT_NAME]
    if isinstance(loss, (list, tuple)):
        if len(loss) != len(names):
            raise ValueError(
                f"Received {len(loss)} losses for the model's {len(names)} outputs {names}."
            )
        return {f"{n}_loss": LossDefinition(n, n, v) for n, v in zip(names, loss)}
    if len(names) != 1:
        raise ValueError(
            f"A single loss needs a single-output model; this one has the outputs {names}. "
            "Pass a dict of definitions."
        )
    return {f"{names[0]}_loss": LossDefinition(names[0], names[0], loss)}


def _parse_metrics(metrics, output_names, weighted):
    if metrics is None:
        return {}
    parsed = {}

    def add(key, d):
        if key in parsed:
            raise ValueError(f"The metric key {key!r} is used twice. Every key must be unique.")
        parsed[key] = d

    def stock(output, value):
        for m in value if isinstance(value, (list, tuple)) else [value]:
            d = MetricDefinition(output, output, m, weighted=weighted)
            add(f"{output}_{d.metric.name}" if len(names) > 1 else d.metric.name, d)

    names = output_names or [DEFAULT_OUTPUT_NAME]
    if isinstance(metrics, dict):
        for key, value in metrics.items():
            _check_key(key, "metric")
            if isinstance(value, MetricDefinition):
                if weighted and not value.weighted:
                    value = MetricDefinition(value.target, value.output, value.metric, True)
                add(key, value)
            elif isinstance(value, ExtendedMetric):
                add(key, value)
            else:  # stock Keras: the key is an output name
                for m in value if isinstance(value, (list, tuple)) else [value]:
                    d = MetricDefinition(key, key, m, weighted=weighted)
                    add(f"{key}_{d.metric.name}", d)
        return parsed
    if isinstance(metrics, (list, tuple)):
        if len(names) != 1:
            raise ValueError(
                f"A list of metrics needs a single-output model; this one has the outputs {names}."
                " Pass a dict of definitions."
            )
        stock(names[0], metrics)
        return parsed
    raise TypeError(
        "Expected `metrics` to be a dict {key: definition} or a list of Keras metrics. "
        f"Received: metrics={metrics!r}"
    )


def _check_key(key, what):
    if not isinstance(key, str) or not key:
        raise TypeError(f"Expected every {what} key to be a non-empty string. Received: {key!r}")
