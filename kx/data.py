"""Data pipelines for `fit`: `DataGenerator`, a `keras.utils.PyDataset` that batches, reshuffles
and rebalances every epoch.

The order of an epoch is a pure function of `(seed, epoch)`, so every worker thread or process
that computes a batch computes the same one, whatever the scheduling.
"""

import concurrent.futures
import copy
import multiprocessing
import multiprocessing.resource_tracker
import numbers
import pickle
import threading
import warnings
import weakref
from multiprocessing import shared_memory

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
    generator's order (the generator already shuffles samples).

    **Workers.** With `workers > 1` or `use_multiprocessing=True`, kx's own pool of threads or
    (forked, long-lived) processes computes the next batches ahead, keyed by `(epoch, index)`:
    a batch computed for another epoch is never served, so every epoch is exact with any model
    and backend (Keras' own workers, which Keras 3.15 lets leak batches from the symbolic build
    of an unbuilt model into the next epoch on JAX and PyTorch, are not used: Keras sees a
    single-worker dataset, so `self.workers` reads 1). The pool prefetches in index order, so
    pass `shuffle=False` to `fit`; out-of-order requests warn once. Set the generator's
    attributes (other than `epoch`) before its first batch: worker processes keep the state
    they were forked with.

    **Shards.** With `shard=(index, count)` the generator yields the `index`-th of `count`
    equal parts of every batch of the epoch (`batch_size` is the global batch), so `count`
    workers that share a seed read every sample once per epoch between them. `shard="auto"`
    takes `(data_shard_id, count)` from a `keras.distribution` that spans several processes.

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
        workers: threads (or processes) computing batches ahead, a positive int. Defaults
            to 1 (batches computed on request, in the caller's thread).
        use_multiprocessing: whether the workers are processes (forked where the platform can
            fork; elsewhere spawned, and the generator, loader included, must pickle).
            Defaults to `False`.
        max_queue_size: how many batches the workers may hold ahead. Defaults to 10.
        shard: `(index, count)`, `None` (the whole of every batch) or `"auto"` (a shard per
            process under a multi-process `keras.distribution`, else `None`). `batch_size`
            and the last batch must then be multiples of `count`, and a shuffling or sampling
            generator needs an explicit `seed`. Defaults to `"auto"`.

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
    >>> halves = [kx.DataGenerator(x, y, batch_size=4, seed=0, shard=(k, 2)) for k in (0, 1)]
    >>> whole = kx.DataGenerator(x, y, batch_size=4, seed=0)
    >>> parts = np.concatenate([h[1][0][:, 0] for h in halves])
    >>> len(halves[0][1][0]), sorted(parts.tolist()) == sorted(whole[1][0][:, 0].tolist())
    (2, True)
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
        shard="auto",
    ):
        # Keras sees a single-worker dataset and asks for the batches one by one; the workers
        # are kx's own (`_Prefetcher`). Keras' queue would serve the batches its symbolic build
        # prefetched in the next epoch (Keras 3.15, JAX and torch); kx's pool keys every batch
        # by (epoch, index), so a stale one is never served.
        super().__init__(workers=1, use_multiprocessing=False, max_queue_size=max_queue_size)
        for name, value in (("workers", workers), ("max_queue_size", max_queue_size)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(
                    f"DataGenerator: expected `{name}` to be a positive int. "
                    f"Received: {name}={value!r}"
                )
        self._workers_kx = int(workers)
        self._processes = bool(use_multiprocessing)
        self._queue_size = int(max_queue_size)
        self._prefetcher = None
        self._last_request = None
        self._warned_order = False
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
        self._auto_shard = isinstance(shard, str) and shard == "auto"
        self._shard = _resolve_shard(shard)
        sharded = self._shard is not None and self._shard[1] > 1
        self._seed_given = seed is not None
        if sharded:
            _require_seed(self._shard, self._seed_given, shuffle or sampler is not None)
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
        if sharded:
            self._check_shard_sizes()

    def _check_shard_sizes(self):
        count = self._shard[1]
        last = 0 if self.drop_remainder else self._size % self.batch_size
        if self.batch_size % count or last % count:
            raise ValueError(
                f"DataGenerator: with shard={self._shard}, every batch is split into "
                f"{count} equal parts, one per worker; expected `batch_size` (the global "
                f"batch, {self.batch_size}) and the last batch ({last} samples; 0 with "
                f"drop_remainder=True) to be multiples of {count}."
            )

    def sharded(self, shard):
        """A copy of this generator that yields only the part `shard` of every batch (same
        seed, epoch, sampling and weights); what `shard="auto"` gives each worker of a
        `tf.distribute.MultiWorkerMirroredStrategy` in `kx.CustomModel.fit`. The copy computes
        its batches on request (no worker pool).

        Args:
            shard: `(index, count)`, as the constructor's `shard`.

        Returns:
            A `DataGenerator`; raises `ValueError` as the constructor does for a shard that
            the batch sizes or a missing seed do not allow.

        Example:

        >>> import numpy as np, kx
        >>> gen = kx.DataGenerator(np.arange(8.0), np.arange(8), batch_size=4, seed=0)
        >>> [len(gen.sharded((k, 2))[0][0]) for k in (0, 1)]
        [2, 2]
        """
        part = copy.copy(self)
        part._shard = _resolve_shard(shard)
        part._auto_shard = False
        part._workers_kx, part._processes, part._prefetcher = 1, False, None
        part._last_request, part._warned_order = None, False
        if part._shard is not None:
            _require_seed(part._shard, self._seed_given, self.shuffle or self.sampler is not None)
            part._check_shard_sizes()
        return part

    def __getstate__(self):
        # The worker pool and its bookkeeping stay in the process that started them.
        state = self.__dict__.copy()
        state["_prefetcher"] = None
        return state

    @property
    def shard(self):
        """`(index, count)`: this worker's share of every batch, or `None` (all of it)."""
        return self._shard

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
        if self._prefetcher is not None:
            self._prefetcher.start_epoch(self, self.epoch)

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
        if isinstance(index, bool) or not isinstance(index, numbers.Integral):
            raise TypeError(f"DataGenerator: expected a batch index (an int). Received: {index!r}")
        index = int(index)
        if index < 0:
            index += n_batches
        if not 0 <= index < n_batches:
            raise IndexError(
                f"DataGenerator: batch index {index} out of range for {n_batches} batches."
            )
        epoch = self.epoch
        self._check_request_order(epoch, index)
        if self._workers_kx > 1 or self._processes:
            if self._prefetcher is None:
                self._prefetcher = _Prefetcher(
                    self, self._workers_kx, self._processes, self._queue_size
                )
            return self._prefetcher.get(self, epoch, index)
        return self._batch(epoch, index)

    def _check_request_order(self, epoch, index):
        """Warns once when batches are requested out of order by a prefetching or sharded
        generator: its workers then wait, and sharded processes may combine different
        batches."""
        last, self._last_request = self._last_request, (epoch, index)
        sharded = self._shard is not None and self._shard[1] > 1
        if self._warned_order or not (sharded or self._workers_kx > 1 or self._processes):
            return
        if last is not None and last[0] == epoch and index not in (0, last[1], last[1] + 1):
            self._warned_order = True
            warnings.warn(
                f"DataGenerator: batch {index} was requested after batch {last[1]}. "
                "`fit(shuffle=True)` (Keras' default) reorders the batches of a PyDataset; "
                "the generator already shuffles its samples, prefetches its batches in order "
                "and, sharded, relies on every process asking for the same batch at each step. "
                "Pass `shuffle=False` to `fit`.",
                stacklevel=2,
            )

    def _batch(self, epoch, index):
        """Batch `index` of epoch `epoch` (this shard's part of it): a pure function of
        `(seed, epoch, index)`, computed in whatever thread or process asks for it."""
        start = index * self.batch_size
        idx = self._order(epoch)[start : start + self.batch_size]
        rng_key = [self.seed, epoch, index + 1]
        if self._shard is not None:
            shard, count = self._shard
            size = len(idx) // count
            idx = idx[shard * size : (shard + 1) * size]
            rng_key.append(shard)
        if self.loader is not None:
            x, y = self._load(idx, index)
        else:
            x = _map_leaves(self._x, "x", lambda s, _: s.take(idx))
            y = None
        if self._y is not None:
            y = _map_leaves(self._y, "y", lambda s, _: s.take(idx))
        weights = self._weights(idx, y)
        if self.transform is not None:
            x, y = self.transform((x, y), np.random.default_rng(rng_key))
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
        batch = None
        split = False
        for j, i in enumerate(ids):
            try:
                sample = self.loader(i)
            except Exception as e:
                raise LoaderError(
                    f"DataGenerator: `loader` failed on id {i!r} (batch {index}). "
                    f"{type(e).__name__}: {e}"
                ) from e
            if batch is None:
                split = self._y is None and isinstance(sample, tuple) and len(sample) == 2
                batch = _map_nested(sample, lambda a: _empty_batch(a, len(ids)))
            try:  # written in place: no list of samples, no second copy by np.stack
                _put(batch, j, sample)
            except (ValueError, TypeError, KeyError, IndexError) as e:
                raise LoaderError(
                    f"DataGenerator: `loader` returned a sample for id {i!r} (batch {index}) "
                    f"unlike the batch's first sample (id {ids[0]!r}). "
                    f"{type(e).__name__}: {e}"
                ) from e
        batch = _finish(batch)
        return (batch[0], batch[1]) if split else (batch, None)

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


def _require_seed(shard, seed_given, draws):
    """Workers share out one order: a shuffling or sampling (`draws`) shard needs the seed."""
    if draws and not seed_given:
        raise ValueError(
            f"DataGenerator: a sharded generator (shard={shard}) that shuffles or samples needs "
            "an explicit `seed`, the same in every worker, so that the workers draw the same "
            "order and share it out. Received: seed=None"
        )


def _resolve_shard(shard):
    """`(index, count)` from the `shard` argument, or `None` when the generator reads it all."""
    if isinstance(shard, str) and shard == "auto":
        # keras.distribution over several processes (JAX): each process feeds its part of the
        # global batch, as Keras' own `Distribution.distribute_dataset` does for tf.data.
        distribution = keras.distribution.distribution()
        if distribution is None or distribution.num_processes <= 1:
            return None
        try:
            count = min(distribution.num_processes, distribution.num_model_replicas)
        except NotImplementedError:
            count = distribution.num_processes
        return (distribution.data_shard_id, count) if count > 1 else None
    if shard is None:
        return None
    ok = (
        isinstance(shard, (tuple, list))
        and len(shard) == 2
        and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in shard)
        and shard[1] >= 1
        and 0 <= shard[0] < shard[1]
    )
    if not ok:
        raise ValueError(
            "DataGenerator: expected `shard` to be 'auto', None or `(index, count)` with "
            f"0 <= index < count. Received: shard={shard!r}"
        )
    return (int(shard[0]), int(shard[1])) if shard[1] > 1 else None


