"""ClassificationMetrics (one confusion state, many results) and the classes Keras lacks."""

import keras
from keras import ops

from kx.metrics._confusion import ALIASES, MATRIX_UP_TO, ConfusionState, check_metric_names

__all__ = [
    "BalancedAccuracy",
    "ClassificationMetrics",
    "CohenKappa",
    "ConfusionMatrix",
    "MatthewsCorrelation",
    "NegativePredictiveValue",
    "Specificity",
]

_PACKAGE = "kx"

_ARGS_DOC = f"""
    Inputs (`update_state(y_true, y_pred, sample_weight=None)`), any rank (segmentation pixels
    are pooled):

    - binary: `y_true` 0/1 shaped `(...)` or `(..., 1)`; `y_pred` probabilities, logits
      (`from_logits=True`) or 0/1 labels of the same shape; positive when the probability is
      `> threshold`.
    - multiclass: `y_true` sparse `(...)`/`(..., 1)` or one-hot `(..., C)`; `y_pred` scores
      `(..., C)` (probabilities or logits; the top class, or the `top_k` classes, are predicted)
      or integer labels shaped like sparse `y_true`. A float `y_pred` whose last axis has
      `num_classes` entries is read as scores, anything else as labels.
    - multilabel: `y_true` and `y_pred` shaped `(..., L)`, thresholded as binary, per label.

    Task inference (`task=None`): `num_classes=1` is binary and `num_classes >= 2` multiclass;
    with `num_classes=None` the first `y_pred` decides (rank 1 or a last axis of 1: binary, else
    multiclass with one class per entry of the last axis, read from the static shape, which
    works inside `compile`/`fit` as Keras builds metrics symbolically). Multilabel is never
    inferred: pass `task="multilabel"`.

    State: per class, not per pair of classes. Multiclass metrics with `top_k=1` keep three
    per-class counts (true, predicted and correct samples) and cost O(batch + C) per batch:
    precision, recall, F-scores, specificity, NPV, every average, accuracy, balanced accuracy,
    MCC (Gorodkin's multiclass form), unweighted kappa, and quadratic kappa (one more running
    sum) all follow from them. The full `(C, C)` confusion matrix is kept only where a result
    needs it, decided at construction: `ConfusionMatrix`, `cohen_kappa_linear` (and
    `CohenKappa(weights="linear")`), or `num_classes <= {MATRIX_UP_TO}` (where it is no larger);
    `confusion_matrix()` needs it. Binary, multilabel and `top_k > 1` keep one 2x2 table per
    label.

    Counts are exact integers (int32: up to 2**31 - 1 per cell) for unweighted updates;
    sample-weighted updates accumulate in float32; results are computed in float32.

    Invalid values are never counted silently: a NaN score, a probability outside [0, 1]
    without `from_logits`, a label out of range (negative, `>= num_classes`, not 0/1 for binary
    and multilabel, or a float with a fraction), `ignore_class` excepted. When their values are
    known at update time (eager calls, the torch backend outside `jit_compile`) they raise
    `ValueError`. Inside compiled steps (TF graphs, JAX jit), which cannot raise, they are
    counted in the state and every result reads NaN until `reset_state()` (Keras' own metrics
    would count a NaN score as a negative prediction). `validate_args=False` turns both off:
    bad labels are then dropped and NaN scores counted as their thresholded or argmax value.

    Eager calls run the update and `result()` as one compiled function each (`jax.jit`,
    `tf.function`; plain torch), traced once per config and input rank, and shared by all
    metrics of the same config.
"""


