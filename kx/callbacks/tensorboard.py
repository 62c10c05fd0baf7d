"""TensorBoardData: images, histograms, text and PR curves in TensorBoard, without TensorFlow.

Events are written with the `tensorboard` package's own event-file writer and summary protos
(`pip install kx[tensorboard]`), so it works on every backend whether TensorFlow is installed
or not. Built-in handlers: `ConfusionMatrixImage` and `PRCurves`.
"""

import io
import time
from pathlib import Path

import keras
import numpy as np

from kx.callbacks import _sources

__all__ = ["ConfusionMatrixImage", "PRCurves", "TensorBoardData"]

_INSTALL = (
    "kx.callbacks.TensorBoardData writes event files with the `tensorboard` package, which is "
    "not installed. Install it with: pip install 'kx[tensorboard]' (or: pip install tensorboard)."
)


def _tensorboard():
    """The tensorboard modules used here; a clear ImportError when the package is missing."""
    try:
        from PIL import Image
        from tensorboard.compat.proto import event_pb2, summary_pb2
        from tensorboard.plugins.histogram import metadata as histogram_metadata
        from tensorboard.plugins.image import metadata as image_metadata
        from tensorboard.plugins.pr_curve import metadata as pr_curve_metadata
        from tensorboard.plugins.scalar import metadata as scalar_metadata
        from tensorboard.plugins.text import metadata as text_metadata
        from tensorboard.summary.writer.event_file_writer import EventFileWriter
        from tensorboard.util import tensor_util
    except ImportError as e:
        raise ImportError(_INSTALL) from e
    return {
        "Image": Image, "event_pb2": event_pb2, "summary_pb2": summary_pb2,
        "histogram": histogram_metadata, "image": image_metadata,
        "pr_curve": pr_curve_metadata, "scalar": scalar_metadata, "text": text_metadata,
        "EventFileWriter": EventFileWriter, "tensor_util": tensor_util,
    }  # fmt: skip


