"""kx.class_weights / kx.sample_weights against scikit-learn and small NumPy references."""

import tracemalloc

import keras
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.utils.class_weight import compute_class_weight, compute_sample_weight

import kx
from kx import weights as kx_weights

RTOL, ATOL = 1e-10, 1e-12  # everything is float64 NumPy


def close(actual, expected):
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=ATOL)


def sk_balanced(y, sample_weight=None):
    """scikit-learn's balanced weights as a dict, for 1-D labels."""
    y = np.asarray(y)
    classes = np.unique(y)
    w = compute_class_weight("balanced", classes=classes, y=y, sample_weight=sample_weight)
    return dict(zip(classes.tolist(), w.tolist()))


def reference(counts, method, beta=0.999):
    """The methods' formulas, written from the papers, on an array of class counts."""
    counts = np.asarray(counts, dtype=np.float64)
    n, k = counts.sum(), len(counts)
    if method == "balanced":
        return n / (k * counts)
    if method == "inverse":
        return n / counts
    if method == "sqrt_inverse":
        return np.sqrt(n / counts)
    if method == "effective_number":  # Cui et al. 2019, eq. 4, normalised to sum K
        w = (1 - beta) / (1 - np.power(beta, counts))
        return w * k / w.sum()
    if method == "median_frequency":
        freq = counts / n
        return np.median(freq) / freq
    raise AssertionError(method)


@pytest.fixture(autouse=True)
def _seed_and_clear():
    """Overrides conftest's fixture of the same name for this module: seeds, but leaves
    `keras.backend.clear_session()` to the one test that builds a model. These tests are NumPy,
    and the session clearing (a full garbage collection) after each of them cost ~0.6 s, more
    than all the tests together."""
    keras.utils.set_random_seed(1234)
    yield


@pytest.fixture
def small_chunks(monkeypatch):
    """Forces many chunks so that chunk boundaries are exercised on small arrays."""
    monkeypatch.setattr(kx_weights, "_CHUNK", 7)
    monkeypatch.setattr(kx_weights, "_SAMPLE", 3)


# --------------------------------------------------------------- scikit-learn's own cases


def test_sklearn_balanced_total_preserved_and_ordered():
    y = np.asarray([2, 2, 2, 3, 3, 4])
    cw = kx.class_weights(y)
    close(np.dot(list(cw.values()), np.bincount(y)[2:]), y.shape[0])
    assert cw[2] < cw[3] < cw[4]
    close(list(cw.values()), list(sk_balanced(y).values()))


def test_sklearn_classes_absent_from_y_raise():
    y = np.asarray([0, 0, 0, 1, 1, 2])
    with pytest.raises(ValueError, match=r"classes \[3\] of `classes` are absent from `y`"):
        kx.class_weights(y, classes=np.arange(4))
    with pytest.raises(ValueError, match=r"should include all labels of `y`; \[2\] are missing"):
        kx.class_weights(y, classes=np.arange(2))
    with pytest.raises(ValueError, match=r"leaves out the classes \[0, 1, 2\], which do"):
        kx.sample_weights(y, {"label_not_present": 1.0})
    with pytest.raises(ValueError, match=r"leaves out the classes \[.dog.\], which do"):
        kx.sample_weights(np.asarray(["dog", "cat", "dog"]), {"dogs": 3, "cat": 2})


def test_absent_weight_declares_missing_classes():
    y = np.asarray([0, 0, 0, 1, 1, 2])
    cw = kx.class_weights(y, classes=[3, 0, 1, 2], absent_weight=0.0)
    assert list(cw) == [3, 0, 1, 2]
    assert cw[3] == 0.0
    close([cw[0], cw[1], cw[2]], list(sk_balanced(y).values()))


def test_sklearn_dict_weights():
    y = np.asarray([0, 0, 1, 2])
    close(kx.sample_weights(y, {0: 1.0, 1: 2.0, 2: 3.0}), [1, 1, 2, 3])
    close(kx.sample_weights(y, {0: 1.0, 1: 2.0, 2: 3.0, 4: 1.5}), [1, 1, 2, 3])
    close(kx.sample_weights(y, {-1: 5.0, 0: 4.0, 1: 2.0, 2: 3.0}), [4, 4, 2, 3])
    y = np.asarray([2, 2, 2, 3, 3, 4])
    close(kx.sample_weights(y, None), np.ones(6))
    close(kx.sample_weights(y, {2: 1.5}), [1.5, 1.5, 1.5, 1, 1, 1])
    close(kx.sample_weights(y, {2: 1.5, 4: 0.5}), [1.5, 1.5, 1.5, 1, 1, 0.5])


