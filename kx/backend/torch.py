"""torch: Keras' own steps need no change. The counting, lookup, value-range and argmax
primitives and the counts of invalid values in native torch (each `keras.ops` call costs
microseconds of dispatch on eager torch, and these run on every step)."""

import keras
import torch


class TrainStep:
    """No torch-specific trainer code."""


def count_ids(ids, num_ids, weights=None):
    """Per-id counts (sums of `weights` when given) of flat ids; ids outside [0, num_ids)
    are dropped.

    Keras' torch `segment_sum` goes through `repeat_interleave` and a float round trip;
    `torch.bincount` is one native pass (out-of-range ids go to an extra, dropped bin).
    """
    ids = torch.where((ids >= 0) & (ids < num_ids), ids, num_ids)
    counts = torch.bincount(ids, weights=weights, minlength=num_ids + 1)[:num_ids]
    return counts.to(torch.int32 if weights is None else weights.dtype)


def count_marginals(t, p, num_classes, keep=None, weights=None):
    """`(3, num_classes)` per-class counts of true, predicted and correct classes (see
    `kx.backend.count_marginals`), in native torch ops."""
    c = num_classes
    hit = t == p
    t_ids, p_ids = t, p + c
    if keep is not None:
        hit = hit & keep
        t_ids, p_ids = torch.where(keep, t_ids, -1), torch.where(keep, p_ids, -1)
    ids = torch.cat([t_ids, p_ids, torch.where(hit, t + 2 * c, -1)])
    weights = None if weights is None else weights.repeat(3)
    return count_ids(ids, 3 * c, weights=weights).reshape(3, c)


def lookup(table, ids):
    """`table[ids]` for ids in [0, len(table) - 1); any other id reads the last entry."""
    n = table.shape[0] - 1
    return table[torch.where((ids >= 0) & (ids < n), ids, n)]


def value_range(x):
    """`[min, max]` of all entries of `x`, in one native pass."""
    return torch.stack(torch.aminmax(x))


def count_true(mask):
    """int32 number of True entries of the boolean `mask`, in one native op."""
    return mask.sum(dtype=torch.int32)


def count_nan(x):
    """int32 number of NaN entries of `x`."""
    return torch.isnan(x).sum(dtype=torch.int32)


def count_outside(x, low, high):
    """int32 number of entries of `x` outside `[low, high]`, NaN included (it compares False)."""
    return x.numel() - ((x >= low) & (x <= high)).sum(dtype=torch.int32)


def first_argmax(x):
    """int32 index of the largest entry along the last axis (torch returns the first on ties)."""
    if x.dtype == torch.bool:  # torch.argmax has no bool kernel
        x = x.to(torch.uint8)
    return torch.argmax(x, dim=-1).to(torch.int32)


def concrete_value(x):
    """The NumPy value of a torch tensor (torch steps run eagerly: values are always known),
    without Keras' conversion checks: this runs on every eager metric update."""
    if isinstance(x, keras.Variable):
        x = x.value
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    from kx.backend import _generic_concrete_value

    return _generic_concrete_value(x)
