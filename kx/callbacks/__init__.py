"""Callbacks: validation-only metrics, the best model, printed samples, TensorBoard pictures,
a per-class report. Each works with `keras.Model`; a `kx.CustomModel` hook sets its default."""

from kx.callbacks.evaluator import Evaluator

__all__ = ["Evaluator"]