def _common_args(default_average="macro"):
    return f"""
        num_classes: number of classes (multiclass) or labels (multilabel); ignored for binary.
            Defaults to `None`: inferred from the first batch of scores.
        task: `"binary"`, `"multiclass"`, `"multilabel"` or `None` (inferred, see above).
        average: `"micro"` (pool the counts of all classes), `"macro"` (unweighted mean of the
            per-class values), `"weighted"` (mean weighted by each class's support) or `None`
            (one value per class). Defaults to `{default_average!r}`. A binary task has one
            (positive) class, so every average gives scikit-learn's `average="binary"`.
        threshold: probability above which a binary or multilabel prediction is positive.
            Defaults to `0.5`.
        top_k: multiclass only: a class counts as predicted when it is among the `top_k`
            highest scores (one-vs-rest counts). Defaults to `1`.
        from_logits: whether `y_pred` holds logits (a sigmoid is applied before `threshold`).
            Defaults to `False`.
        ignore_class: a true label whose samples (pixels, or multilabel entries) are not
            counted, e.g. `255` or `-1` for unlabelled pixels. Defaults to `None`.
        zero_division: the value of any ratio whose denominator is 0 (a class never predicted
            has no precision) and of an undefined MCC or kappa. Defaults to `0.0`, as
            scikit-learn's `zero_division=0` (and its MCC); `float("nan")` propagates NaN.
        class_names: names used in per-class keys (`average=None`); defaults to the indices.
        validate_args: check labels and scores (see "Invalid values" above). Defaults to
            `True`.
        keep_matrix: keep the full `(C, C)` confusion matrix in the state even where no
            result needs it, for `confusion_matrix()` (e.g. `kx.callbacks.ConfusionMatrixImage`).
            Defaults to `False`: past 8 classes only per-class counts are kept.
        name: name of the metric.
        dtype: dtype of the results (they are computed in float32).
"""


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ClassificationMetrics(ConfusionState):
    __doc__ = (
        """Many classification metrics from one confusion-matrix state.

    Precision, recall, F1, MCC, kappa, ... are all read from the same counts, updated once per
    batch; `result()` is a dict `{metric name: value}` that Keras merges into the logs. With
    `average=None` per-class metrics are logged as `<name>_<class>`. Where the state keeps the
    confusion matrix (see "State" below), callbacks can read it through `confusion_matrix()`.

    Per class `c` (one-vs-rest counts tp, fp, fn, tn):

    Formula:

    ```
    precision (ppv) = tp / (tp + fp)        recall (sensitivity, tpr) = tp / (tp + fn)
    specificity (tnr) = tn / (tn + fp)      npv = tn / (tn + fn)
    fpr = fp / (fp + tn)   fnr = fn / (fn + tp)   fdr = fp / (fp + tp)
    false_omission_rate (for) = fn / (fn + tn)
    fbeta = (1 + b^2) tp / ((1 + b^2) tp + b^2 fn + fp);  f1, dice: b = 1
    jaccard (iou) = tp / (tp + fp + fn)     prevalence = (tp + fn) / n
    informedness = tpr + tnr - 1            markedness = ppv + npv - 1
    positive_likelihood_ratio (plr) = tpr / fpr
    negative_likelihood_ratio (nlr) = fnr / tnr
    diagnostic_odds_ratio (dor) = tp tn / (fp fn)
    support = tp + fn (summed over classes unless average=None)
    ```

    Whole-matrix metrics for multiclass (`top_k=1`), as scikit-learn: `accuracy`,
    `balanced_accuracy` (mean recall of the classes present), `mcc`, `cohen_kappa` (alias
    `kappa`), `cohen_kappa_linear`, `cohen_kappa_quadratic` and `hamming` (fraction wrong).
    For binary, multilabel and `top_k > 1` they are computed per label from its 2x2 counts and
    averaged like the others (`micro`: from the pooled 2x2 counts); `hamming` is always the
    fraction of wrong label decisions and `accuracy` with `top_k > 1` is top-k accuracy.
"""
        + _ARGS_DOC
        + """
    Args:
        metrics: names of the metrics to compute (see above; aliases such as `"ppv"` or `"iou"`
            are logged under the name given). Defaults to `("precision", "recall", "f1")`."""
        + _common_args()
        + """        beta: the F-beta `b`. Defaults to `1.0`.

    Returns:
        From `result()`, a dict of float scalars keyed by metric name (`<name>_<class>` with
        `average=None` for per-class metrics).

    Example:

    >>> import numpy as np, kx
    >>> m = kx.metrics.ClassificationMetrics(
    ...     num_classes=3, metrics=("precision", "recall", "mcc"), average="macro")
    >>> m.update_state(np.array([0, 1, 2, 2]),
    ...                np.array([[.8, .1, .1], [.2, .7, .1], [.1, .2, .7], [.6, .3, .1]]))
    >>> {k: round(float(v), 4) for k, v in m.result().items()}
    {'precision': 0.8333, 'recall': 0.8333, 'mcc': 0.7}
    """
    )

    def __init__(
        self,
        num_classes=None,
        metrics=("precision", "recall", "f1"),
        average="macro",
        threshold=0.5,
        from_logits=False,
        task=None,
        top_k=1,
        ignore_class=None,
        beta=1.0,
        zero_division=0.0,
        class_names=None,
        validate_args=True,
        keep_matrix=False,
        name="classification_metrics",
        dtype=None,
    ):
        self.metric_names = check_metric_names("ClassificationMetrics", metrics)
        if not isinstance(beta, (int, float)) or beta <= 0:
            raise ValueError(
                f"ClassificationMetrics: expected `beta` to be a positive number. "
                f"Received: beta={beta!r}"
            )
        self.beta = float(beta)
        super().__init__(
            num_classes=num_classes,
            task=task,
            average=average,
            threshold=threshold,
            top_k=top_k,
            from_logits=from_logits,
            ignore_class=ignore_class,
            zero_division=zero_division,
            class_names=class_names,
            validate_args=validate_args,
            keep_matrix=keep_matrix,
            name=name,
            dtype=dtype,
        )

    def _requested(self):
        return tuple(ALIASES[name] for name in self.metric_names)

    def result(self):
        # A compiled function returns its dict sorted by key (a pytree): restore the order of
        # `metrics`, which is the order of the logs and the progress bar.
        values = super().result()
        ordered = {}
        for name in self.metric_names:
            if name in values:
                ordered[name] = values[name]
            else:
                ordered.update((key, values[key]) for key in self._class_keys(name))
        return ordered

    def _result_from(self, counts):
        results = {}
        for name in self.metric_names:
            value = self._metric_value(ALIASES[name], counts, self.beta)
            if len(value.shape) == 0:
                results[name] = value
            else:  # one op for all classes, not one slice per class
                keys = self._class_keys(name)
                results.update(zip(keys, ops.unstack(value, num=len(keys))))
        return results

    def get_config(self):
        return {**super().get_config(), "metrics": list(self.metric_names), "beta": self.beta}