class _Prefetcher:
    """kx's worker pool: computes `generator._batch(epoch, index)` ahead of the requests.

    Batches are keyed by `(epoch, index)`: a batch computed for another epoch is dropped, never
    served. It prefetches the indices after the last request (in order) and, at each epoch end,
    the first batches of the next epoch. Processes are forked once and live as long as the
    generator; each task carries its epoch, so a worker's copy of the generator never needs
    updating.
    """

    def __init__(self, generator, workers, processes, depth):
        self.depth = depth
        self.lock = threading.Lock()
        self.pending = {}  # (epoch, index) -> Future
        self.served = set()  # indices of the current epoch already served
        self.epoch = None
        if processes:
            methods = multiprocessing.get_all_start_methods()
            # fork: the workers inherit the generator (and its loader, lambdas included)
            # instead of unpickling it and importing Keras again, as Keras' and torch's own
            # worker processes do.
            context = multiprocessing.get_context("fork" if "fork" in methods else None)
            key = id(generator)
            payload = None if "fork" in methods else pickle.dumps(generator)
            _FORKED[key] = generator
            if "fork" in methods:  # the workers then share the parent's tracker of shared memory
                multiprocessing.resource_tracker.ensure_running()
            try:
                self.pool = concurrent.futures.ProcessPoolExecutor(
                    workers, mp_context=context, initializer=_init_worker,
                    initargs=(key, payload),
                )  # fmt: skip
                with warnings.catch_warnings():
                    # JAX warns at every fork of its (multithreaded) process. The workers run
                    # NumPy and the loader only, never JAX, and fork before any batch is asked.
                    warnings.filterwarnings("ignore", r"os\.fork\(\) was called", RuntimeWarning)
                    self.pool.submit(_ready).result()  # starts every worker now
            finally:
                _FORKED.pop(key, None)
            self.submit = lambda gen, epoch, index: self.pool.submit(_worker_batch, epoch, index)
            self.receive = _from_shared
        else:
            self.pool = concurrent.futures.ThreadPoolExecutor(
                workers, thread_name_prefix="kx-DataGenerator"
            )
            self.submit = lambda gen, epoch, index: self.pool.submit(gen._batch, epoch, index)
            self.receive = None
        weakref.finalize(generator, _shutdown, self.pool, self.pending)

    def _switch(self, epoch):
        if epoch != self.epoch:
            for key in [k for k in self.pending if k[0] != epoch]:
                _drop(self.pending.pop(key))
            self.epoch, self.served = epoch, set()

    def _fill(self, generator, epoch, start):
        n = len(generator)
        index = start
        while len(self.pending) < self.depth and index < n:
            if index not in self.served and (epoch, index) not in self.pending:
                self.pending[(epoch, index)] = self.submit(generator, epoch, index)
            index += 1

    def get(self, generator, epoch, index):
        with self.lock:
            self._switch(epoch)
            future = self.pending.pop((epoch, index), None)
            if future is None:
                future = self.submit(generator, epoch, index)
            self.served.add(index)
            self._fill(generator, epoch, index + 1)
        batch = future.result()
        return batch if self.receive is None else self.receive(batch)

    def start_epoch(self, generator, epoch):
        with self.lock:
            self._switch(epoch)
            self._fill(generator, epoch, 0)


