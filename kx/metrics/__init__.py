"""Metrics: MultiMetric, shared-state ClassificationMetrics, what Keras lacks, Python metrics."""

from kx.metrics.classification import (
    BalancedAccuracy,
    ClassificationMetrics,
    CohenKappa,
    ConfusionMatrix,
    MatthewsCorrelation,
    NegativePredictiveValue,
    Specificity,
)
from kx.metrics.multi import MultiMetric
from kx.metrics.python_metric import AveragePrecision, PythonMetric, RocAuc

__all__ = [
    "AveragePrecision",
    "BalancedAccuracy",
    "ClassificationMetrics",
    "CohenKappa",
    "ConfusionMatrix",
    "MatthewsCorrelation",
    "MultiMetric",
    "NegativePredictiveValue",
    "PythonMetric",
    "RocAuc",
    "Specificity",
]
