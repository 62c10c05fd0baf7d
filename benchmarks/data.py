"""Feeding `fit`: kx.DataGenerator vs tf.data, the classic per-item Sequence and imbalanced-learn.

Same run, same model (a 64-128-10 MLP), same batch size. Each variant trains for `--epochs`
epochs; the table reports the median epoch time of the epochs after the first (which traces and
warms up), the batches per second that gives, and the batches per second of the data source
alone (iterating one epoch of batches without a model). Ratios are against kx.

Sections:
  in-memory: digits tiled to `--rows` rows; kx vs tf.data `from_tensor_slices().shuffle().batch()`
      vs the classic blog Sequence (per-item loop into `np.empty`).
  balanced:  the same rows relabelled digit 8 vs the rest (1:9); kx `sampler="undersample"`
      (re-drawn every epoch) vs imbalanced-learn's `imblearn.keras.BalancedBatchGenerator`
      (one draw at construction).
  loader:    `--files` samples saved as one `.npy` file each; kx with a per-id loader and 1 or 4
      worker threads.
  decode:    `--decode-files` 128x128x3 uint8 images saved zlib-compressed, one file each; a
      CPU-bound decode (read, decompress, reshape) per sample. Data only (no model): kx with 1
      worker, 2 threads and 2 processes, against tf.data `map(num_parallel_calls=AUTOTUNE)` with
      TensorFlow's own ops (`read_file`, `decode_compressed`, `decode_raw`) and torch
      `DataLoader(num_workers=2, persistent_workers=True)`. Epochs interleave between variants and
      each figure is the fastest of `--decode-epochs` (after one warm-up epoch each), the least
      disturbed by other load on the machine.

Run with the TensorFlow backend (tf.data needs it); other backends skip the tf.data row:

    KERAS_BACKEND=tensorflow python benchmarks/data.py            # ~2 min on 2 cores
    KERAS_BACKEND=tensorflow python benchmarks/data.py --rows 50000 --epochs 2   # quicker
    KERAS_BACKEND=tensorflow python benchmarks/data.py --only decode            # one section
"""

import argparse
import os
import tempfile
import time
import zlib

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

import kx  # noqa: E402

BATCH = 256
DECODE_BATCH = 64
DECODE_SHAPE = (128, 128, 3)


class ClassicSequence(keras.utils.Sequence):
    """The well-known blog DataGenerator, in memory: one Python iteration per sample."""

    def __init__(self, x, y, batch_size=BATCH, shuffle=True):
        super().__init__()
        self.x, self.y, self.batch_size, self.shuffle = x, y, batch_size, shuffle
        self.on_epoch_end()

    def __len__(self):
        return int(np.ceil(len(self.x) / self.batch_size))

    def __getitem__(self, index):
        ids = self.indexes[index * self.batch_size : (index + 1) * self.batch_size]
        bx = np.empty((len(ids), self.x.shape[1]), dtype=self.x.dtype)
        by = np.empty((len(ids),), dtype=self.y.dtype)
        for i, sample in enumerate(ids):
            bx[i] = self.x[sample]
            by[i] = self.y[sample]
        return bx, by

    def on_epoch_end(self):
        self.indexes = np.arange(len(self.x))
        if self.shuffle:
            np.random.shuffle(self.indexes)


class EpochTimer(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self.start)

    def on_train_begin(self, logs=None):
        self.times = []


def make_model(n_classes):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dense(n_classes),
        ]
    )
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def time_fit(data, n_classes, epochs, n_batches):
    model = make_model(n_classes)
    timer = EpochTimer()
    model.fit(data, epochs=epochs, verbose=0, callbacks=[timer])
    t = float(np.median(timer.times[1:] if len(timer.times) > 1 else timer.times))
    return t, n_batches / t


def time_source(data):
    start = time.perf_counter()
    count = 0
    for _ in data:
        count += 1
    return count / (time.perf_counter() - start)


def print_table(title, rows):
    print(f"\n{title}")
    print(f"{'variant':44s} {'epoch s':>8s} {'batch/s':>9s} {'vs kx':>7s} {'data-only b/s':>14s}")
    ref = rows[0][2]
    for name, t, bps, src in rows:
        print(f"{name:44s} {t:8.2f} {bps:9.0f} {bps / ref:7.2f} {src:14.0f}")


