"""Class weights: the one module that reads `class_weight` arguments, label forms and weight
tables.

`kx.CustomModel.fit`, the train step, `kx.DataGenerator` and `kx.sample_weights` call it and
nothing else, so the same dict gives the same weights or the same error through every entry
point. The rule for a dict `{class: weight}`:

- keys are class labels: integers (not bools), or strings where labels are strings (never in
  `fit`, whose labels are tensors); weights are finite numbers >= 0;
- classes left out weigh 1;
- where the labels are known, scikit-learn's rule: a dict may leave out classes of the labels or
  name classes that never occur in them, not both at once (that is a typo, like `{0: 1, 99: 2}`
  on labels 0..2). Where `classes` are given, every label must be one of them.

A table costs memory in the number of classes given, whatever their ids: small ids index a dense
vector (the fast path), large or sparse ids are found by binary search.

How labels are read (`label_form`): integer labels are class ids; float labels whose last axis
matches the output's (and is longer than 1) are one-hot or probability rows, read by argmax; any
other float labels hold class ids (a 0/1 mask is sparse, not multi-label).
"""

import numbers

import keras
import numpy as np
from keras import ops

from kx.backend import first_argmax, lookup

# A dense vector indexed by class id serves ids up to this multiple of the number of classes.
_DENSE_FACTOR = 4
_DENSE_MIN = 1024


# ----------------------------------------------------------------------------- the argument


def parse_fit_argument(class_weight, targets):
    """`fit`'s `class_weight` as `{target: dict | "balanced"}`.

    The key is `None` for one `{class: weight}` dict whose target is still to be found.

    Args:
        class_weight: `{class: weight}`, `{target: {class: weight} | "balanced"}` or
            `"balanced"`.
        targets: the targets the losses read, in order.
    """
    if isinstance(class_weight, str):
        if class_weight != "balanced":
            raise ValueError(
                "Expected `class_weight` to be a dict {class: weight}, a dict {target: {class: "
                "weight} or 'balanced'}, or 'balanced'. Received: "
                f"class_weight={class_weight!r}"
            )
        return {t: "balanced" for t in targets}
    if not isinstance(class_weight, dict):
        raise TypeError(
            "Expected `class_weight` to be a dict {class: weight}, a dict {target: {class: "
            "weight} or 'balanced'}, or 'balanced'. Received: class_weight of type "
            f"{type(class_weight).__name__}"
        )
    per_target = [isinstance(v, (dict, str)) for v in class_weight.values()]
    if class_weight and all(per_target):
        unknown = sorted(set(class_weight) - set(targets), key=str)
        if unknown:
            raise ValueError(
                f"`class_weight` names the targets {unknown}, but the losses read only "
                f"{list(targets)}. Expected keys among those."
            )
        for target, v in class_weight.items():
            if isinstance(v, str) and v != "balanced":
                raise ValueError(
                    f"class_weight[{target!r}]: expected a dict {{class: weight}} or 'balanced'. "
                    f"Received: {v!r}"
                )
        return dict(class_weight)
    if any(per_target):
        raise TypeError(
            "`class_weight` mixes per-target entries ({target: {class: weight}}) with "
            "{class: weight} entries. Use one form."
        )
    return {None: class_weight}


