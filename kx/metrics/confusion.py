"""The confusion-matrix state shared by every classification metric, and the formulas read from it.

Two layouts, chosen by the task:

- `"matrix"`: a `(num_classes, num_classes)` confusion matrix, rows are true classes, columns
  predicted ones (multiclass with `top_k=1`), as `sklearn.metrics.confusion_matrix`.
- `"stats"`: one 2x2 matrix `[[tn, fp], [fn, tp]]` per label, shape `(num_labels, 2, 2)`
  (binary: one label; multilabel; multiclass with `top_k > 1`, one-vs-rest), as
  `sklearn.metrics.multilabel_confusion_matrix`.

Counts are kept in two variables: an int32 one for unweighted updates (exact up to 2**31 - 1 per
cell; a float32 count would stop growing at 2**24) and a float32 one for sample-weighted updates
(weights are real numbers; float64 is not available on JAX by default). Results are their sum,
computed in float32.
"""

import keras
import numpy as np
from keras import ops

from kx.backend import count_ids

TASKS = ("binary", "multiclass", "multilabel")
AVERAGES = ("micro", "macro", "weighted", None)

# Every metric name that ClassificationMetrics accepts, mapped to its canonical form.
ALIASES = {
    "accuracy": "accuracy",
    "precision": "precision",
    "ppv": "precision",
    "recall": "recall",
    "sensitivity": "recall",
    "tpr": "recall",
    "specificity": "specificity",
    "tnr": "specificity",
    "npv": "npv",
    "fpr": "fpr",
    "fnr": "fnr",
    "fdr": "fdr",
    "false_omission_rate": "false_omission_rate",
    "for": "false_omission_rate",
    "f1": "f1",
    "fbeta": "fbeta",
    "mcc": "mcc",
    "balanced_accuracy": "balanced_accuracy",
    "cohen_kappa": "cohen_kappa",
    "kappa": "cohen_kappa",
    "cohen_kappa_linear": "cohen_kappa_linear",
    "cohen_kappa_quadratic": "cohen_kappa_quadratic",
    "jaccard": "jaccard",
    "iou": "jaccard",
    "dice": "dice",
    "hamming": "hamming",
    "positive_likelihood_ratio": "positive_likelihood_ratio",
    "plr": "positive_likelihood_ratio",
    "negative_likelihood_ratio": "negative_likelihood_ratio",
    "nlr": "negative_likelihood_ratio",
    "diagnostic_odds_ratio": "diagnostic_odds_ratio",
    "dor": "diagnostic_odds_ratio",
    "prevalence": "prevalence",
    "informedness": "informedness",
    "markedness": "markedness",
    "support": "support",
}

# Metrics that are one number for the whole multiclass confusion matrix (not per class).
MATRIX_SCALARS = (
    "accuracy",
    "balanced_accuracy",
    "mcc",
    "cohen_kappa",
    "cohen_kappa_linear",
    "cohen_kappa_quadratic",
    "hamming",
)


def check_metric_names(owner, names):
    """Validates metric names; returns them (as given) with their canonical forms."""
    if isinstance(names, str):
        names = (names,)
    names = tuple(names)
    if not names:
        raise ValueError(f"{owner}: expected at least one metric name. Received: metrics=()")
    for name in names:
        if name not in ALIASES:
            raise ValueError(
                f"{owner}: unknown metric {name!r}. Known metrics: {sorted(ALIASES)}. "
                f"Received: metrics={names!r}"
            )
    if len(set(names)) != len(names):
        raise ValueError(f"{owner}: a metric is named twice. Received: metrics={names!r}")
    return names


def safe_div(numerator, denominator, zero_division):
    """`numerator / denominator`, and `zero_division` where the denominator is 0."""
    zero = ops.equal(denominator, 0.0)
    return ops.where(zero, zero_division, numerator / ops.where(zero, 1.0, denominator))


