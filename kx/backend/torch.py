"""torch: Keras' own steps need no change but the logs kept for `CurrentValue`. The counting,
lookup, value-range and argmax primitives, the counts of invalid values, and the scalar cast and
clip of loss weights and schedules in native torch (each `keras.ops` call costs 5-50 microseconds
of dispatch on eager torch, and these run on every step); kx's schedules read from a table of
their values."""

import keras
import torch
from keras import ops

from kx.backend._current_value import marked, recording


class TrainStep:
    """The train and test functions run their steps `marked` and keep their last logs, for
    `CurrentValue`."""

    def make_train_function(self, force=False):
        if self.train_function is not None and not force:
            return self.train_function
        super().make_train_function(force)
        self.train_function = recording(self, marked(self.train_function))
        return self.train_function

    def make_test_function(self, force=False):
        if self.test_function is not None and not force:
            return self.test_function
        super().make_test_function(force)
        self.test_function = recording(self, marked(self.test_function))
        return self.test_function


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
    """`table[ids]` (a 1-D table) for ids in [0, len(table) - 1); any other id reads the last
    entry. `take`, not indexing: indexing by a 0-d tensor reads the id on the host (a sync)."""
    n = table.shape[0] - 1
    return torch.take(table, torch.where((ids >= 0) & (ids < n), ids, n).long())


def value_range(x):
    """`[min, max]` of all entries of `x`, in one native pass."""
    return torch.stack(torch.aminmax(x))


def count_true(mask, axis=None):
    """int32 number of True entries of the boolean `mask` (along `axis`), in one native op."""
    return mask.sum(dtype=torch.int32) if axis is None else mask.sum(dim=axis, dtype=torch.int32)


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


def float32(x):
    """`x` as a float32 tensor, by one native cast where it is not one already."""
    if isinstance(x, keras.Variable):
        x = x.value
    if isinstance(x, torch.Tensor):
        return x if x.dtype == torch.float32 else x.to(torch.float32)
    from kx.backend import _generic_float32

    return _generic_float32(x)


def snapshot(x):
    """A copy of `x`: a variable's value here is its storage itself, which the next assignment
    overwrites in place."""
    return x.detach().clone()


def clip(x, low, high):
    """`torch.clamp`: Keras' `clip` turns its bounds into tensors on every call."""
    return torch.clamp(x, low, high)


def schedule_reader(schedule):
    """A function: the optimizer's iteration count -> the value of `schedule` at that step.

    A kx schedule is read from the table of its values (`kx.backend.schedule_table`): one clamp
    or remainder and one gather, where its formula would take 6-10 ops, each a dispatch and a
    conversion of a Python number on eager torch. Any other schedule, or a longer one, is
    evaluated as written.
    """
    from kx.backend import schedule_table

    found = schedule_table(schedule)
    if found is None:
        return schedule
    values, n, periodic = found
    table = ops.convert_to_tensor(values)  # on Keras' device

    def read(step):
        if isinstance(step, keras.Variable):
            step = step.value
        step = torch.remainder(step, n) if periodic else torch.clamp(step, max=n - 1)
        return torch.take(table, step.long())

    return read