class _SingleMetric(ConfusionState):
    """A standalone metric: the shared state and one formula; a vector with `average=None`."""

    _metric = None

    def __init__(self, num_classes=None, task=None, average="macro", name=None, **kwargs):
        super().__init__(
            num_classes=num_classes, task=task, average=average, name=name, **kwargs
        )

    def _requested(self):
        return (self._metric,)

    def _result_from(self, counts):
        return self._metric_value(self._metric, counts)


_STANDALONE_DOC = """{summary}

    The same state and formulas as `kx.metrics.ClassificationMetrics(metrics=[{metric!r}])`;
    `result()` is a scalar, or one value per class with `average=None`.
{args_doc}
    Args:{common}
    Example:

    >>> import numpy as np, kx
    >>> m = kx.metrics.{cls}(num_classes=3)
    >>> m.update_state(np.array([0, 1, 2, 2]), np.array([0, 1, 2, 0]))
    >>> round(float(m.result()), 4)
    {example}
"""


def _standalone(cls_name, metric, summary, example):
    def decorate(cls):
        cls._metric = metric
        cls.__doc__ = _STANDALONE_DOC.format(
            summary=summary,
            metric=metric,
            args_doc=_ARGS_DOC,
            common=_common_args(),
            cls=cls_name,
            example=example,
        )
        return keras.saving.register_keras_serializable(package=_PACKAGE)(cls)

    return decorate


@_standalone("Specificity", "specificity", "Specificity (true negative rate): tn / (tn + fp).",
             "0.8889")