_FORKED = {}  # generators being handed to worker processes at fork time, by id
_WORKER_GENERATOR = None  # in a worker process: the generator it computes batches of


def _init_worker(key, payload):
    global _WORKER_GENERATOR
    _WORKER_GENERATOR = _FORKED[key] if payload is None else pickle.loads(payload)


def _ready():
    return True


def _worker_batch(epoch, index):
    return _to_shared(_WORKER_GENERATOR._batch(epoch, index))


def _shutdown(pool, pending):
    for future in list(pending.values()):
        _drop(future)
    pool.shutdown(wait=False, cancel_futures=True)


def _drop(future):
    """Cancels a prefetched batch nobody will ask for, freeing its shared memory if computed."""
    if not future.cancel():
        future.add_done_callback(_free_result)


def _free_result(future):
    if not future.cancelled() and future.exception() is None:
        _map_arrays(future.result(), lambda a: a.free() if isinstance(a, _Shared) else a)


_SHARED_MIN_BYTES = 1 << 16  # below this, pickling through the pipe costs less


class _Shared:
    """An array a worker process left in shared memory: the parent copies it out once instead
    of unpickling it from a pipe (about half the parent's CPU time for a 3 MB batch)."""

    def __init__(self, array):
        block = shared_memory.SharedMemory(create=True, size=max(array.nbytes, 1))
        np.ndarray(array.shape, array.dtype, buffer=block.buf)[...] = array
        self.name, self.shape, self.dtype = block.name, array.shape, array.dtype
        block.close()

    def take(self):
        block = shared_memory.SharedMemory(name=self.name)
        try:
            return np.array(np.ndarray(self.shape, self.dtype, buffer=block.buf))
        finally:
            block.close()
            block.unlink()

    def free(self):
        block = shared_memory.SharedMemory(name=self.name)
        block.close()
        block.unlink()