class _Writer:
    """Writes summaries of NumPy values into one TensorBoard run folder."""

    def __init__(self, logdir):
        self._tb = _tensorboard()
        self._events = self._tb["EventFileWriter"](str(logdir), filename_suffix=".kx")

    def _write(self, tag, tensor, metadata, step):
        event = self._tb["event_pb2"].Event(wall_time=time.time(), step=int(step))
        event.summary.value.add(tag=tag, tensor=tensor, metadata=metadata)
        self._events.add_event(event)

    def scalar(self, tag, value, step):
        """A scalar, as `keras.callbacks.TensorBoard` writes epoch logs."""
        metadata = self._tb["summary_pb2"].SummaryMetadata(
            plugin_data=self._tb["summary_pb2"].SummaryMetadata.PluginData(
                plugin_name=self._tb["scalar"].PLUGIN_NAME
            )
        )
        tensor = self._tb["tensor_util"].make_tensor_proto(np.float32(value))
        self._write(tag, tensor, metadata, step)

    def image(self, tag, images, step, description=None):
        """Images `(k, h, w, c)`, `(h, w, c)` or `(h, w)`, `c` in 1, 3, 4; floats in [0, 1]
        (scaled by 255) or uint8."""
        images = np.asarray(images)
        if images.ndim == 2:
            images = images[None, :, :, None]
        elif images.ndim == 3:
            images = images[None]
        if images.ndim != 4 or images.shape[-1] not in (1, 3, 4):
            raise ValueError(
                f"TensorBoardData: image {tag!r}: expected a shape (k, h, w, c), (h, w, c) or "
                f"(h, w) with c in 1, 3, 4. Received: {images.shape}"
            )
        if images.dtype != np.uint8:
            if not np.all(np.isfinite(images)):
                raise ValueError(f"TensorBoardData: image {tag!r} holds NaN or infinite values.")
            images = np.round(np.clip(images, 0.0, 1.0) * 255).astype(np.uint8)
        encoded = [self._png(image) for image in images]
        height, width = images.shape[1:3]
        tensor = self._tb["tensor_util"].make_tensor_proto(
            [str(width).encode(), str(height).encode(), *encoded]
        )
        metadata = self._tb["image"].create_summary_metadata(tag, description)
        self._write(tag, tensor, metadata, step)

    def _png(self, image):
        mode = {1: "L", 3: "RGB", 4: "RGBA"}[image.shape[-1]]
        pixels = image[..., 0] if mode == "L" else image
        buffer = io.BytesIO()
        self._tb["Image"].fromarray(pixels, mode=mode).save(buffer, format="PNG")
        return buffer.getvalue()

    def histogram(self, tag, values, step, buckets=30, description=None):
        """A histogram of `values` with `buckets` equal-width buckets."""
        values = np.asarray(values, "float64").ravel()
        if values.size == 0 or not np.all(np.isfinite(values)):
            raise ValueError(
                f"TensorBoardData: histogram {tag!r}: expected finite values. Received "
                f"{values.size} values{'' if values.size == 0 else ' with NaN or infinity'}."
            )
        counts, edges = np.histogram(values, bins=buckets)
        data = np.stack([edges[:-1], edges[1:], counts.astype("float64")], axis=1)
        tensor = self._tb["tensor_util"].make_tensor_proto(data)
        metadata = self._tb["histogram"].create_summary_metadata(tag, description)
        self._write(tag, tensor, metadata, step)

    def text(self, tag, text, step, description=None):
        """Markdown text."""
        tensor = self._tb["tensor_util"].make_tensor_proto(str(text).encode())
        metadata = self._tb["text"].create_summary_metadata(tag, description)
        self._write(tag, tensor, metadata, step)

    def pr_curve(self, tag, labels, scores, step, num_thresholds=127, weights=None,
                 description=None):
        """A precision-recall curve of 0/1 `labels` and `scores` in [0, 1], at
        `num_thresholds` thresholds evenly spaced in [0, 1] (a score `>=` a threshold is
        positive)."""
        labels = np.asarray(labels).ravel().astype(bool)
        scores = np.asarray(scores, "float64").ravel()
        weights = np.ones_like(scores) if weights is None else np.asarray(weights, "float64")
        if labels.shape != scores.shape:
            raise ValueError(
                f"TensorBoardData: PR curve {tag!r}: labels {labels.shape} and scores "
                f"{scores.shape} differ in size."
            )
        thresholds = np.linspace(0.0, 1.0, num_thresholds)
        predicted = scores[None, :] >= thresholds[:, None]
        tp = (predicted & labels).astype("float64") @ weights
        fp = (predicted & ~labels).astype("float64") @ weights
        fn = (~predicted & labels).astype("float64") @ weights
        tn = (~predicted & ~labels).astype("float64") @ weights
        precision = tp / np.maximum(tp + fp, 1e-7)
        recall = tp / np.maximum(tp + fn, 1e-7)
        data = np.stack([tp, fp, tn, fn, precision, recall]).astype("float32")
        tensor = self._tb["tensor_util"].make_tensor_proto(data)
        metadata = self._tb["pr_curve"].create_summary_metadata(
            tag, description or "", num_thresholds
        )
        self._write(tag, tensor, metadata, step)

    def flush(self):
        self._events.flush()

    def close(self):
        self._events.close()


