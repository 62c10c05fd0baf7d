"""The base of the kx loss classes: a loss function plus its arguments, stored once, in the
manner of Keras' `LossFunctionWrapper`."""

import keras

from kx import _keras
from kx.losses.combined import LossArithmetic


def _config_value(value, serialized):
    if serialized and not isinstance(value, str):
        return keras.saving.serialize_keras_object(value)
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, dict):  # JSON turns int keys into strings; the checks turn them back
        return {str(k): v for k, v in value.items()}
    return value


class LossFunctionWrapper(LossArithmetic, keras.losses.Loss):
    """A `keras.losses.Loss` that calls a loss function with stored keyword arguments.

    A subclass sets `fn` (the loss function, returning per-sample values) and `check_args`
    (`(owner, **arguments) -> dict`, its module's argument check) and lists the arguments with
    their defaults in its `__init__`, which passes them here. They are checked once (a bad one
    fails in the constructor, naming the class), stored once (`_fn_kwargs`, also readable as
    attributes: `loss.gamma`), forwarded to `fn` by `call`, and written into the config by
    `get_config` (tuples as lists, dicts with string keys). `serialized` names the arguments
    that may hold Keras objects: serialized in the config, deserialized by `from_config`.
    """

    fn = None
    check_args = None
    serialized = ()

    def __init__(self, reduction="sum_over_batch_size", name=None, dtype=None, **kwargs):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self._fn_kwargs = type(self).check_args(type(self).__name__, **kwargs)

    def __getattr__(self, attr):
        kwargs = self.__dict__.get("_fn_kwargs")
        if kwargs is not None and attr in kwargs:
            return kwargs[attr]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {attr!r}")

    def call(self, y_true, y_pred):
        return type(self).fn(y_true, y_pred, **self._fn_kwargs)

    def get_config(self):
        return {
            **super().get_config(),
            **{k: _config_value(v, k in self.serialized) for k, v in self._fn_kwargs.items()},
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in cls.serialized:
            if not isinstance(config.get(key), str):
                config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)


class BatchStatisticWrapper(LossFunctionWrapper):
    """A loss whose value is a statistic of the whole batch (a scalar), not a mean of per-sample
    values: `fn` takes the sample weights, which weigh the samples inside the statistic.

    `reduction=None` (or `"none"`) returns the statistic as it is. Any other reduction returns
    it as the loss of the batch, scaled for distribution like every mean-reduced Keras loss:
    Keras' reduction leaves a scalar alone, so without the scaling the replicas' values would
    add up (twice the loss and the gradients with 2 replicas) instead of averaging. Under
    `tf.distribute` each replica computes the statistic on its own part of the batch. `call`
    (used by `CombinedLoss`) gives the unweighted statistic.
    """

    def __call__(self, y_true, y_pred, sample_weight=None):
        value = type(self).fn(y_true, y_pred, sample_weight=sample_weight, **self._fn_kwargs)
        if self.reduction in (None, "none"):
            return value
        return _keras.scale_loss_for_distribution(value)
