"""MultiMetric: several Keras metrics behind one shared per-batch precompute step."""

import keras

__all__ = ["MultiMetric"]

_PACKAGE = "kx"


@keras.saving.register_keras_serializable(package=_PACKAGE)
class MultiMetric(keras.metrics.Metric):
    """Several metrics fed by one `precompute` step per batch; `result()` is a dict.

    `precompute(y_true, y_pred, sample_weight)` runs once per `update_state` and its outputs
    feed every child, so work they would each repeat (a softmax, an argmax, decoding, a
    resize) is done once. Override it in a subclass; the default passes the batch through.
    `result()` returns `{child.name: child.result()}`; a child whose result is itself a dict
    (such as `kx.metrics.ClassificationMetrics`) contributes `<child.name>_<key>` entries.
    Keras merges dict results into the logs, one key per entry.

    Args:
        metrics: a list of `keras.metrics.Metric` instances with distinct names.
        name: name of the metric. Defaults to `"multi_metric"`.
        dtype: dtype of the metric. Defaults to `None`.

    Returns:
        From `result()`, a dict of the children's results keyed by their names.

    Example:

    >>> import keras, numpy as np, kx
    >>> class ArgmaxFirst(kx.metrics.MultiMetric):
    ...     def precompute(self, y_true, y_pred, sample_weight):
    ...         return y_true, keras.ops.argmax(y_pred, axis=-1), sample_weight
    >>> m = ArgmaxFirst([keras.metrics.Accuracy(),
    ...                  kx.metrics.Specificity(num_classes=3)])
    >>> m.update_state(np.array([0, 1, 2, 2]),
    ...                np.array([[.8, .1, .1], [.2, .7, .1], [.1, .2, .7], [.6, .3, .1]]))
    >>> {k: round(float(v), 4) for k, v in m.result().items()}
    {'accuracy': 0.75, 'specificity': 0.8889}
    """

    def __init__(self, metrics, name="multi_metric", dtype=None):
        super().__init__(name=name, dtype=dtype)
        if isinstance(metrics, keras.metrics.Metric) or not isinstance(metrics, (list, tuple)):
            raise TypeError(
                "MultiMetric: expected `metrics` to be a list of keras.metrics.Metric "
                f"instances. Received: metrics={metrics!r}"
            )
        for m in metrics:
            if not isinstance(m, keras.metrics.Metric):
                raise TypeError(
                    "MultiMetric: expected every entry of `metrics` to be a "
                    f"keras.metrics.Metric instance. Received: {m!r} of type {type(m).__name__}"
                )
        names = [m.name for m in metrics]
        if len(set(names)) != len(names):
            raise ValueError(
                "MultiMetric: expected children with distinct names (they become the result "
                f"keys); give them `name=`. Received names: {names}"
            )
        self.children = list(metrics)

    def precompute(self, y_true, y_pred, sample_weight):
        """Shared work for one batch; returns `(y_true, y_pred, sample_weight)` for the children.

        The default returns its arguments unchanged.
        """
        return y_true, y_pred, sample_weight

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred, sample_weight = self.precompute(y_true, y_pred, sample_weight)
        for m in self.children:
            m.update_state(y_true, y_pred, sample_weight=sample_weight)

    def result(self):
        results = {}
        for m in self.children:
            value = m.result()
            if isinstance(value, dict):
                results.update({f"{m.name}_{k}": v for k, v in value.items()})
            else:
                results[m.name] = value
        return results

    def reset_state(self):
        for m in self.children:
            m.reset_state()

    def get_config(self):
        return {
            **super().get_config(),
            "metrics": [keras.saving.serialize_keras_object(m) for m in self.children],
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["metrics"] = [keras.saving.deserialize_keras_object(m) for m in config["metrics"]]
        return cls(**config)
