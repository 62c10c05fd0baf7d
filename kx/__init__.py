"""kx: Keras 3 extensions for models that need more than one loss and one metric per output.

The flat namespace holds the model, the definitions and the weight helpers; losses, metrics,
callbacks, data and loss-weight schedules live in their submodules.
"""

from kx import callbacks, data, losses, metrics, schedules
from kx._loss_weights import UncertaintyWeight
from kx.data import DataGenerator
from kx.definitions import ExtendedLoss, ExtendedMetric, LossDefinition, MetricDefinition
from kx.model import CustomModel
from kx.weights import class_weights, sample_weights

__version__ = "0.1.0"

__all__ = [
    "CustomModel",
    "DataGenerator",
    "ExtendedLoss",
    "ExtendedMetric",
    "LossDefinition",
    "MetricDefinition",
    "UncertaintyWeight",
    "callbacks",
    "class_weights",
    "data",
    "losses",
    "metrics",
    "sample_weights",
    "schedules",
]
