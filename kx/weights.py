"""Class and sample weights from labels of any form: sparse, one-hot, multi-label, masks, dicts.

Labels are data, not tensors of a graph, so everything here is NumPy on the host and runs the
same whatever the Keras backend. Integer labels are counted with `np.bincount` in chunks of about
a million elements: one pass, and no temporary larger than a chunk, whatever the size of `y`.
Strings, non-integer floats and other labels are coded by a binary search among the distinct
labels (found on a sample, completed as chunks bring new ones), which avoids sorting `y`.

How `y` is read (`y_format=None` detects it; pass `y_format` to say it):

- `"sparse"`: one label per element (integers, bools, strings, integer-valued floats). Every
  element of `y` counts, whatever its rank (a segmentation mask `(n, H, W)` counts every pixel);
  a trailing axis of size 1 (a column vector, a mask `(n, H, W, 1)`) is dropped.
- `"one_hot"`: classes along the last axis; one-hot or probability rows, read by `argmax`.
- `"multi_label"`: 0/1 indicators along the last axis, several may be 1 in a row.
- `"multi_output"` (`sample_weights` only, as scikit-learn): a 2-D `(n, n_outputs)` array whose
  columns are separate sparse targets; sample weights are the product over the columns.

Detection, for `y` with at least 2 axes and a last axis longer than 1 (anything else is
`"sparse"`): strings and labels outside `[0, 1]` are `"sparse"` masks in `class_weights`
(`"multi_output"` columns in `sample_weights` when `y` is 2-D, as scikit-learn);
values in `[0, 1]` whose rows all sum to 1 are `"one_hot"`; other 0/1 values are
`"multi_label"` when `y` is 2-D (scikit-learn's rule) and ambiguous with 3 or more axes (a binary
mask `(n, H, W)` or multi-label rows `(n, T, labels)`), which raises and asks for `y_format`.
"""

import numpy as np

from kx._class_weight import check_dict

__all__ = ["class_weights", "sample_weights"]

METHODS = ("balanced", "inverse", "sqrt_inverse", "effective_number", "median_frequency")
Y_FORMATS = ("sparse", "one_hot", "multi_label", "multi_output")
NORMALIZATIONS = (None, "mean", "samples")

_CHUNK = 1 << 20  # elements per step over y: temporaries stay a few MiB whatever y's size.
_SAMPLE = 1 << 16  # labels sampled to find the distinct non-integer labels before counting
_ONE_HOT_ATOL = 1e-3  # rows of float16 softmax outputs sum to 1 only within ~1e-3.


