"""kx.losses exports exactly the names its guides document (issue 12): adding a public name is a
deliberate edit of this list and of guides/losses.md; helpers stay private."""

import importlib
import inspect
import pkgutil
from pathlib import Path

import keras

import kx
from kx.losses import _base

DOCUMENTED = [
    "AsymmetricLoss", "ClassBalancedLoss", "ClassWeightedCrossentropy", "CombinedLoss",
    "FocalTversky", "GaussianKLDivergence", "GeneralizedDice", "Jaccard", "LogCoshDice",
    "LogDice", "LossArithmetic", "LovaszHinge", "LovaszSoftmax", "PolyLoss",
    "SparseCategoricalCrossentropy", "SparseCategoricalFocalCrossentropy",
    "WeightedBinaryCrossentropy", "WeightedKappaLoss", "asymmetric_loss", "class_balanced_loss",
    "class_balanced_weights", "class_weighted_crossentropy", "focal_tversky",
    "gaussian_kl_divergence", "generalized_dice", "jaccard", "kl_divergence_to_standard_normal",
    "log_cosh_dice", "log_dice", "lovasz_hinge", "lovasz_softmax", "poly_loss",
    "sparse_categorical_crossentropy", "sparse_categorical_focal_crossentropy",
    "weighted_binary_crossentropy", "weighted_kappa_loss",
]
ROOT = Path(kx.__file__).parent
GUIDE = (ROOT.parent / "guides" / "losses.md").read_text()


def public_modules():
    for info in pkgutil.iter_modules(kx.losses.__path__):
        if not info.name.startswith("_"):
            yield importlib.import_module(f"kx.losses.{info.name}")


def test_exports_exactly_the_documented_names():
    assert sorted(kx.losses.__all__) == sorted(DOCUMENTED)
    for name in DOCUMENTED:
        assert hasattr(kx.losses, name), name
        assert f"`{name}`" in GUIDE, f"{name} is exported but guides/losses.md does not name it"


def test_modules_define_no_public_helpers():
    """A function or class defined in a public module is in its `__all__` or starts with `_`
    (e.g. the checks of `gamma` live in the private `kx/losses/_checks.py`)."""
    for module in public_modules():
        defined = [name for name, obj in vars(module).items()
                   if (inspect.isfunction(obj) or inspect.isclass(obj))
                   and obj.__module__ == module.__name__ and not name.startswith("_")]
        assert sorted(defined) == sorted(module.__all__), module.__name__
        assert set(module.__all__) <= set(kx.losses.__all__), module.__name__


def test_every_loss_class_stores_its_arguments_once():
    """One base for every kx loss class (CombinedLoss, a container of losses, aside)."""
    for name in DOCUMENTED:
        obj = getattr(kx.losses, name)
        if inspect.isclass(obj) and issubclass(obj, keras.losses.Loss):
            assert issubclass(obj, _base.LossFunctionWrapper) or obj is kx.losses.CombinedLoss, name


def test_no_keras_internals_outside_kx_keras():
    for path in (ROOT / "losses").glob("*.py"):
        assert "keras.src" not in path.read_text(), path.name
