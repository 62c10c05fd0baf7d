"""The compiled definitions: what `CustomModel.compile` makes of its `loss` / `metrics`
arguments, and everything that follows from them, like Keras' `CompileLoss` / `CompileMetrics`.

`CompiledDefinitions` owns its trackers, its build from the first batch, the per-step loss and
metric assembly, the logs and the serialized compile arguments; the model only calls it. Written
once with `keras.ops`: the same code runs inside TensorFlow's `tf.function`, JAX's jit and
PyTorch's eager steps.
"""

import warnings

import keras
from keras import ops

from kx import _keras
from kx._loss_weights import LossWeights
from kx._structure import DEFAULT_OUTPUT_NAME, named_inputs, named_outputs, named_targets
from kx.definitions import ExtendedLoss, ExtendedMetric, LossDefinition, MetricDefinition

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
        self.arguments = {
            "loss": loss,
            "loss_weights": loss_weights,
            "metrics": metrics,
            "weighted_metrics": weighted_metrics,
        }
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
        # What `serialize` saves: variables as their values (see kx/_loss_weights.py).
        self.arguments["loss_weights"] = self.loss_weights.compile_argument
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
        self._log_keys = {id(m): key for key, m in self._keyed_metrics()}
        # A loss that equals the total (the only loss, weight 1) is not tracked a second time
        # while the model has no other losses: its log reads Keras' loss tracker instead.
        only = next(iter(self.losses)) if len(self.losses) == 1 else None
        self._alias = only if only is not None and self.loss_weights.get(only, 1.0) == 1.0 else None
        # Whether any step (at trace time on TF/JAX) updated the alias' own tracker: until one
        # does, its count is 0 and its log is the total, with no ops spent on reading it.
        self._alias_tracked = False
        self.built = False  # metrics built from the first batch's shapes (see `build`)
        # Set (at trace time) when compute_loss ran where no state may change: inside a user's
        # jax.value_and_grad without a StatelessScope. The same step's update_metrics then
        # records the named losses. Python-only, read in the same trace.
        self._unrecorded = False

    # -- compile state ----------------------------------------------------------------------------

    def serialize(self):
        """The compile arguments as a Keras config, or `None` (with a warning) where they
        cannot be saved, so that `load_model` returns an uncompiled model with its weights."""
        args = {k: v for k, v in self.arguments.items() if v is not None}
        try:
            serialized = keras.saving.serialize_keras_object(args)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                keras.saving.deserialize_keras_object(serialized)  # safe mode: lambdas fail
        except Exception as e:  # report, do not hide: the weights are still saved
            lambdas = "lambda" in str(e).lower()
            advice = (
                "Use named functions registered with `keras.saving.register_keras_serializable` "
                "instead of lambdas in ExtendedLoss/ExtendedMetric"
                if lambdas else
                "Register every custom loss, metric and function they use with "
                "`keras.saving.register_keras_serializable` (with a `get_config` for classes "
                "that take arguments)"
            )
            warnings.warn(
                "kx.CustomModel: the compile state (losses and metrics) cannot be saved, so "
                "`load_model` will return an uncompiled model; the weights are saved. "
                f"{advice}, then call compile() after loading. Cause: {e}",
                stacklevel=3,
            )
            return None
        return serialized

    def build(self, model, data_batch):
        """Creates every metric's variables from the first batch's shapes, symbolically.

        Needed before a JAX step is traced (variables cannot be created inside `jax.jit`).
        """
        if data_batch is not None:
            symbolic = keras.tree.map_structure(
                lambda v: None
                if v is None
                else keras.KerasTensor(v.shape, keras.backend.standardize_dtype(v.dtype)),
                data_batch,
            )
            x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(symbolic)
            y_pred = _keras.compute_output_spec(model, x, training=False)
            _keras.compute_output_spec(
                lambda x, y, y_pred, sw: self.update_metrics(model, x, y, y_pred, sw, False),
                x, y, y_pred, sample_weight,
            )  # fmt: skip
        self.built = True

    def ignored_classes(self):
        """`{target: ignore_class}` of the loss definitions whose loss ignores a class."""
        out = {}
        for d in self.losses.values():
            ignore = getattr(getattr(d, "loss", None), "ignore_class", None)
            if ignore is not None:
                out[d.target] = ignore
        return out

    # -- metrics bookkeeping -------------------------------------------------------------------

    def _keyed_metrics(self):
        """Every metric object kx owns, in a fixed order, with the key it is logged under."""
        named = list(self.loss_trackers.items())
        for key, d in self.metrics.items():
            if isinstance(d, MetricDefinition):
                named.append((key, d.metric))
            else:
                named.append((key, self.extended_metric_trackers[key]))
        return named

    def metrics_objects(self):
        """The metric objects, for `model.metrics` (resets, JAX state, results)."""
        return [m for _, m in self._keyed_metrics()]

    def results(self, metrics):
        """The logs of `model.metrics`: the total first, each definition under its key."""
        logs = {}
        for metric in metrics:
            key = self._log_keys.get(id(metric), metric.name)
            if key == self._alias and not self._alias_tracked:
                logs[key] = logs["loss"]  # untracked while the loss is the total (see __init__)
                continue
            result = metric.result()
            if key == self._alias:  # tracked in some steps: those read the total
                # No host read of the count here: on a GPU it would sync every step.
                result = ops.where(metric.count > 0, result, logs["loss"])
            if isinstance(result, dict):
                prefix = f"{key}_" if id(metric) in self._log_keys else ""
                logs.update({f"{prefix}{k}": v for k, v in result.items()})
            else:
                logs[key] = result
        return logs

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
        record = _keras.can_update_state()
        extra = [ops.cast(_keras.aggregate_additional_loss(model, e), "float32")
                 for e in model.losses]
        total = batch_size = None
        for key, value in self._loss_values(model, x, y, y_pred, sample_weight):
            if record and not (key == self._alias and not extra):
                if batch_size is None:  # once per step, not once per loss
                    batch_size = _batch_size(x, y_pred)
                self._record(key, value, batch_size)
            term = self.loss_weights.term(model, key, value)
            total = term if total is None else total + term
        if not record:
            self._unrecorded = True
        for e in extra:
            total = e if total is None else total + e
        return ops.zeros((), "float32") if total is None else total

    def _record(self, key, value, batch_size):
        """Adds a step's value of loss `key` to its tracker; notes when that is the alias'."""
        self._alias_tracked = self._alias_tracked or key == self._alias
        self.loss_trackers[key].update_state(
            _keras.unscale_loss_for_distribution(value), sample_weight=batch_size
        )

    def _loss_values(self, model, x, y, y_pred, sample_weight):
        """(key, float32 value) of every loss, unweighted."""
        targets, outputs = _named(model, y, y_pred)
        weights = _Weights(sample_weight)
        joined = None
        for key, d in self.losses.items():
            if _is_def(d):
                value = d.loss(
                    _get(targets, d.target, "target", key, d),
                    _get(outputs, d.output, "output", key, d),
                    sample_weight=weights.for_target(d.target),
                )
            else:
                if joined is None:
                    joined = _join(named_inputs(model, x), targets, x is None)
                values = _check_per_sample(
                    _call(d, key, joined, outputs), key, d, _batch_size(x, y_pred)
                )
                value = self._reducer(values, values, sample_weight=weights.for_extended(d))
            yield key, ops.cast(value, "float32")

    def update_metrics(self, model, x, y, y_pred, sample_weight, strict=True):
        """Updates every metric; with `strict=False` (the symbolic build), those whose target
        or output the batch lacks (a step that makes its own targets) are left for later."""
        if self._unrecorded:  # see __init__: the named losses of this step, recorded here
            self._unrecorded = False
            for key, value in self._loss_values(model, x, y, y_pred, sample_weight):
                if key != self._alias or model.losses:
                    self._record(key, value, _batch_size(x, y_pred))
        if not self.metrics:
            return
        targets, outputs = _named(model, y, y_pred)
        weights = _Weights(sample_weight)
        joined = None
        for key, d in self.metrics.items():
            if not strict and isinstance(d, MetricDefinition) and not (
                d.target in targets and d.output in outputs
            ):
                continue
            if isinstance(d, MetricDefinition):
                d.metric.update_state(
                    _get(targets, d.target, "target", key, d),
                    _get(outputs, d.output, "output", key, d),
                    sample_weight=weights.for_target(d.target) if d.weighted else None,
                )
            elif strict:  # extended metrics' trackers exist from the start
                if joined is None:
                    joined = _join(named_inputs(model, x), targets, x is None)
                values = _check_per_sample(
                    _call(d, key, joined, outputs), key, d, _batch_size(x, y_pred)
                )
                self.extended_metric_trackers[key].update_state(
                    ops.cast(values, "float32"), sample_weight=weights.for_extended(d)
                )


