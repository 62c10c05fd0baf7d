"""Losses Keras 3 lacks: each a function returning per-sample values plus a `keras.losses.Loss`.

Classification: cross-entropies, focal, class-balanced, asymmetric, Poly-1, KL, weighted kappa.
Segmentation: overlap losses (Jaccard, Tversky, Dice variants) and Lovasz losses.
Any two kx losses combine: `loss_a + 0.5 * loss_b` is a serializable `CombinedLoss`.
"""

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
from kx.losses.lovasz import LovaszHinge, LovaszSoftmax, lovasz_hinge, lovasz_softmax
from kx.losses.overlap import (
    FocalTversky,
    GeneralizedDice,
    Jaccard,
    LogCoshDice,
    LogDice,
    focal_tversky,
    generalized_dice,
    jaccard,
    log_cosh_dice,
    log_dice,
)
from kx.losses.poly import PolyLoss, poly_loss

__all__ = [
    "AsymmetricLoss",
    "ClassBalancedLoss",
    "ClassWeightedCrossentropy",
    "CombinedLoss",
    "FocalTversky",
    "GaussianKLDivergence",
    "GeneralizedDice",
    "Jaccard",
    "LogCoshDice",
    "LogDice",
    "LossArithmetic",
    "LovaszHinge",
    "LovaszSoftmax",
    "PolyLoss",
    "SparseCategoricalCrossentropy",
    "SparseCategoricalFocalCrossentropy",
    "WeightedBinaryCrossentropy",
    "WeightedKappaLoss",
    "asymmetric_loss",
    "class_balanced_loss",
    "class_balanced_weights",
    "class_weighted_crossentropy",
    "focal_tversky",
    "gaussian_kl_divergence",
    "generalized_dice",
    "jaccard",
    "kl_divergence_to_standard_normal",
    "log_cosh_dice",
    "log_dice",
    "lovasz_hinge",
    "lovasz_softmax",
    "poly_loss",
    "sparse_categorical_crossentropy",
    "sparse_categorical_focal_crossentropy",
    "weighted_binary_crossentropy",
    "weighted_kappa_loss",
]
