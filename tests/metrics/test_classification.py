"""ClassificationMetrics and the standalone classes against scikit-learn, on every backend.

Results are float32 (the Keras metric dtype on every backend): a ratio of exact counts carries
one float32 rounding (~6e-8) and the longest formulas (MCC, kappa) about ten, so values are
compared with rtol=1e-5, atol=1e-6 (float64 references), not 1e-6.
"""

import keras
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn import metrics as skm

import kx
from kx.metrics import ClassificationMetrics

RTOL, ATOL = 1e-5, 1e-6
AVERAGES = ["micro", "macro", "weighted", None]
PER_CLASS = ["precision", "recall", "f1", "fbeta", "jaccard", "specificity", "npv", "fpr", "fnr",
             "fdr", "false_omission_rate", "dice", "prevalence", "informedness", "markedness",
             "positive_likelihood_ratio", "negative_likelihood_ratio", "diagnostic_odds_ratio"]


def close(actual, expected, msg=""):
    np.testing.assert_allclose(np.asarray(actual, "float64"), expected, rtol=RTOL, atol=ATOL,
                               err_msg=msg)


def results(metric):
    return {k: float(keras.ops.convert_to_numpy(v)) for k, v in metric.result().items()}


def per_class_key(res, name, n):
    return np.array([res[f"{name}_{i}"] for i in range(n)])


# A small NumPy reference of the one-vs-rest formulas, on sklearn's multilabel_confusion_matrix.
def reference_per_class(mcm, name, beta=1.0, zd=0.0):
    # sklearn derives weighted tn by subtraction (float32 weights): drop the rounding residue.
    mcm = np.where(np.abs(mcm) < 1e-5, 0.0, mcm)
    tn, fp, fn, tp = (mcm[:, i, j].astype("float64") for i, j in ((0, 0), (0, 1), (1, 0), (1, 1)))

    def div(a, b):
        return np.where(b == 0, zd, a / np.where(b == 0, 1, b))

    tpr, tnr, ppv, npv = div(tp, tp + fn), div(tn, tn + fp), div(tp, tp + fp), div(tn, tn + fn)
    b2 = beta * beta
    return {
        "precision": ppv, "recall": tpr, "specificity": tnr, "npv": npv,
        "fpr": div(fp, fp + tn), "fnr": div(fn, fn + tp), "fdr": div(fp, fp + tp),
        "false_omission_rate": div(fn, fn + tn), "f1": div(2 * tp, 2 * tp + fp + fn),
        "dice": div(2 * tp, 2 * tp + fp + fn),
        "fbeta": div((1 + b2) * tp, (1 + b2) * tp + b2 * fn + fp),
        "jaccard": div(tp, tp + fp + fn), "prevalence": div(tp + fn, tp + fp + fn + tn),
        "informedness": tpr + tnr - 1, "markedness": ppv + npv - 1,
        "positive_likelihood_ratio": div(tpr, div(fp, fp + tn)),
        "negative_likelihood_ratio": div(div(fn, fn + tp), tnr),
        "diagnostic_odds_ratio": div(tp * tn, fp * fn),
    }[name]


def reference_average(mcm, name, average, beta=1.0):
    if average == "micro":
        return reference_per_class(mcm.sum(0, keepdims=True), name, beta)[0]
    values = reference_per_class(mcm, name, beta)
    if average is None:
        return values
    if average == "macro":
        return values.mean()
    support = mcm[:, 1, :].sum(-1).astype("float64")
    return (values * support).sum() / support.sum() if support.sum() else 0.0