def check_dict(class_weight, owner, *, present=None, classes=None, integer_ids=False):
    """Validates a `{class: weight}` dict by the module's rule; returns it unchanged.

    Args:
        class_weight: the dict.
        owner: who asks, for messages (e.g. "class_weight for target 'label'").
        present: the distinct labels of the data, when known.
        classes: every valid class, when known (`classes=` of `kx.sample_weights`).
        integer_ids: whether keys must be non-negative integer ids (labels that are tensors).
    """
    if not isinstance(class_weight, dict):
        raise TypeError(
            f"{owner}: expected a dict {{class: weight}}. Received: {class_weight!r}"
        )
    kinds = set()
    for c, w in class_weight.items():
        if integer_ids and (
            isinstance(c, (bool, np.bool_)) or not isinstance(c, numbers.Integral) or c < 0
        ):
            raise ValueError(
                f"{owner}: class {c!r} is not a valid label; expected non-negative integer "
                f"class ids. Received: {_show(class_weight)}"
            )
        if isinstance(c, (bool, np.bool_)):
            kinds.add("bool")
        elif isinstance(c, numbers.Real):
            kinds.add("number")
        elif isinstance(c, str):
            kinds.add("str")
        else:
            kinds.add(type(c).__name__)
        if (
            isinstance(w, (bool, np.bool_))
            or not isinstance(w, numbers.Real)
            or not np.isfinite(w)
            or w < 0
        ):
            raise ValueError(
                f"{owner}: expected every weight to be a finite number >= 0. Received {w!r} for "
                f"class {c!r}"
            )
    if len(kinds) > 1 or not kinds <= {"number", "str"}:
        raise TypeError(
            f"{owner}: expected the keys to be class labels of one kind, numbers or strings. "
            f"Received keys {list(class_weight)}"
        )
    if classes is not None:
        listed = set(np.asarray(classes).reshape(-1).tolist())
        if present is not None:
            outside = sorted(set(present) - listed, key=str)
            if outside:
                raise ValueError(
                    f"{owner}: the labels hold the classes {outside}, which are not in `classes` "
                    f"{sorted(listed, key=str)}. Every label must be one of `classes`."
                )
        foreign = sorted((c for c in class_weight if c not in listed), key=str)
        if foreign:
            raise ValueError(
                f"{owner} names the classes {foreign}, which are not in `classes` "
                f"{sorted(listed, key=str)}."
            )
        return class_weight
    if present is not None:
        present = set(present)
        foreign = sorted((c for c in class_weight if c not in present), key=str)
        unweighted = sorted((c for c in present if c not in class_weight), key=str)
        if foreign and unweighted:
            raise ValueError(
                f"{owner} names the classes {foreign}, which never occur in the labels, and "
                f"leaves out the classes {unweighted}, which do. Expected keys among the classes "
                f"present, {sorted(present, key=str)} (classes left out weigh 1)."
            )
    return class_weight


def _show(d, limit=8):
    items = list(d.items())
    text = ", ".join(f"{k!r}: {v!r}" for k, v in items[:limit])
    return "{" + text + (", ..." if len(items) > limit else "") + "}"


# ----------------------------------------------------------------------------- labels


def label_form(labels, output_shape=None):
    """"sparse" (class ids) or "one_hot" (rows read by argmax), from dtype and static shapes.

    Works on NumPy arrays and tensors alike (symbolic ones too), so `fit` reads labels on the
    host exactly as the step reads them.

    Args:
        labels: the labels.
        output_shape: the shape of the model output the labels are paired with, or `None`.
    """
    dtype = keras.backend.standardize_dtype(labels.dtype)
    if not keras.backend.is_float_dtype(dtype):
        return "sparse"
    shape = tuple(labels.shape)
    if output_shape is not None:
        same_rank = len(shape) == len(output_shape)
        if same_rank and shape[-1] == output_shape[-1] and (output_shape[-1] or 0) > 1:
            return "one_hot"
        return "sparse"
    return "one_hot" if len(shape) >= 2 and (shape[-1] or 0) > 1 else "sparse"


def num_classes(output_shape):
    """The number of classes an output scores: its last axis, or 2 for one binary score."""
    if not output_shape:
        return None if output_shape is None else 2
    last = output_shape[-1]
    if last is None:
        return None
    return int(last) if last > 1 else 2


def class_ids_numpy(labels, form, owner):
    """Integer class ids of host labels (one per sample, or per element of a mask)."""
    labels = np.asarray(labels)
    if form == "one_hot":
        if not np.all(np.isfinite(labels)):
            raise ValueError(f"{owner}: the one-hot labels hold NaN or inf values.")
        return np.argmax(labels, axis=-1)
    if labels.ndim >= 2 and labels.shape[-1] == 1:
        labels = labels[..., 0]
    if labels.dtype.kind == "f":
        if not np.all(np.isfinite(labels)):
            raise ValueError(f"{owner}: the labels hold NaN or inf values.")
        if not np.all(labels == np.round(labels)):
            raise ValueError(
                f"{owner}: class weights need class labels, and these labels hold non-integer "
                "values (they are neither class ids nor one-hot rows of the output's width)."
            )
        return labels.astype(np.int64)
    if labels.dtype.kind == "b":
        return labels.astype(np.int64)
    if labels.dtype.kind not in "iu":
        raise TypeError(
            f"{owner}: class weights in fit need numeric class labels. Received dtype "
            f"{labels.dtype}"
        )
    return labels


