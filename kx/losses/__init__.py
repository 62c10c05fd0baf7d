"""Losses Keras 3 lacks: each a function returning per-sample values plus a `keras.losses.Loss`."""

from kx.losses import _classification, _segmentation
from kx.losses._classification import *  # noqa: F401,F403
from kx.losses._segmentation import *  # noqa: F401,F403

__all__ = [*_classification.__all__, *_segmentation.__all__]
