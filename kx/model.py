"""kx.CustomModel: a keras.Model whose compile takes loss and metric definitions."""

import warnings

import keras
import numpy as np

from kx import _keras
from kx._compiled import CompiledDefinitions, _label_form, uses_definitions
from kx._structure import named_targets, output_names
from kx.backend import TrainStep
from kx.loss_weights import attach as attach_loss_weights

__all__ = ["CustomModel"]


@keras.saving.register_keras_serializable(package="kx")
class CustomModel(TrainStep, keras.Model):
    """A `keras.Model` whose `compile` accepts loss and metric definitions.

    Use it as `keras.Model`: functional (`kx.CustomModel(inputs, outputs)`) or subclassed
    (`class Net(kx.CustomModel)`). Compiled with plain Keras arguments it trains exactly as
    `keras.Model`. Compiled with any kx definition, `loss` and `metrics` are dicts `{key:
    definition}` (stock entries keyed by an output name may stand beside them):

    - `loss`: `kx.LossDefinition(target, output, loss)` or `kx.ExtendedLoss(fn)`; the logged
      `loss` is `sum(loss_weights[key] * value) + model.losses` (regularization, `add_loss`),
      and every loss is also logged unweighted under its key.
    - `metrics` / `weighted_metrics`: `kx.MetricDefinition(target, output, metric)` or
      `kx.ExtendedMetric(fn)`, logged under their keys (dict results as `<key>_<entry>`).
    - `fit(class_weight=...)`: `{class: weight}`, `{target: {class: weight}}`, `"balanced"` or
      `{target: "balanced"}`; applied inside the train step to the named targets' sample weights,
      so it works for any number of outputs, any data source, sparse or one-hot labels of any
      rank, and multiplies with `sample_weight` (which may be a dict keyed by target).

    Example:

    >>> import keras, numpy as np, kx
    >>> inputs = keras.Input((4,), name="x")
    >>> model = kx.CustomModel(inputs, {"logits": keras.layers.Dense(3)(inputs)})
    >>> model.compile(
    ...     optimizer="sgd",
    ...     loss={"ce": kx.LossDefinition("label", "logits",
    ...         keras.losses.SparseCategoricalCrossentropy(from_logits=True))},
    ...     metrics={"acc": kx.MetricDefinition("label", "logits",
    ...         keras.metrics.SparseCategoricalAccuracy())})
    >>> x = np.random.rand(8, 4).astype("float32")
    >>> y = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    >>> history = model.fit({"x": x}, {"label": y}, epochs=1, verbose=0)
    >>> sorted(history.history)
    ['acc', 'ce', 'loss']
    """

    _kx = None  # CompiledDefinitions when compiled with definitions, else None
    _kx_compile_args = None

    # -- construction ----------------------------------------------------------------------------
    # Keras makes a Model subclass functional by rewriting the `__bases__` of every class up to
    # `Model` (inject_functional_model_class), after which `CustomModel` could no longer be
    # subclassed without inputs. Instead, a functional CustomModel gets its own cached subclass
    # that also derives from Functional; `isinstance(m, kx.CustomModel)` and saving are unchanged.

    def __new__(cls, *args, **kwargs):
        if _keras.functional_init_arguments(args, kwargs) and not issubclass(
            cls, _keras.Functional
        ):
            cls = _functional_variant(cls)
        return super().__new__(cls, *args, **kwargs)

    def __init__(self, *args, **kwargs):
        if _keras.functional_init_arguments(args, kwargs):
            _keras.BackendTrainer.__init__(self)  # what keras.Model.__init__ does first
            _keras.Functional.__init__(self, *args, **kwargs)
        else:
            super().__init__(*args, **kwargs)

    # -- compile ---------------------------------------------------------------------------------

    def compile(
        self,
        optimizer="rmsprop",
        loss=None,
        loss_weights=None,
        metrics=None,
        weighted_metrics=None,
        **kwargs,
    ):
        if not uses_definitions(loss, metrics, weighted_metrics):
            self._kx = None
            self._kx_compile_args = None
            attach_loss_weights(self, None)
            return super().compile(
                optimizer=optimizer,
                loss=loss,
                loss_weights=loss_weights,
                metrics=metrics,
                weighted_metrics=weighted_metrics,
                **kwargs,
            )
        kx_compiled = CompiledDefinitions(
            loss, loss_weights, metrics, weighted_metrics, output_names(self)
        )
        super().compile(optimizer=optimizer, **kwargs)
        self._kx = kx_compiled
        attach_loss_weights(self, kx_compiled.loss_weights)
        self._kx_compile_args = {
            "loss": loss,
            "loss_weights": kx_compiled.loss_weights.compile_argument,
            "metrics": metrics,
            "weighted_metrics": weighted_metrics,
        }

    def get_compile_config(self):
        config = super().get_compile_config()
        if self._kx is None or not config:
            return config
        args = {k: v for k, v in self._kx_compile_args.items() if v is not None}
        try:
            serialized = keras.saving.serialize_keras_object(args)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                keras.saving.deserialize_keras_object(serialized)  # safe mode: lambdas fail
        except Exception as e:  # report, do not hide: the weights are still saved
            warnings.warn(
                "kx.CustomModel: the compile state (losses and metrics) cannot be saved, so "
                "`load_model` will return an uncompiled model; the weights are saved. Use named "
                "functions registered with `keras.saving.register_keras_serializable` instead "
                "of lambdas in ExtendedLoss/ExtendedMetric, then call compile() after loading. "
                f"Cause: {e}",
                stacklevel=2,
            )
            return None
        config.update(serialized)
        return config

    def compile_from_config(self, config):
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if getattr(self, "optimizer", None) is not None and self.built:
            self.optimizer.build(self.trainable_variables)

    # -- fit -------------------------------------------------------------------------------------

    def fit(
        self,
        x=None,
        y=None,
        batch_size=None,
        epochs=1,
        verbose="auto",
        callbacks=None,
        validation_split=0.0,
        validation_data=None,
        shuffle=True,
        class_weight=None,
        sample_weight=None,
        **kwargs,
    ):
        if self._kx is not None:
            sample_weight = self._kx_complete_sample_weight(y, sample_weight)
            tables = self._kx_class_weight_tables(class_weight, x, y, validation_split)
            if self._kx.python_metrics:
                evaluator = self._kx_evaluator(
                    x, y, sample_weight, validation_split, validation_data,
                    kwargs.get("validation_batch_size") or batch_size,
                )  # fmt: skip
                callbacks = [evaluator, *(callbacks or [])] if evaluator else callbacks
            callbacks = self._kx.loss_weights.callbacks(callbacks)
            # The tables stay set after fit, so that the next fit with the same class weights
            # reuses the traced step instead of tracing again; any other call that trains
            # resets them. Keras never sees the class weights: the train step applies them.
            self._kx_set_class_weight_tables(tables)
            class_weight = None
        return super().fit(
            x, y, batch_size=batch_size, epochs=epochs, verbose=verbose,
            callbacks=callbacks, validation_split=validation_split,
            validation_data=validation_data, shuffle=shuffle,
            class_weight=class_weight, sample_weight=sample_weight, **kwargs,
        )  # fmt: skip

    def train_on_batch(self, *args, **kwargs):
        if self._kx is not None:
            self._kx_set_class_weight_tables({})
        return super().train_on_batch(*args, **kwargs)

    def _kx_evaluator(self, x, y, sample_weight, validation_split, validation_data, batch_size):
        """An Evaluator for the compiled PythonMetrics, over fit's validation arrays."""
        from kx.callbacks import Evaluator

        if validation_data is None and validation_split and y is not None:
            _, validation_data = _keras.train_validation_split(
                (x, y, sample_weight), validation_split
            )
            if validation_data[2] is None:
                validation_data = validation_data[:2]
        names = sorted(self._kx.python_metrics)
        if validation_data is None:
            warnings.warn(
                f"kx.CustomModel: the validation-only metrics {names} are not computed: fit() "
                "got no validation_data or validation_split.",
                stacklevel=3,
            )
            return None
        if not isinstance(validation_data, (tuple, list)):
            raise ValueError(
                f"The validation-only metrics {names} need the validation set as arrays, "
                "validation_data=(x, y) or (x, y, sample_weight), to predict it whole at each "
                f"epoch end. Received a {type(validation_data).__name__}."
            )
        return Evaluator(self._kx.python_metrics, validation_data, batch_size=batch_size)

    def _kx_set_class_weight_tables(self, tables):
        old = self._kx.class_weight_tables
        same = old.keys() == tables.keys() and all(
            np.array_equal(old[k], tables[k]) for k in tables
        )
        if not same:
            self._kx.set_class_weight_tables(tables)
            self.train_function = None  # the tables are constants of the traced step

    def _kx_fold_class_weights(self, data):
        if self._kx is None or not self._kx.class_weight_tables:
            return data
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        return x, y, self._kx.fold_class_weights(self, y, sample_weight)

    def _kx_complete_sample_weight(self, y, sample_weight):
        """A dict `sample_weight` naming only some targets: the others weigh 1 (array data)."""
        if not isinstance(sample_weight, dict) or not isinstance(y, dict):
            return sample_weight
        unknown = sorted(set(sample_weight) - set(y))
        if unknown:
            raise ValueError(
                f"`sample_weight` names the targets {unknown}, which are not in `y`. Expected "
                f"keys among {sorted(y)}."
            )
        n = len(next(iter(sample_weight.values())))
        return {k: sample_weight[k] if k in sample_weight else np.ones(n, "float32") for k in y}

    def _kx_class_weight_tables(self, class_weight, x, y, validation_split):
        if class_weight is None:
            return {}
        from kx.weights import class_weights as compute_class_weights

        loss_targets = self._kx.loss_targets
        spec = _class_weight_spec(class_weight, loss_targets)
        labels = self._kx_training_labels(x, y, validation_split)
        output_shapes = _output_shapes(self)
        if None in spec:  # one {class: weight} dict: find its classification target
            candidates = [t for t in loss_targets if labels is None or _is_class_labels(labels[t])]
            if len(candidates) != 1:
                raise ValueError(
                    "`class_weight` is a single {class: weight} dict, but the losses read the "
                    f"targets {loss_targets}{'' if labels is None else ' with class labels: '}"
                    f"{'' if labels is None else candidates}. Key it by target name: "
                    "class_weight={target: {class: weight}}."
                )
            spec = {candidates[0]: spec.pop(None)}
        tables = {}
        for target, cw in spec.items():
            target_labels = None if labels is None else labels.get(target)
            if cw == "balanced":
                if target_labels is None:
                    raise ValueError(_no_labels_message(x, target))
                if isinstance(class_weight, str) and not _is_class_labels(target_labels):
                    continue  # "balanced" for all: only targets holding class labels
                # Read the labels as the train step will: one-hot when their shape is the
                # output's, else class ids (a 0/1 mask is sparse, not multi-label).
                target_labels = np.asarray(target_labels)
                output_shape = output_shapes.get(self._kx.output_for_target(target))
                form = _label_form(target_labels, output_shape)
                cw = compute_class_weights(target_labels, y_format=form)
            tables[target] = _table(cw, target, target_labels)
        if not tables:
            raise ValueError(
                "class_weight='balanced' found no target holding class labels (integer labels "
                f"or one-hot rows) among the losses' targets {loss_targets}."
            )
        self._kx.output_shapes = output_shapes
        return tables

    def _kx_training_labels(self, x, y, validation_split):
        """{target: labels} of the training data, or None where the source cannot say."""
        if y is not None:
            if validation_split:
                (_, y), _ = _keras.train_validation_split((x, y), validation_split)
            return {k: keras.ops.convert_to_numpy(v) for k, v in named_targets(self, y).items()}
        labels = getattr(x, "labels", None)  # kx.DataGenerator and any PyDataset that has them
        if labels is None:
            return None
        if isinstance(labels, dict):
            return {k: np.asarray(v) for k, v in labels.items()}
        return {k: np.asarray(v) for k, v in named_targets(self, labels).items()}

    # -- steps -----------------------------------------------------------------------------------

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if self._kx is None:
            return super().compute_loss(x, y, y_pred, sample_weight, training=training)
        return self._kx.compute_loss(self, x, y, y_pred, sample_weight)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        if self._kx is None:
            return super().compute_metrics(x, y, y_pred, sample_weight)
        self._kx.update_metrics(self, x, y, y_pred, sample_weight)
        return self.get_metrics_result()

    @property
    def metrics(self):
        metrics = super().metrics
        if self._kx is None or not self.compiled:
            return metrics
        return metrics[:1] + [m for _, m in self._kx.keras_metrics()] + metrics[1:]

    def get_metrics_result(self):
        if self._kx is None:
            return super().get_metrics_result()
        keys, alias = self._kx.log_keys, self._kx.total_alias
        logs = {}
        for metric in self.metrics:
            key = keys.get(id(metric), metric.name)
            if key == alias:
                continue  # the loss equal to the total: logged from the loss tracker below
            result = metric.result()
            if isinstance(result, dict):
                prefix = f"{key}_" if id(metric) in keys else ""
                logs.update({f"{prefix}{k}": v for k, v in result.items()})
            else:
                logs[key] = result
        if alias is not None:
            logs[alias] = logs["loss"]
        return _keras.pythonify_logs(logs)

    def _symbolic_build(self, iterator=None, data_batch=None):
        # Keras builds its own compiled metrics symbolically before a JAX step is traced; kx
        # metrics that create their variables on first use (e.g. keras.metrics.F1Score) need
        # the same, since variables cannot be created inside a jitted JAX step.
        if self._kx is None or getattr(self._kx, "built", False):
            return super()._symbolic_build(iterator=iterator, data_batch=data_batch)
        if data_batch is None and iterator is not None:
            for _, _, data_or_iterator in iterator:
                if isinstance(data_or_iterator, (list, tuple)):
                    data_batch = data_or_iterator[0]
                else:
                    data_batch = next(data_or_iterator)
                break
        super()._symbolic_build(data_batch=data_batch)
        if data_batch is not None:
            symbolic = keras.tree.map_structure(
                lambda v: None
                if v is None
                else keras.KerasTensor(v.shape, keras.backend.standardize_dtype(v.dtype)),
                data_batch,
            )
            x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(symbolic)
            y_pred = _keras.compute_output_spec(self, x, training=False)
            _keras.compute_output_spec(
                lambda x, y, y_pred, sw: self._kx.update_metrics(self, x, y, y_pred, sw),
                x, y, y_pred, sample_weight,
            )  # fmt: skip
        self._kx.built = True


