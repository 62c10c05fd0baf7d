"""Private: the counting state shared by every kx classification metric, and the formulas read
from it. The public classes live in `kx.metrics.classification`.

Three layouts, chosen at build time from the task, the class count and the requested results:

- `"marginals"` (multiclass, `top_k=1`, the default past `MATRIX_UP_TO` classes): three
  per-class vectors, shape `(3, C)`: true-class counts, predicted-class counts and correct
  counts (the diagonal of the confusion matrix). Every one-vs-rest count follows (tp = correct,
  fp = predicted - tp, fn = true - tp, tn = total - true - fp), and so do accuracy, balanced
  accuracy, MCC (Gorodkin's multiclass form) and unweighted kappa, which read only the
  marginals, the diagonal and the total. Quadratic kappa adds one running sum of
  `(true - predicted)**2` (`squared_distance`). State O(C), work per batch O(batch + C): one
  count over 3C bins.
- `"matrix"`: the `(C, C)` confusion matrix, rows true classes, columns predicted ones, as
  `sklearn.metrics.confusion_matrix`; only where a requested result needs it
  (`ConfusionMatrix`, linear-weighted kappa: see `MATRIX_ONLY`) or when `C <= MATRIX_UP_TO`
  (at most 64 cells: no larger than the marginals of 21 classes, and `confusion_matrix()` works).
- `"stats"`: one 2x2 matrix `[[tn, fp], [fn, tp]]` per label, shape `(num_labels, 2, 2)`
  (binary: one label; multilabel; multiclass with `top_k > 1`, one-vs-rest), as
  `sklearn.metrics.multilabel_confusion_matrix`.

Counts are kept in two variables: an int32 one for unweighted updates (exact up to 2**31 - 1 per
cell; a float32 count would stop growing at 2**24) and a float32 one for sample-weighted updates
(weights are real numbers; float64 is not available on JAX by default). Results are computed in
float32 from their sum, so totals past 2**31 round but never wrap around. The quadratic-kappa sum
grows by up to C**2 per sample, past any int32: it is a float32 pair (sum, compensation)
accumulated with Knuth's TwoSum, accurate to float32 rounding of the total however many batches.

Invalid values (a NaN score, probabilities outside [0, 1] without `from_logits`, labels out of
range) raise `ValueError` when their values are known (eager calls, torch steps); inside compiled
steps, where nothing can raise, they are counted in an int32 `invalid` variable and every result
reads NaN until `reset_state()`.

Speed: the batch's counts and the results are pure functions of tensors, compiled with
`kx.backend.compiled` for eager calls; inside `fit` Keras reads `result()` on every step, so the
formulas read each variable once and share intermediate sums.
"""

import functools

import keras
import numpy as np
from keras import ops

from kx import _keras
from kx.backend import (
    compiled,
    concrete_value,
    count_ids,
    count_marginals,
    count_nan,
    count_outside,
    count_true,
    first_argmax,
    value_range,
)

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

# Results that need the full (C, C) matrix: chosen at construction, they switch the state to the
# "matrix" layout at any class count.
MATRIX_ONLY = ("cohen_kappa_linear",)

# Up to this many classes the multiclass state is the (C, C) matrix whatever is requested: its
# C**2 cells cost no more than the 3C marginals would, and `confusion_matrix()` then works.
MATRIX_UP_TO = 8

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
    quotient = ops.divide_no_nan(numerator, denominator)
    if zero_division == 0.0:  # one op: the common case, read on every step inside `fit`
        return quotient
    return ops.where(ops.equal(denominator, 0.0), zero_division, quotient)


