"""kx.CustomModel: a keras.Model whose compile takes loss and metric definitions.

The model owns what happens around Keras' trainer: choosing stock Keras or the definitions at
`compile`, preparing `fit`'s data (sample weights, labels checked, class weights folded through
`kx/_class_weight.py`), and the class-level wrapper that hands class weights to the outermost
`train_step`. What the definitions compute, log and save belongs to `CompiledDefinitions`
(`kx/_compiled.py`); the model only calls it.
"""

import functools
import threading
import warnings

import keras
import numpy as np

from kx import _class_weight, _keras
from kx._compiled import CompiledDefinitions, uses_definitions
from kx._loss_weights import attach as attach_loss_weights
from kx._loss_weights import check_beside_keras_losses, saveable
from kx._structure import named_targets, output_names
from kx.backend import TrainStep, distribute_source

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
      `{target: "balanced"}`; multiplied into the named targets' sample weights before the
      train step runs (a subclass's own `train_step` receives them too), so it works for any
      number of outputs, any data source, sparse or one-hot labels of any rank, and multiplies
      with `sample_weight` (which may be a dict keyed by target). Array data is weighted once
      on the host, as Keras does; other sources batch by batch. The dict rule is
      `kx/_class_weight.py`'s, the same for `kx.DataGenerator` and `kx.sample_weights`.
    - A subclass may override `train_step` / `test_step` as the Keras guides do for each
      backend; `compute_loss` / `compute_metrics` serve the definitions (see the guide
      `custom_train_step.md`).

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
    _kx_step_class_weights = None  # set by fit() for sources whose batches it cannot see

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
            check_beside_keras_losses(loss_weights)
            self._kx = None
            attach_loss_weights(self, None)
            super().compile(
                optimizer=optimizer,
                loss=loss,
                loss_weights=loss_weights,
                metrics=metrics,
                weighted_metrics=weighted_metrics,
                **kwargs,
            )
            # A variable weight is saved as its value (Keras cannot serialize it on JAX and torch).
            _keras.set_saved_compile_argument(self, "loss_weights", saveable(loss_weights))
            return
        kx_compiled = CompiledDefinitions(
            loss, loss_weights, metrics, weighted_metrics, output_names(self)
        )
        super().compile(optimizer=optimizer, **kwargs)
        self._kx = kx_compiled
        attach_loss_weights(self, kx_compiled.loss_weights)

    def get_compile_config(self):
        config = super().get_compile_config()
        if self._kx is None or not config:
            return config
        serialized = self._kx.serialize()
        if serialized is None:
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
        step_class_weights = None
        if self._kx is not None:
            if y is not None:  # arrays: checked on the host, as Keras' data adapters do
                sample_weight = _class_weight.complete_sample_weight(y, sample_weight)
                if class_weight is not None and validation_split and validation_data is None:
                    # Split as Keras would, so that class weights reach the training part only.
                    (x, y, sample_weight), validation_data = _keras.train_validation_split(
                        (x, y, sample_weight), validation_split
                    )
                    validation_split = 0.0
            self._kx_check_labels(y, validation_data)
            class_weights = self._kx_class_weights(class_weight, x, y, validation_split)
            if class_weights is not None and y is not None:
                # Array data: the weights are folded once, here, into the sample weights that
                # Keras slices into batches (as it does with its own class weights).
                sample_weight = class_weights.fold(
                    _numpy(named_targets(self, y)), sample_weight, _structure_of(self, y),
                    numpy=True,
                )  # fmt: skip
            else:
                step_class_weights = class_weights and class_weights.prepare()  # in the step
            if self._kx.python_metrics:
                evaluator = self._kx_evaluator(
                    x, y, sample_weight, validation_split, validation_data,
                    kwargs.get("validation_batch_size") or batch_size,
                    kwargs.get("validation_steps"),
                )  # fmt: skip
                callbacks = [evaluator, *(callbacks or [])] if evaluator else callbacks
            callbacks = self._kx.loss_weights.callbacks(callbacks)
            class_weight = None  # Keras never sees them
        self._kx_set_step_class_weights(step_class_weights)
        _hand_validation_data(callbacks, x, y, sample_weight, validation_split, validation_data)
        # A DataGenerator under a multi-worker strategy: each worker reads only its share.
        x, validation_data = distribute_source(self, x), distribute_source(self, validation_data)
        return super().fit(
            x, y, batch_size=batch_size, epochs=epochs, verbose=verbose,
            callbacks=callbacks, validation_split=validation_split,
            validation_data=validation_data, shuffle=shuffle,
            class_weight=class_weight, sample_weight=sample_weight, **kwargs,
        )  # fmt: skip

    def evaluate(self, x=None, *args, **kwargs):
        if self._kx is not None:
            self._kx.loss_weights.check_variables("when evaluate began")
        return super().evaluate(distribute_source(self, x), *args, **kwargs)

    def train_on_batch(self, *args, **kwargs):
        self._kx_set_step_class_weights(None)
        return super().train_on_batch(*args, **kwargs)

    def _kx_evaluator(
        self, x, y, sample_weight, validation_split, validation_data, batch_size, steps=None
    ):
        """An Evaluator for the compiled PythonMetrics, over fit's validation source."""
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
        # Any source fit validates on that can be read again: arrays, PyDataset, tf.data, a
        # torch DataLoader. A generator would hand each batch to either fit or the Evaluator.
        if hasattr(validation_data, "__next__"):  # a generator or iterator
            raise ValueError(
                f"The validation-only metrics {names} read the validation set once more at each "
                f"epoch end, but `validation_data` is a {type(validation_data).__name__}, which "
                "can be read only once (fit and the metrics would each get part of it). Pass "
                "arrays, a keras.utils.PyDataset (kx.DataGenerator), a tf.data.Dataset or a "
                "torch DataLoader."
            )
        if isinstance(validation_data, (tuple, list)) and len(validation_data) == 3 and (
            validation_data[2] is None
        ):
            validation_data = validation_data[:2]
        return Evaluator(
            self._kx.python_metrics, validation_data, batch_size=batch_size, steps=steps
        )

    def _kx_target_output_shapes(self):
        shapes = _keras.output_shapes(self)
        return {t: shapes.get(self._kx.output_for_target(t)) for t in self._kx.loss_targets}

    def _kx_check_labels(self, y, validation_data):
        """Class ids of array data within the classes of the outputs the losses score them by."""
        shapes, ignored = self._kx_target_output_shapes(), self._kx.ignored_classes()
        for source, targets in (("y", y), ("validation_data", _validation_targets(
                validation_data))):  # fmt: skip
            if targets is not None:
                labels = {k: v for k, v in named_targets(self, targets).items() if k in shapes}
                _class_weight.check_class_ids(_numpy(labels), shapes, ignored, source)

    def _kx_class_weights(self, class_weight, x, y, validation_split):
        """`fit`'s `class_weight` resolved against this model and the training labels."""
        if class_weight is None:
            return None
        return _class_weight.resolve(
            class_weight, self._kx.loss_targets, self._kx_training_labels(x, y, validation_split),
            self._kx_target_output_shapes(), type(x).__name__, self._kx.ignored_classes(),
        )  # fmt: skip

    def _kx_training_labels(self, x, y, validation_split):
        """{target: labels} of the training data, or None where the source cannot say."""
        if y is not None:
            if validation_split:
                (_, y), _ = _keras.train_validation_split((x, y), validation_split)
            return _numpy(named_targets(self, y))
        labels = getattr(x, "labels", None)  # kx.DataGenerator and any PyDataset that has them
        if labels is None:
            return None
        if isinstance(labels, dict):
            return {k: np.asarray(v) for k, v in labels.items()}
        return {k: np.asarray(v) for k, v in named_targets(self, labels).items()}

    def _kx_set_step_class_weights(self, class_weights):
        if class_weights != self._kx_step_class_weights:
            self._kx_step_class_weights = class_weights
            self.train_function = None  # the tables are constants of the traced step

    def _kx_fold_class_weights(self, data):
        """The batch with `fit(class_weight=...)` multiplied into its sample weights."""
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        sample_weight = self._kx_step_class_weights.fold(
            named_targets(self, y), sample_weight, _structure_of(self, y)
        )
        return x, y, sample_weight

    # -- steps -----------------------------------------------------------------------------------
    # `fit(class_weight=...)` reaches every train step, the user's own override included: the
    # class-level wrapper below folds the class weights into the batch before the outermost
    # `train_step` runs, once, whether or not it calls `super().train_step`.

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        step = cls.train_step  # the class's own, or a mixin's listed before CustomModel
        if not getattr(step, "_kx_folds_class_weights", False):
            cls.train_step = _folding_class_weights(step)

    def train_step(self, *args):
        return super().train_step(*args)

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
        return metrics[:1] + self._kx.metrics_objects() + metrics[1:]

    def get_metrics_result(self):
        if self._kx is None:
            return super().get_metrics_result()
        # Tensors, as stock Keras returns them: its callbacks read them as floats, on torch and JAX
        # in a background thread, so the step does not wait for the device.
        return self._kx.results(self.metrics)

    # Keras 2's names, still used by blog posts' custom steps. Stock Keras 3 has them on
    # TensorFlow only; with definitions they serve the definitions on every backend.

    @property
    def compiled_loss(self):
        if self._kx is None:
            return super().compiled_loss  # AttributeError where Keras has none
        return functools.partial(_compiled_loss, self)

    @property
    def compiled_metrics(self):
        if self._kx is None:
            return super().compiled_metrics
        return _CompiledMetrics(self)

    def _symbolic_build(self, iterator=None, data_batch=None):
        # Keras builds its own compiled metrics symbolically before a JAX step is traced; the
        # definitions need the same (metrics that create their variables on first use, e.g.
        # keras.metrics.F1Score, cannot do so inside a jitted JAX step).
        if self._kx is None or self._kx.built:
            return super()._symbolic_build(iterator=iterator, data_batch=data_batch)
        if data_batch is None and iterator is not None:
            for _, _, data_or_iterator in iterator:
                if isinstance(data_or_iterator, (list, tuple)):
                    data_batch = data_or_iterator[0]
                else:
                    data_batch = next(data_or_iterator)
                break
        super()._symbolic_build(data_batch=data_batch)
        self._kx.build(self, data_batch)

    # -- companions ------------------------------------------------------------------------------
    # Hooks read by kx.callbacks (BestModel, PrintEvaluate) and the export of several graphs;
    # override them in a subclass. The callbacks work with a plain keras.Model too.

    def best_logging_settings(self):
        """`(mode, monitor)` by which `kx.callbacks.BestModel` keeps the best model.

        Returns:
            `("min", "val_loss")`; override to return e.g. `("max", "val_f1")` (`mode` is
            `"min"` or `"max"`, `monitor` an epoch log key).

        Example:

        >>> import kx
        >>> class Net(kx.CustomModel):
        ...     def best_logging_settings(self):
        ...         return "max", "val_f1"
        >>> kx.CustomModel.best_logging_settings(None), Net.best_logging_settings(None)
        (('min', 'val_loss'), ('max', 'val_f1'))
        """
        return "min", "val_loss"

    def print_evaluate(self, sample, print_fn=print):
        """Prints one validation sample; called by `kx.callbacks.PrintEvaluate` at epoch ends.

        Args:
            sample: `{"inputs": {...}, "targets": {...}, "outputs": {...}}`, un-batched NumPy
                values keyed by name.
            print_fn: the function to print with. Defaults to `print`.

        Example:

        >>> import numpy as np, kx
        >>> sample = {"inputs": {"x": np.zeros(4)}, "targets": {"label": np.int64(2)},
        ...           "outputs": {"probs": np.array([0.1, 0.2, 0.7])}}
        >>> kx.CustomModel.print_evaluate(None, sample)
        PRED/GT: 2 == 2 (p = 0.7)
        """
        from kx.callbacks import _format

        print_fn(_format.format_sample(sample))

    def export_graphs(self):
        """The models `export_all` writes, by name: `{"default": self}` unless overridden.

        Override to export other graphs built from this model's layers, e.g. only the encoder
        of an encoder/decoder: `{"default": self, "encoder": keras.Model(self.input,
        self.get_layer("code").output)}`.

        Returns:
            A dict `{name: keras.Model}`.
        """
        return {"default": self}

    def export_all(self, directory, serving=True):
        """Writes every graph of `export_graphs()` as `<name>.keras`, and for serving.

        The serving artifact is `model.export`'s: a TensorFlow SavedModel folder `<name>/` on
        TensorFlow, and on JAX when TensorFlow is installed; `<name>.pt2` (`torch.export`) on
        PyTorch; `None` where the backend cannot (JAX without TensorFlow). Each `.keras` file
        reloads with `keras.models.load_model`; a SavedModel's `serve` endpoint and a `.pt2`
        program predict as the model does.

        Args:
            directory: the folder to write to (created if missing).
            serving: whether to write the serving artifacts too (they take seconds each; the
                first JAX export imports TensorFlow). Defaults to `True`.

        Returns:
            `{name: {"keras": path, "serving": path or None}}`.

        Example:

        >>> import keras, numpy as np, kx, tempfile
        >>> inputs = keras.Input((3,), name="x")
        >>> code = keras.layers.Dense(2, name="code")(inputs)
        >>> class AutoEncoder(kx.CustomModel):
        ...     def export_graphs(self):
        ...         return {"default": self, "encoder": keras.Model(
        ...             self.input, self.get_layer("code").output)}
        >>> model = AutoEncoder(inputs, keras.layers.Dense(3)(code))
        >>> files = model.export_all(tempfile.mkdtemp(), serving=False)
        >>> sorted(files), files["encoder"]["keras"].name
        (['default', 'encoder'], 'encoder.keras')
        """
        from kx import _export

        return _export.export_all(self.export_graphs(), directory, serving=serving)


def _folding_class_weights(step):
    """`step` (a `train_step`) receiving `fit(class_weight=...)` folded into its batch."""

    @functools.wraps(step)
    def train_step(self, *args):
        # A `super().train_step` inside the user's step must not fold a second time. The mark
        # is per thread: tf.distribute runs the replicas' steps in threads of their own.
        folding = _FOLDING.__dict__.setdefault("models", set())
        if self._kx_step_class_weights is None or id(self) in folding:
            return step(self, *args)
        folding.add(id(self))
        try:
            *state, data = args
            return step(self, *state, self._kx_fold_class_weights(data))
        finally:
            folding.discard(id(self))

    train_step._kx_folds_class_weights = True
    return train_step


_FOLDING = threading.local()  # ids of the models whose outermost train_step runs now

CustomModel.train_step = _folding_class_weights(CustomModel.train_step)


def _compiled_loss(model, y, y_pred, sample_weight=None, regularization_losses=None):
    warnings.warn(
        "`model.compiled_loss()` is deprecated. Instead, use `model.compute_loss(x, y, y_pred, "
        "sample_weight)`, which also passes the inputs to kx.ExtendedLoss.",
        stacklevel=2,
    )
    return model.compute_loss(None, y, y_pred, sample_weight)


class _CompiledMetrics:
    """`model.compiled_metrics.update_state(y, y_pred, sample_weight)` for definitions."""

    def __init__(self, model):
        self._model = model

    def update_state(self, y, y_pred, sample_weight=None):
        warnings.warn(
            "`model.compiled_metrics.update_state()` is deprecated. Instead, use "
            "`model.compute_metrics(x, y, y_pred, sample_weight)`, which returns the logs and "
            "also passes the inputs to kx.ExtendedMetric.",
            stacklevel=2,
        )
        self._model._kx.update_metrics(self._model, None, y, y_pred, sample_weight)


def _numpy(named):
    return {k: keras.ops.convert_to_numpy(v) for k, v in named.items()}


def _hand_validation_data(callbacks, x, y, sample_weight, validation_split, validation_data):
    """fit's validation set, for the kx.callbacks.PrintEvaluate given none (Keras does not
    hand callbacks the validation set)."""
    from kx.callbacks import PrintEvaluate

    waiting = [c for c in callbacks or () if isinstance(c, PrintEvaluate)
               and c.validation_data is None]
    if not waiting:
        return
    if validation_data is None and validation_split and y is not None:
        _, validation_data = _keras.train_validation_split(
            (x, y, sample_weight), validation_split
        )
    if isinstance(validation_data, (tuple, list)) and len(validation_data) == 3 and (
        validation_data[2] is None
    ):
        validation_data = validation_data[:2]
    for callback in waiting:
        callback.validation_data = validation_data


def _validation_targets(validation_data):
    if isinstance(validation_data, (tuple, list)) and len(validation_data) in (2, 3):
        return validation_data[1]
    return None


def _structure_of(model, y):
    """How `y` is laid out, for sample weights of the same form: "single", "dict" or names."""
    if isinstance(y, dict):
        return "dict"
    if isinstance(y, (list, tuple)):
        return list(named_targets(model, y))
    return "single"

_FUNCTIONAL_VARIANTS = {}


def _functional_variant(cls):
    if cls not in _FUNCTIONAL_VARIANTS:
        variant = type(cls.__name__, (cls, _keras.Functional), {"__module__": cls.__module__})
        variant.__qualname__ = cls.__qualname__
        # Saved under the name of the class the user wrote, so load_model finds that class.
        _keras.GLOBAL_CUSTOM_NAMES[variant] = keras.saving.get_registered_name(cls)
        _FUNCTIONAL_VARIANTS[cls] = variant
    return _FUNCTIONAL_VARIANTS[cls]
