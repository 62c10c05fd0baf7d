"""PrintEvaluate: the model's `print_evaluate` on the first validation samples at each epoch end."""

import keras
import numpy as np

from kx.callbacks import _format, _sources

__all__ = ["PrintEvaluate"]


class PrintEvaluate(keras.callbacks.Callback):
    """Shows the first `n` validation samples, as the model prints them, at each epoch end.

    At the start of training the first `n` samples of `validation_data` are taken once (the
    same samples every epoch, so their predictions show how training goes). At each epoch end
    the model predicts them and `model.print_evaluate(sample, print_fn=print_fn)` is called
    once per sample, with `sample = {"inputs": {...}, "targets": {...}, "outputs": {...}}` of
    un-batched NumPy values keyed by name (a plain tensor is named after the model's single
    input or output). `kx.CustomModel.print_evaluate` prints a compact line by default
    (`PRED/GT: 3 == 3 (p = 0.97)` for a class target and output); override it to decode
    predictions your way. A `keras.Model` without the hook gets the same default line.

    Keras does not hand callbacks the validation set: `kx.CustomModel.fit` hands its own
    (`validation_data`, or the `validation_split` of array data) to a `PrintEvaluate` given
    none; with another model, pass it here.

    Args:
        n: number of samples. Defaults to `5`.
        validation_data: a tuple `(x, y)` / `(x, y, sample_weight)` of arrays or dicts of
            arrays, a `keras.utils.PyDataset` (`kx.DataGenerator`), a `tf.data.Dataset`, a
            torch `DataLoader` or a generator; read at the start of training until `n`
            samples are taken (a generator's batches are consumed). Defaults to `None`: the
            validation set of `kx.CustomModel.fit`.
        print_fn: what the hook prints with. Defaults to `print`.

    Example:

    >>> import keras, numpy as np, kx
    >>> x = np.eye(3, dtype="float32")
    >>> y = np.array([0, 1, 2])
    >>> inputs = keras.Input((3,), name="x")
    >>> model = kx.CustomModel(
    ...     inputs, {"probs": keras.layers.Dense(3, activation="softmax")(inputs)})
    >>> model.compile("sgd", loss={"ce": kx.LossDefinition(
    ...     "label", "probs", "sparse_categorical_crossentropy")})
    >>> lines = []
    >>> show = kx.callbacks.PrintEvaluate(2, validation_data=(x, {"label": y}),
    ...                                   print_fn=lines.append)
    >>> _ = model.fit(x, {"label": y}, epochs=1, verbose=0, callbacks=[show])
    >>> len(lines), lines[0].startswith("PRED/GT: ")
    (2, True)
    """

    def __init__(self, n=5, *, validation_data=None, print_fn=print):
        super().__init__()
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"PrintEvaluate: expected `n` to be a positive integer. Received: "
                             f"n={n!r}")
        if not callable(print_fn):
            raise TypeError(f"PrintEvaluate: expected `print_fn` to be callable. Received: "
                            f"{print_fn!r}")
        if validation_data is not None:
            _sources.check_source("PrintEvaluate", validation_data, steps=n)
        self.n = n
        self.validation_data = validation_data
        self.print_fn = print_fn
        self._samples = None

    def on_train_begin(self, logs=None):
        if self.validation_data is None:
            raise ValueError(
                "PrintEvaluate: no validation data. Pass `validation_data=` to PrintEvaluate, "
                "or fit a kx.CustomModel with `validation_data` or `validation_split`."
            )
        if self._samples is None:
            self._samples = _sources.first_samples(
                "PrintEvaluate", self.validation_data, self.n, steps=self.n
            )

    def on_epoch_end(self, epoch, logs=None):
        if self._samples is None:
            self.on_train_begin()
        hook = getattr(self.model, "print_evaluate", None) or _default_print_evaluate
        for sample in self.samples():
            hook(sample, print_fn=self.print_fn)

    def samples(self):
        """The un-batched samples with the current model's outputs, a list of dicts."""
        named = _sources.predict_named(self.model, self._samples)
        count = len(next(iter(named["targets"].values())))
        return [
            {part: _row(values, i) for part, values in named.items()}
            for i in range(count)
        ]


def _default_print_evaluate(sample, print_fn=print):
    print_fn(_format.format_sample(sample))


def _row(values, i):
    return {k: np.asarray(v[i]) for k, v in values.items()}
