"""The default one-line text of a validation sample (`kx.CustomModel.print_evaluate`)."""

import numpy as np


def format_sample(sample):
    """`PRED/GT: 3 == 3 (p = 0.97)` for one class target and output, else every value in brief.

    Args:
        sample: `{"inputs": {...}, "targets": {...}, "outputs": {...}}` of un-batched NumPy
            values.
    """
    targets, outputs = sample.get("targets", {}), sample.get("outputs", {})
    if len(targets) == 1 and len(outputs) == 1:
        truth = _class_of(next(iter(targets.values())))
        pred = _class_of(next(iter(outputs.values())))
        if truth is not None and pred is not None:
            mark = "==" if truth[0] == pred[0] else "!="
            score = "" if pred[1] is None else f" ({pred[2]} = {pred[1]:.3g})"
            return f"PRED/GT: {pred[0]} {mark} {truth[0]}{score}"
    return f"GT {_brief_all(targets)} | PRED {_brief_all(outputs)}"


def _class_of(value):
    """(class id, score or None, score name) of a label, one-hot row or score vector; else None."""
    v = np.asarray(value)
    if v.ndim == 1 and v.size == 1:
        v = v.reshape(())
    if v.ndim == 0:
        if v.dtype.kind in "iub":
            return int(v), None, None
        if v.dtype.kind == "f" and 0.0 <= v <= 1.0:  # a binary probability
            return int(v > 0.5), float(v), "p"
        return None
    if v.ndim == 1 and v.dtype.kind == "f" and v.size > 1:
        k = int(np.argmax(v))
        if np.all((v == 0) | (v == 1)) and v.sum() == 1:  # one-hot
            return k, None, None
        is_probability = np.all(v >= 0) and abs(float(v.sum()) - 1.0) < 1e-3
        return k, float(v[k]), "p" if is_probability else "score"
    return None


def _brief_all(values):
    if len(values) == 1:
        return _brief(next(iter(values.values())))
    return ", ".join(f"{k}={_brief(v)}" for k, v in values.items())


def _brief(value):
    v = np.asarray(value)
    if v.ndim == 0:
        return f"{v.item():.4g}" if v.dtype.kind == "f" else str(v.item())
    if v.size <= 6:
        return np.array2string(v, precision=3, separator=", ")
    return f"array{v.shape} mean {float(v.mean()):.3g}"