_FUNCTIONAL_VARIANTS = {}


def _functional_variant(cls):
    if cls not in _FUNCTIONAL_VARIANTS:
        variant = type(cls.__name__, (cls, _keras.Functional), {"__module__": cls.__module__})
        variant.__qualname__ = cls.__qualname__
        # Saved under the name of the class the user wrote, so load_model finds that class.
        _keras.GLOBAL_CUSTOM_NAMES[variant] = keras.saving.get_registered_name(cls)
        _FUNCTIONAL_VARIANTS[cls] = variant
    return _FUNCTIONAL_VARIANTS[cls]


def _class_weight_spec(class_weight, loss_targets):
    """{target: dict | "balanced"}, with key None for one dict whose target is still unknown."""
    if isinstance(class_weight, str):
        if class_weight != "balanced":
            raise ValueError(
                "Expected `class_weight` to be a dict, a dict of dicts keyed by target, or "
                f"'balanced'. Received: class_weight={class_weight!r}"
            )
        return {t: "balanced" for t in loss_targets}
    if not isinstance(class_weight, dict):
        raise TypeError(
            "Expected `class_weight` to be a dict {class: weight}, a dict {target: {class: "
            f"weight}} or 'balanced'}}}} or 'balanced'. Received: {type(class_weight).__name__}"
        )
    per_target = [isinstance(v, (dict, str)) for v in class_weight.values()]
    if class_weight and all(per_target):
        unknown = sorted(set(class_weight) - set(loss_targets))
        if unknown:
            raise ValueError(
                f"`class_weight` names the targets {unknown}, but the losses read only "
                f"{loss_targets}. Expected keys among those."
            )
        for target, v in class_weight.items():
            if isinstance(v, str) and v != "balanced":
                raise ValueError(
                    f"class_weight[{target!r}]: expected a dict or 'balanced'. Received: {v!r}"
                )
        return dict(class_weight)
    if any(per_target):
        raise TypeError(
            "`class_weight` mixes per-target entries with {class: weight} entries. Use one form."
        )
    return {None: class_weight}