def class_weights(
    y,
    method="balanced",
    *,
    classes=None,
    sample_weight=None,
    beta=0.999,
    power=1.0,
    normalize=None,
    y_format=None,
    absent_weight=None,
):
    """Weights per class that counter class imbalance, as a dict `{class: weight}`.

    With `method="balanced"` the weights equal scikit-learn's
    `compute_class_weight("balanced", classes=np.unique(y), y=y)`, so that every class carries the
    same total weight and the total over all samples is unchanged.

    Formula (for a class `c` with (weighted) count `n_c`, `N = sum(n_c)`, `K` classes present):

    ```
    balanced:          N / (K * n_c)
    inverse:           N / n_c
    sqrt_inverse:      sqrt(N / n_c)
    effective_number:  (1 - beta) / (1 - beta ** n_c)   (Cui et al., 2019), then mean 1
    median_frequency:  median(n) / n_c                  (Eigen & Fergus, 2015)
    ```

    (`median_frequency` takes each class's share of all elements of `y`, for 1-D labels and
    masks alike; Eigen & Fergus divide by the pixels of only the images where the class occurs.)

    each raised to `power`, then rescaled by `normalize`. For `"multi_label"` labels, each label
    is a binary problem (negatives, positives) and its weight is the ratio of the positive to the
    negative weight of that problem: the `pos_weight` of a binary cross-entropy (`n_neg / n_pos`
    for `"balanced"` and `"inverse"`). A label that is never positive, or never negative, gets 1.

    Args:
        y: labels: a NumPy array, list, tensor or pandas object of integer, bool or string
            labels, of any rank (every element counts); a column vector; one-hot or probability
            rows; a multi-label 0/1 matrix; or a dict of such targets, which returns a dict of
            dicts. See the module docstring for how the form is detected.
        method: one of `"balanced"`, `"inverse"`, `"sqrt_inverse"`, `"effective_number"`,
            `"median_frequency"`. Defaults to `"balanced"`.
        classes: the classes to return, in order. Defaults to `None`: the classes present in `y`,
            sorted. Every class of `y` must be listed. A listed class absent from `y` raises
            `ValueError`, as in scikit-learn, unless `absent_weight` gives its weight. With a
            dict `y`, a dict keyed by target name.
        sample_weight: per-sample weights, shape `(n,)` or any prefix of the labels' shape (per
            pixel, say); counts become weighted sums, as in scikit-learn. A class whose samples
            all weigh 0 counts as absent. With a dict `y`, one array for all targets or a dict.
            Defaults to `None`.
        beta: `"effective_number"`'s beta, in `[0, 1)`. Defaults to `0.999`.
        power: exponent applied to every weight before normalisation (0.5 tempers, 0 gives
            uniform weights). Defaults to `1.0`.
        normalize: `None` keeps each method's scale (the formulas above); `"mean"` rescales the
            weights of the classes present to mean 1; `"samples"` rescales them so that the total
            weight of the samples equals `N` (`sum(w[c] * n_c) == N`, which `"balanced"` already
            satisfies). Not used for multi-label labels (their weights are ratios). Defaults to
            `None`.
        y_format: `None` (detect), `"sparse"`, `"one_hot"` or `"multi_label"`. With a dict `y`,
            a dict keyed by target name is allowed. Defaults to `None`.
        absent_weight: the weight of classes listed in `classes` but absent from `y`. Defaults
            to `None` (such a class raises `ValueError`).

    Returns:
        A dict `{class: weight}` of Python scalars: `int` keys for integer, bool (0 and 1) and
        integer-valued float labels and for one-hot/multi-label column indices, `str` keys for
        strings; `float` values. A dict of such dicts for a dict `y`.

    Example:

    >>> import numpy as np, kx
    >>> kx.class_weights([0, 0, 0, 1])
    {0: 0.6666666666666666, 1: 2.0}
    >>> kx.class_weights(np.eye(3)[[0, 0, 1, 2]])  # one-hot rows
    {0: 0.6666666666666666, 1: 1.3333333333333333, 2: 1.3333333333333333}
    >>> kx.class_weights(["cat", "dog", "dog", "dog"], method="inverse")
    {'cat': 4.0, 'dog': 1.3333333333333333}
    >>> kx.class_weights([[1, 0], [1, 1], [0, 0], [0, 0]])  # multi-label: pos_weight per label
    {0: 1.0, 1: 3.0}
    """
    if isinstance(y, dict):
        return _per_target(
            y, sample_weight, "class_weights",
            lambda name, yk, swk: class_weights(
                yk, method, classes=_pick(classes, name, y, "classes"), sample_weight=swk,
                beta=beta, power=power, normalize=normalize,
                y_format=_pick(y_format, name, y, "y_format"), absent_weight=absent_weight,
            ),
        )
    _check_options(method, beta, power, normalize, absent_weight)
    y = _as_labels(y, "y")
    fmt = _read_format(y, y_format, "class_weights")
    if fmt == "multi_label":
        if classes is not None:
            raise ValueError(
                "class_weights: `classes` does not apply to multi-label `y` (its labels are the "
                f"columns 0..{y.shape[-1] - 1}). Received: classes={classes!r}"
            )
        return _multi_label_weights(y, sample_weight, method, beta, power)
    keys, counts = _count(y, fmt, sample_weight, rows_checked=y_format is None)
    return _finish(keys, counts, method, classes, beta, power, normalize, absent_weight)


