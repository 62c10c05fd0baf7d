"""Validation-only metrics computed in NumPy over a whole data set (RocAuc, AveragePrecision).

They are not `keras.metrics.Metric`s: they run outside the training step, once per epoch, through
`kx.callbacks.Evaluator` (or a `kx.MetricDefinition` in `kx.CustomModel`).
"""

import keras
import numpy as np

__all__ = ["AveragePrecision", "PythonMetric", "RocAuc"]

_PACKAGE = "kx"


def _snake(name):
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")


@keras.saving.register_keras_serializable(package=_PACKAGE)
class PythonMetric:
    """Base of metrics computed in plain Python/NumPy over the whole validation set.

    `update(y_true, y_pred, sample_weight=None)` receives NumPy arrays, `result()` returns a
    float or a dict of floats (logged as `<name>_<key>`), `reset()` clears the state. By default
    `update` collects the arrays and `result` calls `compute(y_true, y_pred, sample_weight)` on
    everything seen since the last `reset`: a subclass usually implements only `compute`; a
    streaming metric overrides `update`, `result` and `reset` instead.

    Args:
        name: name of the metric (the log key of `kx.callbacks.Evaluator` is its dict key).
            Defaults to the class name in snake case.

    Example:

    >>> import numpy as np, kx
    >>> class MedianAbsError(kx.metrics.PythonMetric):
    ...     def compute(self, y_true, y_pred, sample_weight):
    ...         return float(np.median(np.abs(y_true - y_pred)))
    >>> m = MedianAbsError()
    >>> m.update(np.array([1.0, 2.0]), np.array([1.5, 2.0]))
    >>> m.update(np.array([3.0]), np.array([4.0]))
    >>> m.name, m.result()
    ('median_abs_error', 0.5)
    """

    def __init__(self, name=None):
        if name is not None and (not isinstance(name, str) or not name):
            raise TypeError(
                f"{type(self).__name__}: expected `name` to be a non-empty string. "
                f"Received: name={name!r}"
            )
        self.name = name or _snake(type(self).__name__)
        self.reset()

    def update(self, y_true, y_pred, sample_weight=None):
        """Adds a batch (NumPy arrays, first axis: samples)."""
        self._y_true.append(np.asarray(y_true))
        self._y_pred.append(np.asarray(y_pred))
        self._weights.append(None if sample_weight is None else np.asarray(sample_weight))

    def result(self):
        """The metric over everything seen since the last `reset()`: a float or a dict."""
        if not self._y_true:
            raise ValueError(f"{type(self).__name__}: `result()` called before any `update()`.")
        weights = None
        if any(w is not None for w in self._weights):
            weights = np.concatenate(
                [
                    np.ones(len(t)) if w is None else np.broadcast_to(w, (len(t),))
                    for t, w in zip(self._y_true, self._weights)
                ]
            )
        return self.compute(np.concatenate(self._y_true), np.concatenate(self._y_pred), weights)

    def reset(self):
        """Clears the state."""
        self._y_true, self._y_pred, self._weights = [], [], []

    def compute(self, y_true, y_pred, sample_weight):
        """The metric on all collected arrays; `sample_weight` is `None` or one per sample."""
        raise NotImplementedError(
            f"{type(self).__name__}: implement `compute(y_true, y_pred, sample_weight)`, or "
            "override `update`, `result` and `reset`."
        )

    def get_config(self):
        return {"name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"{type(self).__name__}(name={self.name!r})"


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


class _RankingMetric(PythonMetric):
    """Shared input handling of RocAuc and AveragePrecision (scikit-learn score functions)."""

    _AVERAGES = ("micro", "macro", "weighted", "samples", None)

    def __init__(self, average="macro", from_logits=False, multilabel=False, name=None):
        if average not in self._AVERAGES:
            raise ValueError(
                f"{type(self).__name__}: expected `average` to be one of "
                f"{list(self._AVERAGES)}. Received: average={average!r}"
            )
        self.average = average
        self.from_logits = bool(from_logits)
        self.multilabel = bool(multilabel)
        super().__init__(name=name)

    def _prepare(self, y_true, y_pred):
        """Binary `(n,)` scores with 0/1 labels, or `(n, C)` scores with indicator labels."""
        y_true, y_pred = np.asarray(y_true), np.asarray(y_pred, dtype="float64")
        if y_pred.ndim == 2 and y_pred.shape[1] == 1:
            y_pred = y_pred[:, 0]
        if y_true.ndim == 2 and y_true.shape[1] == 1:
            y_true = y_true[:, 0]
        if y_pred.ndim == 1:  # binary
            return y_true, _sigmoid(y_pred) if self.from_logits else y_pred
        n_classes = y_pred.shape[-1]
        if self.multilabel:
            return y_true, _sigmoid(y_pred) if self.from_logits else y_pred
        scores = _softmax(y_pred) if self.from_logits else y_pred
        if y_true.ndim == 1:  # sparse multiclass labels: one-vs-rest indicators
            labels = y_true.astype("int64")
            if labels.min() < 0 or labels.max() >= n_classes:
                raise ValueError(
                    f"{type(self).__name__}: expected class indices in [0, {n_classes}) in "
                    f"y_true. Received values in [{labels.min()}, {labels.max()}]."
                )
            y_true = np.eye(n_classes, dtype="int64")[labels]
        return y_true, scores

    def get_config(self):
        return {
            **super().get_config(),
            "average": self.average,
            "from_logits": self.from_logits,
            "multilabel": self.multilabel,
        }


@keras.saving.register_keras_serializable(package=_PACKAGE)
class RocAuc(_RankingMetric):
    """Area under the ROC curve, by `sklearn.metrics.roc_auc_score`, over the whole data set.

    Binary: `y_pred` scores `(n,)` or `(n, 1)`. Multiclass: sparse or one-hot `y_true` with
    `(n, C)` scores, one-vs-rest. Multilabel (`multilabel=True`): `(n, L)` indicators.
    Unlike `keras.metrics.AUC` it is exact (no threshold buckets).

    Args:
        average: `"macro"`, `"micro"`, `"weighted"`, `"samples"` or `None` (one value per
            class, logged as `<name>_<class>`), as scikit-learn. Defaults to `"macro"`.
        from_logits: whether `y_pred` holds logits (softmax for multiclass, sigmoid
            otherwise). Defaults to `False`.
        multilabel: whether several labels can be positive at once. Defaults to `False`.
        name: defaults to `"roc_auc"`.

    Example:

    >>> import numpy as np, kx
    >>> m = kx.metrics.RocAuc()
    >>> m.update(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
    >>> m.result()
    0.75
    """

    def __init__(self, average="macro", from_logits=False, multilabel=False, name="roc_auc"):
        super().__init__(average, from_logits, multilabel, name)

    def compute(self, y_true, y_pred, sample_weight):
        from sklearn.metrics import roc_auc_score

        y_true, scores = self._prepare(y_true, y_pred)
        value = roc_auc_score(y_true, scores, average=self.average, sample_weight=sample_weight)
        return _as_result(value)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class AveragePrecision(_RankingMetric):
    """Average precision (area under the precision-recall curve), by scikit-learn.

    `sklearn.metrics.average_precision_score` over the whole data set; inputs as `RocAuc`.

    Args:
        average: as `RocAuc`. Defaults to `"macro"`.
        from_logits: as `RocAuc`. Defaults to `False`.
        multilabel: as `RocAuc`. Defaults to `False`.
        name: defaults to `"average_precision"`.

    Example:

    >>> import numpy as np, kx
    >>> m = kx.metrics.AveragePrecision()
    >>> m.update(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
    >>> round(m.result(), 4)
    0.8333
    """

    def __init__(
        self, average="macro", from_logits=False, multilabel=False, name="average_precision"
    ):
        super().__init__(average, from_logits, multilabel, name)

    def compute(self, y_true, y_pred, sample_weight):
        from sklearn.metrics import average_precision_score

        y_true, scores = self._prepare(y_true, y_pred)
        value = average_precision_score(
            y_true, scores, average=self.average, sample_weight=sample_weight
        )
        return _as_result(value)


def _as_result(value):
    value = np.asarray(value, dtype="float64")
    if value.ndim == 0:
        return float(value)
    return {str(i): float(v) for i, v in enumerate(value)}