def test_sklearn_negative_labels():
    y = np.asarray([-1, -1, 0, 0, -2, -2])
    assert kx.class_weights(y) == {-2: 1.0, -1: 1.0, 0: 1.0}


def test_sklearn_sample_weight_equals_repetition():
    y = np.asarray([-1, -1, 0, 0, -2, -2])
    sw = np.asarray([1, 0, 1, 1, 1, 2])
    weighted = kx.class_weights(y, sample_weight=sw)
    repeated = kx.class_weights(np.repeat(y, sw))
    close(list(weighted.values()), list(repeated.values()))
    close(list(weighted.values()), list(sk_balanced(y, sw).values()))


def test_sklearn_unordered_classes():
    y = np.asarray([1, 0, 0, 3, 3, 3])
    cw = kx.class_weights(y, classes=np.array([1, 0, 3]))
    assert list(cw) == [1, 0, 3]
    close(list(cw.values()), [2.0, 1.0, 2.0 / 3])
    close(list(cw.values()), compute_class_weight("balanced", classes=np.array([1, 0, 3]), y=y))


# One test item per table (not one per row): the suite's per-test teardown
# (keras.backend.clear_session) costs far more than these NumPy checks.
SKLEARN_SAMPLE_WEIGHT_CASES = [
        ([1, 1, 1, 2, 2, 2], "balanced"),
        ([1, 1, 1, 2, 2, 2], {1: 2, 2: 1}),
        ([[1], [1], [1], [2], [2], [2]], "balanced"),
        ([1, 1, 1, 2, 2, 2, 3], "balanced"),
        ([1, 1, 1, 2, 2, 2, 3], None),
        ([[1, 0], [1, 0], [1, 0], [2, 1], [2, 1], [2, 1]], "balanced"),
        ([[1, 0], [1, 0], [1, 0], [2, 1], [2, 1], [2, 1]], [{1: 2, 2: 1}, {0: 1, 1: 2}]),
        ([[1, 0], [1, 0], [1, 0], [2, 1], [2, 1], [2, 1], [3, -1]], "balanced"),
        (np.arange(50), "balanced"),
        (["b", "a", "a", "c"], "balanced"),
        ([[0, 1, 1], [1, 0, 0], [0, 0, 1], [1, 1, 1]], "balanced"),  # multi-label
]


def test_sklearn_compute_sample_weight_cases():
    for y, class_weight in SKLEARN_SAMPLE_WEIGHT_CASES:
        expected = compute_sample_weight(class_weight, np.asarray(y))
        np.testing.assert_allclose(
            kx.sample_weights(y, class_weight), expected, rtol=RTOL, atol=ATOL,
            err_msg=f"y={y!r}, class_weight={class_weight!r}",
        )


def test_sklearn_sample_weight_errors():
    y2 = np.asarray([[1, 0], [1, 0], [1, 0], [2, 1], [2, 1], [2, 1]])
    with pytest.raises(ValueError, match="class_weight` should be a list of dicts"):
        kx.sample_weights(y2, {1: 2, 2: 1})
    with pytest.raises(ValueError, match=r"Got 1 element\(s\) while having 2 outputs"):
        kx.sample_weights(y2, [{1: 2, 2: 1}])


def test_sparse_matrix_labels():
    scipy_sparse = pytest.importorskip("scipy.sparse")
    y = scipy_sparse.csc_matrix(np.asarray([[0], [1], [1]]))
    close(kx.sample_weights(y), [1.5, 0.75, 0.75])
    assert kx.class_weights(y) == {0: 1.5, 1: 0.75}


# --------------------------------------------------------------- hypothesis against sklearn

labels_1d = st.one_of(
    hnp.arrays(st.sampled_from([np.int8, np.int32, np.int64]), st.integers(1, 300),
               elements=st.integers(-5, 40)),
    hnp.arrays(np.uint8, st.integers(1, 300), elements=st.integers(0, 40)),
)