def decode(path):
    """The CPU-bound per-sample loader: read a file, inflate it, view it as an image."""
    with open(path, "rb") as f:
        raw = zlib.decompress(f.read())
    return np.frombuffer(raw, "uint8").reshape(DECODE_SHAPE)


class DecodeDataset:
    """The same loader as a map-style torch Dataset (what a DataLoader user writes)."""

    def __init__(self, paths, labels):
        self.paths, self.labels = paths, labels

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        return decode(self.paths[i]).copy(), self.labels[i]  # copy: torch wants a writable array


def write_images(directory, n):
    """`n` smooth noisy 128x128x3 images, zlib-compressed (level 6) one per file (~2.3x)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0 : DECODE_SHAPE[0], 0 : DECODE_SHAPE[1]]
    paths = []
    for i in range(n):
        img = (np.sin(xx / (5 + i % 7)) + np.cos(yy / (3 + i % 5))) * 60 + 128
        img = np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype("uint8")
        path = os.path.join(directory, f"{i}.z")
        with open(path, "wb") as f:
            f.write(zlib.compress(np.repeat(img[..., None], 3, -1).tobytes(), 6))
        paths.append(path)
    return paths


def decode_section(args, backend):
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        paths = write_images(tmp, args.decode_files)
        labels = np.arange(len(paths), dtype="int32") % 10
        variants = {}
        for name, workers, processes in (
            ("kx loader, workers=1", 1, False),
            ("kx loader, workers=2 threads", 2, False),
            ("kx loader, workers=2 processes", 2, True),
        ):
            gen = kx.DataGenerator(paths, labels, batch_size=DECODE_BATCH, seed=0, loader=decode,
                                   workers=workers, use_multiprocessing=processes)  # fmt: skip

            def epoch(gen=gen):
                for i in range(len(gen)):
                    gen[i]
                gen.on_epoch_end()  # as fit does: the pool starts on the next epoch at once

            variants[name] = epoch
        if backend == "tensorflow":
            import tensorflow as tf

            def tf_decode(path, label):
                raw = tf.io.decode_compressed(tf.io.read_file(path), compression_type="ZLIB")
                return tf.reshape(tf.io.decode_raw(raw, tf.uint8), DECODE_SHAPE), label

            ds = (
                tf.data.Dataset.from_tensor_slices((paths, labels))
                .shuffle(len(paths), seed=0)
                .map(tf_decode, num_parallel_calls=tf.data.AUTOTUNE)
                .batch(DECODE_BATCH)
                .prefetch(tf.data.AUTOTUNE)
            )
            variants["tf.data map(AUTOTUNE), TF ops"] = lambda: [None for _ in ds]
        loader = torch.utils.data.DataLoader(
            DecodeDataset(paths, labels), batch_size=DECODE_BATCH, shuffle=True, num_workers=2,
            persistent_workers=True,
        )  # fmt: skip
        variants["torch DataLoader(num_workers=2)"] = lambda: [None for _ in loader]
        times = {name: [] for name in variants}
        cpu = {name: [] for name in variants}
        for _ in range(args.decode_epochs + 1):  # interleaved; the first epoch warms up
            for name, run in variants.items():
                start, start_cpu = time.perf_counter(), time.process_time()
                run()
                times[name].append(time.perf_counter() - start)
                cpu[name].append(time.process_time() - start_cpu)
        n_batches = -(-len(paths) // DECODE_BATCH)
        best = {name: n_batches / min(t[1:]) for name, t in times.items()}
        # CPU time of this process (its threads included, worker processes not) per batch:
        # what a worker process saves the main one, whatever the load on the machine.
        main_cpu = {name: min(c[1:]) / n_batches * 1e3 for name, c in cpu.items()}
        one = best["kx loader, workers=1"]
        others = [v for k, v in best.items() if not k.startswith("kx")]
        print(f"\ndecode: {len(paths)} zlib files, batch {DECODE_BATCH}, data only, "
              f"fastest of {args.decode_epochs} epochs")  # fmt: skip
        print(f"{'variant':44s} {'batch/s':>9s} {'vs 1 worker':>12s} {'vs best other':>14s} "
              f"{'main-process CPU ms/batch':>26s}")  # fmt: skip
        for name, bps in best.items():
            print(f"{name:44s} {bps:9.1f} {bps / one:12.2f} {bps / max(others):14.2f} "
                  f"{main_cpu[name]:26.1f}")  # fmt: skip


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--decode-files", type=int, default=2_000)
    parser.add_argument("--decode-epochs", type=int, default=5)
    parser.add_argument("--only", choices=["decode"], help="run only this section")
    args = parser.parse_args()

    x0, y0 = load_digits(return_X_y=True)
    reps = -(-args.rows // len(x0))
    x = np.tile((x0 / 16.0).astype("float32"), (reps, 1))[: args.rows]
    y = np.tile(y0.astype("int32"), reps)[: args.rows]
    n_batches = -(-len(x) // BATCH)
    backend = keras.backend.backend()
    print(
        f"backend={backend} rows={len(x)} batch_size={BATCH} epochs={args.epochs} "
        f"files={args.files} keras={keras.__version__}"
    )

    if args.only == "decode":
        decode_section(args, backend)
        return

    # ---------------------------------------------------------------- in memory
    rows = []
    gen = kx.DataGenerator(x, y, batch_size=BATCH, seed=0)
    rows.append(("kx.DataGenerator", *time_fit(gen, 10, args.epochs, n_batches), time_source(gen)))
    if backend == "tensorflow":
        import tensorflow as tf

        ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=0).batch(BATCH)
        rows.append(
            ("tf.data slices.shuffle.batch", *time_fit(ds, 10, args.epochs, n_batches),
             time_source(ds))
        )
    classic = ClassicSequence(x, y)
    rows.append(
        ("classic per-item Sequence", *time_fit(classic, 10, args.epochs, n_batches),
         time_source(classic))
    )
    print_table(f"in-memory: digits tiled to {len(x)} rows", rows)

    # ---------------------------------------------------------------- balanced
    yb = (y == 8).astype("int32")
    rows = []
    gen = kx.DataGenerator(x, yb, batch_size=BATCH, seed=0, sampler="undersample")
    nb = len(gen)
    rows.append(
        ("kx sampler='undersample' (every epoch)", *time_fit(gen, 2, args.epochs, nb),
         time_source(gen))
    )
    try:
        from imblearn.keras import BalancedBatchGenerator

        start = time.perf_counter()
        bbg = BalancedBatchGenerator(x, yb, batch_size=BATCH, random_state=0)
        build = time.perf_counter() - start
        name = "imblearn BalancedBatchGenerator (once)"
        rows.append((name, *time_fit(bbg, 2, args.epochs, len(bbg)), time_source(bbg)))
        start = time.perf_counter()
        gen._order(gen.epoch + 1)
        redraw = time.perf_counter() - start
        print(f"\n(imblearn resampling at construction: {build * 1e3:.1f} ms, once; "
              f"kx re-draw of one epoch: {redraw * 1e3:.1f} ms)")
    except ImportError as e:  # imbalanced-learn's Keras module needs a compatible Keras
        print(f"\nimblearn.keras unavailable ({e}); timing its resampler instead")
        from imblearn.under_sampling import RandomUnderSampler

        start = time.perf_counter()
        RandomUnderSampler(random_state=0).fit_resample(x, yb)
        rows.append(("imblearn RandomUnderSampler.fit_resample", time.perf_counter() - start,
                     float("nan"), float("nan")))
    print_table(f"balanced: digit 8 vs rest, {yb.sum()} : {len(yb) - yb.sum()}", rows)

    # ---------------------------------------------------------------- loader
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i in range(args.files):
            path = os.path.join(tmp, f"{i}.npy")
            np.save(path, x[i])
            paths.append(path)
        labels = y[: args.files]
        nf = -(-args.files // BATCH)
        for workers in (1, 4):
            gen = kx.DataGenerator(
                paths, labels, batch_size=BATCH, seed=0, loader=np.load, workers=workers
            )
            rows.append(
                (f"kx loader np.load, workers={workers}", *time_fit(gen, 10, args.epochs, nf),
                 time_source(gen))
            )
        print_table(f"loader: {args.files} .npy files", rows)
    print("\ndata-only b/s: one epoch of batches iterated in the main thread, no model.")
    decode_section(args, backend)


if __name__ == "__main__":
    main()