def sample_weights(
    y, class_weight="balanced", *, sample_weight=None, classes=None, y_format=None, **options
):
    """One weight per sample (or per pixel) from class weights, as a NumPy float64 array.

    Equals scikit-learn's `compute_sample_weight(class_weight, y)` for 1-D labels, column
    vectors and 2-D multi-output or multi-label arrays (the product of the columns' weights).
    One-hot rows are read by `argmax` (scikit-learn would treat each column as an output), and
    sparse masks of 3 or more axes get one weight per element.

    Args:
        y: labels in any form `class_weights` reads, or a dict of targets (returns a dict).
        class_weight: a method name of `class_weights` (`"balanced"`, ...), a dict
            `{class: weight}` (classes it leaves out weigh 1, as in scikit-learn; a dict whose
            keys are all foreign to `y` raises), a list of such dicts or names, one per column of
            multi-output `y`, or `None` (all ones). With a dict `y`: one of these for every
            target, or a dict keyed by target name (targets left out weigh 1).
        sample_weight: per-sample weights, shape `(n,)` or a prefix of the labels' shape. They
            weigh the class counts (as in `class_weights`) and multiply the result. With a dict
            `y`, one array or a dict keyed by target name. Defaults to `None`.
        classes: as in `class_weights`; with a dict `class_weight`, every listed class must have
            a weight in it. Defaults to `None`.
        y_format: as in `class_weights`, plus `"multi_output"`. Defaults to `None` (detect).
        **options: passed to `class_weights` when `class_weight` is a method name (`beta`,
            `power`, `normalize`, `absent_weight`).

    Returns:
        A float64 array: shape `(n,)` for 1-D, column-vector, one-hot, multi-label and
        multi-output labels; the labels' shape (without a trailing 1) for sparse masks, and
        `y.shape[:-1]` for one-hot masks. A dict of arrays for a dict `y`.

    Example:

    >>> import kx
    >>> kx.sample_weights([1, 1, 1, 2])
    array([0.66666667, 0.66666667, 0.66666667, 2.        ])
    >>> kx.sample_weights([[1, 0], [1, 0], [2, 1], [2, 1]], [{1: 2.0}, {1: 3.0}])
    array([2., 2., 3., 3.])
    """
    if isinstance(y, dict):
        if isinstance(class_weight, dict):
            foreign = [k for k in class_weight if k not in y]
            if foreign:
                raise ValueError(
                    "sample_weights: with a dict of targets, a dict `class_weight` must be keyed "
                    f"by target name ({sorted(y)}). Received keys that are not targets: {foreign}"
                )
        return _per_target(
            y, sample_weight, "sample_weights",
            lambda name, yk, swk: sample_weights(
                yk,
                class_weight.get(name) if isinstance(class_weight, dict) else class_weight,
                sample_weight=swk, classes=_pick(classes, name, y, "classes"),
                y_format=_pick(y_format, name, y, "y_format"), **options,
            ),
        )
    y = _as_labels(y, "y")
    fmt = _read_format(y, y_format, "sample_weights")
    if fmt in ("multi_output", "multi_label"):
        if y.ndim != 2:
            raise ValueError(
                f"sample_weights: {fmt!r} `y` must be 2-D (n, n_outputs). Received shape "
                f"{y.shape}"
            )
        sw = _check_sample_weight(sample_weight, y.shape[:1], "sample_weights")
        n_out = y.shape[1]
        if isinstance(class_weight, dict):
            raise ValueError(
                "sample_weights: for multi-output `y`, `class_weight` should be a list of dicts "
                "(one per column), a method name such as 'balanced', or None. Received a dict "
                f"for y of shape {y.shape}"
            )
        if isinstance(class_weight, (list, tuple)):
            if len(class_weight) != n_out:
                raise ValueError(
                    "sample_weights: for multi-output `y`, `class_weight` must have one entry per "
                    f"output. Got {len(class_weight)} element(s) while having {n_out} outputs"
                )
            per_column = list(class_weight)
        else:
            per_column = [class_weight] * n_out
        out = np.ones(y.shape[0])
        for k in range(n_out):
            col = y[:, k]
            out *= _expand(col, "sparse", per_column[k], sw, classes, options)
    else:
        if isinstance(class_weight, (list, tuple)):
            raise ValueError(
                "sample_weights: a list of class weights needs multi-output `y` (n, n_outputs); "
                f"`y` was read as {fmt!r} with shape {y.shape}. Pass a dict or a method name."
            )
        if fmt == "one_hot":  # argmax once, then as sparse labels (an intp per row: < y)
            y, fmt = _one_hot_labels(y, rows_checked=y_format is None), "sparse"
        labels_shape = _labels_shape(y, fmt)
        sw = _check_sample_weight(sample_weight, labels_shape, "sample_weights")
        out = _expand(y, fmt, class_weight, sw, classes, options)
    if sw is not None:
        out *= _broadcast_prefix(sw, out.shape)
    return out