@given(y=labels_1d, data=st.data())
def test_balanced_equals_sklearn(y, data):
    close(list(kx.class_weights(y).values()), list(sk_balanced(y).values()))
    assert list(kx.class_weights(y)) == np.unique(y).tolist()
    sw = data.draw(hnp.arrays(np.float64, len(y), elements=st.floats(0.1, 10)))
    close(list(kx.class_weights(y, sample_weight=sw).values()), list(sk_balanced(y, sw).values()))
    close(kx.sample_weights(y), compute_sample_weight("balanced", y))


@given(y=st.lists(st.sampled_from(["cat", "dog", "emu", "yak"]), min_size=1, max_size=100))
def test_balanced_string_labels_equal_sklearn(y):
    assert kx.class_weights(y) == pytest.approx(sk_balanced(y), rel=RTOL)
    close(kx.sample_weights(y), compute_sample_weight("balanced", np.asarray(y)))


@given(
    y=hnp.arrays(np.int64, st.tuples(st.integers(1, 60), st.integers(2, 4)),
                 elements=st.integers(-3, 6))
)
def test_multi_output_sample_weights_equal_sklearn(y):
    y[0, 0] = -3  # values outside [0, 1]: multi-output columns, not multi-label/one-hot
    close(kx.sample_weights(y), compute_sample_weight("balanced", y))


@given(y=labels_1d, method=st.sampled_from(kx_weights.METHODS))
def test_methods_invariants(y, method):
    classes, counts = np.unique(y, return_counts=True)
    w = np.array(list(kx.class_weights(y, method).values()))
    close(w, reference(counts, method))
    # rarer classes weigh more (ties only for equal counts)
    order = np.argsort(counts, kind="stable")
    assert np.all(np.diff(w[order]) <= 1e-9 * w.max())
    if method == "balanced":
        close(np.dot(w, counts), len(y))
    ws = np.array(list(kx.class_weights(y, method, normalize="samples").values()))
    close(np.dot(ws, counts), len(y))
    wm = np.array(list(kx.class_weights(y, method, normalize="mean").values()))
    close(wm.mean(), 1.0)
    wp = np.array(list(kx.class_weights(y, method, power=0.5).values()))
    close(wp, np.sqrt(reference(counts, method)))


def test_effective_number_beta():
    y = np.repeat([0, 1, 2], [1000, 100, 10])
    for beta in (0.0, 0.9, 0.99, 0.9999):
        w = list(kx.class_weights(y, "effective_number", beta=beta).values())
        close(w, reference([1000, 100, 10], "effective_number", beta))
    # beta -> 0 gives uniform weights, beta -> 1 approaches inverse frequency
    assert kx.class_weights(y, "effective_number", beta=0.0) == {0: 1.0, 1: 1.0, 2: 1.0}
    w = np.array(list(kx.class_weights(y, "effective_number", beta=1 - 1e-9).values()))
    np.testing.assert_allclose(w / w[0], [1.0, 10.0, 100.0], rtol=1e-4)


# --------------------------------------------------------------- label forms


def test_column_vector_bool_float_and_tensor_labels():
    y = np.asarray([0, 1, 1, 1, 2, 2])
    expected = sk_balanced(y)
    assert kx.class_weights(y[:, None]) == expected
    assert kx.class_weights(y.astype(np.float32)) == expected
    assert all(type(k) is int for k in kx.class_weights(y.astype(np.float32)))
    assert kx.class_weights(np.asarray([True, False, False])) == {0: 0.75, 1: 1.5}
    close(kx.sample_weights(y[:, None]), compute_sample_weight("balanced", y))
    non_integer = np.asarray([0.5, 0.5, 1.5])
    assert kx.class_weights(non_integer) == sk_balanced(non_integer)
    tensor = keras.ops.convert_to_tensor(y)  # a tensor of the current backend
    assert kx.class_weights(tensor) == expected
    close(kx.sample_weights(tensor), compute_sample_weight("balanced", y))


def test_one_hot_rows_equal_argmax():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 200)
    for dtype in ("float32", "int32", "bool"):
        one_hot = np.eye(5, dtype=dtype)[y]
        assert kx.class_weights(one_hot) == kx.class_weights(y)
        close(kx.sample_weights(one_hot), compute_sample_weight("balanced", y))


