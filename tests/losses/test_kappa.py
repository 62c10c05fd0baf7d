"""kx/losses/kappa.py against scikit-learn's weighted Cohen kappa and a NumPy reference."""

import keras
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from losses._reference import ATOL, RTOL, one_hot, ref_kappa_loss, softmax
from sklearn.metrics import cohen_kappa_score

import kx

np_ = keras.ops.convert_to_numpy


@given(st.sampled_from(["quadratic", "linear"]), st.booleans(), st.booleans(),
       st.integers(0, 2**16))
def test_matches_reference_and_sklearn(weightage, weighted, sparse, seed):
    rng = np.random.default_rng(seed)
    labels = np.r_[0, 1, 2, 3, rng.integers(0, 4, 4)]
    z = rng.normal(0, 2, (8, 4)).astype("float32")
    sw = rng.uniform(0.1, 2, 8).astype("float32") if weighted else None
    y_true = labels if sparse else one_hot(labels, 4).astype("float32")
    loss = kx.losses.WeightedKappaLoss(4, weightage, sparse=sparse, from_logits=True)
    expected = ref_kappa_loss(labels, softmax(z.astype("f8")), 4, weightage, sw)
    np.testing.assert_allclose(np_(loss(y_true, z, sample_weight=sw)), expected,
                               rtol=RTOL, atol=ATOL)
    # with one-hot predictions, 1 - exp(loss) is Cohen's weighted kappa
    hard = one_hot(z.argmax(-1), 4).astype("float32")
    kappa = cohen_kappa_score(labels, z.argmax(-1), weights=weightage, sample_weight=sw)
    got = kx.losses.weighted_kappa_loss(labels, hard, num_classes=4, weightage=weightage,
                                        sample_weight=sw, epsilon=1e-12)
    np.testing.assert_allclose(1 - np.exp(np_(got)), kappa, rtol=1e-4, atol=1e-5)


def test_bad_input():
    with pytest.raises(ValueError, match=r"weightage.*'linear', 'quadratic'.*'cubic'"):
        kx.losses.WeightedKappaLoss(3, "cubic")
    with pytest.raises(ValueError, match=r"num_classes.*>= 2.*1"):
        kx.losses.WeightedKappaLoss(1)
    with pytest.raises(ValueError, match=r"num_classes=3.*y_pred.shape=\(2, 4\)"):
        kx.losses.WeightedKappaLoss(3)([0, 1], np.full((2, 4), 0.25))