class Counts:
    """float32 views of a confusion state, for the formulas; shared values are computed once.

    `matrix` is the `(C, C)` matrix (layout `"matrix"`), the `(3, C)` stack of true, predicted
    and correct counts per class (`"marginals"`) or the `(labels, 2, 2)` stack of
    `[[tn, fp], [fn, tp]]` (`"stats"`). `tp`, `fp`, `fn`, `tn` are per class (one vs rest).
    `squared_distance` is the running sum of `(true - predicted)**2` (marginals with quadratic
    kappa). Results are float32, so past 2**24 samples they carry float32 rounding, relative to
    the total: `tn` of a class that covers nearly all samples is the least precise.
    """

    def __init__(self, matrix, layout, squared_distance=None):
        self.matrix = matrix
        self.layout = layout
        self.squared_distance = squared_distance
        if layout == "stats":
            self.tn, self.fp, self.fn, self.tp = ops.unstack(
                ops.reshape(matrix, (-1, 4)), num=4, axis=-1
            )
            return
        if layout == "matrix":
            self.tp = ops.diagonal(matrix)
            self.rows = ops.sum(matrix, axis=1)  # true-class totals: tp + fn
            self.cols = ops.sum(matrix, axis=0)  # predicted-class totals: tp + fp
        else:
            self.rows, self.cols, self.tp = ops.unstack(matrix, num=3, axis=0)
        self.total = ops.sum(self.rows)
        self.fp = self.cols - self.tp
        self.fn = self.rows - self.tp
        self.tn = self.total - self.rows - self.fp

    @functools.cached_property
    def correct(self):
        return ops.sum(self.tp)

    @functools.cached_property
    def chance(self):
        """sum over classes of (true count x predicted count): total**2 x chance agreement."""
        return ops.sum(self.rows * self.cols)

    def spread(self, sums):
        """`total**2 - sum(sums**2)` for the true (`rows`) or predicted (`cols`) class totals,
        as a sum of non-negative terms: exactly 0 when one class holds every sample (`total**2`
        minus a sum of squares may round, or fuse into an FMA, to a tiny nonzero value)."""
        return ops.sum(sums * (ops.sum(sums) - sums))

    @functools.cached_property
    def expected_disagreement(self):
        """`total**2 - chance` as a sum of non-negative terms (see `spread`)."""
        return ops.sum(self.rows * (ops.sum(self.cols) - self.cols))


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
        # Two square roots of products of two counts: four counts multiplied would overflow
        # float32 past 2**32 samples.
        denominator = ops.sqrt((tp + fp) * (tp + fn)) * ops.sqrt((tn + fp) * (tn + fn))
        return div(tp * tn - fp * fn, denominator)
    if name.startswith("cohen_kappa"):
        # 2x2 kappa; linear and quadratic weights equal the unweighted ones on two classes.
        # 1 - observed / expected disagreement, both scaled by n**2.
        expected = (tn + fp) * (fp + tp) + (fn + tp) * (tn + fn)
        return 1.0 - safe_div((tp + fp + fn + tn) * (fp + fn), expected, 1.0 - zd)
    raise ValueError(f"Unknown metric {name!r}.")  # unreachable after check_metric_names