@st.composite
def multiclass_data(draw):
    # Few distinct shapes: JAX compiles every eager op once per shape.
    n = draw(st.sampled_from([1, 24]))
    c = draw(st.sampled_from([2, 5]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    y = rng.integers(0, c, n)
    scores = rng.dirichlet(np.ones(c), n).astype("float32")
    w = rng.uniform(0.0, 2.0, n).astype("float32") if draw(st.booleans()) else None
    return y, scores, w, c


@st.composite
def multilabel_data(draw, binary=False):
    n = draw(st.sampled_from([1, 24]))
    labels = 1 if binary else 3
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    y = rng.integers(0, 2, (n, labels))
    probs = rng.uniform(0, 1, (n, labels)).astype("float32")
    w = rng.uniform(0.0, 2.0, n).astype("float32") if draw(st.booleans()) else None
    return y, probs, w, labels


@given(multiclass_data(), st.sampled_from(AVERAGES))
def test_multiclass_matches_sklearn(data, average):
    y, scores, w, c = data
    p = scores.argmax(-1)
    names = ["precision", "recall", "f1", "fbeta", "jaccard", "accuracy", "mcc", "cohen_kappa",
             "cohen_kappa_linear", "cohen_kappa_quadratic", "balanced_accuracy", "hamming",
             "specificity", "npv", "informedness", "diagnostic_odds_ratio", "support"]
    m = ClassificationMetrics(num_classes=c, metrics=names, average=average, beta=2.0)
    m.update_state(y, scores, sample_weight=w)
    res = results(m)
    labels = list(range(c))
    get = (lambda n: per_class_key(res, n, c)) if average is None else (lambda n: res[n])
    sk_avg = average
    prec, rec, f1, _ = skm.precision_recall_fscore_support(
        y, p, labels=labels, average=sk_avg, sample_weight=w, zero_division=0)
    fb = skm.fbeta_score(y, p, beta=2.0, labels=labels, average=sk_avg, sample_weight=w,
                         zero_division=0)
    close(get("precision"), prec)
    close(get("recall"), rec)
    close(get("f1"), f1)
    close(get("fbeta"), fb)
    close(get("jaccard"), skm.jaccard_score(y, p, labels=labels, average=sk_avg,
                                            sample_weight=w, zero_division=0))
    mcm = skm.multilabel_confusion_matrix(y, p, labels=labels, sample_weight=w)
    for name in ("specificity", "npv", "informedness", "diagnostic_odds_ratio"):
        close(get(name), reference_average(mcm, name, average), name)
    close(res["accuracy"], skm.accuracy_score(y, p, sample_weight=w))
    close(res["hamming"], skm.hamming_loss(y, p, sample_weight=w))
    close(res["mcc"], skm.matthews_corrcoef(y, p, sample_weight=w))
    for key, weights in (("cohen_kappa", None), ("cohen_kappa_linear", "linear"),
                         ("cohen_kappa_quadratic", "quadratic")):
        close(res[key], skm.cohen_kappa_score(y, p, labels=labels, weights=weights,
                                              sample_weight=w, replace_undefined_by=0.0), key)
    close(res["balanced_accuracy"], skm.balanced_accuracy_score(y, p, sample_weight=w))
    support = mcm[:, 1, :].sum(-1)
    close(get("support"), support if average is None else support.sum())


@given(multilabel_data(), st.sampled_from(AVERAGES))
def test_multilabel_matches_sklearn(data, average):
    y, probs, w, labels = data
    p = (probs > 0.5).astype("int64")
    m = ClassificationMetrics(num_classes=labels, task="multilabel", average=average,
                              metrics=PER_CLASS + ["hamming", "mcc", "cohen_kappa"])
    m.update_state(y, probs, sample_weight=w)
    res = results(m)
    get = (lambda n: per_class_key(res, n, labels)) if average is None else (lambda n: res[n])
    prec, rec, f1, _ = skm.precision_recall_fscore_support(
        y, p, average=average, sample_weight=w, zero_division=0)
    close(get("precision"), prec)
    close(get("recall"), rec)
    close(get("f1"), f1)
    close(get("jaccard"), skm.jaccard_score(y, p, average=average, sample_weight=w,
                                            zero_division=0))
    close(res["hamming"], skm.hamming_loss(y, p, sample_weight=w))
    mcm = skm.multilabel_confusion_matrix(y, p, sample_weight=w)
    for name in PER_CLASS:
        close(get(name), reference_average(mcm, name, average), name)
    # MCC and kappa per label (scikit-learn is binary-only), averaged like the others.
    if average == "micro":
        sw = None if w is None else np.repeat(w, labels)
        mcc = skm.matthews_corrcoef(y.ravel(), p.ravel(), sample_weight=sw)
        kappa = skm.cohen_kappa_score(y.ravel(), p.ravel(), labels=[0, 1], sample_weight=sw,
                                      replace_undefined_by=0.0)
    else:
        mcc = np.array([skm.matthews_corrcoef(y[:, j], p[:, j], sample_weight=w)
                        for j in range(labels)])
        kappa = np.array([skm.cohen_kappa_score(y[:, j], p[:, j], labels=[0, 1],
                                                sample_weight=w, replace_undefined_by=0.0)
                          for j in range(labels)])
        support = mcm[:, 1, :].sum(-1)
        if average == "macro":
            mcc, kappa = mcc.mean(), kappa.mean()
        elif average == "weighted":
            mcc, kappa = ((v * support).sum() / support.sum() if support.sum() else 0.0
                          for v in (mcc, kappa))
    close(get("mcc"), mcc)
    close(get("cohen_kappa"), kappa)


@given(multilabel_data(binary=True), st.sampled_from(AVERAGES), st.booleans())
def test_binary_matches_sklearn(data, average, logits):
    y, probs, w, _ = data
    y, probs = y[:, 0], probs[:, 0]
    p = (probs > 0.5).astype("int64")
    scores = np.log(probs) - np.log1p(-probs) if logits else probs
    names = ["precision", "recall", "f1", "jaccard", "accuracy", "mcc", "cohen_kappa",
             "balanced_accuracy", "hamming", "specificity"]
    m = ClassificationMetrics(task="binary", metrics=names, average=average, from_logits=logits)
    m.update_state(y[:, None], scores[:, None], sample_weight=w)
    res = results(m)
    get = (lambda n: res[f"{n}_0"]) if average is None else (lambda n: res[n])
    prec, rec, f1, _ = skm.precision_recall_fscore_support(
        y, p, average="binary", sample_weight=w, zero_division=0, labels=[0, 1])
    close(get("precision"), prec)
    close(get("recall"), rec)
    close(get("f1"), f1)
    close(get("jaccard"), skm.jaccard_score(y, p, sample_weight=w, zero_division=0,
                                            labels=[0, 1]))
    close(get("accuracy"), skm.accuracy_score(y, p, sample_weight=w))
    close(get("mcc"), skm.matthews_corrcoef(y, p, sample_weight=w))
    close(get("cohen_kappa"), skm.cohen_kappa_score(y, p, labels=[0, 1], sample_weight=w,
                                                    replace_undefined_by=0.0))
    mcm = skm.multilabel_confusion_matrix(y, p, labels=[1], sample_weight=w)
    close(get("specificity"), reference_per_class(mcm, "specificity")[0])
    tpr, tnr = reference_per_class(mcm, "recall")[0], reference_per_class(mcm, "specificity")[0]
    close(get("balanced_accuracy"), (tpr + tnr) / 2)
    close(res["hamming"], skm.hamming_loss(y, p, sample_weight=w))


@given(multiclass_data())
def test_standalone_classes_and_confusion_matrix(data):
    y, scores, w, c = data
    p = scores.argmax(-1)
    labels = list(range(c))
    cases = [
        (kx.metrics.MatthewsCorrelation(num_classes=c), skm.matthews_corrcoef(y, p,
                                                                             sample_weight=w)),
        (kx.metrics.CohenKappa(num_classes=c, weights="quadratic"),
         skm.cohen_kappa_score(y, p, labels=labels, weights="quadratic", sample_weight=w,
                               replace_undefined_by=0.0)),
        (kx.metrics.BalancedAccuracy(num_classes=c),
         skm.balanced_accuracy_score(y, p, sample_weight=w)),
        (kx.metrics.Specificity(num_classes=c, average="weighted"),
         reference_average(skm.multilabel_confusion_matrix(y, p, labels=labels, sample_weight=w),
                           "specificity", "weighted")),
        (kx.metrics.NegativePredictiveValue(num_classes=c, average=None),
         reference_per_class(skm.multilabel_confusion_matrix(y, p, labels=labels,
                                                              sample_weight=w), "npv")),
        (kx.metrics.ConfusionMatrix(num_classes=c),
         skm.confusion_matrix(y, p, labels=labels, sample_weight=w)),
        (kx.metrics.ConfusionMatrix(num_classes=c, top_k=1, task="multiclass"),
         skm.confusion_matrix(y, p, labels=labels, sample_weight=w)),
    ]
    for metric, expected in cases:
        metric.update_state(y, scores, sample_weight=w)
        close(keras.ops.convert_to_numpy(metric.result()), expected, metric.name)


def test_multilabel_confusion_matrix():
    rng = np.random.default_rng(0)
    y, probs = rng.integers(0, 2, (30, 3)), rng.uniform(size=(30, 3)).astype("float32")
    m = kx.metrics.ConfusionMatrix(num_classes=3, task="multilabel", threshold=0.3)
    m.update_state(y, probs)
    close(keras.ops.convert_to_numpy(m.result()),
          skm.multilabel_confusion_matrix(y, (probs > 0.3).astype(int)))


@given(multiclass_data(), st.integers(2, 3))
def test_top_k(data, k):
    y, scores, w, _ = data
    c = 5  # top_k < num_classes
    scores = np.resize(scores, (len(y), c)).astype("float32")
    m = ClassificationMetrics(num_classes=c, top_k=k, average=None,
                              metrics=["accuracy", "recall", "precision"])
    m.update_state(y, scores, sample_weight=w)
    res = results(m)
    close(res["accuracy"], skm.top_k_accuracy_score(y, scores, k=k, labels=list(range(c)),
                                                    sample_weight=w))
    top = np.argsort(-scores, -1, kind="stable")[:, :k]
    hit = np.zeros_like(scores, dtype=bool)
    np.put_along_axis(hit, top, True, -1)
    onehot = np.eye(c, dtype=bool)[y]
    ww = np.ones(len(y)) if w is None else w.astype("float64")
    tp = ((onehot & hit) * ww[:, None]).sum(0)
    fp = ((~onehot & hit) * ww[:, None]).sum(0)
    fn = ((onehot & ~hit) * ww[:, None]).sum(0)
    close(per_class_key(res, "recall", c), np.where(tp + fn == 0, 0, tp / np.maximum(tp + fn,
                                                                                      1e-300)))
    close(per_class_key(res, "precision", c), np.where(tp + fp == 0, 0,
                                                       tp / np.maximum(tp + fp, 1e-300)))


def test_input_forms_agree_one_hot_labels_logits_and_segmentation():
    rng = np.random.default_rng(1)
    c = 4
    y = rng.integers(0, c, (2, 5, 6))
    logits = rng.normal(size=(2, 5, 6, c)).astype("float32")
    p = logits.argmax(-1)
    expected = skm.precision_recall_fscore_support(y.ravel(), p.ravel(), labels=list(range(c)),
                                                   average="macro", zero_division=0)[:3]
    for y_true, y_pred, kwargs in [
        (y, logits, {"from_logits": True}),  # sparse labels, rank-4 logits (segmentation)
        (np.eye(c)[y], logits, {"from_logits": True}),  # one-hot targets
        (y, p, {}),  # predicted labels
        (y[..., None], p[..., None], {}),  # trailing axis of 1
        (y.reshape(-1), p.reshape(-1), {}),  # flat labels
    ]:
        m = ClassificationMetrics(num_classes=c, **kwargs)
        m.update_state(y_true, y_pred)
        res = results(m)
        close([res["precision"], res["recall"], res["f1"]], expected, str(kwargs))


def test_ignore_class_drops_those_samples():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 50)
    y[::4] = 255
    scores = rng.dirichlet(np.ones(3), 50).astype("float32")
    m = ClassificationMetrics(num_classes=3, ignore_class=255, metrics=["f1", "mcc"])
    m.update_state(y, scores)
    keep = y != 255
    p = scores.argmax(-1)
    res = results(m)
    close(res["f1"], skm.f1_score(y[keep], p[keep], labels=[0, 1, 2], average="macro"))
    close(res["mcc"], skm.matthews_corrcoef(y[keep], p[keep]))
    # Multilabel: single entries equal to ignore_class are left out.
    yl = rng.integers(0, 2, (40, 2))
    yl[::3, 0] = -1
    probs = rng.uniform(size=(40, 2)).astype("float32")
    m = ClassificationMetrics(num_classes=2, task="multilabel", ignore_class=-1, average=None,
                              metrics=["recall"])
    m.update_state(yl, probs)
    res = results(m)
    keep = yl[:, 0] != -1
    close(res["recall_0"], skm.recall_score(yl[keep, 0], probs[keep, 0] > 0.5))
    close(res["recall_1"], skm.recall_score(yl[:, 1], probs[:, 1] > 0.5))


def test_several_updates_equal_one_and_reset_clears():
    rng = np.random.default_rng(3)
    y, scores = rng.integers(0, 5, 64), rng.dirichlet(np.ones(5), 64).astype("float32")
    w = rng.uniform(size=64).astype("float32")
    names = ["precision", "recall", "mcc", "cohen_kappa", "balanced_accuracy"]
    for weight in (None, w):
        one = ClassificationMetrics(num_classes=5, metrics=names)
        one.update_state(y, scores, sample_weight=weight)
        many = ClassificationMetrics(num_classes=5, metrics=names)
        for s in (slice(0, 10), slice(10, 11), slice(11, 64)):
            many.update_state(y[s], scores[s], None if weight is None else weight[s])
        for k, v in results(one).items():
            close(results(many)[k], v, k)
        many.reset_state()
        assert not np.any(keras.ops.convert_to_numpy(many.confusion_matrix()))


def test_counts_are_exact_past_2_24():
    m = ClassificationMetrics(num_classes=2, metrics=["recall"])
    big = 2**24
    m.counts.assign(np.array([[big, 0], [0, 0]], "int32"))
    m.update_state(np.array([0, 0, 0]), np.array([0, 0, 0]))
    counts = keras.ops.convert_to_numpy(m.counts)
    assert counts[0, 0] == big + 3  # a float32 count would still read 2**24
    # A float32 variable stops growing at 2**24 (what the int32 state avoids):
    assert np.float32(big) + np.float32(1) == np.float32(big)
    m.update_state(np.array([0]), np.array([1]))
    close(results(m)["recall"], ((big + 3) / (big + 4) + 0.0) / 2)


def test_results_past_2_31_samples_equal_sklearn():
    # Cells near the int32 limit, totals of ~6e9 samples: results come from float32 sums,
    # which past 2**24 round (relative to the total) but never wrap around like int32 sums.
    # sklearn reads the same matrix as one sample per cell weighted by its count (float64).
    matrix = np.array([[2_000_000_000, 3_000_000, 500_000],
                       [40_000_000, 1_900_000_000, 7_000_000],
                       [90_000, 600_000, 2_100_000_000]], "int64")
    names = ["accuracy", "precision", "recall", "f1", "specificity", "mcc", "cohen_kappa",
             "cohen_kappa_quadratic", "balanced_accuracy"]
    m = ClassificationMetrics(num_classes=3, metrics=names, average=None)
    m.counts.assign(matrix.astype("int32"))
    res = results(m)
    y_true, y_pred = np.divmod(np.arange(9), 3)
    w = matrix.ravel().astype("float64")
    prf = skm.precision_recall_fscore_support(y_true, y_pred, sample_weight=w)
    for name, ref in zip(["precision", "recall", "f1"], prf[:3]):
        close(per_class_key(res, name, 3), ref, name)
    mcm = skm.multilabel_confusion_matrix(y_true, y_pred, sample_weight=w)
    close(per_class_key(res, "specificity", 3), mcm[:, 0, 0] / mcm[:, 0].sum(-1))
    close(res["accuracy"], skm.accuracy_score(y_true, y_pred, sample_weight=w))
    close(res["mcc"], skm.matthews_corrcoef(y_true, y_pred, sample_weight=w))
    close(res["cohen_kappa"], skm.cohen_kappa_score(y_true, y_pred, sample_weight=w))
    close(res["cohen_kappa_quadratic"],
          skm.cohen_kappa_score(y_true, y_pred, weights="quadratic", sample_weight=w))
    close(res["balanced_accuracy"],
          skm.balanced_accuracy_score(y_true, y_pred, sample_weight=w))


def test_compiled_functions_are_shared_and_copies_are_independent():
    import copy

    a = ClassificationMetrics(num_classes=3, metrics=["precision", "mcc"])
    b = ClassificationMetrics(num_classes=3, metrics=["precision", "mcc"], name="other")
    c = ClassificationMetrics(num_classes=3, metrics=["recall"])
    y, p = np.array([0, 1, 2, 2]), np.array([0, 2, 2, 1])
    for m in (a, b, c):
        m.update_state(y, p)
    # One trace (a JAX jit compile, a tf.function) per config, not one per metric object.
    assert a._compiled("_count_batch") is b._compiled("_count_batch")
    assert a._compiled("_results") is b._compiled("_results")
    assert a._compiled("_results") is not c._compiled("_results")
    # Results (and so the logs) keep the order of `metrics`, not the sorted order of pytrees.
    assert list(a.result()) == ["precision", "mcc"]
    per_class = ClassificationMetrics(num_classes=2, metrics=["recall", "accuracy"], average=None)
    per_class.update_state(np.array([0, 1]), np.array([0, 1]))
    assert list(per_class.result()) == ["recall_0", "recall_1", "accuracy"]
    # A copy has its own state and finds the shared compiled functions again. (Keras variables
    # do not carry their values through deepcopy, for Keras' own metrics too: reset first.)
    clone = copy.deepcopy(a)
    clone.reset_state()
    clone.update_state(y, y)
    assert results(clone) == {"precision": 1.0, "mcc": 1.0}
    assert results(a) == results(b)


def _all_confusion_metrics(c):
    return [
        ClassificationMetrics(num_classes=c, metrics=["recall", "support", "mcc"],
                              from_logits=True),
        kx.metrics.Specificity(num_classes=c, from_logits=True),
        kx.metrics.NegativePredictiveValue(num_classes=c, from_logits=True),
        kx.metrics.BalancedAccuracy(num_classes=c, from_logits=True),
        kx.metrics.MatthewsCorrelation(num_classes=c, from_logits=True),
        kx.metrics.CohenKappa(num_classes=c, weights="quadratic", from_logits=True),
        kx.metrics.ConfusionMatrix(num_classes=c, from_logits=True),
    ]


def _evaluate(metrics, x, y):
    """The metrics' results after `evaluate` (compiled on TensorFlow and JAX, eager on torch)."""
    model = keras.Sequential([keras.Input(x.shape[1:]), keras.layers.Identity()])
    model.compile(loss=lambda y_true, y_pred: keras.ops.mean(y_pred), metrics=metrics)
    model.evaluate(x, y, verbose=0)
    return [keras.tree.map_structure(keras.ops.convert_to_numpy, m.result()) for m in metrics]


def test_invalid_values_raise_eagerly_and_make_every_result_nan_when_compiled():
    # Keras' own metrics count a NaN score as a negative prediction: recall 0.5 on two
    # positives scored [0.9, nan], a silently wrong number. kx never counts it: an eager call
    # raises; a compiled step cannot raise, so it marks the state and every result reads NaN.
    keras_recall = keras.metrics.Recall()
    keras_recall.update_state(np.array([1, 1]), np.array([0.9, np.nan], "float32"))
    assert float(keras_recall.result()) == 0.5
    eager = ClassificationMetrics(task="binary", metrics=["recall"])
    with pytest.raises(ValueError, match=r"finite scores.*1 NaN"):
        eager.update_state(np.array([1, 1]), np.array([0.9, np.nan], "float32"))
    with pytest.raises(ValueError, match=r"whole-number labels in `y_true`"):
        eager.update_state(np.array([0.5, 1.0], "float32"), np.array([0.9, 0.1], "float32"))
    multiclass = ClassificationMetrics(num_classes=3, from_logits=True)
    with pytest.raises(ValueError, match=r"finite scores"):
        multiclass.update_state(np.array([0, 1]), np.array([[1, 0, 0], [np.nan] * 3], "float32"))
    assert not np.any(keras.ops.convert_to_numpy(multiclass.counts))  # nothing was counted

    eye = np.eye(3, dtype="float32") * 5  # predicted classes 0, 1, 2, 2
    cases = {
        "label out of range": (eye[[0, 1, 2, 2]], np.array([0, 1, 7, 2])),
        "negative label": (eye[[0, 1, 2, 2]], np.array([0, -1, 2, 2])),
        "NaN score row": (np.concatenate([eye[[0, 1, 2]], np.full((1, 3), np.nan, "float32")]),
                          np.array([0, 1, 2, 2])),
    }
    for what, (x, y) in cases.items():
        if keras.backend.backend() == "torch":  # Keras runs torch steps eagerly: values known
            with pytest.raises(ValueError, match=r"class indices in \[0, 3\)|finite scores"):
                _evaluate(_all_confusion_metrics(3), x, y)
            continue
        metrics = _all_confusion_metrics(3)
        for m, value in zip(metrics, _evaluate(metrics, x, y)):
            for v in keras.tree.flatten(value):
                assert np.all(np.isnan(v)), (what, m.name, value)
        for m in metrics:  # reset clears the mark
            m.reset_state()
            m.update_state(np.array([0, 1, 2]), eye[[0, 1, 2]])
            assert not np.any(np.isnan(keras.tree.flatten(
                keras.tree.map_structure(keras.ops.convert_to_numpy, m.result())))), m.name
    if keras.backend.backend() != "torch":  # binary, compiled: [0.9, nan] on two positives
        recall = ClassificationMetrics(task="binary", metrics=["recall", "precision"])
        (res,) = _evaluate([recall], np.array([[0.9], [np.nan]], "float32"), np.array([1, 1]))
        assert np.isnan(res["recall"]) and np.isnan(res["precision"])


def test_zero_division_and_empty_state():
    m = ClassificationMetrics(num_classes=3, metrics=["precision", "mcc", "cohen_kappa"],
                              zero_division=1.0, average=None)
    m.update_state(np.array([0, 0]), np.array([0, 0]))
    res = results(m)
    # Classes 1 and 2 are never predicted: their precision is 0/0 -> zero_division.
    close([res["precision_0"], res["precision_1"], res["precision_2"]], [1.0, 1.0, 1.0])
    close([res["mcc"], res["cohen_kappa"]], [1.0, 1.0])  # undefined -> zero_division
    empty = ClassificationMetrics(num_classes=3, metrics=["f1"], zero_division=0.0)
    close(results(empty)["f1"], 0.0)


def test_mixed_dtypes_and_class_names():
    y = np.array([0, 1, 2, 1])
    scores = np.array([[.6, .3, .1], [.2, .7, .1], [.1, .2, .7], [.5, .4, .1]])
    ref = ClassificationMetrics(num_classes=3, average=None, class_names=["a", "b", "c"])
    ref.update_state(y, scores.astype("float32"))
    expected = results(ref)
    assert set(expected) == {f"{n}_{c}" for n in ("precision", "recall", "f1") for c in "abc"}
    for dtype in ("float16", "bfloat16"):
        m = ClassificationMetrics(num_classes=3, average=None, class_names=["a", "b", "c"])
        m.update_state(y.astype("int64"), keras.ops.cast(scores, dtype))
        assert results(m) == expected


def test_config_round_trip():
    m = ClassificationMetrics(num_classes=4, metrics=["ppv", "iou", "kappa"], average="weighted",
                              threshold=0.3, top_k=1, ignore_class=-1, beta=0.5,
                              zero_division=1.0, class_names=list("abcd"), name="scores")
    for clone in (ClassificationMetrics.from_config(m.get_config()),
                  keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(m))):
        assert type(clone) is ClassificationMetrics
        assert clone.get_config() == m.get_config()
    k = kx.metrics.CohenKappa(num_classes=3, weights="linear")
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(k))
    assert clone.get_config() == k.get_config() and clone._metric == "cohen_kappa_linear"