def class_ids(labels, form):
    """Integer class ids of batch labels (tensors), as `class_ids_numpy` reads them."""
    if form == "one_hot":
        return first_argmax(labels)
    if len(labels.shape) >= 2 and labels.shape[-1] == 1:
        labels = ops.squeeze(labels, axis=-1)
    if not keras.backend.is_int_dtype(keras.backend.standardize_dtype(labels.dtype)):
        labels = ops.cast(labels, "int32")
    return labels


def is_class_labels(labels):
    """Host labels that can hold classes: integers or bools, one-hot rows, integral floats."""
    labels = np.asarray(labels)
    if labels.dtype.kind in "iub":
        return True
    if labels.dtype.kind != "f" or labels.size == 0:
        return False
    if labels.ndim >= 2 and labels.shape[-1] > 1:
        return bool(np.all((labels == 0) | (labels == 1)) and np.all(labels.sum(-1) == 1))
    return bool(np.all(labels == np.round(labels)) and labels.min() >= 0)


# ----------------------------------------------------------------------------- tables


class WeightTable:
    """The weights of a checked `{class: weight}` dict; classes left out weigh 1.

    Host lookups (`numpy`) take labels of any kind the dict's keys are (integers, strings);
    lookups inside a step (`tensor`) take integer class ids.

    Args:
        class_weight: a dict checked with `check_dict`.
    """

    def __init__(self, class_weight):
        keys = np.asarray(sorted(class_weight))
        if keys.dtype.kind in "iub":
            keys = keys.astype(np.int64)
        self.keys = keys
        self.weights = np.asarray([class_weight[k] for k in keys.tolist()], np.float32)
        top = int(keys[-1]) + 1 if len(keys) and keys.dtype.kind == "i" else 0
        self.dense = keys.dtype.kind == "i" and top <= max(_DENSE_FACTOR * len(keys), _DENSE_MIN)
        self._tensors = None

    def __eq__(self, other):
        return (
            isinstance(other, WeightTable)
            and np.array_equal(self.keys, other.keys)
            and np.array_equal(self.weights, other.weights)
        )

    def numpy(self, ids):
        """float32 weights of host class ids (any shape)."""
        if not len(self.keys):
            return np.ones(np.shape(ids), np.float32)
        pos = np.clip(np.searchsorted(self.keys, ids), 0, len(self.keys) - 1)
        return np.where(self.keys[pos] == ids, self.weights[pos], np.float32(1.0))

    def prepare(self):
        """Makes the backend constants `tensor` reads. Call it eagerly (outside any traced
        step): a TensorFlow constant made while tracing belongs to that one graph."""
        if self._tensors is None:
            if self.dense:
                top = int(self.keys[-1]) + 1 if len(self.keys) else 0
                table = np.ones(top + 1, np.float32)  # a last entry of 1 for other ids
                table[self.keys] = self.weights
                self._tensors = (ops.convert_to_tensor(table),)
            else:
                self._tensors = (
                    ops.convert_to_tensor(self.keys.astype(np.int32 if self.keys[-1] < 2**31
                                                           else np.int64)),
                    ops.convert_to_tensor(self.weights),
                )
        return self

    def tensor(self, ids):
        """float32 weights of class ids inside a step (`keras.ops`); see `prepare`."""
        self.prepare()
        if self.dense:
            return lookup(self._tensors[0], ids)
        keys, weights = self._tensors
        ids = ops.cast(ids, keys.dtype)
        pos = ops.minimum(ops.searchsorted(keys, ops.reshape(ids, (-1,))), len(self.keys) - 1)
        pos = ops.reshape(pos, ops.shape(ids))
        return ops.where(ops.take(keys, pos) == ids, ops.take(weights, pos), 1.0)


# ----------------------------------------------------------------------------- fit