# ----------------------------------------------------------------------------- input checks


def _check_options(method, beta, power, normalize, absent_weight):
    if method not in METHODS:
        raise ValueError(
            f"class_weights: unknown `method`. Expected one of {list(METHODS)}. "
            f"Received: method={method!r}"
        )
    if not (isinstance(beta, (int, float, np.floating)) and 0.0 <= beta < 1.0):
        raise ValueError(f"class_weights: expected `beta` in [0, 1). Received: beta={beta!r}")
    if not (isinstance(power, (int, float, np.number)) and np.isfinite(power)):
        raise ValueError(
            f"class_weights: expected `power` to be a finite number. Received: power={power!r}"
        )
    if normalize not in NORMALIZATIONS:
        raise ValueError(
            f"class_weights: expected `normalize` to be one of {list(NORMALIZATIONS)}. "
            f"Received: normalize={normalize!r}"
        )
    if absent_weight is not None and not (
        isinstance(absent_weight, (int, float, np.number))
        and np.isfinite(absent_weight)
        and absent_weight >= 0
    ):
        raise ValueError(
            "class_weights: expected `absent_weight` to be None or a finite number >= 0. "
            f"Received: absent_weight={absent_weight!r}"
        )


def _as_labels(y, arg):
    if isinstance(y, np.ndarray):
        a = y
    else:
        if hasattr(y, "detach"):  # torch tensors that require grad refuse np.asarray
            y = y.detach().cpu()
        elif hasattr(y, "toarray"):  # scipy sparse matrices
            y = y.toarray()
        a = np.asarray(y)
        if a.dtype.kind in "US" and _mixes_kinds(y):
            raise TypeError(
                f"Expected `{arg}` to hold labels of one kind. Received numbers and strings "
                "mixed (NumPy would turn the numbers into strings, so class 1 would become '1')."
            )
    if a.ndim == 0:
        raise ValueError(
            f"Expected `{arg}` to hold one label per sample (at least 1-D). Received a scalar: "
            f"{arg}={a!r}"
        )
    if a.size == 0:
        raise ValueError(f"Expected `{arg}` to hold at least one label. Received an empty array "
                         f"of shape {a.shape}")
    if a.dtype.kind == "c":
        raise TypeError(f"Expected `{arg}` to hold real labels. Received dtype {a.dtype}")
    return a


def _mixes_kinds(y):
    flat = y if not isinstance(y, (list, tuple)) else _flatten(y)
    kinds = {isinstance(v, (str, bytes, np.str_, np.bytes_)) for v in flat}
    return len(kinds) > 1


def _flatten(y):
    for v in y:
        if isinstance(v, (list, tuple)):
            yield from _flatten(v)
        else:
            yield v


def _check_sample_weight(sample_weight, labels_shape, owner):
    if sample_weight is None:
        return None
    sw = _as_labels(sample_weight, "sample_weight")
    if sw.dtype.kind not in "biuf":
        raise TypeError(
            f"{owner}: expected `sample_weight` to be numeric. Received dtype {sw.dtype}"
        )
    if sw.ndim > len(labels_shape) or sw.shape != tuple(labels_shape[: sw.ndim]):
        raise ValueError(
            f"{owner}: expected `sample_weight` of shape ({labels_shape[0]},) (one weight per "
            f"sample) or a prefix of the labels' shape {tuple(labels_shape)}. Received shape "
            f"{sw.shape}"
        )
    sw = sw.astype(np.float64, copy=False)
    if not np.all(np.isfinite(sw)):
        raise ValueError(f"{owner}: `sample_weight` holds NaN or inf values.")
    if np.any(sw < 0):
        raise ValueError(
            f"{owner}: expected `sample_weight` >= 0. Received a minimum of {sw.min()!r}"
        )
    return sw


