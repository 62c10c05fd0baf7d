"""Data pipelines for `fit`: `DataGenerator`, a `keras.utils.PyDataset` that batches, reshuffles
and rebalances every epoch.

The order of an epoch is a pure function of `(seed, epoch)`, so every worker thread or process
that computes a batch computes the same one, whatever the scheduling.
"""

import numbers

import keras
import numpy as np

from kx._class_weight import WeightTable, check_dict, check_sample_weight

__all__ = ["DataGenerator", "LoaderError"]

_SAMPLERS = ("oversample", "undersample", "balanced")


class LoaderError(RuntimeError):
    """Raised by `DataGenerator` when its `loader` fails; the message names the failing id(s).

    The original exception is chained as `__cause__` in the process that ran the loader. The
    message alone carries the id, so it survives the trip from a worker process.
    """


class DataGenerator(keras.utils.PyDataset):
    """Batches arrays, dicts of arrays or loaded ids; reshuffles and rebalances every epoch.

    A `keras.utils.PyDataset` for `fit`, `evaluate` and `predict` of any Keras model
    (`kx.CustomModel` included), on every backend.

    **Sources.** `x` (and `y`) may be a NumPy array, any indexable with `__len__` (a memmap,
    an HDF5 dataset, a pandas DataFrame or Series, a list of samples), or a dict (or tuple) of
    those for multi-input / multi-output models. With a `loader`, `x` is a sequence of ids and
    batches are loaded on demand: `loader(id)` returns one sample (`loader_batched=False`) or
    `loader(list_of_ids)` returns one batch (`loader_batched=True`). What the loader returns is
    the inputs when `y` is given, otherwise the inputs or a tuple `(inputs, targets)`.

    **Order.** An epoch's order depends only on `seed` and the epoch number: worker threads and
    processes compute identical batches. The epoch number starts at 0 and advances by one at
    each `on_epoch_end()` call; `fit` calls it once when it starts (Keras' iterator reset) and
    after every epoch. Read or set it with the `epoch` attribute (e.g. to resume training).
    Note that `fit(shuffle=True)`, the Keras default, additionally shuffles the *order of the
    batches* with Python's `random`; pass `shuffle=False` to `fit` to train on exactly the
    generator's order (the generator already shuffles samples). A Keras 3.15 caveat: on JAX and
    PyTorch with `workers > 1`, `fit` on a model that is not built yet pulls one batch for its
    symbolic build, and the batches Keras' workers had prefetched are served at the start of the
    next epoch; build the model first (e.g. one `train_on_batch`) when exact epochs matter.

    **Sampling.** `sampler` re-draws the epoch's samples from `labels` every epoch:
    `"undersample"` keeps `min_count` random samples of each class, `"oversample"` keeps every
    sample and repeats random ones up to `max_count` per class, `"balanced"` draws `n` samples
    with replacement, each class with probability `1 / n_classes` (the bootstrap of
    balanced bagging). A callable `sampler(labels, rng)` returns the epoch's indices itself and
    must return the same number every epoch. Without `shuffle`, drawn indices keep data order.

    **Weights.** `sample_weight` (an array, or a dict keyed by target name) and `class_weight`
    (`{class: weight}`, a dict of such dicts keyed by target name, or `"balanced"`, computed with
    `kx.class_weights` from `labels`) multiply into the batch's third element: an array, or a
    dict with one array per target when `y` is a dict. Classes missing from `class_weight`
    weigh 1.

    **Labels contract.** The `labels` property holds the integer (or string) class label of every
    item, in index order: a NumPy array, a dict of arrays keyed by target name when `y` is a
    dict (only the targets whose labels can be read), or `None` when unknown. It is the
    `labels` argument when given; otherwise it is read from `y`: integer (or integer-valued)
    vectors as they are, one-hot or probability rows through `argmax`. With a `loader`, pass
    `labels` explicitly to use a sampler or `class_weight="balanced"`.
    `kx.CustomModel.fit(class_weight="balanced")` reads it.

    Args:
        x: the inputs (see Sources), or the ids when `loader` is given.
        y: the targets, aligned with `x`. Defaults to `None` (no targets, or targets from the
            loader).
        batch_size: samples per batch, a positive int. Defaults to 32.
        shuffle: whether to shuffle the samples every epoch. Defaults to `True`.
        seed: a non-negative int fixing every epoch's order, sampling and `transform` rng.
            Defaults to `None`: drawn once from NumPy's global generator (so
            `keras.utils.set_random_seed` fixes it).
        drop_remainder: whether to drop the last, smaller batch. Defaults to `False`; it is the
            only thing that drops samples.
        loader: `loader(id) -> sample` or, with `loader_batched=True`,
            `loader(ids) -> batch`. Defaults to `None`.
        loader_batched: whether `loader` takes a list of ids. Defaults to `False`.
        transform: `transform(batch, rng) -> batch` applied to every batch for augmentation;
            `batch` is `(x, y)` (`y` is `None` without targets) of NumPy values and `rng` is a
            `numpy.random.Generator` seeded from `(seed, epoch, batch index)`. Weights are
            computed before it runs. Defaults to `None`.
        sample_weight: per-sample weights, an array or a dict of arrays keyed by target name.
            Defaults to `None`.
        class_weight: `{class: weight}`, a dict of those keyed by target name, or `"balanced"`.
            Defaults to `None`.
        sampler: `None`, `"oversample"`, `"undersample"`, `"balanced"`, or a callable
            `(labels, rng) -> indices`. Defaults to `None` (every sample once per epoch).
        labels: the class label of every item, overriding the labels read from `y`. Defaults to
            `None`.
        workers: passed to `PyDataset`. Defaults to 1.
        use_multiprocessing: passed to `PyDataset`; the generator (and the loader) must then be
            picklable where processes are spawned rather than forked. Defaults to `False`.
        max_queue_size: passed to `PyDataset`. Defaults to 10.

    Example:

    >>> import numpy as np, kx
    >>> x = np.arange(10, dtype="float32")[:, None]
    >>> y = np.array([0] * 8 + [1] * 2)
    >>> gen = kx.DataGenerator(x, y, batch_size=4, seed=0)
    >>> len(gen), gen[0][0].shape
    (3, (4, 1))
    >>> seen = np.concatenate([gen[i][0][:, 0] for i in range(len(gen))])
    >>> sorted(seen.tolist()) == list(range(10))
    True
    >>> gen = kx.DataGenerator(x, y, batch_size=4, sampler="undersample", seed=0)
    >>> len(gen), np.bincount(np.concatenate([gen[i][1] for i in range(len(gen))])).tolist()
    (1, [2, 2])
    """

    def __init__(
        self,
        x,
        y=None,
        batch_size=32,
        *,
        shuffle=True,
        seed=None,
        drop_remainder=False,
        loader=None,
        loader_batched=False,
        transform=None,
        sample_weight=None,
        class_weight=None,
        sampler=None,
        labels=None,
        workers=1,
        use_multiprocessing=False,
        max_queue_size=10,
    ):
        super().__init__(
            workers=workers, use_multiprocessing=use_multiprocessing, max_queue_size=max_queue_size
        )
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral):
            raise TypeError(
                f"DataGenerator: expected `batch_size` to be a positive int. "
                f"Received: batch_size={batch_size!r}"
            )
        if batch_size <= 0:
            raise ValueError(
                f"DataGenerator: expected `batch_size` to be a positive int. "
                f"Received: batch_size={batch_size}"
            )
        if seed is None:
            seed = int(np.random.randint(0, 2**31 - 1))
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
            raise ValueError(
                f"DataGenerator: expected `seed` to be None or a non-negative int. "
                f"Received: seed={seed!r}"
            )
        for name, fn in (("loader", loader), ("transform", transform)):
            if fn is not None and not callable(fn):
                raise TypeError(
                    f"DataGenerator: expected `{name}` to be None or a callable. "
                    f"Received: {name}={fn!r}"
                )
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.drop_remainder = bool(drop_remainder)
        self.loader = loader
        self.loader_batched = bool(loader_batched)
        self.transform = transform
        self.epoch = 0

        # Sources: one gather function per leaf, checked for a common length.
        if loader is not None:
            if isinstance(x, dict) or not hasattr(x, "__len__"):
                raise TypeError(
                    "DataGenerator: with a `loader`, expected `x` to be a sequence of ids. "
                    f"Received: x of type {type(x).__name__}"
                )
            self._x = list(x)
            self._n = len(self._x)
        else:
            self._x = _map_leaves(x, "x", _Source)
            self._n = _common_length(self._x, "x", None)
        if self._n == 0:
            raise ValueError("DataGenerator: expected at least one sample. Received: len(x)=0")
        self._y = None if y is None else _map_leaves(y, "y", _Source)
        if self._y is not None:
            _common_length(self._y, "y", self._n)
        self._sample_weight = None
        if sample_weight is not None:
            if isinstance(sample_weight, dict) and not isinstance(y, dict):
                raise ValueError(
                    "DataGenerator: a dict `sample_weight` needs a dict `y` with the same keys. "
                    f"Received: sample_weight keys {sorted(sample_weight)} and y of type "
                    f"{type(y).__name__}"
                )
            if isinstance(sample_weight, dict):
                _check_keys(sample_weight, y, "sample_weight")
                self._sample_weight = {
                    k: _weights_array(v, f"sample_weight[{k!r}]", self._n)
                    for k, v in sample_weight.items()
                }
            else:
                self._sample_weight = _weights_array(sample_weight, "sample_weight", self._n)

        self._labels_arg = labels
        if labels is not None:
            self._labels_arg = _explicit_labels(labels, self._n, y)
        self._labels_cache = None
        self._class_weight = self._resolve_class_weight(class_weight, y)

        # Sampler: validated now, and its size fixed by epoch 0's draw.
        if sampler is not None and not callable(sampler) and sampler not in _SAMPLERS:
            raise ValueError(
                f"DataGenerator: expected `sampler` to be None, one of {list(_SAMPLERS)} or a "
                f"callable `(labels, rng) -> indices`. Received: sampler={sampler!r}"
            )
        self.sampler = sampler
        self._groups = None
        if sampler is not None:
            sampler_labels = self._sampler_labels()
            classes, inverse, counts = np.unique(
                sampler_labels, return_inverse=True, return_counts=True
            )
            self._sampler_label_array = sampler_labels
            self._inverse = inverse.reshape(-1)
            self._counts = counts
            self._groups = [np.flatnonzero(self._inverse == c) for c in range(len(classes))]
        self._order_cache = None
        self._size = None  # samples per epoch, fixed by epoch 0's draw
        self._order(0)
        if len(self) == 0:
            raise ValueError(
                f"DataGenerator: no batch left: {self._size} samples per epoch with "
                f"batch_size={self.batch_size} and drop_remainder=True."
            )

    # ----------------------------------------------------------------- labels and weights

    @property
    def labels(self):
        """The class label of every item in index order (see the class docstring), or `None`."""
        if self._labels_arg is not None:
            return self._labels_arg
        if self._labels_cache is None and self._y is not None:
            if isinstance(self._y, dict):
                found = {k: _labels_from_targets(s.all()) for k, s in self._y.items()}
                found = {k: v for k, v in found.items() if v is not None}
                self._labels_cache = (found or None,)
            elif isinstance(self._y, tuple):
                self._labels_cache = (None,)
            else:
                self._labels_cache = (_labels_from_targets(self._y.all()),)
        return None if self._labels_cache is None else self._labels_cache[0]

    def _sampler_labels(self):
        labels = self.labels
        if labels is None:
            raise ValueError(
                f"DataGenerator: sampler={_name(self.sampler)} needs class labels, and none "
                "could be read. Pass `labels=` (one class per item), or integer / one-hot `y`."
            )
        if isinstance(labels, dict):
            if len(labels) != 1:
                raise ValueError(
                    f"DataGenerator: sampler={_name(self.sampler)} needs one label per item, "
                    f"but labels were read for several targets {sorted(labels)}. Pass "
                    "`labels=` with the labels to balance."
                )
            labels = next(iter(labels.values()))
        return labels

    def _resolve_class_weight(self, class_weight, y):
        """Returns `{target_key: WeightTable}` (key `None` for a single target)."""
        if class_weight is None:
            return None
        labels = self.labels
        if isinstance(class_weight, str):
            if class_weight != "balanced":
                raise ValueError(
                    "DataGenerator: expected `class_weight` to be a dict, a dict of dicts keyed "
                    f"by target name, or 'balanced'. Received: class_weight={class_weight!r}"
                )
            if labels is None:
                raise ValueError(
                    "DataGenerator: class_weight='balanced' needs class labels, and none could "
                    "be read. Pass `labels=` (one class per item), or integer / one-hot `y`."
                )
            from kx.weights import class_weights

            class_weight = class_weights(labels)
        if not isinstance(class_weight, dict):
            raise TypeError(
                "DataGenerator: expected `class_weight` to be a dict, a dict of dicts keyed by "
                f"target name, or 'balanced'. Received: class_weight={class_weight!r}"
            )
        per_target = class_weight and all(isinstance(v, dict) for v in class_weight.values())
        if isinstance(y, dict):
            if not per_target:
                if isinstance(labels, dict) and len(labels) == 1:
                    class_weight = {next(iter(labels)): class_weight}
                else:
                    raise ValueError(
                        "DataGenerator: with a dict `y`, expected `class_weight` to be a dict "
                        f"of dicts keyed by target name (targets: {sorted(y)}). Received: "
                        f"class_weight={class_weight!r}"
                    )
            _check_keys(class_weight, y, "class_weight")
        elif per_target:
            raise ValueError(
                "DataGenerator: a dict of class weights per target needs a dict `y`. "
                f"Received: class_weight keys {sorted(class_weight)} and y of type "
                f"{type(y).__name__}"
            )
        else:
            class_weight = {None: class_weight}
        resolved = {}
        for key, weights in class_weight.items():
            target_labels = labels.get(key) if isinstance(labels, dict) else labels
            owner = "DataGenerator: class_weight" + ("" if key is None else f" for target {key!r}")
            present = None if target_labels is None else np.unique(target_labels).tolist()
            resolved[key] = WeightTable(check_dict(weights, owner, present=present))
        return resolved

    # ----------------------------------------------------------------- order

    def on_epoch_end(self):
        """Advances the epoch number, which re-draws the order (and sampling)."""
        self.epoch += 1

    def _order(self, epoch):
        cached = self._order_cache
        if cached is not None and cached[0] == (self.seed, epoch):
            return cached[1]
        rng = np.random.default_rng([self.seed, epoch])
        if self.sampler is None:
            idx = np.arange(self._n)
        elif callable(self.sampler):
            idx = _check_indices(self.sampler(self._sampler_label_array, rng), self._n)
        elif self.sampler == "undersample":
            m = self._counts.min()
            idx = np.concatenate([rng.choice(g, m, replace=False) for g in self._groups])
        elif self.sampler == "oversample":
            m = self._counts.max()
            idx = np.concatenate(
                [np.concatenate([g, rng.choice(g, m - len(g), replace=True)]) for g in self._groups]
            )
        else:  # balanced bootstrap
            p = 1.0 / (len(self._counts) * self._counts[self._inverse])
            idx = rng.choice(self._n, self._n, replace=True, p=p / p.sum())
        if self.shuffle:
            idx = rng.permutation(idx)
        elif self.sampler is not None:
            idx = np.sort(idx)
        if self._size is None:
            self._size = len(idx)
        elif len(idx) != self._size:
            raise ValueError(
                f"DataGenerator: the sampler returned {len(idx)} indices for epoch {epoch}, but "
                f"{self._size} for epoch 0; it must return the same number every epoch."
            )
        if self.drop_remainder:
            idx = idx[: len(idx) - len(idx) % self.batch_size]
        self._order_cache = ((self.seed, epoch), idx)  # one assignment: safe across threads
        return idx

    def __len__(self):
        size = self._size - (self._size % self.batch_size if self.drop_remainder else 0)
        return -(-size // self.batch_size)

    # ----------------------------------------------------------------- batches

    def __getitem__(self, index):
        n_batches = len(self)
        if index < 0:
            index += n_batches
        if not 0 <= index < n_batches:
            raise IndexError(
                f"DataGenerator: batch index {index} out of range for {n_batches} batches."
            )
        epoch = self.epoch
        idx = self._order(epoch)[index * self.batch_size : (index + 1) * self.batch_size]
        if self.loader is not None:
            x, y = self._load(idx, index)
        else:
            x = _map_leaves(self._x, "x", lambda s, _: s.take(idx))
            y = None
        if self._y is not None:
            y = _map_leaves(self._y, "y", lambda s, _: s.take(idx))
        weights = self._weights(idx, y)
        if self.transform is not None:
            rng = np.random.default_rng([self.seed, epoch, index + 1])
            x, y = self.transform((x, y), rng)
        if y is None:
            return (x,)
        return (x, y) if weights is None else (x, y, weights)

    def _load(self, idx, index):
        ids = [self._x[i] for i in idx]
        if self.loader_batched:
            try:
                out = self.loader(ids)
            except Exception as e:
                raise LoaderError(
                    f"DataGenerator: `loader` failed on the ids of batch {index}: "
                    f"{_short(ids)}. {type(e).__name__}: {e}"
                ) from e
            return _split_loaded(out, self._y is not None)
        samples = []
        for i in ids:
            try:
                samples.append(self.loader(i))
            except Exception as e:
                raise LoaderError(
                    f"DataGenerator: `loader` failed on id {i!r} (batch {index}). "
                    f"{type(e).__name__}: {e}"
                ) from e
        if self._y is None and isinstance(samples[0], tuple) and len(samples[0]) == 2:
            return _stack([s[0] for s in samples]), _stack([s[1] for s in samples])
        return _stack(samples), None

    def _weights(self, idx, y):
        if self._sample_weight is None and self._class_weight is None:
            return None
        keys = list(y) if isinstance(y, dict) else [None]
        out = {}
        for key in keys:
            sw = self._sample_weight
            if isinstance(sw, dict):
                sw = sw.get(key)
            w = np.ones(len(idx), "float32") if sw is None else sw[idx].astype("float32")
            if self._class_weight is not None and key in self._class_weight:
                labels = self.labels
                if isinstance(labels, dict):
                    labels = labels.get(key)
                if labels is not None:
                    batch_labels = labels[idx]
                else:
                    batch_labels = _labels_from_targets(y if key is None else y[key])
                    if batch_labels is None:
                        raise ValueError(
                            "DataGenerator: `class_weight` needs class labels, and the batch "
                            "targets are neither integer labels nor one-hot rows. Pass `labels=`."
                        )
                w = w * self._class_weight[key].numpy(batch_labels)
            out[key] = w
        return out[None] if keys == [None] else out


# --------------------------------------------------------------------- helpers


class _Source:
    """One array-like leaf: knows how to gather rows from it fast."""

    def __init__(self, data, name):
        if not hasattr(data, "__len__") or not hasattr(data, "__getitem__"):
            raise TypeError(
                f"DataGenerator: expected `{name}` to be an array or an indexable with "
                f"`__len__`. Received: {type(data).__name__}"
            )
        self.data = data
        self.name = name
        if isinstance(data, np.ndarray):
            self.kind = "numpy"
        elif hasattr(data, "iloc"):
            self.kind = "pandas"
        elif hasattr(data, "shape") and hasattr(data, "dtype"):
            self.kind = "sorted"  # HDF5-like: fancy indexing needs increasing, unique indices
        else:
            self.kind = "items"

    def __len__(self):
        return len(self.data)

    def take(self, idx):
        if self.kind == "numpy":
            return np.asarray(self.data[idx])
        if self.kind == "pandas":
            return self.data.iloc[idx].to_numpy()
        if self.kind == "sorted":
            unique, inverse = np.unique(idx, return_inverse=True)
            return np.asarray(self.data[unique.tolist()])[inverse.reshape(-1)]
        return np.stack([np.asarray(self.data[int(i)]) for i in idx])

    def all(self):
        if self.kind == "pandas":
            return self.data.to_numpy()
        if self.kind == "items":
            return np.stack([np.asarray(self.data[i]) for i in range(len(self.data))])
        return np.asarray(self.data[:] if self.kind == "sorted" else self.data)


def _map_leaves(structure, name, fn):
    if isinstance(structure, dict):
        return {k: fn(v, f"{name}[{k!r}]") for k, v in structure.items()}
    if isinstance(structure, tuple):
        return tuple(fn(v, f"{name}[{i}]") for i, v in enumerate(structure))
    return fn(structure, name)


def _leaves(structure):
    if isinstance(structure, dict):
        return list(structure.values())
    if isinstance(structure, tuple):
        return list(structure)
    return [structure]


def _common_length(structure, name, expected):
    for leaf in _leaves(structure):
        if expected is None:
            expected, first = len(leaf), leaf.name
        elif len(leaf) != expected:
            against = "x" if name != "x" else first
            raise ValueError(
                f"DataGenerator: expected `{leaf.name}` to have as many items as `{against}` "
                f"({expected}). Received: len({leaf.name})={len(leaf)}"
            )
    if expected is None:
        raise ValueError(f"DataGenerator: `{name}` holds no array. Received: {name}={structure!r}")
    return expected


def _check_keys(given, y, name):
    unknown = sorted(set(given) - set(y))
    if unknown:
        raise ValueError(
            f"DataGenerator: expected the keys of `{name}` to name targets of `y` "
            f"{sorted(y)}. Received: {unknown}"
        )


def _weights_array(w, name, n):
    check_sample_weight(w, f"DataGenerator: {name}")
    w = np.asarray(w, dtype="float32")
    if w.ndim != 1 or len(w) != n:
        raise ValueError(
            f"DataGenerator: expected `{name}` to be a vector with as many items as `x` ({n}). "
            f"Received: shape {w.shape}"
        )
    return w


def _explicit_labels(labels, n, y):
    if isinstance(labels, dict):
        if not isinstance(y, dict):
            raise ValueError(
                "DataGenerator: dict `labels` need a dict `y` with the same keys. Received: "
                f"labels keys {sorted(labels)} and y of type {type(y).__name__}"
            )
        return {k: _explicit_labels(v, n, None) for k, v in labels.items()}
    arr = np.asarray(labels)
    if arr.ndim != 1 or len(arr) != n:
        raise ValueError(
            f"DataGenerator: expected `labels` to be a vector with as many items as `x` ({n}). "
            f"Received: shape {arr.shape}"
        )
    return arr


def _labels_from_targets(y):
    """Integer labels from integer vectors or one-hot rows; `None` for anything else."""
    if not isinstance(y, np.ndarray):
        return None
    if y.dtype.kind in "USO":
        return y.reshape(-1) if y.ndim == 1 else None
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim == 1:
        if y.dtype.kind in "biu":
            return y.astype("int64")
        if y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
            return y.astype("int64")
        return None
    if y.ndim == 2 and y.dtype.kind in "biuf":
        if np.all(y >= 0) and np.allclose(y.sum(-1), 1.0, atol=1e-3):
            return np.argmax(y, -1).astype("int64")
    return None


def _check_indices(idx, n):
    idx = np.asarray(idx)
    bad = idx.ndim != 1 or idx.dtype.kind not in "iu"
    if bad or (len(idx) and (idx.min() < 0 or idx.max() >= n)):
        raise ValueError(
            f"DataGenerator: expected the sampler to return a vector of integer indices in "
            f"[0, {n}). Received: shape {idx.shape}, dtype {idx.dtype}"
        )
    return idx


def _stack(samples):
    first = samples[0]
    if isinstance(first, dict):
        return {k: _stack([s[k] for s in samples]) for k in first}
    if isinstance(first, (tuple, list)):
        return tuple(_stack([s[i] for s in samples]) for i in range(len(first)))
    return np.stack([np.asarray(s) for s in samples])


def _split_loaded(out, has_y):
    if not has_y and isinstance(out, tuple) and len(out) == 2:
        return out
    return out, None


def _py(value):
    return value.item() if isinstance(value, np.generic) else value


def _name(sampler):
    return getattr(sampler, "__name__", repr(sampler))


def _short(ids, limit=8):
    return repr(ids) if len(ids) <= limit else repr(ids[:limit])[:-1] + f", ... ({len(ids)} ids)]"