BAD_TENSORS = [
    ({"num_classes": 3}, (np.array([0, 1]), np.full((2, 5), 0.2, "float32")),
     r"num_classes=3"),
    ({"num_classes": 3}, (np.array([0, 3]), np.array([0, 1])), r"class indices in \[0, 3\)"),
    ({"num_classes": 3}, (np.array([0, 1]), np.array([[2.0, -1.0, 0.5]] * 2, "float32")),
     r"probabilities in \[0, 1\].*from_logits"),
    ({"task": "binary"}, (np.array([0, 2]), np.array([0.1, 0.9], "float32")), r"0 or 1"),
    ({"task": "multilabel", "num_classes": 2},
     (np.zeros((4, 2)), np.zeros((4, 3), "float32")), r"same shape"),
]


def test_bad_tensors():  # one test, not parametrized: each test pays a session teardown
    for kwargs, data, match in BAD_TENSORS:
        m = ClassificationMetrics(**kwargs)
        with pytest.raises(ValueError, match=match):
            m.update_state(*data)


BAD_ARGUMENTS = [
    ({"metrics": ["precision", "specifity"]}, r"unknown metric 'specifity'.*'specificity'"),
    ({"average": "macr"}, r"`average`.*'micro', 'macro', 'weighted', None.*macr"),
    ({"task": "multi"}, r"`task`.*multi"),
    ({"num_classes": 0}, r"num_classes=0"),
    ({"threshold": 2}, r"threshold=2"),
    ({"num_classes": 3, "top_k": 3}, r"top_k"),
    ({"task": "binary", "top_k": 2}, r"top_k"),
    ({"num_classes": 3, "class_names": ["a"]}, r"class name"),
]


