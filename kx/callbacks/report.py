"""ClassificationReport: a per-class table from a classification metric's confusion counts."""

import keras
import numpy as np

__all__ = ["ClassificationReport"]

_STATS = ("precision", "recall", "f1-score", "support")


class ClassificationReport(keras.callbacks.Callback):
    """Prints a per-class precision / recall / F1 / support table at the end of validation.

    The table is read from the confusion counts of a kx classification metric compiled into
    the model (`kx.metrics.ClassificationMetrics`, `kx.metrics.ConfusionMatrix`, ... through
    their `class_counts()`, or a binary one's `confusion_matrix()`), as they stand after the
    validation pass: no second pass over the data. Its numbers are those of
    `sklearn.metrics.classification_report(y_val, y_pred, labels=range(num_classes),
    zero_division=metric.zero_division)`, sample weights included; `report` holds the last
    one as scikit-learn's `output_dict=True` dict.
    Multilabel metrics give per-label rows and the micro, macro and weighted averages
    (scikit-learn's "samples avg" needs per-sample data and is left out). Multiclass metrics
    with `top_k > 1` have no single prediction per sample and are refused.

    Inside `fit` the report is printed at each epoch end after validation and its values are
    added to the epoch logs (so `History` and `CSVLogger` keep them) under:

    - `<prefix>_<class>_<stat>` for each class, `stat` in `precision`, `recall`, `f1`,
      `support`;
    - `<prefix>_accuracy` (multiclass and binary) or `<prefix>_micro_avg_<stat>`
      (multilabel);
    - `<prefix>_macro_avg_<stat>` and `<prefix>_weighted_avg_<stat>`.

    With `model.evaluate(callbacks=[report])` it is printed when evaluation ends.

    Args:
        metric: the metric object given to `compile` (or inside a `kx.MetricDefinition`).
        target_names: names of the classes in the table and the keys. Defaults to `None`:
            the metric's `class_names`, else the class indices.
        digits: digits of the printed values. Defaults to `2`.
        print_fn: the function to print with; `None` prints nothing. Defaults to `print`.
        prefix: the prefix of the log keys. Defaults to `"val_report"`.

    Example:

    >>> import keras, numpy as np, kx
    >>> x = np.eye(3, dtype="float32")[[0, 1, 2, 2]]
    >>> y = np.array([0, 1, 2, 2])
    >>> scores = kx.metrics.ClassificationMetrics(num_classes=3)
    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Identity()])
    >>> model.compile(loss="sparse_categorical_crossentropy", metrics=[scores])
    >>> report = kx.callbacks.ClassificationReport(scores, print_fn=None)
    >>> _ = model.evaluate(x, y, verbose=0, callbacks=[report])
    >>> report.report["2"]["recall"], report.report["accuracy"]
    (1.0, 1.0)
    """

    def __init__(self, metric, target_names=None, digits=2, print_fn=print, prefix="val_report"):
        super().__init__()
        if not isinstance(metric, keras.metrics.Metric) or not callable(
            getattr(metric, "confusion_matrix", None)
        ):
            raise TypeError(
                "ClassificationReport: expected `metric` to be a kx classification metric "
                "(kx.metrics.ClassificationMetrics, ConfusionMatrix, ...) with a "
                f"`confusion_matrix()` method. Received: {metric!r}"
            )
        if isinstance(digits, bool) or not isinstance(digits, int) or digits < 0:
            raise ValueError(
                f"ClassificationReport: expected `digits` to be a non-negative integer. "
                f"Received: digits={digits!r}"
            )
        if print_fn is not None and not callable(print_fn):
            raise TypeError(
                f"ClassificationReport: expected `print_fn` to be callable or None. "
                f"Received: {print_fn!r}"
            )
        self.metric = metric
        self.target_names = None if target_names is None else [str(t) for t in target_names]
        self.digits = digits
        self.print_fn = print_fn
        self.prefix = prefix
        self.report = None
        self._in_fit = False
        self._pending = False

    def on_train_begin(self, logs=None):
        self._in_fit = True

    def on_train_end(self, logs=None):
        self._in_fit = False

    def on_test_end(self, logs=None):
        self.report = self.compute()
        if self._in_fit:
            self._pending = True
        else:
            self._print()

    def on_epoch_end(self, epoch, logs=None):
        if not self._pending:
            return
        self._pending = False
        if logs is not None:
            logs.update(self.log_values())
        self._print()

    def compute(self):
        """The report of the metric's current counts, as scikit-learn's `output_dict=True`."""
        metric = self.metric
        if not metric.built:
            raise ValueError(
                f"ClassificationReport: the metric {metric.name!r} has no state: it was not "
                "updated. Pass the metric object given to the model's compile."
            )
        task = getattr(metric, "task", None)
        if task == "multiclass" and getattr(metric, "top_k", 1) == 1:
            # Per-class counts: every multiclass state has them, the (C, C) matrix only some.
            counts = np.asarray(keras.ops.convert_to_numpy(metric.class_counts()), "float64")
        else:
            counts = np.asarray(keras.ops.convert_to_numpy(metric.confusion_matrix()), "float64")
        if counts.sum() == 0:
            raise ValueError(
                f"ClassificationReport: the metric {metric.name!r} holds no counts after "
                "validation. Pass the metric object given to the model's compile (a copy is "
                "not updated)."
            )
        if task == "multiclass" and getattr(metric, "top_k", 1) == 1:
            return self._from_class_counts(counts)
        if counts.ndim == 2:
            return self._from_matrix(counts)
        if task == "binary":  # [[tn, fp], [fn, tp]] is the 2x2 confusion matrix
            return self._from_matrix(counts[0])
        if task == "multilabel":
            return self._from_label_counts(counts)
        raise ValueError(
            f"ClassificationReport: the metric {metric.name!r} counts one-vs-rest (top_k > 1), "
            "which has no single prediction per sample; use top_k=1."
        )

    def _names(self, count):
        names = self.target_names
        if names is None:
            class_names = getattr(self.metric, "class_names", None)
            if class_names is not None and len(class_names) == count:
                names = class_names
        if names is None:
            return [str(i) for i in range(count)]
        if len(names) != count:
            raise ValueError(
                f"ClassificationReport: expected {count} target names (one per class). "
                f"Received: {names}"
            )
        return names

    def _zero_division(self):
        return float(getattr(self.metric, "zero_division", 0.0))

    def _from_matrix(self, matrix):
        tp = np.diag(matrix)
        rows = self._rows(tp, matrix.sum(0) - tp, matrix.sum(1) - tp)
        report = dict(zip(self._names(len(tp)), rows))
        report["accuracy"] = _ratio(tp.sum(), matrix.sum(), self._zero_division())
        report.update(self._averages(rows))
        return report

    def _from_class_counts(self, counts):
        tp, fp, fn = counts[:, 1, 1], counts[:, 0, 1], counts[:, 1, 0]
        rows = self._rows(tp, fp, fn)
        report = dict(zip(self._names(len(tp)), rows))
        report["accuracy"] = _ratio(tp.sum(), (tp + fn).sum(), self._zero_division())
        report.update(self._averages(rows))
        return report

    def _from_label_counts(self, counts):
        tp, fp, fn = counts[:, 1, 1], counts[:, 0, 1], counts[:, 1, 0]
        rows = self._rows(tp, fp, fn)
        report = dict(zip(self._names(len(tp)), rows))
        report["micro avg"] = self._rows(
            np.array([tp.sum()]), np.array([fp.sum()]), np.array([fn.sum()])
        )[0]
        report.update(self._averages(rows))
        return report

    def _rows(self, tp, fp, fn):
        zd = self._zero_division()
        rows = []
        for t, p, n in zip(tp, fp, fn):
            precision, recall = _ratio(t, t + p, zd), _ratio(t, t + n, zd)
            f1 = _ratio(2 * t, 2 * t + p + n, zd)
            rows.append(
                {"precision": precision, "recall": recall, "f1-score": f1, "support": t + n}
            )
        return rows

    @staticmethod
    def _averages(rows):
        support = np.array([r["support"] for r in rows])
        averages = {}
        for name, weights in (("macro avg", np.ones_like(support)), ("weighted avg", support)):
            entry = {}
            for stat in _STATS[:3]:
                values = np.array([r[stat] for r in rows])
                total = weights.sum()
                entry[stat] = float((values * weights).sum() / total) if total else 0.0
            entry["support"] = support.sum()
            averages[name] = entry
        return averages

    def log_values(self):
        """The last report as flat log values (see the class docstring for the keys)."""
        logs = {}
        for name, entry in (self.report or {}).items():
            key = f"{self.prefix}_{name.replace(' ', '_')}"
            if isinstance(entry, dict):
                for stat, value in entry.items():
                    logs[f"{key}_{stat.replace('-score', '')}"] = float(value)
            else:
                logs[key] = float(entry)
        return logs

    def text(self):
        """The last report as a table."""
        if self.report is None:
            return ""
        d = self.digits
        rows = [(k, v) for k, v in self.report.items() if isinstance(v, dict)]
        width = max(12, *(len(k) for k, _ in rows))
        lines = [f"{'':>{width}} {'precision':>9} {'recall':>9} {'f1-score':>9} {'support':>9}"]
        class_rows = [r for r in rows if not r[0].endswith(" avg")]
        for name, entry in class_rows:
            lines.append(self._line(name, entry, width, d))
        lines.append("")
        if "accuracy" in self.report:
            total = class_rows and sum(e["support"] for _, e in class_rows)
            lines.append(f"{'accuracy':>{width}} {'':>9} {'':>9} "
                         f"{self.report['accuracy']:>9.{d}f} {_support(total):>9}")
        for name, entry in rows[len(class_rows):]:
            lines.append(self._line(name, entry, width, d))
        return "\n".join(lines)

    @staticmethod
    def _line(name, entry, width, d):
        return (f"{name:>{width}} {entry['precision']:>9.{d}f} {entry['recall']:>9.{d}f} "
                f"{entry['f1-score']:>9.{d}f} {_support(entry['support']):>9}")

    def _print(self):
        if self.print_fn is not None:
            self.print_fn(self.text())


def _ratio(numerator, denominator, zero_division):
    return float(numerator / denominator) if denominator else zero_division


def _support(value):
    value = float(value)
    return str(int(value)) if value == int(value) else f"{value:.2f}"