def test_probability_rows_equal_argmax(small_chunks):
    rng = np.random.default_rng(1)
    p = rng.random((100, 4)).astype("float16")
    p = (p / p.sum(-1, keepdims=True)).astype("float16")
    y = np.argmax(p, -1)
    assert kx.class_weights(p) == kx.class_weights(y)
    masks = rng.random((3, 6, 5, 4))
    masks /= masks.sum(-1, keepdims=True)
    assert kx.class_weights(masks) == kx.class_weights(masks.argmax(-1))
    assert kx.sample_weights(masks).shape == (3, 6, 5)


def test_masks_count_every_element(small_chunks):
    for shape in [(4, 7, 9), (2, 5, 6, 3), (4, 7, 9, 1)]:
        check_mask(shape)


def check_mask(shape):
    rng = np.random.default_rng(len(shape))
    y = rng.integers(-1, 4, shape)
    flat = y.reshape(-1)
    assert kx.class_weights(y) == pytest.approx(sk_balanced(flat), rel=RTOL)
    sw = rng.random(shape[0])
    per_element = np.repeat(sw, flat.size // shape[0])
    assert kx.class_weights(y, sample_weight=sw) == pytest.approx(
        sk_balanced(flat, per_element), rel=RTOL
    )
    out = kx.sample_weights(y)
    expected_shape = shape[:-1] if shape[-1] == 1 else shape
    assert out.shape == expected_shape
    close(out.reshape(-1), compute_sample_weight("balanced", flat))
    pixel_sw = rng.random(expected_shape)
    cw = kx.class_weights(y, sample_weight=pixel_sw)
    assert cw == pytest.approx(sk_balanced(flat, pixel_sw.reshape(-1)), rel=RTOL)


def test_sequence_labels_2d_are_counted_per_element():
    y = np.asarray([[0, 2, 2], [3, 2, 0]])
    assert kx.class_weights(y) == sk_balanced(y.reshape(-1))
    # sample_weights follows scikit-learn's multi-output reading of 2-D arrays by default
    close(kx.sample_weights(y), compute_sample_weight("balanced", y))
    out = kx.sample_weights(y, y_format="sparse")
    close(out.reshape(-1), compute_sample_weight("balanced", y.reshape(-1)))


def test_multi_label_pos_weight(small_chunks):
    rng = np.random.default_rng(3)
    y = (rng.random((300, 4)) < [0.05, 0.3, 0.5, 0.9]).astype("float32")
    y[:, 3] = 1  # never negative: nothing to balance
    pos = y.sum(0, dtype=np.float64)
    neg = len(y) - pos
    cw = kx.class_weights(y)
    close([cw[j] for j in range(3)], neg[:3] / pos[:3])
    assert cw[3] == 1.0
    sq = kx.class_weights(y, "sqrt_inverse")
    close([sq[j] for j in range(3)], np.sqrt(neg[:3] / pos[:3]))
    sw = rng.random(300)
    cw = kx.class_weights(y, sample_weight=sw)
    wpos = sw @ y.astype(np.float64)
    close([cw[j] for j in range(3)], (sw.sum() - wpos[:3]) / wpos[:3])
    # the ratio is torch-style `pos_weight` for keras' binary cross-entropy inputs
    assert kx.class_weights(y, y_format="multi_label") == kx.class_weights(y)


def test_ambiguous_binary_masks_raise_and_y_format_resolves():
    y = np.asarray([[[0, 1, 1], [0, 0, 0]], [[1, 1, 0], [0, 0, 1]]])
    with pytest.raises(ValueError, match="Pass y_format='sparse' or y_format='multi_label'"):
        kx.class_weights(y)
    assert kx.class_weights(y, y_format="sparse") == sk_balanced(y.reshape(-1))
    cw = kx.class_weights(y, y_format="multi_label")
    close([cw[0], cw[1], cw[2]], [3.0, 1.0, 1.0])
    # one-hot rows need no y_format, and a 2-D 0/1 multi-label matrix follows scikit-learn
    assert kx.class_weights(np.eye(3)[[0, 1, 1]]) == sk_balanced([0, 1, 1])


def test_dict_of_targets():
    y = {"a": np.asarray([0, 1, 1]), "b": np.eye(2)[[0, 0, 1]], "c": ["x", "y", "y"]}
    cw = kx.class_weights(y)
    assert cw == {"a": {0: 1.5, 1: 0.75}, "b": {0: 0.75, 1: 1.5}, "c": {"x": 1.5, "y": 0.75}}
    sw = kx.sample_weights(y, {"a": "balanced", "b": {1: 3.0}})
    close(sw["a"], [1.5, 0.75, 0.75])
    close(sw["b"], [1, 1, 3])
    close(sw["c"], [1, 1, 1])
    out = kx.sample_weights(y, sample_weight={"a": np.asarray([1.0, 2.0, 0.0])})
    w = kx.class_weights(y["a"], sample_weight=[1.0, 2.0, 0.0])
    close(out["a"], [w[0] * 1.0, w[1] * 2.0, 0.0])
    cw = kx.class_weights(y, classes={"a": [1, 0]})
    assert list(cw["a"]) == [1, 0]


def test_sample_weights_with_sample_weight_preserve_total():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 3, 100)
    sw = rng.random(100)
    out = kx.sample_weights(y, sample_weight=sw)
    cw = kx.class_weights(y, sample_weight=sw)
    close(out, sw * np.asarray([cw[c] for c in y]))
    close(out.sum(), sw.sum())


