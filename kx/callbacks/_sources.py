"""Reading a validation source batch by batch as NumPy, for the callbacks that predict it.

A source is what `fit(validation_data=...)` accepts: a tuple `(x, y)` / `(x, y, sample_weight)`
of arrays (or dicts of arrays), a `keras.utils.PyDataset` (`kx.DataGenerator`), a
`tf.data.Dataset`, a torch `DataLoader`, or a Python generator / iterator of such tuples.
Callbacks never call a PyDataset's `on_epoch_end`: reading the validation set must not reshuffle
the data `fit` uses.
"""

import itertools

import keras
import numpy as np

from kx import _structure


def check_source(owner, source, steps=None):
    """Raises early when `source` is not a validation source, or is endless without `steps`."""
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
        raise ValueError(f"{owner}: expected `steps` to be a positive integer or None. "
                         f"Received: steps={steps!r}")
    if isinstance(source, (tuple, list)):
        if len(source) not in (2, 3):
            raise ValueError(
                f"{owner}: expected `validation_data` to be a tuple (x, y) or (x, y, "
                f"sample_weight), or a data set (PyDataset, tf.data.Dataset, torch DataLoader, "
                f"generator). Received: a {type(source).__name__} of length {len(source)}"
            )
        return
    if not hasattr(source, "__iter__") and not hasattr(source, "__next__"):
        raise ValueError(
            f"{owner}: expected `validation_data` to be a tuple (x, y) or (x, y, sample_weight), "
            "a keras.utils.PyDataset (kx.DataGenerator), a tf.data.Dataset, a torch DataLoader "
            f"or a generator. Received: {type(source).__name__}"
        )
    if steps is None and _is_endless(source):
        raise ValueError(
            f"{owner}: `validation_data` ({type(source).__name__}) never ends; pass `steps`, the "
            "number of batches to read."
        )


def _is_endless(source):
    if isinstance(source, keras.utils.PyDataset):
        try:
            return source.num_batches is None
        except NotImplementedError:
            return True
    cardinality = getattr(source, "cardinality", None)  # tf.data: -1 is INFINITE
    if callable(cardinality) and type(source).__module__.startswith("tensorflow"):
        return int(cardinality()) == -1
    return False


def is_arrays(source):
    return isinstance(source, (tuple, list))


def batches(owner, source, steps=None):
    """Yields `(x, y, sample_weight)` batches of NumPy values (one batch for arrays)."""
    if is_arrays(source):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(tuple(source))
        yield _numpy(x), _numpy(y), _numpy(sample_weight)
        return
    iterator = iter(source)
    if steps is not None:
        iterator = itertools.islice(iterator, steps)
    seen = 0
    for batch in iterator:
        if not isinstance(batch, (tuple, list)):
            raise ValueError(
                f"{owner}: each batch of `validation_data` must be a tuple (x, y) or (x, y, "
                f"sample_weight): the targets are needed. Received a batch of type "
                f"{type(batch).__name__}"
            )
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(tuple(batch))
        if y is None:
            raise ValueError(f"{owner}: a batch of `validation_data` has no targets (y).")
        seen += 1
        yield _numpy(x), _numpy(y), _numpy(sample_weight)
    if seen == 0:
        raise ValueError(
            f"{owner}: `validation_data` ({type(source).__name__}) yielded no batch. A generator "
            "or iterator is read once: give an endless one with `steps`, or a re-iterable source "
            "(arrays, PyDataset, tf.data.Dataset, torch DataLoader)."
        )


def first_samples(owner, source, n, steps=None):
    """The first `n` samples of a source (fewer if it has fewer) as `(x, y, sample_weight)`."""
    parts = []
    count = 0
    for x, y, sample_weight in batches(owner, source, steps):
        parts.append((x, y, sample_weight))
        count += _length(y)
        if count >= n:
            break
    x, y, sample_weight = (concatenate([p[i] for p in parts]) for i in range(3))
    return keras.tree.map_structure(lambda v: None if v is None else v[:n], (x, y, sample_weight))


def predict_named(model, samples):
    """The model's outputs for `first_samples`' `(x, y, sample_weight)`, with the inputs and
    targets: `{"inputs": {...}, "targets": {...}, "outputs": {...}}` of NumPy batches by name."""
    x, y, _ = samples
    y_pred = model.predict_on_batch(x)
    named = {
        "inputs": _structure.named_inputs(model, x),
        "targets": _structure.named_targets(model, y),
        "outputs": _structure.named_outputs(model, y_pred),
    }
    return {
        part: {k: keras.ops.convert_to_numpy(v) for k, v in values.items()}
        for part, values in named.items()
    }


def concatenate(values):
    """Concatenates same-structured batches along the first axis (`None` stays `None`)."""
    if values[0] is None:
        return None
    return keras.tree.map_structure(lambda *v: np.concatenate(v), *values)


def _length(value):
    return len(keras.tree.flatten(value)[0])


def _numpy(value):
    if value is None:
        return None
    return keras.tree.map_structure(_to_numpy, value)


def _to_numpy(v):
    if v is None:
        return None
    if hasattr(v, "detach"):  # torch
        v = v.detach().cpu()
    if hasattr(v, "numpy"):  # torch, tf
        v = v.numpy()
    return np.asarray(v)