def matrix_value(name, counts, zero_division):
    """A whole-matrix multiclass metric from `Counts` of a `(C, C)` confusion matrix.

    Formulas as scikit-learn's `accuracy_score`, `balanced_accuracy_score`, `matthews_corrcoef`,
    `cohen_kappa_score` and `hamming_loss`, on counts (products of at most two of them, which
    float32 holds up to about 10**19 samples).
    """
    zd = zero_division
    s = counts
    if name == "accuracy":
        return safe_div(s.correct, s.total, zd)
    if name == "hamming":
        return safe_div(s.total - s.correct, s.total, zd)
    if name == "balanced_accuracy":  # mean recall of the classes present
        present = ops.sum(ops.cast(s.rows > 0, "float32"))
        return safe_div(ops.sum(ops.divide_no_nan(s.tp, s.rows)), present, zd)
    if name == "mcc":
        # Undefined (a zero denominator) when one class holds every true or predicted sample.
        cov_ytyp = s.correct * s.total - s.chance
        return safe_div(cov_ytyp, ops.sqrt(s.spread(s.rows)) * ops.sqrt(s.spread(s.cols)), zd)
    if name == "cohen_kappa":  # 1 - observed / expected disagreement, both scaled by total**2
        observed = s.total * (s.total - s.correct)
        return 1.0 - safe_div(observed, s.expected_disagreement, 1.0 - zd)
    if name == "cohen_kappa_quadratic" and s.layout == "marginals":
        return 1.0 - safe_div(s.squared_distance, quadratic_expected(s), 1.0 - zd)
    if name in ("cohen_kappa_linear", "cohen_kappa_quadratic"):
        c = s.matrix.shape[-1]
        weights = np.abs(np.arange(c)[:, None] - np.arange(c)[None, :]).astype("float32")
        if name == "cohen_kappa_quadratic":
            weights = weights * weights
        observed = s.total * ops.sum(s.matrix * weights)
        expected = ops.sum(ops.matmul(s.rows, weights) * s.cols)
        return 1.0 - safe_div(observed, expected, 1.0 - zd)
    raise ValueError(f"Unknown metric {name!r}.")


def quadratic_expected(s):
    """`sum_ij (i - j)**2 rows_i cols_j / total` (kappa's expected quadratic disagreement, scaled
    like the observed `sum (true - predicted)**2`) from the marginals alone, in O(C).

    With `d = class - a` for any centre `a`, the double sum is `total * sum(rows d**2) +
    total * sum(cols d**2) - 2 sum(rows d) sum(cols d)`. Centred on the mean predicted class the
    last term is a rounding residue, and the others are sums of non-negative terms: no
    cancellation when the classes in use sit far from 0 (`sum(i**2) - mean**2` would lose every
    digit of float32 there).
    """
    c = s.rows.shape[0]
    index = ops.convert_to_tensor(np.arange(c, dtype="float32"))
    d = index - ops.divide_no_nan(ops.sum(s.cols * index), s.total)
    spread = ops.sum((s.rows + s.cols) * d * d)
    cross = ops.sum(s.rows * d) * ops.sum(s.cols * d)
    return spread - 2.0 * ops.divide_no_nan(cross, s.total)


def two_sum(pair, value):
    """`pair` (sum, compensation) plus `value`, with Knuth's TwoSum: the rounding error of each
    addition is kept in the compensation, so the running sum stays accurate to one float32
    rounding of its value however many batches are added."""
    total, compensation = pair[0], pair[1]
    new = total + value
    back = new - total
    error = (total - (new - back)) + (value - back)
    return ops.stack([new, compensation + error])


class Checks:
    """What `update_state` checks, computed with the counts: `"invalid"`, the number of values
    that break a rule (a label out of range, a NaN score, a probability outside [0, 1]). An
    eager call reads it back and raises; a traced step adds it to the state. Only that count
    is computed on every update (each op costs dispatch on eager torch); `detail=True` (the
    eager rerun of a batch that had invalid values) adds what the message says: `[min, max]`
    of the integer labels of `"y_true"` / `"y_pred"` and of `"probabilities"` (NaN left out),
    the number of labels with a fraction (`"<arg>_fraction"`) and of NaN scores (`"nan"`).
    Disabled (`validate_args=False`): nothing is computed."""

    def __init__(self, enabled=True, detail=False):
        self.enabled = enabled
        self.detail = detail
        self.values = {}

    def _add_invalid(self, count):
        self.values["invalid"] = self.values.get("invalid", 0) + count

    def labels(self, arg, labels, high, valid=None, exact=None):
        """Labels of `arg` must lie in `[0, high)` and, when given as floats, be whole numbers
        (`exact`); entries where `valid` is False are not checked. Returns where they are good
        (always computed: bad labels are never counted)."""
        in_range = ops.logical_and(labels >= 0, labels < high)
        if exact is not None:
            in_range = ops.logical_and(in_range, exact)
        if self.enabled and 0 not in tuple(labels.shape):
            bad = ops.logical_not(in_range)
            if valid is not None:
                bad = ops.logical_and(bad, valid)
            self._add_invalid(count_true(bad))
            if self.detail:
                checked = labels if valid is None else ops.where(valid, labels, 0)
                self.values[arg] = value_range(checked)
                if exact is not None:
                    fraction = ops.logical_not(exact)
                    if valid is not None:
                        fraction = ops.logical_and(fraction, valid)
                    self.values[f"{arg}_fraction"] = count_true(fraction)
        return in_range

    def scores(self, scores, probabilities):
        """NaN scores are invalid, and so are probabilities outside [0, 1]."""
        if not self.enabled or 0 in tuple(scores.shape):
            return
        # NaN compares False: one pass counts NaN and out-of-range probabilities together.
        self._add_invalid(count_outside(scores, 0.0, 1.0) if probabilities else count_nan(scores))
        if self.detail:
            nan = ops.isnan(scores)
            self.values["nan"] = count_true(nan)
            if probabilities:
                low = ops.min(ops.where(nan, float("inf"), scores))
                high = ops.max(ops.where(nan, float("-inf"), scores))
                self.values["probabilities"] = ops.cast(ops.stack([low, high]), "float32")


