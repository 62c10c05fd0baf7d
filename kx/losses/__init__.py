"""Losses Keras 3 lacks: each a function returning per-sample values plus a `keras.losses.Loss`."""

__all__ = []
