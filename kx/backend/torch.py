"""torch: Keras' own steps need no change. The counting, lookup and value-range primitives in
native torch (each `keras.ops` call costs microseconds of dispatch on eager torch, and these run
on every step)."""

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


def lookup(table, ids):
    """`table[ids]` for ids in [0, len(table) - 1); any other id reads the last entry."""
    n = table.shape[0] - 1
    return table[torch.where((ids >= 0) & (ids < n), ids, n)]


def value_range(x):
    """`[min, max]` of all entries of `x`, in one native pass."""
    return torch.stack(torch.aminmax(x))