def _is_int(x):
    dtype = keras.backend.standardize_dtype(x.dtype)
    return "int" in dtype or dtype == "bool"


def _as_labels(x):
    """int32 labels from integer or float `x`, and where a float label is a whole number
    (None for integer input): 0.5 or NaN must not pass as 0."""
    if _is_int(x):
        return ops.cast(x, "int32"), None
    labels = ops.cast(x, "int32")
    return labels, ops.equal(ops.cast(labels, x.dtype), x)


def _squeeze_last(x):
    if len(x.shape) >= 2 and x.shape[-1] == 1:
        return ops.squeeze(x, -1)
    return x


# Compiled pure methods, keyed by (class, method, config); oldest dropped past the maximum.
_COMPILED = {}
_COMPILED_MAX = 256
_STATE_ATTRIBUTES = (
    "counts",
    "weighted_counts",
    "squared_distance",
    "invalid",
    *_keras.METRIC_STATE_ATTRIBUTES,
    "_kx_compiled",
)


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
        keep_matrix=False,
        name=None,
        dtype=None,
    ):
        super().__init__(name=name, dtype=dtype)
        owner = type(self).__name__
        self.keep_matrix = bool(keep_matrix)
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

    _needs_matrix = False  # True where the result is the (C, C) matrix itself

    def _requested(self):
        """Canonical names of the results this metric computes (they choose the layout)."""
        return ()

    @property
    def layout(self):
        """`"marginals"`, `"matrix"` (multiclass, `top_k=1`) or `"stats"` (one 2x2 matrix per
        label); see the module docstring."""
        if self.task != "multiclass" or self.top_k != 1:
            return "stats"
        if self._needs_matrix or self.keep_matrix or any(
            name in MATRIX_ONLY for name in self._requested()
        ):
            return "matrix"
        if self.num_classes is not None and self.num_classes <= MATRIX_UP_TO:
            return "matrix"
        return "marginals"

    def _build(self):
        if self.class_names is not None and len(self.class_names) != self.num_classes:
            raise ValueError(
                f"{self._owner}: expected one class name per class ({self.num_classes}). "
                f"Received: class_names={self.class_names}"
            )
        c = self.num_classes
        shape = {"matrix": (c, c), "stats": (c, 2, 2), "marginals": (3, c)}[self.layout]
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
        self.squared_distance = None
        if self.layout == "marginals" and "cohen_kappa_quadratic" in self._requested():
            self.squared_distance = self.add_variable(
                shape=(2,),
                initializer="zeros",
                dtype="float32",
                aggregation="sum",
                name="squared_distance",
            )
        self.invalid = self.add_variable(
            shape=(), initializer="zeros", dtype="int32", aggregation="sum", name="invalid"
        )
        self.built = True

    def _state_values(self):
        values = [self.counts.value, self.weighted_counts.value, self.invalid.value]
        if self.squared_distance is not None:
            values.append(self.squared_distance.value)
        return values

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

    def class_counts(self):
        """Per-class (one-vs-rest) counts as float32 `(C, 2, 2)`, `[[tn, fp], [fn, tp]]` for
        each class or label, whatever the state keeps; NaN once an invalid value was counted.

        Example:

        >>> import keras, kx
        >>> m = kx.metrics.ClassificationMetrics(num_classes=3)
        >>> m.update_state([0, 1, 2, 2], [[1., 0, 0], [0, 1, 0], [0, 1, 0], [0, 0, 1]])
        >>> keras.ops.convert_to_numpy(m.class_counts())[2].tolist()  # 2 samples, 1 found
        [[2.0, 0.0], [1.0, 1.0]]
        """
        self._require_built()
        counts = Counts(_combined(self.counts.value, self.weighted_counts.value), self.layout)
        stacked = ops.reshape(ops.stack([counts.tn, counts.fp, counts.fn, counts.tp], -1),
                              (-1, 2, 2))
        return ops.where(self.invalid.value > 0, float("nan"), stacked)

    def confusion_matrix(self):
        """The current counts as float32: `(C, C)` (multiclass, when the state keeps the
        matrix) or `(labels, 2, 2)`; NaN once an invalid value was counted."""
        self._require_built()
        if self.layout == "marginals":
            raise ValueError(
                f"{self._owner}: the state keeps per-class counts, not the (C, C) confusion "
                f"matrix: num_classes={self.num_classes} > {MATRIX_UP_TO} and no requested "
                f"result needs the matrix ({', '.join(MATRIX_ONLY)}). Construct it with "
                "`keep_matrix=True`, or add a `kx.metrics.ConfusionMatrix`."
            )
        matrix = _combined(self.counts.value, self.weighted_counts.value)
        return ops.where(self.invalid.value > 0, float("nan"), matrix)

    def _require_built(self):
        if not self.built:
            raise ValueError(
                f"{self._owner}: no state yet: `num_classes` was not given and no data has been "
                "seen. Call `update_state` first or pass `num_classes`."
            )

    def _compiled(self, method):
        """`kx.backend.compiled` of a pure method, shared by all metrics of equal config.

        Compiling per instance would make every new metric pay a trace (a JAX jit compile:
        tenths of a second) even for one eager call. The function is bound to a copy of this
        metric without its variables; the config is fixed once the state is built.
        """
        cache = self.__dict__.setdefault("_kx_compiled", {})
        if method not in cache:
            config = sorted((k, v) for k, v in self.get_config().items() if k != "name")
            key = (type(self), method, repr(config), self.layout)
            if key not in _COMPILED:
                if len(_COMPILED) >= _COMPILED_MAX:
                    del _COMPILED[next(iter(_COMPILED))]
                _COMPILED[key] = compiled(getattr(self._without_state(), method))
            cache[method] = _COMPILED[key]
        return cache[method]

    def _without_state(self):
        clone = object.__new__(type(self))
        clone.__dict__.update(
            (k, v)
            for k, v in self.__dict__.items()
            if k not in _STATE_ATTRIBUTES and not isinstance(v, keras.Variable)
        )
        return clone

    def __getstate__(self):
        # Copies and pickles leave out the compiled functions (jit / tf.function objects):
        # a copy finds the shared ones again on first use.
        state = self.__dict__.copy()
        state.pop("_kx_compiled", None)
        return state

    # ---- update --------------------------------------------------------------------------

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = ops.convert_to_tensor(y_pred)
        y_true = ops.convert_to_tensor(y_true)
        if sample_weight is not None:
            sample_weight = ops.convert_to_tensor(sample_weight)
        if not self.built:
            self._infer(y_pred)
        squared = None if self.squared_distance is None else self.squared_distance.value
        batch = (y_true, y_pred, sample_weight, squared)
        counts, squared, checks = self._compiled("_count_batch")(*batch)
        known = self._check_values(checks, batch)  # raises on invalid values known now
        (self.counts if sample_weight is None else self.weighted_counts).assign_add(counts)
        if squared is not None:
            self.squared_distance.assign(squared)
        if not known:  # inside a traced step: invalid values make every result NaN
            self.invalid.assign_add(checks["invalid"])

    def _count_batch(self, y_true, y_pred, sample_weight, squared_distance, detail=False):
        """Pure: the batch's counts (int32, or float32 when weighted), the new quadratic-kappa
        sum (`None` when not kept) and the batch's `Checks` values (with `detail`: also what
        the error message needs)."""
        checks = Checks(enabled=self.validate_args, detail=detail)
        c = self.num_classes
        if self.layout != "stats":
            t, p, keep = self._multiclass_labels(y_true, y_pred, checks)
            t, p = ops.reshape(t, (-1,)), ops.reshape(p, (-1,))
            keep = None if keep is None else ops.reshape(keep, (-1,))
            w = None
            if sample_weight is not None:
                w = ops.reshape(self._weights(sample_weight, t), (-1,))

            if self.layout == "matrix":
                ids = t * c + p if keep is None else ops.where(keep, t * c + p, -1)
                return ops.reshape(count_ids(ids, c * c, weights=w), (c, c)), None, checks.values
            counts = count_marginals(t, p, c, keep, weights=w)
            if squared_distance is not None:
                d = ops.cast(t - p, "float32")
                d2 = d * d if keep is None else ops.where(keep, d * d, 0.0)
                squared_distance = two_sum(squared_distance, ops.sum(d2 if w is None else d2 * w))
            return counts, squared_distance, checks.values
        t, p, valid = self._label_indicators(y_true, y_pred, checks)  # (..., L) 0/1 int32
        if valid is not None:
            t = ops.where(valid, t, 0)
        if sample_weight is None:
            w = None if valid is None else ops.cast(valid, "int32")
        else:
            w = self._weights(sample_weight, t)
            if valid is not None:
                w = w * ops.cast(valid, "float32")
            t, p = ops.cast(t, "float32"), ops.cast(p, "float32")
        t = ops.reshape(t, (-1, c))
        p = ops.reshape(p, (-1, c))
        tw, pw, nw = t, p, (1 - t) * (1 - p)
        if w is not None:
            w = ops.reshape(w, (-1, c))
            tw, pw, nw = t * w, p * w, nw * w
        tp = ops.sum(tw * p, axis=0)
        fn = ops.sum(tw, axis=0) - tp
        fp = ops.sum(pw, axis=0) - tp
        tn = ops.sum(nw, axis=0)  # direct: no float residue when weighted
        stats = ops.reshape(ops.stack([tn, fp, fn, tp], axis=-1), (c, 2, 2))
        return stats, None, checks.values

    def _check_values(self, checks, batch):
        """Raises on invalid values when they are known (eager); returns whether they were
        (False inside a traced step, where the caller counts them in the state instead).
        The message's details are computed only then, by counting `batch` again."""
        if not checks:
            return True
        invalid = concrete_value(checks["invalid"])  # one read back in the common, valid case
        if invalid is None:
            return False
        if not invalid:
            return True
        _, _, checks = self._count_batch(*batch, detail=True)
        values = {key: concrete_value(value).tolist() for key, value in checks.items()}
        high = self.num_classes if self.task == "multiclass" else 2
        if values.get("nan"):
            raise ValueError(
                f"{self._owner}: expected finite scores in `y_pred`. Received "
                f"{values['nan']} NaN value(s)."
            )
        low, top = values.get("probabilities", (0.0, 1.0))
        if low < 0.0 or top > 1.0:
            raise ValueError(
                f"{self._owner}: expected probabilities in [0, 1] in `y_pred` (pass "
                f"`from_logits=True` for logits). Received values in [{low:.4g}, {top:.4g}]."
            )
        for arg in ("y_true", "y_pred"):
            if values.get(f"{arg}_fraction"):
                raise ValueError(
                    f"{self._owner}: expected whole-number labels in `{arg}`. Received "
                    f"{values[f'{arg}_fraction']} value(s) with a fraction or NaN."
                )
            low, top = values.get(arg, (0, 0))
            if low < 0 or top >= high:
                what = "0 or 1" if high == 2 else f"class indices in [0, {high})"
                ignored = ""
                if arg == "y_true" and self.ignore_class is not None:
                    ignored = f" or ignore_class={self.ignore_class}"
                raise ValueError(
                    f"{self._owner}: expected `{arg}` to hold {what}{ignored} "
                    f"(num_classes={self.num_classes}). Received values in [{low}, {top}]."
                )
        raise ValueError(  # unreachable: every invalid value has a message above
            f"{self._owner}: {values['invalid']} invalid value(s) in this batch."
        )

    def _valid(self, t):
        return ops.not_equal(t, self.ignore_class)

    def _weights(self, sample_weight, like):
        """`sample_weight` broadcast to the shape of `like` (leading axes aligned), float32."""
        w = ops.cast(sample_weight, "float32")
        while len(w.shape) > len(like.shape) and w.shape[-1] == 1:
            w = ops.squeeze(w, -1)
        while len(w.shape) < len(like.shape):
            w = ops.expand_dims(w, -1)
        return ops.broadcast_to(w, ops.shape(like))

    def _multiclass_labels(self, y_true, y_pred, checks):
        """Sparse int32 true and predicted classes of the same shape (any rank), and which
        entries count: not `ignore_class`, labels in range (None: all of them, as for scores
        against one-hot targets; the common case costs no masking)."""
        c = self.num_classes
        scores = not _is_int(y_pred) and len(y_pred.shape) >= 2 and y_pred.shape[-1] == c
        keep = None
        if scores:
            checks.scores(y_pred, probabilities=not self.from_logits)
            p = first_argmax(y_pred)
        else:
            p, exact = _as_labels(_squeeze_last(y_pred))
            keep = checks.labels("y_pred", p, c, exact=exact)
        t, sparse, exact = self._sparse_true(y_true, len(p.shape), y_pred.shape)
        valid = None if self.ignore_class is None else self._valid(t)
        if sparse:
            in_range = checks.labels("y_true", t, c, valid, exact=exact)
            keep = in_range if keep is None else ops.logical_and(keep, in_range)
        if valid is not None:
            keep = valid if keep is None else ops.logical_and(keep, valid)
        return t, p, keep

    def _sparse_true(self, y_true, rank, pred_shape):
        """Sparse int32 true classes of rank `rank` from sparse or one-hot `y_true`, whether
        they were given sparse (only those can be out of range), and where float labels are
        whole numbers (None: integer labels)."""
        c = self.num_classes
        sparse = True
        t = exact = None
        if len(y_true.shape) == rank + 1 and y_true.shape[-1] == c and c > 1:
            t, sparse = first_argmax(y_true), False  # one-hot
        elif len(y_true.shape) == rank + 1 and y_true.shape[-1] == 1:
            t, exact = _as_labels(ops.squeeze(y_true, -1))
        elif len(y_true.shape) == rank:
            t, exact = _as_labels(y_true)
        if t is None or not _shapes_match(t.shape, tuple(pred_shape)[:rank]):
            raise ValueError(
                f"{self._owner}: cannot pair y_true of shape {tuple(y_true.shape)} with y_pred "
                f"of shape {tuple(pred_shape)} for num_classes={c}. Expected y_pred scores "
                f"shaped (..., {c}) with sparse (...) or one-hot (..., {c}) y_true, or y_pred "
                "labels shaped like sparse y_true."
            )
        return t, sparse, exact

    def _label_indicators(self, y_true, y_pred, checks):
        """0/1 int32 true and predicted indicators shaped (..., labels), and which entries
        count (None: all)."""
        c = self.num_classes
        if self.task == "multiclass":  # top_k > 1: one-vs-rest, a hit when in the top k
            if _is_int(y_pred) or y_pred.shape[-1] != c:
                raise ValueError(
                    f"{self._owner}: `top_k={self.top_k}` needs scores shaped (..., {c}). "
                    f"Received: y_pred of shape {tuple(y_pred.shape)} and dtype {y_pred.dtype}"
                )
            checks.scores(y_pred, probabilities=not self.from_logits)
            t, sparse, exact = self._sparse_true(y_true, len(y_pred.shape) - 1, y_pred.shape)
            valid = None if self.ignore_class is None else self._valid(t)
            if sparse:  # out-of-range labels are never counted
                in_range = checks.labels("y_true", t, c, valid, exact=exact)
                valid = in_range if valid is None else ops.logical_and(valid, in_range)
            _, top = ops.top_k(y_pred, self.top_k)
            p = ops.sum(ops.one_hot(top, c, dtype="int32"), axis=-2)
            if valid is None:
                return ops.one_hot(t, c, dtype="int32"), p, None
            t_hot = ops.one_hot(ops.where(valid, t, 0), c, dtype="int32")
            return t_hot, p, ops.broadcast_to(valid[..., None], ops.shape(t_hot))
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
        t, exact = _as_labels(y_true)
        valid = None if self.ignore_class is None else self._valid(t)
        keep = checks.labels("y_true", t, 2, valid, exact=exact)
        if _is_int(y_pred):
            p = ops.cast(y_pred, "int32")
            keep = ops.logical_and(keep, checks.labels("y_pred", p, 2))
        else:
            checks.scores(y_pred, probabilities=not self.from_logits)
            prob = ops.sigmoid(y_pred) if self.from_logits else y_pred
            p = ops.cast(prob > self.threshold, "int32")
        if not self.validate_args:  # as before: nothing checked, nothing masked
            return t, p, valid
        # Values other than 0 and 1 are never counted (an eager call raises on them).
        valid = keep if valid is None else ops.logical_and(valid, keep)
        return t, p, valid

    # ---- results -------------------------------------------------------------------------

    def result(self):
        self._require_built()
        return self._compiled("_results")(*self._state_values())

    def _results(self, counts, weighted_counts, invalid, squared_distance=None):
        """Pure: the result from the values of the state variables; NaN everywhere once an
        invalid value was counted."""
        if squared_distance is not None:
            squared_distance = squared_distance[0] + squared_distance[1]
        state = Counts(_combined(counts, weighted_counts), self.layout, squared_distance)
        results = self._result_from(state)
        if not self.validate_args or concrete_value(invalid) == 0:  # known valid: no guard ops
            return results
        seen = invalid > 0
        return keras.tree.map_structure(lambda v: ops.where(seen, float("nan"), v), results)

    def _result_from(self, counts):
        raise NotImplementedError

    def _metric_value(self, name, counts, beta=1.0):
        """One metric under `self.average`, from `Counts`: a scalar, or a per-class vector when
        `average=None`."""
        zd = self.zero_division
        if self.layout != "stats" and name in MATRIX_SCALARS:
            return matrix_value(name, counts, zd)
        tp, fp, fn, tn = counts.tp, counts.fp, counts.fn, counts.tn
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
            "keep_matrix": self.keep_matrix,
        }


def _combined(counts, weighted_counts):
    return ops.cast(counts, "float32") + weighted_counts


def _shapes_match(a, b):
    if len(a) != len(b):
        return False
    return all(x is None or y is None or x == y for x, y in zip(a, b))