class TensorBoardData(keras.callbacks.Callback):
    """Writes what `handler` picks (images, histograms, text, PR curves) to TensorBoard.

    At each epoch end (step = epoch, as `keras.callbacks.TensorBoard` writes epoch logs) the
    model predicts a fixed set of validation samples (the first `n` of `validation_data`,
    taken once) and every handler is called as `handler(writer, data, step)`, with `data =
    {"inputs": {...}, "targets": {...}, "outputs": {...}}` batched NumPy values keyed by name
    (`None` without `validation_data`). The writer has `image(tag, images, step)`,
    `histogram(tag, values, step, buckets=30)`, `text(tag, text, step)`, `pr_curve(tag,
    labels, scores, step, num_thresholds=127)` and `scalar(tag, value, step)`.

    Events go to `log_dir/validation`, where `keras.callbacks.TensorBoard(log_dir)` writes its
    validation scalars, so both show in one board. It needs only the `tensorboard` package
    (`pip install kx[tensorboard]`), not TensorFlow.

    Built-in handlers: `kx.callbacks.ConfusionMatrixImage(metric)` (the counts of a compiled
    classification metric as an image) and `kx.callbacks.PRCurves()` (per-class
    precision-recall curves of the validation samples).

    Args:
        log_dir: the TensorBoard log folder.
        handler: a handler or a list of them.
        validation_data: the validation set (a tuple of arrays, a `keras.utils.PyDataset`, a
            `tf.data.Dataset`, a torch `DataLoader` or a generator), for handlers that read
            samples. Defaults to `None`.
        n: number of validation samples taken. Defaults to `64`.
        subdir: the run folder inside `log_dir`. Defaults to `"validation"`.

    Raises:
        ImportError: when the `tensorboard` package is not installed (says what to install).

    Example:

    >>> import keras, numpy as np, kx, tempfile, os
    >>> x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    >>> y = (x[:, 0] > 0).astype("int32")
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, "softmax")])
    >>> model.compile("adam", "sparse_categorical_crossentropy")
    >>> def histograms(writer, data, step):
    ...     writer.histogram("probabilities", data["outputs"]["output"], step)
    >>> log_dir = tempfile.mkdtemp()
    >>> board = kx.callbacks.TensorBoardData(
    ...     log_dir, [histograms, kx.callbacks.PRCurves()], validation_data=(x, y))
    >>> _ = model.fit(x, y, epochs=1, verbose=0, callbacks=[board])
    >>> os.listdir(log_dir)
    ['validation']
    """

    def __init__(self, log_dir, handler, validation_data=None, n=64, subdir="validation"):
        super().__init__()
        _tensorboard()  # fail now, with what to install, rather than after an epoch
        handlers = list(handler) if isinstance(handler, (list, tuple)) else [handler]
        if not handlers or not all(callable(h) for h in handlers):
            raise TypeError(
                "TensorBoardData: expected `handler` to be a callable handler(writer, data, "
                f"step) or a list of them. Received: {handler!r}"
            )
        needs_data = [h for h in handlers if getattr(h, "needs_data", False)]
        if validation_data is None and needs_data:
            raise ValueError(
                f"TensorBoardData: the handlers {needs_data} read validation samples; pass "
                "`validation_data`."
            )
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(
                f"TensorBoardData: expected `n` to be a positive integer. Received: n={n!r}"
            )
        if validation_data is not None:
            _sources.check_source("TensorBoardData", validation_data, steps=n)
        self.log_dir = Path(log_dir)
        self.handlers = handlers
        self.validation_data = validation_data
        self.n = n
        self.subdir = subdir
        self.writer = None
        self._samples = None

    def on_train_begin(self, logs=None):
        if self.validation_data is not None and self._samples is None:
            self._samples = _sources.first_samples(
                "TensorBoardData", self.validation_data, self.n, steps=self.n
            )
        self.writer = _Writer(self.log_dir / self.subdir)

    def on_epoch_end(self, epoch, logs=None):
        data = None
        if self._samples is not None:
            data = _sources.predict_named(self.model, self._samples)
        for handler in self.handlers:
            handler(self.writer, data, epoch)
        self.writer.flush()

    def on_train_end(self, logs=None):
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class ConfusionMatrixImage:
    """A `TensorBoardData` handler: a classification metric's confusion counts as an image.

    The metric is one compiled into the model (`kx.metrics.ClassificationMetrics`,
    `ConfusionMatrix`, ...); at each epoch end its counts are those of the last pass, the
    validation one when `fit` validates. A multiclass `(C, C)` matrix (true classes as rows,
    predicted as columns) becomes one grey image of `C x C` cells of `cell` pixels; binary and
    multilabel `[[tn, fp], [fn, tp]]` matrices become one 2 x 2 image per label. A cell's grey
    level is `round(255 * count / max_count)` (`max_count` over the image), or, with
    `normalize="true"`, `round(255 * count / row_total)` (the recall of each true class).

    Args:
        metric: the compiled metric object.
        name: the tag. Defaults to `None`: `"confusion_matrix/<metric name>"`.
        cell: pixels per cell side. Defaults to `8`.
        normalize: `None` or `"true"`. Defaults to `None`.
    """

    needs_data = False

    def __init__(self, metric, name=None, cell=8, normalize=None):
        if not callable(getattr(metric, "confusion_matrix", None)):
            raise TypeError(
                "ConfusionMatrixImage: expected a kx classification metric (with a "
                f"`confusion_matrix()` method). Received: {metric!r}"
            )
        if getattr(metric, "num_classes", None) is not None and metric.layout == "marginals":
            raise ValueError(
                f"ConfusionMatrixImage: the metric {metric.name!r} keeps per-class counts, not "
                f"the (C, C) matrix ({metric.num_classes} classes). Construct it with "
                "`keep_matrix=True`."
            )
        if isinstance(cell, bool) or not isinstance(cell, int) or cell < 1:
            raise ValueError(f"ConfusionMatrixImage: expected `cell` to be a positive integer. "
                             f"Received: cell={cell!r}")
        if normalize not in (None, "true"):
            raise ValueError(f"ConfusionMatrixImage: expected `normalize` to be None or 'true'. "
                             f"Received: normalize={normalize!r}")
        self.metric = metric
        self.name = name or f"confusion_matrix/{metric.name}"
        self.cell = cell
        self.normalize = normalize

    def pixels(self):
        """The image `(k, h, w, 1)` uint8 of the metric's current counts."""
        counts = np.asarray(keras.ops.convert_to_numpy(self.metric.confusion_matrix()), "float64")
        if counts.ndim == 2:
            counts = counts[None]
        if self.normalize == "true":
            totals = counts.sum(axis=-1, keepdims=True)
            levels = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
        else:
            peak = counts.max(axis=(1, 2), keepdims=True)
            levels = np.divide(counts, peak, out=np.zeros_like(counts), where=peak > 0)
        grey = np.round(255 * levels).astype(np.uint8)
        grey = np.repeat(np.repeat(grey, self.cell, axis=1), self.cell, axis=2)
        return grey[..., None]

    def __call__(self, writer, data, step):
        writer.image(self.name, self.pixels(), step)

    def __repr__(self):
        return f"ConfusionMatrixImage({self.metric.name!r})"