def _map_arrays(batch, fn):
    if isinstance(batch, dict):
        return {k: _map_arrays(v, fn) for k, v in batch.items()}
    if isinstance(batch, (tuple, list)):
        return type(batch)(_map_arrays(v, fn) for v in batch)
    return fn(batch)


def _to_shared(batch):
    def share(a):
        big = (
            isinstance(a, np.ndarray) and a.dtype.kind not in "OV" and a.nbytes >= _SHARED_MIN_BYTES
        )
        return _Shared(a) if big else a

    return _map_arrays(batch, share)


def _from_shared(batch):
    return _map_arrays(batch, lambda a: a.take() if isinstance(a, _Shared) else a)


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


def _map_nested(sample, fn):
    if isinstance(sample, dict):
        return {k: _map_nested(v, fn) for k, v in sample.items()}
    if isinstance(sample, (tuple, list)):
        return tuple(_map_nested(v, fn) for v in sample)
    return fn(sample)


def _empty_batch(first, n):
    first = np.asarray(first)
    if first.dtype.kind in "USO":  # variable-width or objects: gathered, then converted
        return [None] * n
    return np.empty((n, *first.shape), first.dtype)


def _put(batch, j, sample):
    """Writes one loaded sample into row `j` of the preallocated `batch` (same structure)."""
    if isinstance(batch, dict):
        if not isinstance(sample, dict) or set(sample) != set(batch):
            raise KeyError(f"expected a dict with keys {sorted(batch)}, got {_describe(sample)}")
        for k in batch:
            _put(batch[k], j, sample[k])
    elif isinstance(batch, tuple):
        if not isinstance(sample, (tuple, list)) or len(sample) != len(batch):
            raise TypeError(f"expected a tuple of {len(batch)}, got {_describe(sample)}")
        for b, s in zip(batch, sample):
            _put(b, j, s)
    elif isinstance(batch, list):
        batch[j] = sample
    else:
        value = np.asarray(sample)
        if value.shape != batch.shape[1:]:
            raise ValueError(f"expected shape {batch.shape[1:]}, got shape {value.shape}")
        if not np.can_cast(value.dtype, batch.dtype, casting="same_kind"):
            raise TypeError(f"expected dtype {batch.dtype}, got dtype {value.dtype}")
        batch[j] = value


def _finish(batch):
    if isinstance(batch, dict):
        return {k: _finish(v) for k, v in batch.items()}
    if isinstance(batch, tuple):
        return tuple(_finish(v) for v in batch)
    if isinstance(batch, list):
        return np.asarray(batch)
    return batch


def _describe(sample):
    if isinstance(sample, dict):
        return f"a dict with keys {sorted(sample)}"
    if isinstance(sample, (tuple, list)):
        return f"a {type(sample).__name__} of {len(sample)}"
    return type(sample).__name__


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
