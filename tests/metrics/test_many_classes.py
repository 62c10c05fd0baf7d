"""ClassificationMetrics at many classes: per-class state (O(C)) against scikit-learn, its size,
where the (C, C) matrix is kept, and the public surface of `kx.metrics`."""

import keras
import numpy as np
import pytest
from sklearn import metrics as skm

import kx
from kx.metrics import ClassificationMetrics

RTOL, ATOL = 1e-5, 1e-6
PER_CLASS = ["precision", "recall", "f1", "fbeta", "specificity", "npv", "jaccard"]
SCALARS = ["accuracy", "balanced_accuracy", "mcc", "cohen_kappa", "cohen_kappa_quadratic",
           "hamming"]


def close(actual, expected, msg=""):
    np.testing.assert_allclose(np.asarray(actual, "float64"), expected, rtol=RTOL, atol=ATOL,
                               err_msg=msg)


def state_bytes(metric):
    return sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in metric.variables)


def data(c, n, rng, low=0):
    """Labels in [low, c) with every other prediction right (scores peaked there)."""
    y = rng.integers(low, c, n)
    scores = rng.uniform(size=(n, c)).astype("float32")
    scores[np.arange(0, n, 2), y[::2]] += 2.0
    return y, scores / scores.sum(-1, keepdims=True)


def reference(y, p, w, c, name, average, beta=2.0):
    labels = np.arange(c)
    kw = {"labels": labels, "sample_weight": w}
    sk_average = "macro" if average is None else average
    if name in ("precision", "recall", "f1", "fbeta", "jaccard"):
        fn = {"precision": skm.precision_score, "recall": skm.recall_score,
              "f1": skm.f1_score, "jaccard": skm.jaccard_score,
              "fbeta": lambda *a, **k: skm.fbeta_score(*a, beta=beta, **k)}[name]
        return fn(y, p, average=average, zero_division=0, **kw)
    if name in ("specificity", "npv"):
        mcm = skm.multilabel_confusion_matrix(y, p, **kw).astype("float64")
        tn, fp, fn_ = mcm[:, 0, 0], mcm[:, 0, 1], mcm[:, 1, 0]
        if average == "micro":
            tn, fp, fn_ = tn.sum(), fp.sum(), fn_.sum()
        den = tn + fp if name == "specificity" else tn + fn_
        values = np.where(den > 0, tn / np.where(den > 0, den, 1), 0.0)
        if average in (None, "micro"):
            return values
        if sk_average == "macro":
            return values.mean()
        support = mcm[:, 1].sum(-1)
        return (values * support).sum() / support.sum()
    if name == "accuracy":
        return skm.accuracy_score(y, p, sample_weight=w)
    if name == "balanced_accuracy":
        return skm.balanced_accuracy_score(y, p, sample_weight=w)
    if name == "mcc":
        return skm.matthews_corrcoef(y, p, sample_weight=w)
    if name == "hamming":
        return skm.hamming_loss(y, p, sample_weight=w)
    weights = {"cohen_kappa": None, "cohen_kappa_quadratic": "quadratic",
               "cohen_kappa_linear": "linear"}[name]
    return skm.cohen_kappa_score(y, p, weights=weights, replace_undefined_by=0.0, **kw)


@pytest.mark.parametrize("c, average, low", [
    (9, None, 0), (200, "weighted", 0), (200, "micro", 0),
    (3000, "macro", 2990),  # classes in use far from 0: quadratic kappa without cancellation
])
def test_per_class_state_matches_sklearn(c, average, low):
    rng = np.random.default_rng(c + low)
    n = 400
    y, scores = data(c, n, rng, low)
    w = rng.uniform(0.0, 2.0, n).astype("float32")
    m = ClassificationMetrics(num_classes=c, metrics=PER_CLASS + SCALARS, average=average,
                              beta=2.0)
    assert m.layout == "marginals"
    # Unweighted and weighted updates in one state: the reference weighs the former by 1.
    m.update_state(y[:150], scores[:150])
    m.update_state(y[150:], scores[150:], sample_weight=w[150:])
    w_all = np.concatenate([np.ones(150, "float32"), w[150:]])
    res = {k: float(keras.ops.convert_to_numpy(v)) for k, v in m.result().items()}
    p = scores.argmax(-1)
    for name in PER_CLASS:
        expected = reference(y, p, w_all, c, name, average)
        actual = ([res[f"{name}_{i}"] for i in range(c)] if average is None else res[name])
        close(actual, expected, name)
    for name in SCALARS:
        close(res[name], reference(y, p, w_all, c, name, average), name)


