"""PythonMetric, RocAuc and AveragePrecision against scikit-learn (NumPy: float64, rtol 1e-12)."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn import metrics as skm

import kx


@st.composite
def ranking_data(draw):
    kind = draw(st.sampled_from(["binary", "multiclass", "multilabel"]))
    n = draw(st.integers(8, 40))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    if kind == "binary":
        y = np.r_[0, 1, rng.integers(0, 2, n - 2)]
        scores = rng.normal(size=n)
    elif kind == "multiclass":
        y = np.r_[0, 1, 2, rng.integers(0, 3, n - 3)]
        scores = rng.normal(size=(n, 3))
    else:
        y = np.r_[[[0, 1], [1, 0]], rng.integers(0, 2, (n - 2, 2))]
        scores = rng.normal(size=(n, 2))
    w = rng.uniform(0.1, 2.0, n) if draw(st.booleans()) else None
    return kind, y, scores, w


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


@given(ranking_data(), st.sampled_from(["macro", "micro", "weighted", None]))
def test_roc_auc_and_average_precision_match_sklearn(data, average):
    kind, y, logits, w = data
    if kind == "multiclass":
        e = np.exp(logits - logits.max(-1, keepdims=True))
        probs = e / e.sum(-1, keepdims=True)
        y_ind = np.eye(3)[y]
    else:
        probs, y_ind = _sigmoid(logits), y
    for cls, fn in ((kx.metrics.RocAuc, skm.roc_auc_score),
                    (kx.metrics.AveragePrecision, skm.average_precision_score)):
        m = cls(average=average, from_logits=True, multilabel=kind == "multilabel")
        half = len(y) // 2  # two updates equal one on everything
        m.update(y[:half], logits[:half], None if w is None else w[:half])
        m.update(y[half:], logits[half:], None if w is None else w[half:])
        expected = fn(y_ind, probs, average=average, sample_weight=w)
        value = m.result()
        if isinstance(value, dict):
            value = [value[str(i)] for i in range(len(value))]
        np.testing.assert_allclose(value, expected, rtol=1e-12, atol=1e-12)
        m = cls(average=average, multilabel=kind == "multilabel")
        m.update(y, probs, w)  # probabilities directly
        value = m.result()
        value = [value[str(i)] for i in range(len(value))] if isinstance(value, dict) else value
        np.testing.assert_allclose(value, expected, rtol=1e-12, atol=1e-12)


def test_custom_python_metric_and_errors():
    class Mae(kx.metrics.PythonMetric):
        def compute(self, y_true, y_pred, sample_weight):
            return float(np.average(np.abs(y_true - y_pred), weights=sample_weight))

    m = Mae(name="mae")
    with pytest.raises(ValueError, match="before any `update"):
        m.result()
    m.update(np.array([0.0, 1.0]), np.array([1.0, 1.0]), np.array([3.0, 1.0]))
    m.update(np.array([2.0]), np.array([0.0]))  # unweighted batch: weight 1
    assert m.result() == pytest.approx((3 * 1 + 0 + 2) / 5)
    assert Mae.from_config(m.get_config()).name == "mae"
    base = kx.metrics.PythonMetric()
    base.update(np.zeros(1), np.zeros(1))
    with pytest.raises(NotImplementedError, match="implement `compute"):
        base.result()
    with pytest.raises(ValueError, match="`average`.*'macr'"):
        kx.metrics.RocAuc(average="macr")
    with pytest.raises(ValueError, match=r"class indices in \[0, 3\)"):
        m = kx.metrics.RocAuc()
        m.update(np.array([0, 5]), np.ones((2, 3)) / 3)
        m.result()
