"""Re-exports of the classification losses (and loss arithmetic) into `kx.losses`."""

from kx.losses.asymmetric import AsymmetricLoss, asymmetric_loss
from kx.losses.class_balanced import ClassBalancedLoss, class_balanced_loss, class_balanced_weights
from kx.losses.combined import CombinedLoss, LossArithmetic
from kx.losses.crossentropy import (
    ClassWeightedCrossentropy,
    SparseCategoricalCrossentropy,
    WeightedBinaryCrossentropy,
    class_weighted_crossentropy,
    sparse_categorical_crossentropy,
    weighted_binary_crossentropy,
)
from kx.losses.focal import (
    SparseCategoricalFocalCrossentropy,
    sparse_categorical_focal_crossentropy,
)
from kx.losses.kappa import WeightedKappaLoss, weighted_kappa_loss
from kx.losses.kl import (
    GaussianKLDivergence,
    gaussian_kl_divergence,
    kl_divergence_to_standard_normal,
)
from kx.losses.poly import PolyLoss, poly_loss

__all__ = [
    "AsymmetricLoss",
    "ClassBalancedLoss",
    "ClassWeightedCrossentropy",
    "CombinedLoss",
    "GaussianKLDivergence",
    "LossArithmetic",
    "PolyLoss",
    "SparseCategoricalCrossentropy",
    "SparseCategoricalFocalCrossentropy",
    "WeightedBinaryCrossentropy",
    "WeightedKappaLoss",
    "asymmetric_loss",
    "class_balanced_loss",
    "class_balanced_weights",
    "class_weighted_crossentropy",
    "gaussian_kl_divergence",
    "kl_divergence_to_standard_normal",
    "poly_loss",
    "sparse_categorical_crossentropy",
    "sparse_categorical_focal_crossentropy",
    "weighted_binary_crossentropy",
    "weighted_kappa_loss",
]
