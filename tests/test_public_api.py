"""The public surface is what the guides document, and Keras internals have one door.

Adding a public name is a deliberate act: it goes into a list below, and into a guide.
"""

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

import kx
from kx import _keras

PUBLIC = {
    "kx": [
        "CustomModel", "DataGenerator", "ExtendedLoss", "ExtendedMetric", "LossDefinition",
        "MetricDefinition", "UncertaintyWeight", "callbacks", "class_weights", "data", "losses",
        "metrics", "sample_weights", "schedules",
    ],
    "kx.losses": [
        "AsymmetricLoss", "ClassBalancedLoss", "ClassWeightedCrossentropy", "CombinedLoss",
        "FocalTversky", "GaussianKLDivergence", "GeneralizedDice", "Jaccard", "LogCoshDice",
        "LogDice", "LossArithmetic", "LovaszHinge", "LovaszSoftmax", "PolyLoss",
        "SparseCategoricalCrossentropy", "SparseCategoricalFocalCrossentropy",
        "WeightedBinaryCrossentropy", "WeightedKappaLoss", "asymmetric_loss",
        "class_balanced_loss", "class_balanced_weights", "class_weighted_crossentropy",
        "focal_tversky", "gaussian_kl_divergence", "generalized_dice", "jaccard",
        "kl_divergence_to_standard_normal", "log_cosh_dice", "log_dice", "lovasz_hinge",
        "lovasz_softmax", "poly_loss", "sparse_categorical_crossentropy",
        "sparse_categorical_focal_crossentropy", "weighted_binary_crossentropy",
        "weighted_kappa_loss",
    ],
    "kx.metrics": [
        "AveragePrecision", "BalancedAccuracy", "ClassificationMetrics", "CohenKappa",
        "ConfusionMatrix", "MatthewsCorrelation", "MultiMetric", "NegativePredictiveValue",
        "PythonMetric", "RocAuc", "Specificity",
    ],
    "kx.callbacks": [
        "BestModel", "ClassificationReport", "ConfusionMatrixImage", "Evaluator", "PRCurves",
        "PrintEvaluate", "TensorBoardData",
    ],
    "kx.schedules": ["CyclicalAnnealing", "LinearWarmup", "StepwiseConstant"],
    "kx.data": ["DataGenerator", "LoaderError"],
}

# Not library API: the demo script, and kx.backend, whose name the design card fixes (it
# documents itself as kx's backend dispatch, not for users).
NOT_CHECKED = ("kx.demo", "kx.backend")

KX = Path(kx.__file__).parent


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_public_modules_export_exactly_their_documented_names(module):
    exported = importlib.import_module(module).__all__
    assert sorted(exported) == sorted(PUBLIC[module])
    assert len(set(exported)) == len(exported)


def public_modules():
    for info in pkgutil.walk_packages(kx.__path__, "kx."):
        parts = info.name.split(".")
        if any(p.startswith("_") for p in parts) or info.name.startswith(NOT_CHECKED):
            continue
        yield info.name


@pytest.mark.parametrize("module", list(public_modules()))
def test_every_public_name_of_a_module_is_exported(module):
    """A function or class defined without a leading underscore is public: some package
    exports it. Helpers start with `_` or live in private modules."""
    mod = importlib.import_module(module)
    exported = {name for names in PUBLIC.values() for name in names}
    own = [
        name for name, value in vars(mod).items()
        if not name.startswith("_")
        and getattr(value, "__module__", None) == module
        and (isinstance(value, type) or callable(value))
    ]
    assert sorted(set(own) - exported) == []


def python_files():
    return [p for p in sorted(KX.rglob("*.py")) if p.name != "_keras.py"]


@pytest.mark.parametrize("path", python_files(), ids=lambda p: str(p.relative_to(KX)))
def test_keras_internals_only_through_kx_keras(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert not (node.module or "").startswith("keras.src"), (path, node.lineno)
        if isinstance(node, ast.Import):
            assert not any(a.name.startswith("keras.src") for a in node.names), path
        if isinstance(node, ast.Attribute):
            assert node.attr not in _keras.PRIVATE_ATTRIBUTES, (
                f"{path.name}:{node.lineno} reads Keras' private `{node.attr}`: use kx._keras"
            )
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            assert node.value not in _keras.PRIVATE_ATTRIBUTES, (path, node.lineno)
        if isinstance(node, ast.FunctionDef) and node.name in _keras.OVERRIDDEN_HOOKS:
            relative = path.relative_to(KX).as_posix()
            assert relative == "model.py" or relative.startswith("backend/"), (path, node.name)