class FitClassWeights:
    """`fit(class_weight=...)` resolved against a model: one table per class-weighted target.

    `fold` multiplies the class weights of a batch's labels into its sample weights, on the host
    (`numpy=True`, for array data, once per fit) or inside the step. Either way the result has
    the structure of `y`: one tensor for a plain `y` (what stock Keras gives a train step), a
    dict (or list) with one entry per target otherwise.

    Args:
        tables: `{target: WeightTable}`.
        output_shapes: `{target: shape of the output its loss reads}` (label forms).
    """

    def __init__(self, tables, output_shapes):
        self.tables = tables
        self.output_shapes = output_shapes

    def __eq__(self, other):
        return (
            isinstance(other, FitClassWeights)
            and self.tables == other.tables
            and self.output_shapes == other.output_shapes
        )

    def prepare(self):
        """The tables as backend constants, for `fold` inside a step; call it eagerly."""
        for table in self.tables.values():
            table.prepare()
        return self

    def fold(self, targets, sample_weight, structure, numpy=False):
        """Sample weights (in `structure`'s form) with the class weights multiplied in.

        Args:
            targets: the batch's targets as a dict keyed by target name.
            sample_weight: the batch's sample weight: `None`, one array for every target, or a
                dict keyed by target name.
            structure: the form of `y`: "single", "dict" or "list" (with the names' order).
            numpy: host arrays (NumPy) instead of tensors.
        """
        folded = {}
        for target, labels in targets.items():
            own = sample_weight.get(target) if isinstance(sample_weight, dict) else sample_weight
            table = self.tables.get(target)
            if table is not None:
                owner = f"class_weight for target {target!r}"
                form = label_form(labels, self.output_shapes.get(target))
                if numpy:
                    cw = table.numpy(class_ids_numpy(labels, form, owner))
                else:
                    cw = table.tensor(class_ids(labels, form))
                own = cw if own is None else _times(cw, own, numpy)
            folded[target] = own
        if structure != "single":  # one weight for every target, as Keras' data adapters give
            first = next(iter(targets.values()))
            n = len(first) if numpy else ops.shape(first)[0]
            ones = np.ones(n, np.float32) if numpy else None
            for k, v in folded.items():
                if v is None:
                    ones = ops.ones((n,), "float32") if ones is None else ones
                    folded[k] = ones
        if structure == "single":
            return next(iter(folded.values()))
        if isinstance(structure, (list, tuple)):
            return [folded[name] for name in structure]
        return folded


def resolve(class_weight, loss_targets, labels, output_shapes, source, ignored=None):
    """`FitClassWeights` for `fit`'s `class_weight`, or `None` when it is `None`.

    Args:
        class_weight: `fit`'s argument.
        loss_targets: the targets the loss definitions read, in order.
        labels: `{target: host labels}` of the training data, or `None` where the data source
            does not expose them.
        output_shapes: `{target: shape of the output its loss reads}` (entries may be missing).
        source: the data source's type name, for messages.
        ignored: `{target: class id}` that a target's loss ignores (e.g. `ignore_class=-1`).
    """
    if class_weight is None:
        return None
    spec = parse_fit_argument(class_weight, loss_targets)
    if None in spec:  # one {class: weight} dict: find its classification target
        candidates = [
            t for t in loss_targets
            if labels is None or (t in labels and is_class_labels(labels[t]))
        ]
        if len(candidates) != 1:
            found = "" if labels is None else f" with class labels: {candidates}"
            raise ValueError(
                "`class_weight` is a single {class: weight} dict, but the losses read the "
                f"targets {list(loss_targets)}{found}. Key it by target name: "
                "class_weight={target: {class: weight}}."
            )
        spec = {candidates[0]: spec.pop(None)}
    tables = {}
    for target, cw in spec.items():
        owner = f"class_weight for target {target!r}"
        target_labels = None if labels is None else labels.get(target)
        present = None
        if target_labels is not None:
            form = label_form(target_labels, output_shapes.get(target))
            ids = class_ids_numpy(target_labels, form, owner)
            ignore = (ignored or {}).get(target)
            if ignore is not None:
                ids = ids[ids != ignore]
            _check_range(ids, num_classes(output_shapes.get(target)), owner)
            present = np.unique(ids).tolist()
        if cw == "balanced":
            if target_labels is None:
                raise ValueError(
                    f"class_weight='balanced' needs the training labels of target {target!r}, "
                    f"but the data source ({source}) does not expose them. Compute the weights "
                    "once and pass them: class_weight={target: kx.class_weights(y_train)} (or "
                    "one dict for a single target), or feed a kx.DataGenerator, whose `labels` "
                    "property provides them."
                )
            if isinstance(class_weight, str) and not is_class_labels(target_labels):
                continue  # "balanced" for all: only the targets holding class labels
            from kx.weights import class_weights  # kx.weights imports this module

            cw = class_weights(ids, y_format="sparse")
        tables[target] = WeightTable(check_dict(cw, owner, present=present, integer_ids=True))
    if not tables:
        raise ValueError(
            "class_weight='balanced' found no target holding class labels (integer labels or "
            f"one-hot rows) among the losses' targets {list(loss_targets)}."
        )
    return FitClassWeights(tables, {t: output_shapes.get(t) for t in tables})


