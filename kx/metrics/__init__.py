"""Metrics: MultiMetric, shared-state ClassificationMetrics and what Keras lacks."""

__all__ = []