def _table(class_weight, target, labels):
    """A float32 lookup table indexed by class id; classes not in the dict weigh 1."""
    classes = []
    for c in class_weight:
        if isinstance(c, (bool, np.bool_)) or not isinstance(c, (int, np.integer)) or c < 0:
            raise ValueError(
                f"class_weight for target {target!r}: class {c!r} is not a valid label; "
                "expected non-negative integer class ids."
            )
        classes.append(int(c))
    weights = np.asarray([class_weight[c] for c in class_weight], "float64")
    if not np.all(np.isfinite(weights)) or np.any(weights < 0):
        raise ValueError(
            f"class_weight for target {target!r}: weights must be finite and non-negative. "
            f"Received: {dict(class_weight)}"
        )
    n_classes = _n_classes(labels)
    if n_classes is not None and max(classes, default=-1) >= n_classes:
        raise ValueError(
            f"class_weight for target {target!r}: class {max(classes)} is not a valid label; "
            f"the labels have {n_classes} classes (0..{n_classes - 1})."
        )
    table = np.ones(max(max(classes, default=0) + 1, n_classes or 0), "float32")
    table[classes] = weights
    return table


def _n_classes(labels):
    """The number of classes that one-hot labels declare (their width), else None."""
    if labels is None:
        return None
    labels = np.asarray(labels)
    if labels.dtype.kind == "f" and labels.ndim >= 2 and labels.shape[-1] > 1:
        return labels.shape[-1]
    return None