def per_class_value(name, tp, fp, fn, tn, zero_division, beta=1.0):
    """One per-class (one-vs-rest) metric from the four counts, elementwise, in float32.

    Every ratio with a zero denominator is `zero_division`.
    """
    zd = zero_division
    div = lambda a, b: safe_div(a, b, zd)
    if name == "precision":
        return div(tp, tp + fp)
    if name == "recall":
        return div(tp, tp + fn)
    if name == "specificity":
        return div(tn, tn + fp)
    if name == "npv":
        return div(tn, tn + fn)
    if name == "fpr":
        return div(fp, fp + tn)
    if name == "fnr":
        return div(fn, fn + tp)
    if name == "fdr":
        return div(fp, fp + tp)
    if name == "false_omission_rate":
        return div(fn, fn + tn)
    if name in ("f1", "dice"):
        return div(2.0 * tp, 2.0 * tp + fp + fn)
    if name == "fbeta":
        b2 = beta * beta
        return div((1.0 + b2) * tp, (1.0 + b2) * tp + b2 * fn + fp)
    if name == "jaccard":
        return div(tp, tp + fp + fn)
    if name == "accuracy":
        return div(tp + tn, tp + tn + fp + fn)
    if name == "hamming":
        return div(fp + fn, tp + tn + fp + fn)
    if name == "prevalence":
        return div(tp + fn, tp + tn + fp + fn)
    if name == "balanced_accuracy":
        return (div(tp, tp + fn) + div(tn, tn + fp)) / 2.0
    if name == "informedness":
        return div(tp, tp + fn) + div(tn, tn + fp) - 1.0
    if name == "markedness":
        return div(tp, tp + fp) + div(tn, tn + fn) - 1.0
    if name == "positive_likelihood_ratio":
        return div(div(tp, tp + fn), div(fp, fp + tn))
    if name == "negative_likelihood_ratio":
        return div(div(fn, fn + tp), div(tn, tn + fp))
    if name == "diagnostic_odds_ratio":
        return div(tp * tn, fp * fn)
    if name == "support":
        return tp + fn
    if name == "mcc":
        n = tp + fp + fn + tn
        # Proportions keep the products of four counts inside float32's range.
        tp, fp, fn, tn = (safe_div(v, n, 0.0) for v in (tp, fp, fn, tn))
        denominator = (tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)
        return div(tp * tn - fp * fn, ops.sqrt(denominator))
    if name.startswith("cohen_kappa"):
        # 2x2 kappa; linear and quadratic weights equal the unweighted ones on two classes.
        n = tp + fp + fn + tn
        tp, fp, fn, tn = (safe_div(v, n, 0.0) for v in (tp, fp, fn, tn))
        expected_disagreement = (tn + fp) * (fp + tp) + (fn + tp) * (tn + fn)
        return 1.0 - safe_div(fp + fn, expected_disagreement, 1.0 - zd)
    raise ValueError(f"Unknown metric {name!r}.")  # unreachable after check_metric_names


def matrix_value(name, matrix, zero_division):
    """A whole-matrix multiclass metric from a float32 `(C, C)` confusion matrix.

    Formulas as scikit-learn's `accuracy_score`, `balanced_accuracy_score`, `matthews_corrcoef`,
    `cohen_kappa_score` and `hamming_loss`, on proportions (counts / total) for float32 range.
    """
    zd = zero_division
    total = ops.sum(matrix)
    p = safe_div(matrix, total, 0.0)
    correct = ops.trace(p)
    if name == "accuracy":
        return safe_div(ops.trace(matrix), total, zd)
    if name == "hamming":
        return safe_div(total - ops.trace(matrix), total, zd)
    rows = ops.sum(p, axis=1)  # true-class proportions
    cols = ops.sum(p, axis=0)  # predicted-class proportions
    if name == "balanced_accuracy":
        present = ops.cast(rows > 0, "float32")
        recall = safe_div(ops.diagonal(p), rows, 0.0)
        return safe_div(ops.sum(recall * present), ops.sum(present), zd)
    if name == "mcc":
        cov_ytyp = correct - ops.sum(rows * cols)
        cov_ypyp = 1.0 - ops.sum(cols * cols)
        cov_ytyt = 1.0 - ops.sum(rows * rows)
        # Undefined when all samples share one true or one predicted class: decided on the
        # counts, as `1 - sum(p * p)` may round to a tiny nonzero value.
        single = lambda v: ops.sum(ops.cast(v > 0, "int32")) <= 1
        undefined = ops.logical_or(single(rows), single(cols))
        return ops.where(
            undefined, zd, safe_div(cov_ytyp, ops.sqrt(ops.maximum(cov_ytyt * cov_ypyp, 0.0)), zd)
        )
    if name.startswith("cohen_kappa"):
        c = matrix.shape[-1]
        idx = ops.arange(c, dtype="float32")
        diff = ops.abs(idx[:, None] - idx[None, :])
        if name == "cohen_kappa_linear":
            weights = diff
        elif name == "cohen_kappa_quadratic":
            weights = diff * diff
        else:
            weights = ops.cast(diff > 0, "float32")
        expected = rows[:, None] * cols[None, :]
        return 1.0 - safe_div(ops.sum(weights * p), ops.sum(weights * expected), 1.0 - zd)
    raise ValueError(f"Unknown metric {name!r}.")