def test_sample_weights_classes_must_have_weights():
    with pytest.raises(ValueError, match=r"classes \[2\] of `classes` have no weight"):
        kx.sample_weights([0, 1, 1], {0: 1.0, 1: 2.0}, classes=[0, 1, 2])
    close(kx.sample_weights([0, 1, 1], {0: 1.0, 1: 2.0, 2: 5.0}, classes=[0, 1, 2]), [1, 2, 2])


def test_zero_weight_class_counts_as_absent():
    y = np.asarray([0, 0, 1, 2])
    sw = np.asarray([1.0, 1.0, 0.0, 1.0])
    assert kx.class_weights(y, sample_weight=sw) == sk_balanced([0, 0, 2])
    out = kx.sample_weights(y, sample_weight=sw)
    assert out[2] == 0.0 and np.all(np.isfinite(out))


def test_chunked_counting_equals_unchunked(small_chunks):
    rng = np.random.default_rng(5)
    y = rng.integers(-4, 9, (50, 3, 1))
    sw = rng.random(50)
    flat = y.reshape(-1)
    assert kx.class_weights(y, sample_weight=sw) == pytest.approx(
        sk_balanced(flat, np.repeat(sw, 3)), rel=RTOL
    )
    one_hot = np.eye(6)[rng.integers(0, 6, 50)]
    assert kx.class_weights(one_hot) == kx.class_weights(one_hot.argmax(-1))


def test_labels_missing_from_the_sample_are_found(small_chunks):
    rng = np.random.default_rng(8)
    y = rng.choice(["ant", "bee", "cow", "dog", "eel"], 200, p=[0.6, 0.3, 0.07, 0.02, 0.01])
    y[-1] = "zebra"  # only in the last chunk
    sw = rng.random(200)
    assert kx.class_weights(y, sample_weight=sw) == pytest.approx(sk_balanced(y, sw), rel=RTOL)
    close(kx.sample_weights(y), compute_sample_weight("balanced", y))
    floats = rng.choice([0.5, 1.5, 2.5], 100)
    assert kx.class_weights(floats) == pytest.approx(sk_balanced(floats), rel=RTOL)


def test_wide_label_range_skips_bincount(small_chunks):
    y = np.asarray([10**12, 5, 5, -(10**12)])
    assert kx.class_weights(y) == sk_balanced(y)
    close(kx.sample_weights(y), compute_sample_weight("balanced", y))
    y = np.concatenate([np.arange(30) % 4, [10**9], np.arange(10) % 3])  # found in chunk 5
    assert kx.class_weights(y) == pytest.approx(sk_balanced(y), rel=RTOL)