class _Weights:
    """Reads a batch's sample weight: None, one tensor for all targets, or a dict per target."""

    def __init__(self, sample_weight):
        self.keyed = isinstance(sample_weight, dict)
        if self.keyed:
            self.per_target = sample_weight
            # Keras gives every target the same array when fit() got one: the first (sorted).
            present = [sample_weight[k] for k in sorted(sample_weight)]
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


def _named(model, y, y_pred):
    """Targets and outputs by name (inputs are named only where an extended definition reads
    them: `_join`)."""
    return named_targets(model, y), named_outputs(model, y_pred)


def _get(named, name, kind, key, d):
    if name not in named:
        owner = f"{type(d).__name__} {key!r}" if d is not None else f"`{key}`"
        raise ValueError(
            f"{owner}: expected `{kind}` to name one of {sorted(named)} (the keys of the "
            f"{kind}s{' given to fit/evaluate' if kind == 'target' else ' of the model'}). "
            f"Received: {kind}={name!r}"
        )
    return named[name]


class _InputsTargets(dict):
    """The dict an extended loss or metric reads; a missing key says what there is."""

    owner = None
    without_inputs = False

    def __missing__(self, key):
        hint = (
            " The inputs are missing: this step called compiled_loss / compiled_metrics, which "
            "get no `x`; call model.compute_loss(x, y, y_pred, sample_weight) / "
            "model.compute_metrics(x, y, y_pred, sample_weight) instead."
            if self.without_inputs else ""
        )
        raise KeyError(
            f"{self.owner}: the function read {key!r}, which is neither an input nor a target. "
            f"Expected one of {sorted(self)}.{hint}"
        )


def _join(inputs, targets, without_inputs=False):
    shared = sorted(set(inputs) & set(targets))
    if shared:
        raise ValueError(
            f"Extended losses and metrics see inputs and targets joined in one dict, but the "
            f"names {shared} are both an input and a target. Rename the input or the target."
        )
    joined = _InputsTargets({**inputs, **targets})
    joined.without_inputs = without_inputs
    return joined


def _call(d, key, joined, outputs):
    joined.owner = f"{type(d).__name__} {key!r}"
    return d.fn(joined, outputs)


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