def test_bad_arguments():
    for kwargs, match in BAD_ARGUMENTS:
        with pytest.raises(ValueError, match=match):
            ClassificationMetrics(**kwargs)
    m = ClassificationMetrics(task="multiclass")
    with pytest.raises(ValueError, match="cannot infer `num_classes`"):
        m.update_state(np.array([0, 1]), np.array([0, 1]))


def test_inside_compiled_fit_equals_eager():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(96, 6)).astype("float32")
    y = rng.integers(0, 4, 96)
    w = rng.uniform(size=96).astype("float32")
    names = ["precision", "recall", "f1", "specificity", "mcc", "cohen_kappa"]
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4)])
    jit = keras.backend.backend() != "torch"  # torch.compile is slow to start and not needed
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    # learning_rate=0: the predictions inside fit stay those of `predict` afterwards.
    model.compile(keras.optimizers.SGD(learning_rate=0.0), loss, jit_compile=jit,
                  metrics=[ClassificationMetrics(num_classes=4, metrics=names, from_logits=True)])
    history = model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    logits = model.predict(x, verbose=0)
    eager = ClassificationMetrics(num_classes=4, metrics=names, from_logits=True)
    eager.update_state(y, logits)
    for name in names:
        close(history.history[name][0], results(eager)[name], name)
    # Weighted, with num_classes inferred: Keras builds the state symbolically before the
    # compiled step runs.
    lazy = ClassificationMetrics(metrics=names, from_logits=True)
    model.compile(keras.optimizers.SGD(learning_rate=0.0), loss, jit_compile=jit,
                  weighted_metrics=[lazy])
    logs = model.evaluate(x, y, sample_weight=w, batch_size=32, verbose=0, return_dict=True)
    assert lazy.num_classes == 4 and lazy.task == "multiclass"
    weighted = ClassificationMetrics(num_classes=4, metrics=names, from_logits=True)
    weighted.update_state(y, logits, sample_weight=w)
    for name in names:
        close(logs[name], results(weighted)[name], name)