def _per_target(y, sample_weight, owner, fn):
    if not y:
        raise ValueError(f"{owner}: received an empty dict of targets.")
    lengths = {name: len(v) if hasattr(v, "__len__") else None for name, v in y.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(
            f"{owner}: every target of a dict `y` must have the same number of samples. "
            f"Received lengths {lengths}"
        )
    if isinstance(sample_weight, dict):
        foreign = [k for k in sample_weight if k not in y]
        if foreign:
            raise ValueError(
                f"{owner}: a dict `sample_weight` must be keyed by target name ({sorted(y)}). "
                f"Received keys that are not targets: {foreign}"
            )
    return {
        name: fn(
            name,
            yk,
            sample_weight.get(name) if isinstance(sample_weight, dict) else sample_weight,
        )
        for name, yk in y.items()
    }


def _pick(value, name, targets, arg):
    """The per-target entry of a dict `classes`/`y_format`; any other value is shared."""
    if isinstance(value, dict):
        foreign = [k for k in value if k not in targets]
        if foreign:
            raise ValueError(
                f"A dict `{arg}` must be keyed by target name ({sorted(targets)}). Received keys "
                f"that are not targets: {foreign}"
            )
        return value.get(name)
    return value


# ----------------------------------------------------------------------------- label forms


def _chunks(a):
    """Consecutive slices of `a` along axis 0 holding about `_CHUNK` elements each."""
    row = max(1, a.size // a.shape[0])
    step = max(1, _CHUNK // row)
    for start in range(0, a.shape[0], step):
        yield start, a[start : start + step]


def _minmax(a):
    """Min and max over `a`, checked finite, in one chunked pass."""
    lo, hi = None, None
    for _, c in _chunks(a):
        clo, chi = c.min(), c.max()
        lo = clo if lo is None else min(lo, clo)
        hi = chi if hi is None else max(hi, chi)
    if a.dtype.kind == "f" and not (np.isfinite(lo) and np.isfinite(hi)):
        raise ValueError("Expected finite labels in `y`. Received NaN or inf values.")
    return lo, hi


def _read_format(y, y_format, owner):
    allowed = Y_FORMATS if owner == "sample_weights" else Y_FORMATS[:3]
    if y_format is not None and y_format not in allowed:
        raise ValueError(
            f"{owner}: expected `y_format` to be None or one of {list(allowed)}. "
            f"Received: y_format={y_format!r}"
        )
    if y_format is not None:
        if y_format != "sparse" and (y.ndim < 2 or y.dtype.kind not in "biuf"):
            raise ValueError(
                f"{owner}: y_format={y_format!r} needs numeric `y` with a last axis of classes or "
                f"labels. Received shape {y.shape} and dtype {y.dtype}"
            )
        if y_format == "multi_label":
            lo, hi = _minmax(y)
            if lo < 0 or hi > 1 or not _all_binary(y):
                raise ValueError(
                    f"{owner}: y_format='multi_label' needs 0/1 values. Received values in "
                    f"[{lo}, {hi}]"
                )
        if y_format == "one_hot" and y.dtype.kind == "f":
            _minmax(y)  # NaN/inf check
        return y_format
    if y.ndim == 1 or y.shape[-1] == 1 or y.dtype.kind not in "biuf":
        sparse_2d = y.ndim == 2 and y.shape[-1] > 1
        return "multi_output" if owner == "sample_weights" and sparse_2d else "sparse"
    lo, hi = _minmax(y)
    if lo < 0 or hi > 1:
        return "multi_output" if owner == "sample_weights" and y.ndim == 2 else "sparse"
    if _rows_sum_to_one(y):
        return "one_hot"
    if _all_binary(y):
        if y.ndim == 2:
            return "multi_label"
        raise ValueError(
            f"{owner}: cannot tell how to read 0/1 labels of shape {y.shape} whose rows do not "
            "all sum to 1: a binary mask (one label per element) or multi-label indicators along "
            "the last axis. Pass y_format='sparse' or y_format='multi_label'."
        )
    raise ValueError(
        f"{owner}: cannot read `y` of shape {y.shape}: its values lie in [0, 1] but are neither "
        "0/1 labels nor one-hot/probability rows summing to 1 along the last axis. Pass "
        "`y_format` to say how to read it."
    )


def _rows_sum_to_one(y):
    # einsum sums short rows ~5x faster than `sum(axis=-1)`, single-threaded (a BLAS matvec is
    # faster on an idle machine but its threads stall on a busy one)
    ones = np.ones(y.shape[-1], np.float64 if y.dtype == np.float64 else np.float32)
    for _, c in _chunks(y):
        s = np.einsum("ij,j->i", c.reshape(-1, y.shape[-1]).astype(ones.dtype, copy=False), ones)
        if not np.all(np.abs(s - 1.0) <= _ONE_HOT_ATOL):
            return False
    return True


def _all_binary(y):
    if y.dtype.kind in "bu" or y.dtype.kind == "i":
        return True  # called once values are known to lie in [0, 1]
    return all(np.all((c == 0) | (c == 1)) for _, c in _chunks(y))


def _labels_shape(y, fmt):
    if fmt == "one_hot":
        return y.shape[:-1]
    if fmt == "sparse" and y.ndim > 1 and y.shape[-1] == 1:
        return y.shape[:-1]
    return y.shape


def _sparse_view(y):
    return y[..., 0] if y.ndim > 1 and y.shape[-1] == 1 else y


def _broadcast_prefix(sw, shape):
    return np.broadcast_to(sw.reshape(sw.shape + (1,) * (len(shape) - sw.ndim)), shape)


def _integer_chunks(labels, fmt, sw, rows_checked=False):
    """(start, int64-or-smaller chunk, flat weights) over integer-valued labels."""
    for start, c in _chunks(labels):
        if fmt == "one_hot":
            c = _argmax_rows(c, rows_checked)
        elif c.dtype.kind == "f":
            c = c.astype(np.int64)
        elif c.dtype.kind == "b":  # a bool array would index as a mask
            c = c.astype(np.uint8)
        w = None
        if sw is not None:
            w = _broadcast_prefix(sw[start : start + len(c)], c.shape).reshape(-1)
        yield start, c, w


def _argmax_rows(c, rows_checked):
    """`argmax(c, -1)`; faster for one-hot rows when `rows_checked` (values in [0, 1], rows
    summing to 1): then a row holding an exact 1 has its argmax there, and the position of that
    1 is the row's dot product with [0, 1, ..., C-1], computed far faster than NumPy's argmax
    along a short last axis."""
    if not rows_checked:
        return np.argmax(c, axis=-1)
    n_classes = c.shape[-1]
    rows = c.reshape(-1, n_classes)
    dtype = np.float64 if c.dtype == np.float64 else np.float32
    code = np.rint(
        np.einsum("ij,j->i", rows.astype(dtype, copy=False), np.arange(n_classes, dtype=dtype))
    )
    code = np.clip(code, 0, n_classes - 1).astype(np.intp)
    hit = rows[np.arange(len(rows)), code] == 1
    if not np.all(hit):
        if np.count_nonzero(hit) < len(hit) // 2:  # probability rows: plain argmax is cheaper
            return np.argmax(c, axis=-1)
        code[~hit] = np.argmax(rows[~hit], axis=-1)
    return code.reshape(c.shape[:-1])


def _one_hot_labels(y, rows_checked):
    """The argmax labels of one-hot or probability rows, as an intp array of `y.shape[:-1]`."""
    out = np.empty(y.shape[:-1], np.intp)
    for start, c in _chunks(y):
        out[start : start + len(c)] = _argmax_rows(c, rows_checked)
    return out


def _integer_range(labels, fmt):
    """(lo, hi) when the labels are integers in a range `bincount` can afford, else None."""
    if fmt == "one_hot":
        return 0, labels.shape[-1] - 1
    if labels.dtype.kind not in "biuf":
        return None
    lo, hi = _minmax(labels)
    if labels.dtype.kind == "f" and not all(
        np.all(c == np.floor(c)) for _, c in _chunks(labels)
    ):
        return None
    lo, hi = int(lo), int(hi)
    if hi - lo + 1 > max(4 * labels.size, 1 << 16):
        return None  # a few labels spread over a huge range: sorting is cheaper
    return lo, hi


# ----------------------------------------------------------------------------- counting


def _count(y, fmt, sample_weight, rows_checked=False):
    """Classes present in `y` (as Python scalars) and their (weighted) counts, float64."""
    labels = y if fmt == "one_hot" else _sparse_view(y)
    sw = _check_sample_weight(sample_weight, _labels_shape(y, fmt), "class_weights")
    found = None
    if fmt == "one_hot" or labels.dtype.kind in "biu":
        found = _bincount_one_pass(labels, fmt, sw, rows_checked)
    elif labels.dtype.kind == "f" and _integer_range(labels, fmt) is not None:  # NaN check too
        found = _bincount_one_pass(labels, fmt, sw, rows_checked)
    if found is not None:
        lo, counts = found
        present = np.flatnonzero(counts)
        return (present + lo).tolist(), counts[present]
    counts, seen_keys = np.zeros(0), None
    for start, c, codes, keys in _coded_chunks(labels):
        if len(keys) != len(counts):  # new labels in this chunk: re-align the counts so far
            grown = np.zeros(len(keys))
            if seen_keys is not None:
                grown[np.searchsorted(keys, seen_keys)] = counts
            counts, seen_keys = grown, keys
        w = None
        if sw is not None:
            w = _broadcast_prefix(sw[start : start + len(c)], c.shape).reshape(-1)
        counts += np.bincount(codes, weights=w, minlength=len(keys))
    present = np.flatnonzero(counts)
    return seen_keys[present].tolist(), counts[present]


def _bincount_one_pass(labels, fmt, sw, rows_checked):
    """`(lo, counts)` of integer-valued labels, `counts[i]` being the count of label `lo + i`.

    One pass over `y`: each chunk's range is read and the chunk counted while it is in cache,
    `counts` growing to cover new labels. `None` when the labels spread over a range too wide
    for `bincount` (a few huge ids); the caller then codes them by search.
    """
    limit = max(4 * labels.size, 1 << 16)
    lo, counts = 0, np.zeros(labels.shape[-1] if fmt == "one_hot" else 0)
    for _, c, w in _integer_chunks(labels, fmt, sw, rows_checked):
        flat = c.reshape(-1)
        c_lo, c_hi = int(flat.min()), int(flat.max())
        if not len(counts):
            lo = c_lo
        new_lo, new_hi = min(lo, c_lo), max(lo + len(counts) - 1, c_hi)
        if new_hi - new_lo + 1 > limit:
            return None
        if new_lo < lo or new_hi >= lo + len(counts):
            grown = np.zeros(new_hi - new_lo + 1)
            grown[lo - new_lo : lo - new_lo + len(counts)] = counts
            lo, counts = new_lo, grown
        if lo:  # in intp: int8 labels minus a negative minimum would wrap around
            flat = flat.astype(np.intp) - lo
        counts += np.bincount(flat, weights=w, minlength=len(counts))
    return lo, counts


def _coded_chunks(labels):
    """(start, chunk, codes, keys) for labels `bincount` cannot take (strings, non-integer
    floats, integers over a huge range): `codes` index `keys`, the sorted distinct labels seen
    so far.

    `keys` starts as the distinct labels of a sample of `y` and grows when a chunk holds
    others, so that one binary search per label replaces sorting all of `y`.
    """
    rows = max(1, _SAMPLE // max(1, labels.size // labels.shape[0]))
    keys = _unique(labels[:: max(1, labels.shape[0] // rows)].reshape(-1))
    for start, c in _chunks(labels):
        flat = c.reshape(-1)
        codes = _search(keys, flat)
        np.minimum(codes, len(keys) - 1, out=codes)
        known = keys[codes] == flat
        if not np.all(known):
            keys = _unique(np.concatenate([keys, flat[~known]]))
            codes = _search(keys, flat)
        yield start, c, codes, keys


def _unique(a):
    try:
        return np.unique(a)
    except TypeError as e:
        raise TypeError(
            f"Expected labels of one comparable type in `y`. Received dtype {a.dtype}: {e}"
        ) from e


def _search(keys, a):
    try:
        return np.searchsorted(keys, a)
    except TypeError as e:
        raise TypeError(
            f"Expected labels of one comparable type in `y`. Received dtype {a.dtype}: {e}"
        ) from e


def _method_weights(counts, method, beta, power):
    n = counts.sum()
    if method == "balanced":
        w = n / (len(counts) * counts)
    elif method == "inverse":
        w = n / counts
    elif method == "sqrt_inverse":
        w = np.sqrt(n / counts)
    elif method == "effective_number":
        w = (1.0 - beta) / -np.expm1(counts * np.log(beta)) if beta > 0 else np.ones_like(counts)
        w = w / w.mean()
    else:  # median_frequency
        w = np.median(counts) / counts
    if power != 1:
        w = w**power
    return w


def _finish(keys, counts, method, classes, beta, power, normalize, absent_weight):
    w = _method_weights(counts, method, beta, power)
    if normalize == "mean":
        w = w / w.mean()
    elif normalize == "samples":
        w = w * (counts.sum() / np.dot(w, counts))
    weights = dict(zip(keys, w.tolist()))
    if classes is None:
        return weights
    listed = np.asarray(classes).reshape(-1).tolist()
    if len(set(listed)) != len(listed):
        raise ValueError(f"class_weights: `classes` has duplicates. Received: classes={classes!r}")
    listed_set = set(listed)
    missing = [k for k in keys if k not in listed_set]
    if missing:
        raise ValueError(
            f"class_weights: `classes` should include all labels of `y`; {missing} are missing. "
            f"Received: classes={listed!r}"
        )
    absent = [c for c in listed if c not in weights]
    if absent and absent_weight is None:
        raise ValueError(
            f"class_weights: the classes {absent} of `classes` are absent from `y` (or all their "
            "samples weigh 0), so their weight is undefined (scikit-learn raises here too). Pass "
            "`absent_weight=` to give them one."
        )
    return {c: weights[c] if c in weights else float(absent_weight) for c in listed}


def _multi_label_weights(y, sample_weight, method, beta, power):
    sw = _check_sample_weight(sample_weight, y.shape, "class_weights")
    n_labels = y.shape[-1]
    pos = np.zeros(n_labels)
    total = np.zeros(n_labels)
    for start, c in _chunks(y):
        flat = c.reshape(-1, n_labels)
        if sw is None:
            pos += flat.sum(axis=0, dtype=np.float64)
            total += flat.shape[0]
        else:
            w = _broadcast_prefix(sw[start : start + len(c)], c.shape).reshape(-1, n_labels)
            pos += np.einsum("ij,ij->j", w, flat.astype(np.float64))
            total += w.sum(axis=0)
    out = {}
    for j in range(n_labels):
        neg = total[j] - pos[j]
        if pos[j] <= 0 or neg <= 0:
            out[j] = 1.0
            continue
        w_neg, w_pos = _method_weights(np.array([neg, pos[j]]), method, beta, power)
        out[j] = float(w_pos / w_neg)
    return out


# ----------------------------------------------------------------------------- sample weights


def _expand(y, fmt, class_weight, sw, classes, options):
    """Per-label weights for sparse or one-hot `y`, float64 of the labels' shape."""
    labels = y if fmt == "one_hot" else _sparse_view(y)
    if class_weight is None:
        return np.ones(_labels_shape(y, fmt))
    if isinstance(class_weight, str):
        table = class_weights(
            y, class_weight, classes=classes, sample_weight=sw, y_format=fmt, **options
        )
    elif isinstance(class_weight, dict):
        table = _check_dict(class_weight, y, fmt, classes)
    else:
        raise TypeError(
            "sample_weights: expected `class_weight` to be a method name, a dict {class: weight}, "
            f"a list of them (multi-output) or None. Received: class_weight={class_weight!r}"
        )
    out = np.empty(_labels_shape(y, fmt))
    rng = _integer_range(labels, fmt)
    if rng is not None:
        lo, hi = rng
        lookup = np.ones(hi - lo + 1)
        for k, v in table.items():
            if isinstance(k, (int, float, np.number)) and k == int(k) and lo <= k <= hi:
                lookup[int(k) - lo] = v
        for start, c, _ in _integer_chunks(labels, fmt, None):
            np.take(lookup, c.astype(np.intp) - lo if lo else c, out=out[start : start + len(c)],
                    mode="clip")  # indices are in range; "clip" writes to `out` unbuffered
        return out
    lookup = np.zeros(0)
    for start, c, codes, keys in _coded_chunks(labels):
        if len(lookup) != len(keys):
            lookup = np.array([table.get(k, 1.0) for k in keys.tolist()])
        out[start : start + len(c)] = lookup[codes].reshape(c.shape)
    return out


def _check_dict(class_weight, y, fmt, classes):
    keys, _ = _count(y, fmt, None)
    owner = "sample_weights: class_weight"
    check_dict(class_weight, owner, present=list(keys), classes=classes)
    if classes is not None:
        listed = np.asarray(classes).reshape(-1).tolist()
        missing = [c for c in listed if c not in class_weight]
        if missing:
            raise ValueError(
                f"{owner}: the classes {missing} of `classes` have no weight in `class_weight`. "
                f"Received keys {list(class_weight)}"
            )
    return class_weight