def test_standalone_metrics_at_many_classes_match_sklearn():
    rng = np.random.default_rng(7)
    c, n = 300, 300
    y, scores = data(c, n, rng)
    p = scores.argmax(-1)
    cases = [
        (kx.metrics.MatthewsCorrelation(num_classes=c), "mcc"),
        (kx.metrics.CohenKappa(num_classes=c), "cohen_kappa"),
        (kx.metrics.CohenKappa(num_classes=c, weights="quadratic"), "cohen_kappa_quadratic"),
        (kx.metrics.BalancedAccuracy(num_classes=c), "balanced_accuracy"),
        (kx.metrics.Specificity(num_classes=c, average="weighted"), "specificity"),
    ]
    for metric, name in cases:
        assert metric.layout == "marginals"
        metric.update_state(y, scores)
        average = "weighted" if name == "specificity" else "macro"
        close(keras.ops.convert_to_numpy(metric.result()),
              reference(y, p, None, c, name, average), name)


def test_matrix_only_results_keep_the_matrix_and_match_sklearn():
    rng = np.random.default_rng(8)
    c, n = 40, 300
    y, scores = data(c, n, rng)
    p = scores.argmax(-1)
    linear = ClassificationMetrics(num_classes=c, metrics=["f1", "cohen_kappa_linear"])
    kappa = kx.metrics.CohenKappa(num_classes=c, weights="linear")
    matrix = kx.metrics.ConfusionMatrix(num_classes=c)
    for m in (linear, kappa, matrix):
        assert m.layout == "matrix"
        m.update_state(y, scores)
    expected = reference(y, p, None, c, "cohen_kappa_linear", "macro")
    close(linear.result()["cohen_kappa_linear"], expected)
    close(kappa.result(), expected)
    close(keras.ops.convert_to_numpy(matrix.result()),
          skm.confusion_matrix(y, p, labels=np.arange(c)))


def test_state_size_grows_with_classes_not_their_square():
    c = 20_000
    everything = PER_CLASS + SCALARS + ["support", "fpr", "informedness"]
    for metrics in (("precision", "recall", "f1"), everything):
        m = ClassificationMetrics(num_classes=c, metrics=metrics)
        # int32 and float32 (true, predicted, correct) per class, plus a few scalars.
        assert 24 * c <= state_bytes(m) <= 24 * c + 64, metrics
        assert state_bytes(m) < 1_000_000
    for m in (kx.metrics.MatthewsCorrelation(num_classes=c), kx.metrics.CohenKappa(num_classes=c),
              kx.metrics.BalancedAccuracy(num_classes=c), kx.metrics.Specificity(num_classes=c)):
        assert state_bytes(m) <= 24 * c + 64, m.name
    # Matrix-only results, chosen at construction, keep the (C, C) counts (int32 + float32).
    c = 300
    for m in (ClassificationMetrics(num_classes=c, metrics=["f1", "cohen_kappa_linear"]),
              kx.metrics.CohenKappa(num_classes=c, weights="linear"),
              kx.metrics.ConfusionMatrix(num_classes=c)):
        assert 8 * c * c <= state_bytes(m) <= 8 * c * c + 64, m.name
    # Top-k, binary and multilabel keep one 2x2 table per label, as before.
    topk = ClassificationMetrics(num_classes=c, top_k=5)
    assert state_bytes(topk) <= 32 * c + 64
    # Inferred class counts choose the layout when the state is built.
    lazy = ClassificationMetrics(metrics=["mcc"])
    lazy.update_state(np.array([0, 1]), np.eye(5000, dtype="float32")[[0, 1]])
    assert lazy.layout == "marginals" and state_bytes(lazy) <= 24 * 5000 + 64


def test_confusion_matrix_needs_the_matrix_state():
    m = ClassificationMetrics(num_classes=50)
    m.update_state(np.array([0, 1]), np.array([0, 1]))
    with pytest.raises(ValueError, match=r"per-class counts.*num_classes=50.*ConfusionMatrix"):
        m.confusion_matrix()
    small = ClassificationMetrics(num_classes=4)  # a few classes: the matrix is kept anyway
    small.update_state(np.array([0, 1, 3]), np.array([0, 2, 3]))
    close(keras.ops.convert_to_numpy(small.confusion_matrix()),
          skm.confusion_matrix([0, 1, 3], [0, 2, 3], labels=range(4)))


def test_public_surface_is_the_documented_names():
    import importlib

    documented = ["AveragePrecision", "BalancedAccuracy", "ClassificationMetrics", "CohenKappa",
                  "ConfusionMatrix", "MatthewsCorrelation", "MultiMetric",
                  "NegativePredictiveValue", "PythonMetric", "RocAuc", "Specificity"]
    assert sorted(kx.metrics.__all__) == documented
    for name in ("classification", "multi", "python_metric"):
        module = importlib.import_module(f"kx.metrics.{name}")
        defined = [k for k, v in vars(module).items()
                   if not k.startswith("_") and getattr(v, "__module__", None) == module.__name__]
        assert set(defined) <= set(documented), (name, defined)
        assert set(module.__all__) <= set(documented), name
    with pytest.raises(ImportError):
        importlib.import_module("kx.metrics.confusion")  # helpers live in a private module