def test_memory_stays_below_one_extra_label_array():
    y = np.random.default_rng(6).integers(0, 10, 8_000_000)  # int64, 64 MB
    tracemalloc.start()
    try:
        kx.class_weights(y)
        _, peak_cw = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        kx.class_weights(np.eye(10, dtype=np.float32)[y[:200_000]])
        tracemalloc.reset_peak()
        out = kx.sample_weights(y)
        _, peak_sw = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak_cw < y.nbytes / 4  # chunks only: no copy of y
    assert peak_sw < out.nbytes + y.nbytes / 4  # the result plus chunks


# --------------------------------------------------------------- bad input


BAD_INPUT = [
        (lambda: kx.class_weights([]), ValueError, "at least one label"),
        (lambda: kx.class_weights(3), ValueError, "Received a scalar"),
        (lambda: kx.class_weights([0.0, np.nan]), ValueError, "NaN or inf"),
        (lambda: kx.class_weights([0.0, np.inf, 1.0]), ValueError, "NaN or inf"),
        (lambda: kx.class_weights(np.asarray([[0.0, np.nan], [1.0, 0.0]])), ValueError, "NaN"),
        (lambda: kx.class_weights([0, 1], "focal"), ValueError,
         r"unknown `method`. Expected one of \['balanced', 'inverse', 'sqrt_inverse', "
         r"'effective_number', 'median_frequency'\]. Received: method='focal'"),
        (lambda: kx.class_weights([0, 1], sample_weight=[1.0]), ValueError,
         r"`sample_weight` of shape \(2,\).*Received shape \(1,\)"),
        (lambda: kx.class_weights([0, 1], sample_weight=[1.0, -1.0]), ValueError,
         "expected `sample_weight` >= 0"),
        (lambda: kx.class_weights([0, 1], sample_weight=[1.0, np.nan]), ValueError, "NaN"),
        (lambda: kx.class_weights({"a": [0, 1], "b": [0, 1, 1]}), ValueError,
         r"same number of samples. Received lengths \{'a': 2, 'b': 3\}"),
        (lambda: kx.class_weights({"a": [0, 1]}, sample_weight={"b": [1, 1]}), ValueError,
         "keyed by target name"),
        (lambda: kx.sample_weights({"a": [0, 1]}, {0: 1.0}), ValueError,
         r"keyed by target name \(\['a'\]\)"),
        (lambda: kx.class_weights([0, 1], beta=1.0), ValueError, r"`beta` in \[0, 1\)"),
        (lambda: kx.class_weights([0, 1], normalize="sum"), ValueError, "`normalize`"),
        (lambda: kx.class_weights([0, 1], y_format="dense"), ValueError, "`y_format`"),
        (lambda: kx.class_weights([0, 1], classes=[0, 0, 1]), ValueError, "duplicates"),
        (lambda: kx.class_weights([[0.2, 0.3], [0.1, 0.1]]), ValueError,
         "neither 0/1 labels nor one-hot"),
        (lambda: kx.class_weights([[0, 2], [1, 1]], y_format="multi_label"), ValueError,
         "needs 0/1 values"),
        (lambda: kx.class_weights([[0, 1], [1, 1]], classes=[0, 1]), ValueError,
         "does not apply to multi-label"),
        (lambda: kx.sample_weights([0, 1], {0: -1.0}), ValueError, "finite number >= 0"),
        (lambda: kx.sample_weights([0, 1], 2.0), TypeError, "expected `class_weight`"),
        (lambda: kx.sample_weights([0, 1], [{0: 1.0}]), ValueError, "needs multi-output"),
        (lambda: kx.class_weights(np.asarray([0, "a", 1.5], dtype=object)), TypeError,
         "labels of one comparable type"),
]


def test_bad_input():
    for call, error, match in BAD_INPUT:
        with pytest.raises(error, match=match):
            call()


# --------------------------------------------------------------- with Keras


def test_keras_fit_with_class_weights():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (rng.random(64) < 0.2).astype("int32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    cw = kx.class_weights(y)
    history = model.fit(x, y, class_weight=cw, epochs=1, batch_size=32, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    # the same weights as per-sample weights give the same loss as Keras' class_weight
    loss_cw = model.evaluate(x, y, sample_weight=kx.sample_weights(y), verbose=0)
    loss_sw = model.evaluate(x, y, sample_weight=np.asarray([cw[c] for c in y]), verbose=0)
    np.testing.assert_allclose(loss_cw, loss_sw, rtol=1e-6)
    keras.backend.clear_session()