def _concrete(x):
    """The NumPy value of `x` when it is known now (eager), `None` while it is being traced."""
    if isinstance(x, np.ndarray):
        return x
    if isinstance(x, keras.KerasTensor):
        return None
    try:
        return ops.convert_to_numpy(x)
    except Exception:  # a tracer (JAX jit) or a symbolic tensor (tf.function): no value yet
        return None


def _is_int(x):
    dtype = keras.backend.standardize_dtype(x.dtype)
    return "int" in dtype or dtype == "bool"


def _squeeze_last(x):
    if len(x.shape) >= 2 and x.shape[-1] == 1:
        return ops.squeeze(x, -1)
    return x


class ConfusionState(keras.metrics.Metric):
    """Base of the kx classification metrics: the confusion-matrix state and its update.

    Subclasses override only `result()`. See `kx.metrics.ClassificationMetrics` for the
    arguments.
    """

    def __init__(
        self,
        num_classes=None,
        task=None,
        average="macro",
        threshold=0.5,
        top_k=1,
        from_logits=False,
        ignore_class=None,
        zero_division=0.0,
        class_names=None,
        validate_args=True,
        name=None,
        dtype=None,
    ):
        super().__init__(name=name, dtype=dtype)
        owner = type(self).__name__
        if task not in (None, *TASKS):
            raise ValueError(
                f"{owner}: expected `task` to be one of {list(TASKS)} or None (inferred). "
                f"Received: task={task!r}"
            )
        if average not in AVERAGES:
            raise ValueError(
                f"{owner}: expected `average` to be one of {list(AVERAGES)}. "
                f"Received: average={average!r}"
            )
        if num_classes is not None and (
            isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1
        ):
            raise ValueError(
                f"{owner}: expected `num_classes` to be a positive integer or None. "
                f"Received: num_classes={num_classes!r}"
            )
        if not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0:
            raise ValueError(
                f"{owner}: expected `threshold` to be a probability in [0, 1]. "
                f"Received: threshold={threshold!r}"
            )
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise ValueError(
                f"{owner}: expected `top_k` to be a positive integer. Received: top_k={top_k!r}"
            )
        if top_k > 1 and task not in (None, "multiclass"):
            raise ValueError(
                f"{owner}: `top_k` applies to multiclass scores only. "
                f"Received: top_k={top_k}, task={task!r}"
            )
        if ignore_class is not None and not isinstance(ignore_class, int):
            raise ValueError(
                f"{owner}: expected `ignore_class` to be an integer label or None. "
                f"Received: ignore_class={ignore_class!r}"
            )
        if not isinstance(zero_division, (int, float)) or isinstance(zero_division, bool):
            raise ValueError(
                f"{owner}: expected `zero_division` to be a number (the value of a ratio whose "
                f"denominator is 0, such as 0.0, 1.0 or float('nan')). "
                f"Received: zero_division={zero_division!r}"
            )
        if task is None and num_classes is not None:
            task = "binary" if num_classes == 1 else "multiclass"
        if task == "binary":
            if num_classes not in (None, 1, 2):
                raise ValueError(
                    f"{owner}: a binary task has one positive class; expected `num_classes` to "
                    f"be None, 1 or 2. Received: num_classes={num_classes}"
                )
            num_classes = 1
            if class_names is not None:
                if len(class_names) not in (1, 2):
                    raise ValueError(
                        f"{owner}: a binary task takes one class name (the positive class) or "
                        f"two (negative, positive). Received: class_names={class_names!r}"
                    )
                class_names = list(class_names)[-1:]
        if top_k > 1 and num_classes is not None and top_k >= num_classes:
            raise ValueError(
                f"{owner}: expected `top_k` smaller than `num_classes`. "
                f"Received: top_k={top_k}, num_classes={num_classes}"
            )
        self.num_classes = 1 if task == "binary" else num_classes
        self.task = task
        self.average = average
        self.threshold = float(threshold)
        self.top_k = top_k
        self.from_logits = bool(from_logits)
        self.ignore_class = ignore_class
        self.zero_division = float(zero_division)
        self.class_names = None if class_names is None else [str(c) for c in class_names]
        self.validate_args = bool(validate_args)
        self._owner = owner
        self.built = False
        if self.task is not None and self.num_classes is not None:
            self._build()

    # ---- state ---------------------------------------------------------------------------

    @property
    def layout(self):
        """`"matrix"` (multiclass, `top_k=1`) or `"stats"` (one 2x2 matrix per label)."""
        return "matrix" if self.task == "multiclass" and self.top_k == 1 else "stats"

    def _build(self):
        if self.class_names is not None and len(self.class_names) != self.num_classes:
            raise ValueError(
                f"{self._owner}: expected one class name per class ({self.num_classes}). "
                f"Received: class_names={self.class_names}"
            )
        c = self.num_classes
        shape = (c, c) if self.layout == "matrix" else (c, 2, 2)
        self.counts = self.add_variable(
            shape=shape, initializer="zeros", dtype="int32", aggregation="sum", name="counts"
        )
        self.weighted_counts = self.add_variable(
            shape=shape,
            initializer="zeros",
            dtype="float32",
            aggregation="sum",
            name="weighted_counts",
        )
        self.built = True

    def _infer(self, y_pred):
        """Task and class count from the first `y_pred` when not given (a static shape)."""
        last = y_pred.shape[-1] if len(y_pred.shape) >= 1 else None
        if self.task is None:
            self.task = "binary" if len(y_pred.shape) <= 1 or last == 1 else "multiclass"
        if self.task == "binary":
            self.num_classes = 1
        elif self.num_classes is None:
            if _is_int(y_pred) or last is None or len(y_pred.shape) < 2:
                raise ValueError(
                    f"{self._owner}: cannot infer `num_classes` from predictions of shape "
                    f"{tuple(y_pred.shape)} and dtype {y_pred.dtype}: pass `num_classes`, or "
                    "feed scores whose last axis has one entry per class."
                )
            self.num_classes = int(last)
            if self.top_k >= self.num_classes:
                raise ValueError(
                    f"{self._owner}: expected `top_k` smaller than the number of classes. "
                    f"Received: top_k={self.top_k}, num_classes={self.num_classes}"
                )
        self._build()

    def reset_state(self):
        if self.built:
            super().reset_state()

    def confusion_matrix(self):
        """The current counts as float32: `(C, C)` (multiclass) or `(labels, 2, 2)`."""
        self._require_built()
        return ops.cast(self.counts, "float32") + self.weighted_counts

    def _require_built(self):
        if not self.built:
            raise ValueError(
                f"{self._owner}: no state yet: `num_classes` was not given and no data has been "
                "seen. Call `update_state` first or pass `num_classes`."
            )

    # ---- update --------------------------------------------------------------------------

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = ops.convert_to_tensor(y_pred)
        y_true = ops.convert_to_tensor(y_true)
        if not self.built:
            self._infer(y_pred)
        if self.layout == "matrix":
            t, p = self._multiclass_labels(y_true, y_pred)
            valid = self._valid(t)
            c = self.num_classes
            # Ignored entries go to an extra id, c * c, whose count is dropped.
            ids = ops.reshape(ops.where(valid, t * c + p, c * c), (-1,))
            if sample_weight is None:
                counts = count_ids(ids, c * c + 1)
                self.counts.assign_add(ops.reshape(counts[: c * c], (c, c)))
            else:
                w = ops.reshape(self._weights(sample_weight, t), (-1,))
                counts = count_ids(ids, c * c + 1, weights=w)
                self.weighted_counts.assign_add(ops.reshape(counts[: c * c], (c, c)))
            return
        t, p, valid = self._label_indicators(y_true, y_pred)  # (..., L) 0/1 int32
        t = ops.where(valid, t, 0)
        if sample_weight is None:
            w = ops.cast(valid, "int32")
            target = self.counts
        else:
            w = self._weights(sample_weight, t) * ops.cast(valid, "float32")
            t, p = ops.cast(t, "float32"), ops.cast(p, "float32")
            target = self.weighted_counts
        w = ops.reshape(w, (-1, self.num_classes))
        t = ops.reshape(t, (-1, self.num_classes))
        p = ops.reshape(p, (-1, self.num_classes))
        tw = t * w
        tp = ops.sum(tw * p, axis=0)
        fn = ops.sum(tw, axis=0) - tp
        pw = p * w
        fp = ops.sum(pw, axis=0) - tp
        tn = ops.sum((1 - t) * (1 - p) * w, axis=0)  # direct: no float residue when weighted
        stats = ops.stack([ops.stack([tn, fp], -1), ops.stack([fn, tp], -1)], -2)
        target.assign_add(stats)

    def _valid(self, t):
        if self.ignore_class is None:
            return ops.ones_like(t, dtype="bool")
        return ops.not_equal(t, self.ignore_class)

    def _weights(self, sample_weight, like):
        """`sample_weight` broadcast to the shape of `like` (leading axes aligned), float32."""
        w = ops.cast(ops.convert_to_tensor(sample_weight), "float32")
        while len(w.shape) > len(like.shape) and w.shape[-1] == 1:
            w = ops.squeeze(w, -1)
        while len(w.shape) < len(like.shape):
            w = ops.expand_dims(w, -1)
        return ops.broadcast_to(w, ops.shape(like))

    def _check_probabilities(self, y_pred):
        if self.from_logits or _is_int(y_pred) or not self.validate_args:
            return
        v = _concrete(y_pred)
        if v is not None and v.size and (np.nanmin(v) < 0.0 or np.nanmax(v) > 1.0):
            raise ValueError(
                f"{self._owner}: expected probabilities in [0, 1] in `y_pred` (pass "
                f"`from_logits=True` for logits). Received values in "
                f"[{float(np.nanmin(v)):.4g}, {float(np.nanmax(v)):.4g}]."
            )

    def _check_labels(self, labels, arg, high):
        """Labels in [0, high), or the ignored class, when their values are known."""
        if not self.validate_args:
            return
        v = _concrete(labels)
        if v is None or not v.size:
            return
        v = v[v != self.ignore_class] if self.ignore_class is not None else v
        if v.size and (v.min() < 0 or v.max() >= high):
            what = "0 or 1" if high == 2 else f"class indices in [0, {high})"
            raise ValueError(
                f"{self._owner}: expected `{arg}` to hold {what}"
                f"{'' if self.ignore_class is None else f' or ignore_class={self.ignore_class}'}"
                f" (num_classes={self.num_classes}). Received values in "
                f"[{int(v.min())}, {int(v.max())}]."
            )

    def _multiclass_labels(self, y_true, y_pred):
        """Sparse int32 true and predicted classes of the same shape (any rank)."""
        c = self.num_classes
        scores = not _is_int(y_pred) and len(y_pred.shape) >= 2 and y_pred.shape[-1] == c
        if scores:
            self._check_probabilities(y_pred)
            p = ops.cast(ops.argmax(y_pred, axis=-1), "int32")
        else:
            p = ops.cast(_squeeze_last(y_pred), "int32")
        t = self._sparse_true(y_true, len(p.shape), y_pred.shape)
        self._check_labels(t, "y_true", c)
        if not scores:
            self._check_labels(p, "y_pred", c)
        return t, p

    def _sparse_true(self, y_true, rank, pred_shape):
        """Sparse int32 true classes of rank `rank` from sparse or one-hot `y_true`."""
        c = self.num_classes
        if len(y_true.shape) == rank + 1 and y_true.shape[-1] == c and c > 1:
            t = ops.cast(ops.argmax(y_true, axis=-1), "int32")  # one-hot
        elif len(y_true.shape) == rank + 1 and y_true.shape[-1] == 1:
            t = ops.cast(ops.squeeze(y_true, -1), "int32")
        elif len(y_true.shape) == rank:
            t = ops.cast(y_true, "int32")
        else:
            t = None
        if t is None or not _shapes_match(t.shape, tuple(pred_shape)[:rank]):
            raise ValueError(
                f"{self._owner}: cannot pair y_true of shape {tuple(y_true.shape)} with y_pred "
                f"of shape {tuple(pred_shape)} for num_classes={c}. Expected y_pred scores "
                f"shaped (..., {c}) with sparse (...) or one-hot (..., {c}) y_true, or y_pred "
                "labels shaped like sparse y_true."
            )
        return t

    def _label_indicators(self, y_true, y_pred):
        """0/1 int32 true and predicted indicators shaped (..., labels)."""
        c = self.num_classes
        if self.task == "multiclass":  # top_k > 1: one-vs-rest, a hit when in the top k
            if _is_int(y_pred) or y_pred.shape[-1] != c:
                raise ValueError(
                    f"{self._owner}: `top_k={self.top_k}` needs scores shaped (..., {c}). "
                    f"Received: y_pred of shape {tuple(y_pred.shape)} and dtype {y_pred.dtype}"
                )
            self._check_probabilities(y_pred)
            t = self._sparse_true(y_true, len(y_pred.shape) - 1, y_pred.shape)
            self._check_labels(t, "y_true", c)
            _, top = ops.top_k(y_pred, self.top_k)
            p = ops.sum(ops.one_hot(top, c, dtype="int32"), axis=-2)
            valid = self._valid(t)
            t_hot = ops.one_hot(ops.where(valid, t, 0), c, dtype="int32")
            valid = ops.broadcast_to(valid[..., None], ops.shape(t_hot))
            return t_hot, p, valid
        if self.task == "binary":
            y_true, y_pred = _squeeze_last(y_true), _squeeze_last(y_pred)
            y_true, y_pred = y_true[..., None], y_pred[..., None]
        if not _shapes_match(y_true.shape, y_pred.shape) or y_pred.shape[-1] != c:
            expected = "(...) or (..., 1)" if self.task == "binary" else f"(..., {c})"
            raise ValueError(
                f"{self._owner}: expected y_true and y_pred of the same shape {expected} for a "
                f"{self.task} task with num_classes={c}. Received: y_true of shape "
                f"{tuple(y_true.shape)}, y_pred of shape {tuple(y_pred.shape)}"
            )
        t = ops.cast(y_true, "int32")
        self._check_labels(t, "y_true", 2)
        if _is_int(y_pred):
            p = ops.cast(y_pred, "int32")
            self._check_labels(p, "y_pred", 2)
        else:
            self._check_probabilities(y_pred)
            prob = ops.sigmoid(y_pred) if self.from_logits else y_pred
            p = ops.cast(prob > self.threshold, "int32")
        return t, p, self._valid(t)

    # ---- results -------------------------------------------------------------------------

    def _stats(self):
        """Per-class float32 (tp, fp, fn, tn), exact integer arithmetic on the int32 part."""
        self._require_built()

        def split(m):
            if self.layout == "matrix":
                tp = ops.diagonal(m)
                fp = ops.sum(m, axis=0) - tp
                fn = ops.sum(m, axis=1) - tp
                tn = ops.sum(m) - tp - fp - fn
                return tp, fp, fn, tn
            return m[:, 1, 1], m[:, 0, 1], m[:, 1, 0], m[:, 0, 0]

        ints = split(self.counts)
        floats = split(self.weighted_counts)
        return tuple(ops.cast(i, "float32") + f for i, f in zip(ints, floats))

    def _value(self, name, beta=1.0, stats=None, matrix=None):
        """One metric under `self.average`: a scalar, or a per-class vector when None.

        `stats` (from `_stats()`) and `matrix` (from `confusion_matrix()`) may be passed in
        so that several metrics read the state once.
        """
        zd = self.zero_division
        if self.layout == "matrix" and name in MATRIX_SCALARS:
            return matrix_value(name, self.confusion_matrix() if matrix is None else matrix, zd)
        tp, fp, fn, tn = self._stats() if stats is None else stats
        if name == "hamming":  # always the fraction of wrong label decisions
            return safe_div(ops.sum(fp + fn), ops.sum(tp + fp + fn + tn), zd)
        if self.task == "multiclass" and name == "accuracy":  # top-k accuracy
            return safe_div(ops.sum(tp), ops.sum(tp + fn), zd)
        if name == "support":
            return tp + fn if self.average is None else ops.sum(tp + fn)
        if self.average == "micro":
            sums = [ops.sum(v) for v in (tp, fp, fn, tn)]
            return per_class_value(name, *sums, zd, beta)
        values = per_class_value(name, tp, fp, fn, tn, zd, beta)
        if self.average is None:
            return values
        if self.task == "binary":  # one (positive) class: every average is that class's value
            return values[0]
        if self.average == "macro":
            return ops.mean(values)
        support = tp + fn
        return safe_div(ops.sum(values * support), ops.sum(support), zd)

    def _class_keys(self, name):
        if self.class_names is not None:
            return [f"{name}_{c}" for c in self.class_names]
        return [f"{name}_{i}" for i in range(self.num_classes)]

    def get_config(self):
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "task": self.task,
            "average": self.average,
            "threshold": self.threshold,
            "top_k": self.top_k,
            "from_logits": self.from_logits,
            "ignore_class": self.ignore_class,
            "zero_division": self.zero_division,
            "class_names": self.class_names,
            "validate_args": self.validate_args,
        }


def _shapes_match(a, b):
    if len(a) != len(b):
        return False
    return all(x is None or y is None or x == y for x, y in zip(a, b))