class Specificity(_SingleMetric):
    def __init__(self, num_classes=None, task=None, average="macro", name="specificity",
                 **kwargs):
        super().__init__(num_classes, task, average, name, **kwargs)


@_standalone("NegativePredictiveValue", "npv", "Negative predictive value: tn / (tn + fn).",
             "0.8889")
class NegativePredictiveValue(_SingleMetric):
    def __init__(self, num_classes=None, task=None, average="macro", name="npv", **kwargs):
        super().__init__(num_classes, task, average, name, **kwargs)


@_standalone(
    "BalancedAccuracy",
    "balanced_accuracy",
    "Balanced accuracy: the mean recall of the classes present (multiclass, as scikit-learn's "
    "`balanced_accuracy_score`), or (tpr + tnr) / 2 per label.",
    "0.8333",
)
class BalancedAccuracy(_SingleMetric):
    def __init__(self, num_classes=None, task=None, average="macro", name="balanced_accuracy",
                 **kwargs):
        super().__init__(num_classes, task, average, name, **kwargs)


@_standalone(
    "MatthewsCorrelation",
    "mcc",
    "Matthews correlation coefficient, multiclass as scikit-learn's `matthews_corrcoef`.",
    "0.7",
)
class MatthewsCorrelation(_SingleMetric):
    def __init__(self, num_classes=None, task=None, average="macro", name="mcc", **kwargs):
        super().__init__(num_classes, task, average, name, **kwargs)


@_standalone(
    "CohenKappa",
    "cohen_kappa",
    "Cohen's kappa, as scikit-learn's `cohen_kappa_score` with `labels=range(num_classes)`; "
    "`weights` is None, \"quadratic\" (both from per-class counts) or \"linear\" (multiclass: "
    "keeps the (C, C) matrix).",
    "0.6364",
)
class CohenKappa(_SingleMetric):
    def __init__(self, num_classes=None, task=None, average="macro", weights=None,
                 name="cohen_kappa", **kwargs):
        if weights not in (None, "linear", "quadratic"):
            raise ValueError(
                "CohenKappa: expected `weights` to be None, 'linear' or 'quadratic'. "
                f"Received: weights={weights!r}"
            )
        self.kappa_weights = weights
        self._metric = "cohen_kappa" if weights is None else f"cohen_kappa_{weights}"
        super().__init__(num_classes, task, average, name, **kwargs)

    def get_config(self):
        return {**super().get_config(), "weights": self.kappa_weights}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ConfusionMatrix(ConfusionState):
    __doc__ = (
        """The confusion matrix itself, for callbacks and reports.

    `result()` is the float32 counts: `(C, C)` with true classes as rows and predicted classes
    as columns (multiclass, as `sklearn.metrics.confusion_matrix`), or `(labels, 2, 2)`
    `[[tn, fp], [fn, tp]]` per label (binary, multilabel, `top_k > 1`, as
    `sklearn.metrics.multilabel_confusion_matrix`). Not a scalar: leave it out of `compile`'s
    progress bar and read it in a callback. It always keeps the `(C, C)` state (C**2 cells: 800
    MB at 10,000 classes); every entry reads NaN once an invalid value was counted in a compiled
    step (see "Invalid values").
"""
        + _ARGS_DOC
        + """
    Args:"""
        + _common_args()
        + """
    Example:

    >>> import keras, numpy as np, kx
    >>> m = kx.metrics.ConfusionMatrix(num_classes=3)
    >>> m.update_state(np.array([0, 1, 2, 2]), np.array([0, 1, 2, 0]))
    >>> keras.ops.convert_to_numpy(m.result())
    array([[1., 0., 0.],
           [0., 1., 0.],
           [1., 0., 1.]], dtype=float32)
    """
    )

    _needs_matrix = True

    def __init__(self, num_classes=None, task=None, name="confusion_matrix", **kwargs):
        super().__init__(num_classes=num_classes, task=task, name=name, **kwargs)

    def _result_from(self, counts):
        return counts.matrix
