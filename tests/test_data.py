"""kx.DataGenerator: every sample once per epoch, reproducible orders, per-epoch samplers, weights,
loaders and their errors, and the same batches whatever Keras' workers are."""

import functools
import signal
import threading

import keras
import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.datasets import load_digits
from sklearn.metrics import recall_score
from sklearn.utils.class_weight import compute_sample_weight

import kx
from kx.data import LoaderError

BACKEND = keras.backend.backend()


@pytest.fixture
def alarm():
    """Fails a test that would hang (multiprocessing, loaders) instead of blocking CI."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum, frame):
        raise TimeoutError("test took longer than 120 s")

    previous = signal.signal(signal.SIGALRM, _raise)
    signal.alarm(120)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def epoch_ids(gen):
    """Sample ids (column 0 of x) of one epoch, batch by batch."""
    return [gen[i][0][:, 0].astype(int) for i in range(len(gen))]


def ids_x(n):
    return np.stack([np.arange(n), np.random.default_rng(0).normal(size=n)], 1).astype("float32")


@pytest.fixture(scope="module")
def imbalanced_digits():
    """Digit 8 (minority) against all other digits, 1:50, plus a held-out set with both."""
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32")
    rng = np.random.default_rng(0)
    eights = rng.permutation(np.flatnonzero(y == 8))
    others = rng.permutation(np.flatnonzero(y != 8))
    train = np.concatenate([eights[:30], others[:1500]])
    test = np.concatenate([eights[30:], others[1500:]])
    return x[train], (y[train] == 8).astype("int32"), x[test], (y[test] == 8).astype("int32")


# ------------------------------------------------------------------------ order


@given(
    n=st.integers(1, 60),
    batch_size=st.integers(1, 17),
    drop_remainder=st.booleans(),
    seed=st.integers(0, 2**31 - 2),
)
def test_every_sample_once_per_epoch(n, batch_size, drop_remainder, seed):
    if drop_remainder and n < batch_size:
        with pytest.raises(ValueError, match="no batch left"):
            kx.DataGenerator(ids_x(n), batch_size=batch_size, drop_remainder=True, seed=seed)
        return
    gen = kx.DataGenerator(
        ids_x(n), batch_size=batch_size, drop_remainder=drop_remainder, seed=seed
    )
    for _ in range(3):
        batches = epoch_ids(gen)
        seen = np.concatenate(batches)
        assert len(seen) == len(np.unique(seen))  # never twice
        if drop_remainder:
            assert len(seen) == n - n % batch_size
            assert all(len(b) == batch_size for b in batches)
        else:
            np.testing.assert_array_equal(np.sort(seen), np.arange(n))
            assert all(len(b) == batch_size for b in batches[:-1])
        gen.on_epoch_end()


def test_orders_differ_between_epochs_and_repeat_for_a_seed():
    a = kx.DataGenerator(ids_x(100), batch_size=10, seed=7)
    b = kx.DataGenerator(ids_x(100), batch_size=10, seed=7)
    c = kx.DataGenerator(ids_x(100), batch_size=10, seed=8)
    orders = []
    for _ in range(3):
        order = np.concatenate(epoch_ids(a))
        np.testing.assert_array_equal(order, np.concatenate(epoch_ids(b)))
        assert not np.array_equal(order, np.concatenate(epoch_ids(c)))
        orders.append(order)
        for g in (a, b, c):
            g.on_epoch_end()
    assert not np.array_equal(orders[0], orders[1]) and not np.array_equal(orders[1], orders[2])
    a.epoch = 1  # settable, e.g. to resume: epoch 1's order again
    np.testing.assert_array_equal(np.concatenate(epoch_ids(a)), orders[1])
    # without shuffling, data order
    d = kx.DataGenerator(ids_x(25), batch_size=10, shuffle=False)
    np.testing.assert_array_equal(np.concatenate(epoch_ids(d)), np.arange(25))


def test_same_batches_from_threads_as_in_order():
    gen = kx.DataGenerator(ids_x(64), batch_size=5, seed=3)
    expected = epoch_ids(gen)
    results = [None] * len(gen)

    def work(i):
        results[i] = gen[i][0][:, 0].astype(int)

    threads = [threading.Thread(target=work, args=(i,)) for i in reversed(range(len(gen)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for got, want in zip(results, expected):
        np.testing.assert_array_equal(got, want)


class _OrderRecorder(keras.metrics.Metric):
    """Records, inside the compiled train step, the position at which each sample id was seen."""

    def __init__(self, n, name="order"):
        super().__init__(name=name)
        self.n = n
        self.pos = self.add_variable((n,), initializer="zeros", name="pos")
        self.count = self.add_variable((n,), initializer="zeros", name="count")
        self.seen = self.add_variable((), initializer="zeros", name="seen")

    def update_state(self, y_true, y_pred, sample_weight=None):
        ids = keras.ops.cast(keras.ops.reshape(y_true, (-1,)), "int32")
        b = keras.ops.shape(ids)[0]
        where = self.seen.value + keras.ops.cast(keras.ops.arange(b), "float32")
        self.pos.assign(keras.ops.scatter_update(self.pos.value, ids[:, None], where))
        self.count.assign(self.count.value + keras.ops.sum(keras.ops.one_hot(ids, self.n), 0))
        self.seen.assign(self.seen.value + keras.ops.cast(b, "float32"))

    def result(self):
        return keras.ops.convert_to_tensor(self.seen)


class _Grab(keras.callbacks.Callback):
    def __init__(self, metric):
        super().__init__()
        self.metric, self.orders, self.counts = metric, [], []

    def on_epoch_end(self, epoch, logs=None):
        self.orders.append(np.argsort(keras.ops.convert_to_numpy(self.metric.pos)))
        self.counts.append(keras.ops.convert_to_numpy(self.metric.count).copy())


WORKERS = [(1, False), (2, False), (2, True)]
WORKER_IDS = ["1", "2-threads", "2-processes"]


@pytest.mark.parametrize("workers,multiprocessing", WORKERS, ids=WORKER_IDS)
@pytest.mark.parametrize("cls", [keras.Model, kx.CustomModel], ids=["keras", "kx"])
def test_fit_sees_the_generators_order_with_any_workers(cls, workers, multiprocessing, alarm):
    """Every sample once per epoch, in the generator's order, with an unbuilt model: in Keras
    3.15 (JAX, torch) a plain PyDataset with workers loses samples here, because the batches
    prefetched for the symbolic build are served in the next epoch."""
    n = 40
    x = np.random.default_rng(0).normal(size=(n, 3)).astype("float32")
    ids = np.arange(n, dtype="float32")
    gen = kx.DataGenerator(
        x, ids, batch_size=8, seed=5, workers=workers, use_multiprocessing=multiprocessing
    )
    metric = _OrderRecorder(n)
    inputs = keras.Input((3,))
    model = cls(inputs, keras.layers.Dense(1)(inputs))
    model.compile("sgd", "mse", metrics=[metric])
    grab = _Grab(metric)
    model.fit(gen, epochs=3, shuffle=False, verbose=0, callbacks=[grab])
    # Keras calls on_epoch_end once when fit starts, so fit's epochs are 1, 2, 3.
    reference = kx.DataGenerator(x, ids, batch_size=8, seed=5)
    for e, (order, count) in enumerate(zip(grab.orders, grab.counts), start=1):
        np.testing.assert_array_equal(count, np.ones(n))
        reference.epoch = e
        np.testing.assert_array_equal(order, np.concatenate([b[1] for b in reference]))
    assert gen.epoch == 4


def _two_output_fit(workers, multiprocessing):
    from test_model import data, kx_losses, two_output_model

    x, y, recon = data(n=60)
    gen = kx.DataGenerator(
        {"x": x}, {"logits": y, "recon": recon}, batch_size=12, seed=3, workers=workers,
        use_multiprocessing=multiprocessing,
    )  # fmt: skip
    model = two_output_model()
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=kx_losses())
    model.fit(gen, epochs=2, shuffle=False, verbose=0, class_weight={"logits": {0: 2.0, 2: 0.5}})
    return model.get_weights()


@pytest.mark.parametrize("workers,multiprocessing", WORKERS[1:], ids=WORKER_IDS[1:])
def test_fit_results_equal_with_one_and_two_workers(workers, multiprocessing, alarm):
    for got, want in zip(_two_output_fit(workers, multiprocessing), _two_output_fit(1, False)):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("multiprocessing", [False, True], ids=["threads", "processes"])
def test_workers_serve_the_requested_epoch_never_a_prefetched_one(multiprocessing, alarm):
    gen = kx.DataGenerator(ids_x(50), batch_size=5, seed=2, workers=2,
                           use_multiprocessing=multiprocessing, max_queue_size=4)  # fmt: skip
    reference = kx.DataGenerator(ids_x(50), batch_size=5, seed=2)
    gen[0]  # what Keras' symbolic build does: one batch, then the epoch ends
    for epoch in (1, 2, 5):
        gen.on_epoch_end() if epoch < 5 else setattr(gen, "epoch", 5)
        reference.epoch = epoch
        for i in range(len(gen)):
            np.testing.assert_array_equal(gen[i][0], reference[i][0])


def _big_sample(i):
    """~50 KB per sample: batches large enough to come back from worker processes through shared
    memory rather than the pipe."""
    rng = np.random.default_rng(int(i))
    return {"image": rng.normal(size=(48, 64, 4)).astype("float32"), "id": np.int64(i)}


def test_large_batches_from_processes_equal_in_order_ones(alarm):
    ids = list(range(40))
    make = functools.partial(kx.DataGenerator, ids, np.arange(40) % 3, batch_size=8, seed=4,
                             loader=_big_sample)  # fmt: skip
    gen, reference = make(workers=2, use_multiprocessing=True, max_queue_size=3), make()
    for epoch in range(2):
        for i in range(len(gen)):
            (got, gy), (want, wy) = gen[i], reference[i]
            assert got["image"].nbytes >= 1 << 16
            np.testing.assert_array_equal(got["image"], want["image"])
            np.testing.assert_array_equal(got["id"], want["id"])
            np.testing.assert_array_equal(gy, wy)
            if epoch == 0 and i == 1:
                break  # the rest of epoch 0, prefetched, is dropped
        gen.on_epoch_end()
        reference.on_epoch_end()


def test_out_of_order_requests_warn_once_with_workers():
    gen = kx.DataGenerator(ids_x(30), batch_size=5, seed=0, workers=2)
    gen[0], gen[1]
    with pytest.warns(UserWarning, match=r"batch 4 was requested after batch 1.*shuffle=False"):
        gen[4]
    gen[2]  # warned once
    kx.DataGenerator(ids_x(30), batch_size=5, seed=0)[3]  # no workers, no shards: no warning


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_workers_and_queue_size_are_checked(bad):
    with pytest.raises(ValueError, match="expected `workers` to be a positive int"):
        kx.DataGenerator(ids_x(4), workers=bad)
    with pytest.raises(ValueError, match="expected `max_queue_size` to be a positive int"):
        kx.DataGenerator(ids_x(4), max_queue_size=bad)


def test_a_pickled_generator_leaves_its_workers_behind():
    import pickle

    gen = kx.DataGenerator(ids_x(20), batch_size=4, seed=1, workers=2)
    first = gen[0][0]
    copy = pickle.loads(pickle.dumps(gen))
    np.testing.assert_array_equal(copy[0][0], first)
    np.testing.assert_array_equal(copy[1][0], gen[1][0])


# ------------------------------------------------------------------------ sharding


def _shard_ids(gen):
    return [b[0][:, 0].astype(int) for b in gen]


@given(
    n=st.integers(4, 60).map(lambda n: n - n % 2),
    half_batch=st.integers(1, 8),
    sampler=st.sampled_from([None, "oversample", "undersample", "balanced"]),
    seed=st.integers(0, 2**31 - 2),
)
def test_two_shards_cover_each_global_batch_once(n, half_batch, sampler, seed):
    x = ids_x(n)
    y = (np.arange(n) % 3 == 0).astype("int32")
    kwargs = dict(batch_size=2 * half_batch, seed=seed, sampler=sampler, drop_remainder=True)
    if n < 2 * half_batch:
        return
    whole = kx.DataGenerator(x, y, **kwargs)
    shards = [kx.DataGenerator(x, y, shard=(k, 2), **kwargs) for k in range(2)]
    for _ in range(2):
        assert len(shards[0]) == len(shards[1]) == len(whole)
        for batch, part0, part1 in zip(_shard_ids(whole), *map(_shard_ids, shards)):
            assert len(part0) == len(part1) == half_batch
            np.testing.assert_array_equal(np.sort(np.concatenate([part0, part1])), np.sort(batch))
        for g in (whole, *shards):
            g.on_epoch_end()


def test_shards_of_a_remainder_and_with_workers(alarm):
    whole = kx.DataGenerator(ids_x(22), batch_size=4, seed=9)  # last batch: 2 samples
    shards = [kx.DataGenerator(ids_x(22), batch_size=4, seed=9, shard=(k, 2), workers=2,
                               use_multiprocessing=k == 1) for k in range(2)]  # fmt: skip
    seen = np.concatenate([np.concatenate(_shard_ids(g)) for g in shards])
    np.testing.assert_array_equal(np.sort(seen), np.arange(22))
    got = [np.sort(np.concatenate(p)) for p in zip(*map(_shard_ids, shards))]
    for a, b in zip(got, _shard_ids(whole)):
        np.testing.assert_array_equal(a, np.sort(b))
    assert shards[1].shard == (1, 2) and whole.shard is None


def test_sharded_copies_equal_shard_generators_and_check_the_same_rules():
    """`sharded()` is what kx.CustomModel.fit gives each worker of a multi-worker strategy."""
    whole = kx.DataGenerator(ids_x(24), batch_size=8, seed=4, sampler="oversample",
                             labels=np.arange(24) % 3 == 0, workers=2)  # fmt: skip
    whole.on_epoch_end()
    for k in range(2):
        part = whole.sharded((k, 2))
        ref = kx.DataGenerator(ids_x(24), batch_size=8, seed=4, sampler="oversample",
                               labels=np.arange(24) % 3 == 0, shard=(k, 2))  # fmt: skip
        ref.on_epoch_end()
        assert part.shard == (k, 2) and part.epoch == 1 and whole.shard is None
        for a, b in zip(_shard_ids(part), _shard_ids(ref)):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match=r"batch_size.*multiples of 3"):
        whole.sharded((0, 3))
    with pytest.raises(ValueError, match="needs an explicit `seed`"):
        kx.DataGenerator(ids_x(8), batch_size=4).sharded((0, 2))


def test_bad_shards_are_refused():
    with pytest.raises(ValueError, match=r"expected `shard` to be 'auto', None or `\(index, count"):
        kx.DataGenerator(ids_x(8), shard=(2, 2))
    with pytest.raises(ValueError, match="expected `shard`"):
        kx.DataGenerator(ids_x(8), shard="all")
    with pytest.raises(ValueError, match=r"batch_size.*multiples of 2"):
        kx.DataGenerator(ids_x(8), batch_size=3, seed=0, shard=(0, 2))
    with pytest.raises(ValueError, match=r"last batch \(2 samples.*multiples of 4"):
        kx.DataGenerator(ids_x(10), batch_size=4, seed=0, shard=(0, 4))
    with pytest.raises(ValueError, match="needs an explicit `seed`"):
        kx.DataGenerator(ids_x(8), batch_size=4, shard=(0, 2))
    kx.DataGenerator(ids_x(8), batch_size=4, shuffle=False, shard=(1, 2))  # no order to agree on
    assert kx.DataGenerator(ids_x(8), shard=(0, 1)).shard is None


# ------------------------------------------------------------------------ sources


class _Hdf5Like:
    """Mimics an h5py dataset: fancy indexing only with increasing, unique index lists."""

    def __init__(self, data):
        self.data, self.shape, self.dtype = data, data.shape, data.dtype

    def __len__(self):
        return len(self.data)

    def __getitem__(self, key):
        if isinstance(key, list) and np.any(np.diff(key) <= 0):
            raise TypeError("Indexing elements must be in increasing order")
        return self.data[key]


def test_sources_give_the_rows_of_the_order(tmp_path):
    n = 23
    x = ids_x(n)
    y = np.random.default_rng(1).integers(0, 3, n)
    memmap = np.lib.format.open_memmap(tmp_path / "x.npy", "w+", "float32", x.shape)
    memmap[:] = x
    frame = pd.DataFrame({"id": x[:, 0], "v": x[:, 1]})
    sources = {
        "array": x,
        "memmap": memmap,
        "dataframe": frame,
        "hdf5-like": _Hdf5Like(x),
        "list": list(x),
    }
    ref = kx.DataGenerator(x, y, batch_size=4, seed=2, sampler="oversample")
    for name, source in sources.items():
        gen = kx.DataGenerator(source, y, batch_size=4, seed=2, sampler="oversample")
        for i in range(len(gen)):
            bx, by = gen[i]
            np.testing.assert_array_equal(bx, ref[i][0], err_msg=name)
            np.testing.assert_array_equal(by, ref[i][1], err_msg=name)
            assert isinstance(bx, np.ndarray)


def test_dict_inputs_and_targets_train_a_functional_model():
    n = 30
    rng = np.random.default_rng(0)
    x = {"a": rng.normal(size=(n, 3)).astype("float32"), "b": rng.normal(size=(n, 2))}
    y = {"label": rng.integers(0, 2, n), "value": rng.normal(size=(n, 1)).astype("float32")}
    sw = rng.uniform(0.5, 1.5, n).astype("float32")
    gen = kx.DataGenerator(x, y, batch_size=8, seed=0, sample_weight=sw, class_weight="balanced")
    bx, by, bw = gen[0]
    assert set(bx) == {"a", "b"} and set(by) == set(bw) == {"label", "value"}
    idx = gen._order(0)[:8]
    np.testing.assert_array_equal(bx["b"], x["b"][idx])
    np.testing.assert_allclose(bw["value"], sw[idx])  # no labels: sample weight only
    np.testing.assert_allclose(
        bw["label"], sw[idx] * compute_sample_weight("balanced", y["label"])[idx], rtol=1e-6
    )
    a, b = keras.Input((3,), name="a"), keras.Input((2,), name="b")
    h = keras.layers.Concatenate()([a, b])
    model = keras.Model(
        {"a": a, "b": b},
        {"label": keras.layers.Dense(2, name="label")(h), "value": keras.layers.Dense(1)(h)},
    )
    model.compile(
        "adam",
        loss={
            "label": keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            "value": "mse",
        },
    )
    history = model.fit(gen, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))


# ------------------------------------------------------------------------ loaders


def test_loaders_equal_in_memory_batches():
    x, y = ids_x(19), np.arange(19) % 3
    files = {f"item{i}": (x[i], y[i]) for i in range(19)}
    ref = kx.DataGenerator(x, y, batch_size=4, seed=9)
    per_sample = kx.DataGenerator(list(files), batch_size=4, seed=9, loader=files.__getitem__)
    batched = kx.DataGenerator(
        list(files),
        batch_size=4,
        seed=9,
        loader=lambda ids: (np.stack([x[int(i[4:])] for i in ids]), y[[int(i[4:]) for i in ids]]),
        loader_batched=True,
    )
    inputs_only = kx.DataGenerator(
        list(files), y, batch_size=4, seed=9, loader=lambda i: {"x": files[i][0]}
    )
    for i in range(len(ref)):
        for gen in (per_sample, batched):
            np.testing.assert_array_equal(gen[i][0], ref[i][0])
            np.testing.assert_array_equal(gen[i][1], ref[i][1])
        np.testing.assert_array_equal(inputs_only[i][0]["x"], ref[i][0])
        np.testing.assert_array_equal(inputs_only[i][1], ref[i][1])
    assert per_sample.labels is None
    assert inputs_only.labels is not None


def _failing_loader(item):
    if item == "bad-17":
        raise FileNotFoundError("no such file")
    return np.full(2, float(len(item)), "float32"), np.int32(0)


def test_loader_error_names_the_id():
    ids = [f"ok-{i}" for i in range(20)] + ["bad-17"]
    gen = kx.DataGenerator(ids, batch_size=4, shuffle=False, loader=_failing_loader)
    with pytest.raises(LoaderError, match="id 'bad-17'.*FileNotFoundError: no such file"):
        gen[5]
    gen = kx.DataGenerator(
        ids, batch_size=4, shuffle=False, loader=lambda ids: 1 / 0, loader_batched=True
    )
    with pytest.raises(LoaderError, match=r"batch 5: \['bad-17'\].*ZeroDivisionError"):
        gen[5]


@pytest.mark.parametrize("multiprocessing", [False, True], ids=["threads", "processes"])
def test_loader_error_reaches_fit_with_workers(multiprocessing, alarm):
    ids = [f"ok-{i}" for i in range(12)] + ["bad-17"]
    gen = kx.DataGenerator(
        ids, batch_size=4, seed=0, loader=_failing_loader, workers=2,
        use_multiprocessing=multiprocessing,
    )
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    # On TensorFlow the error is re-raised by tf.data under its own type; the message survives.
    with pytest.raises(Exception, match="bad-17"):
        model.fit(gen, epochs=2, verbose=0)


# ------------------------------------------------------------------------ samplers


def _epoch_labels(gen):
    return np.concatenate([gen[i][1] for i in range(len(gen))])


def test_under_and_oversampling_equalise_classes_every_epoch(imbalanced_digits):
    x, y, _, _ = imbalanced_digits
    counts = np.bincount(y)
    for sampler, per_class in (("undersample", counts.min()), ("oversample", counts.max())):
        gen = kx.DataGenerator(x, y, batch_size=64, seed=0, sampler=sampler)
        drawn = []
        for _ in range(3):
            order = gen._order(gen.epoch)
            np.testing.assert_array_equal(np.bincount(_epoch_labels(gen)), [per_class] * 2)
            if sampler == "oversample":  # every sample kept, extras repeat minority samples
                np.testing.assert_array_equal(np.unique(order), np.arange(len(y)))
            drawn.append(np.sort(order))
            gen.on_epoch_end()
        assert not np.array_equal(drawn[0], drawn[1])  # re-drawn each epoch


def test_balanced_bootstrap_counts_within_the_expected_spread(imbalanced_digits):
    x, y, _, _ = imbalanced_digits
    n = len(y)
    gen = kx.DataGenerator(x, y, batch_size=64, seed=0, sampler="balanced")
    minority = []
    for _ in range(5):
        labels = _epoch_labels(gen)
        assert len(labels) == n
        minority.append(labels.sum())
        # Binomial(n, 1/2) per epoch: 5 standard deviations
        assert abs(labels.sum() - n / 2) < 5 * np.sqrt(n / 4)
        gen.on_epoch_end()
    assert len(set(minority)) > 1  # re-drawn


def test_callable_sampler_and_its_size_check():
    y = np.array([0] * 10 + [1] * 2)

    def first_of_each(labels, rng):
        return np.array([rng.choice(np.flatnonzero(labels == c)) for c in (0, 1)])

    gen = kx.DataGenerator(ids_x(12), y, batch_size=2, seed=0, sampler=first_of_each)
    assert len(gen) == 1 and sorted(gen[0][1].tolist()) == [0, 1]

    sizes = iter([3, 4])
    gen = kx.DataGenerator(
        ids_x(12), y, batch_size=2, sampler=lambda labels, rng: np.arange(next(sizes))
    )
    gen.on_epoch_end()
    with pytest.raises(ValueError, match="returned 4 indices for epoch 1, but 3 for epoch 0"):
        gen[0]


def test_balanced_sampling_raises_minority_recall(imbalanced_digits):
    x, y, x_test, y_test = imbalanced_digits
    recalls = {}
    for sampler in (None, "oversample"):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(1)])
        model.compile(keras.optimizers.SGD(0.1), keras.losses.BinaryCrossentropy(from_logits=True))
        gen = kx.DataGenerator(x, y.astype("float32"), batch_size=128, seed=0, sampler=sampler)
        model.fit(gen, epochs=2, verbose=0)
        pred = (keras.ops.convert_to_numpy(model(x_test))[:, 0] > 0).astype(int)
        recalls[sampler] = recall_score(y_test, pred, average=None)
    assert recalls["oversample"][1] > recalls[None][1] + 0.3, recalls
    # macro recall too
    assert recalls["oversample"].mean() > recalls[None].mean() + 0.1, recalls


# ------------------------------------------------------------------------ weights and labels


def test_weights_are_sample_weight_times_class_weight():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 50)
    sw = rng.uniform(0, 2, 50)
    gen = kx.DataGenerator(ids_x(50), y, batch_size=7, seed=1, sample_weight=sw,
                           class_weight={0: 1.0, 2: 3.0})
    for i in range(len(gen)):
        bx, by, bw = gen[i]
        ids = bx[:, 0].astype(int)
        np.testing.assert_allclose(bw, sw[ids] * np.array([1.0, 1.0, 3.0])[by], rtol=1e-6)
    onehot = kx.DataGenerator(ids_x(50), np.eye(3)[y], batch_size=50, shuffle=False,
                              class_weight="balanced")
    np.testing.assert_allclose(onehot[0][2], compute_sample_weight("balanced", y), rtol=1e-6)


def test_labels_property():
    y = np.array([2, 0, 1, 1])
    assert kx.DataGenerator(ids_x(4), y).labels.tolist() == [2, 0, 1, 1]
    assert kx.DataGenerator(ids_x(4), np.eye(3)[y]).labels.tolist() == [2, 0, 1, 1]
    assert kx.DataGenerator(ids_x(4), y[:, None].astype("float32")).labels.tolist() == [2, 0, 1, 1]
    assert kx.DataGenerator(ids_x(4), np.linspace(0, 1, 4)).labels is None  # regression
    assert kx.DataGenerator(ids_x(4)).labels is None
    both = kx.DataGenerator(ids_x(4), {"c": y, "r": np.linspace(0, 1, 4)}).labels
    assert list(both) == ["c"] and both["c"].tolist() == [2, 0, 1, 1]
    explicit = kx.DataGenerator(ids_x(4), y, labels=[1, 1, 0, 0]).labels
    assert explicit.tolist() == [1, 1, 0, 0]


def test_transform_gets_batch_and_reproducible_rng():
    calls = []

    def jitter(batch, rng):
        x, y = batch
        calls.append(rng)
        return x + rng.normal(size=x.shape).astype(x.dtype), y

    a = kx.DataGenerator(ids_x(10), np.arange(10), batch_size=5, seed=4, transform=jitter)
    b = kx.DataGenerator(ids_x(10), np.arange(10), batch_size=5, seed=4, transform=jitter)
    np.testing.assert_array_equal(a[1][0], b[1][0])
    assert not np.array_equal(a[0][0][:, 1], ids_x(10)[a[0][1], 1])  # changed
    assert isinstance(calls[0], np.random.Generator)
    first = a[1][0]
    a.on_epoch_end()
    a.epoch = 0
    np.testing.assert_array_equal(a[1][0], first)


# ------------------------------------------------------------------------ bad input


def test_bad_input_messages():
    x = ids_x(10)
    with pytest.raises(ValueError, match=r"`y` to have as many items as `x` \(10\).*len\(y\)=9"):
        kx.DataGenerator(x, np.zeros(9))
    with pytest.raises(ValueError, match=r"`x\['b'\]` to have as many items as `x\['a'\]`"):
        kx.DataGenerator({"a": x, "b": x[:8]})
    with pytest.raises(ValueError, match=r"`y\['t'\]` to have as many items as `x`"):
        kx.DataGenerator(x, {"t": np.zeros(11)})
    with pytest.raises(ValueError, match=r"`sample_weight` to be a vector .* \(10\).*\(12,\)"):
        kx.DataGenerator(x, np.zeros(10), sample_weight=np.ones(12))
    with pytest.raises(ValueError, match="positive int. Received: batch_size=0"):
        kx.DataGenerator(x, batch_size=0)
    with pytest.raises(TypeError, match="positive int. Received: batch_size=2.5"):
        kx.DataGenerator(x, batch_size=2.5)
    with pytest.raises(ValueError, match="sampler='undersample' needs class labels"):
        kx.DataGenerator(x, sampler="undersample")
    with pytest.raises(ValueError, match="sampler='undersample' needs class labels"):
        kx.DataGenerator(x, np.linspace(0, 1, 10), sampler="undersample")
    with pytest.raises(ValueError, match="expected `sampler` to be None, one of"):
        kx.DataGenerator(x, np.zeros(10), sampler="smote")
    with pytest.raises(
        ValueError, match=r"names the classes \[7\], which never occur in the labels.*\[0, 1\]"
    ):
        kx.DataGenerator(x, np.arange(10) % 2, class_weight={0: 1.0, 7: 2.0})
    with pytest.raises(ValueError, match="class_weight='balanced' needs class labels"):
        kx.DataGenerator(["a"], loader=len, class_weight="balanced")
    with pytest.raises(ValueError, match="`labels` to be a vector with as many items"):
        kx.DataGenerator(x, labels=[0, 1])
    with pytest.raises(TypeError, match="`loader` to be None or a callable"):
        kx.DataGenerator(["a"], loader="open")
    with pytest.raises(ValueError, match="`seed` to be None or a non-negative int"):
        kx.DataGenerator(x, seed=-1)
