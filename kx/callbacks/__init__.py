"""Callbacks: validation-only metrics, the best model, printed samples, TensorBoard pictures,
a per-class report. Each works with `keras.Model`; a `kx.CustomModel` hook sets its default."""

from kx.callbacks.best_model import BestModel
from kx.callbacks.evaluator import Evaluator
from kx.callbacks.print_evaluate import PrintEvaluate
from kx.callbacks.report import ClassificationReport
from kx.callbacks.tensorboard import ConfusionMatrixImage, PRCurves, TensorBoardData

__all__ = [
    "BestModel",
    "ClassificationReport",
    "ConfusionMatrixImage",
    "Evaluator",
    "PRCurves",
    "PrintEvaluate",
    "TensorBoardData",
]