def _is_class_labels(labels):
    """Integer/bool labels, or float one-hot rows (or integral floats of rank <= 1)."""
    labels = np.asarray(labels)
    if labels.dtype.kind in "iub":
        return True
    if labels.dtype.kind != "f" or labels.size == 0:
        return False
    if labels.ndim >= 2 and labels.shape[-1] > 1:
        return bool(np.all((labels == 0) | (labels == 1)) and np.all(labels.sum(-1) == 1))
    return bool(np.all(labels == np.round(labels)) and labels.min() >= 0)


def _output_shapes(model):
    names = output_names(model)
    outputs = getattr(model, "outputs", None)
    if not names or not outputs:
        return {}
    struct = getattr(model, "_outputs_struct", None)
    if isinstance(struct, dict):
        return {k: tuple(v.shape) for k, v in struct.items()}
    return {n: tuple(t.shape) for n, t in zip(names, outputs)}


def _no_labels_message(x, target):
    return (
        f"class_weight='balanced' needs the training labels of target {target!r}, but the "
        f"data source ({type(x).__name__}) does not expose them. Compute the weights once and "
        "pass them: class_weight={target: kx.class_weights(y_train)} (or one dict for a single "
        "target), or feed a kx.DataGenerator, whose `labels` property provides them."
    )