class PRCurves:
    """A `TensorBoardData` handler: one precision-recall curve per class.

    Reads the validation samples' target `target` (sparse class ids, one-hot rows, or 0/1 for
    binary) and output `output` (class scores `(n, C)`, or one binary score `(n,)` /
    `(n, 1)`), and writes a curve `pr_curves/<class>` per class (one-vs-rest; binary: the
    positive class only).

    Args:
        target: the target's name. Defaults to `None`: the only target.
        output: the output's name. Defaults to `None`: the only output.
        from_logits: whether the output holds logits (softmax, or sigmoid for one score).
            Defaults to `False`.
        num_thresholds: thresholds evenly spaced in [0, 1]. Defaults to `127`.
        class_names: names used in the tags. Defaults to the class indices.
    """

    needs_data = True

    def __init__(self, target=None, output=None, from_logits=False, num_thresholds=127,
                 class_names=None):
        if isinstance(num_thresholds, bool) or not isinstance(num_thresholds, int) or (
            num_thresholds < 2
        ):
            raise ValueError(f"PRCurves: expected `num_thresholds` to be an integer >= 2. "
                             f"Received: {num_thresholds!r}")
        self.target = target
        self.output = output
        self.from_logits = bool(from_logits)
        self.num_thresholds = num_thresholds
        self.class_names = None if class_names is None else [str(c) for c in class_names]

    def curves(self, data):
        """`{class name: (labels, scores)}` of the samples, one-vs-rest."""
        y_true = _pick("PRCurves", "target", self.target, data["targets"])
        y_pred = np.asarray(_pick("PRCurves", "output", self.output, data["outputs"]), "float64")
        y_true = np.asarray(y_true)
        if y_pred.ndim == 2 and y_pred.shape[1] == 1 or y_pred.ndim == 1:  # binary
            scores = y_pred.reshape(-1)
            if self.from_logits:
                scores = 1.0 / (1.0 + np.exp(-scores))
            return {self._name(1, 2): (y_true.reshape(-1) > 0.5, scores)}
        n_classes = y_pred.shape[-1]
        if self.from_logits:
            e = np.exp(y_pred - y_pred.max(axis=-1, keepdims=True))
            y_pred = e / e.sum(axis=-1, keepdims=True)
        if y_true.ndim == y_pred.ndim and y_true.shape[-1] == n_classes:  # one-hot
            y_true = np.argmax(y_true, axis=-1)
        y_true = y_true.reshape(-1)
        return {
            self._name(c, n_classes): (y_true == c, y_pred.reshape(-1, n_classes)[:, c])
            for c in range(n_classes)
        }

    def _name(self, c, n_classes):
        if self.class_names is None:
            return str(c)
        if len(self.class_names) != n_classes:
            raise ValueError(f"PRCurves: expected {n_classes} class names. Received: "
                             f"{self.class_names}")
        return self.class_names[c]

    def __call__(self, writer, data, step):
        for name, (labels, scores) in self.curves(data).items():
            writer.pr_curve(f"pr_curves/{name}", labels, scores, step, self.num_thresholds)

    def __repr__(self):
        return "PRCurves()"


def _pick(owner, kind, key, values):
    if key is None:
        if len(values) != 1:
            raise ValueError(f"{owner}: the model has the {kind}s {sorted(values)}; name the "
                             f"{kind} to read with `{kind}=`.")
        return next(iter(values.values()))
    if key not in values:
        raise ValueError(f"{owner}: {kind} {key!r} is not among the {kind}s {sorted(values)}.")
    return values[key]