def _check_range(ids, n_classes, owner):
    if ids.size == 0:
        return
    lo, hi = int(ids.min()), int(ids.max())
    if lo < 0 or (n_classes is not None and hi >= n_classes):
        bad = lo if lo < 0 else hi
        expected = "class ids >= 0" if n_classes is None else (
            f"class ids in [0, {n_classes}) (the output scores {n_classes} classes)"
        )
        raise ValueError(f"{owner}: the labels hold the class {bad}; expected {expected}.")


def _times(cw, own, numpy):
    if numpy:
        own = np.asarray(own, np.float32)
        return cw * own.reshape(own.shape + (1,) * (cw.ndim - own.ndim))
    own = ops.cast(own, "float32")
    own = ops.reshape(own, ops.shape(own) + (1,) * (len(cw.shape) - len(own.shape)))
    return cw * own


# ----------------------------------------------------------------------------- sample weights


def complete_sample_weight(y, sample_weight):
    """`fit`'s array `sample_weight`, checked (finite, >= 0) and shaped as Keras needs it: a
    dict naming only some targets of a dict `y` gets ones for the others."""
    if sample_weight is None:
        return None
    if isinstance(sample_weight, dict):
        if not isinstance(y, dict):
            raise ValueError(
                "A dict `sample_weight` needs a dict `y` keyed by target name. Received y of "
                f"type {type(y).__name__} and sample_weight keys {sorted(sample_weight)}."
            )
        unknown = sorted(set(sample_weight) - set(y))
        if unknown:
            raise ValueError(
                f"`sample_weight` names the targets {unknown}, which are not in `y`. Expected "
                f"keys among {sorted(y)}."
            )
        for k, w in sample_weight.items():
            check_sample_weight(w, f"sample_weight[{k!r}]")
        n = len(next(iter(sample_weight.values())))
        return {k: sample_weight[k] if k in sample_weight else np.ones(n, "float32") for k in y}
    if isinstance(sample_weight, (list, tuple)):
        for i, w in enumerate(sample_weight):
            check_sample_weight(w, f"sample_weight[{i}]")
    else:
        check_sample_weight(sample_weight, "sample_weight")
    return sample_weight


def check_sample_weight(sample_weight, owner):
    """Raises unless every weight is a finite number >= 0."""
    if sample_weight is None:
        return
    w = keras.ops.convert_to_numpy(sample_weight)
    if w.dtype.kind not in "biuf":
        raise TypeError(f"{owner}: expected numeric weights. Received dtype {w.dtype}")
    if w.size and not np.all(np.isfinite(w)):
        raise ValueError(f"{owner}: expected finite weights. Received NaN or inf values.")
    if w.size and w.min() < 0:
        raise ValueError(f"{owner}: expected weights >= 0. Received a minimum of {w.min()!r}")


def check_class_ids(labels, output_shapes, ignored, source):
    """Raises where integer class ids of array data lie outside the classes of the output they
    are scored against (a loss would read past the scores: NaN on TensorFlow and torch, a
    clipped score on JAX, silently).

    Args:
        labels: `{target: host labels}`.
        output_shapes: `{target: shape of the output its loss reads}`.
        ignored: `{target: class id the target's loss ignores}`.
        source: where the labels come from, for messages ("y", "validation_data").
    """
    for target, target_labels in labels.items():
        shape = output_shapes.get(target)
        target_labels = np.asarray(target_labels)
        if shape is None or target_labels.dtype.kind not in "iu" or (shape[-1] or 0) < 2:
            continue
        rank = target_labels.ndim
        if not (rank == len(shape) - 1 or (rank == len(shape) and target_labels.shape[-1] == 1)):
            continue  # not one class id per score vector
        ids = target_labels
        ignore = ignored.get(target)
        if ignore is not None:
            ids = ids[ids != ignore]
        _check_range(ids, int(shape[-1]), f"Target {target!r} of `{source}`")
