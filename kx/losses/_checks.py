"""Argument checks of the kx losses, in one place.

Each loss module has a `_check_args(owner, **arguments)` that returns the checked arguments as
plain Python values (floats, bools, tuples: what a config holds). Its loss function calls it
with its own name and its class calls it, from `kx.losses._base.LossFunctionWrapper.__init__`,
with the class's name, so a bad argument fails in the constructor and in the function with the
same message naming the object involved.
"""

import math
import numbers

import numpy as np


def _type_error(owner, arg, value, what):
    return TypeError(f"{owner}: expected `{arg}` to be {what}. Received: {arg}={value!r}")


def number(value, arg, owner, *, low=None, high=None, low_open=False, high_open=False,
           what=None):
    """A finite real number (NumPy scalars accepted), optionally within `[low, high]` (`low_open`
    / `high_open` exclude the bound); returned as a Python float. A non-number is a `TypeError`,
    a number out of range a `ValueError`."""
    if isinstance(value, (bool, np.bool_, str, bytes)) or value is None:
        raise _type_error(owner, arg, value, what or "a number")
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise _type_error(owner, arg, value, what or "a number") from None
    ok = math.isfinite(value)
    if low is not None:
        ok = ok and (value > low if low_open else value >= low)
    if high is not None:
        ok = ok and (value < high if high_open else value <= high)
    if not ok:
        if what is None:
            if low == 0 and high is None:
                what = "a positive finite number" if low_open else "a non-negative finite number"
            elif low is not None and high is not None:
                what = (f"a number in {'(' if low_open else '['}{low:g}, {high:g}"
                        f"{')' if high_open else ']'}")
            else:
                what = "a finite number"
        raise ValueError(f"{owner}: expected `{arg}` to be {what}. Received: {arg}={value!r}")
    return value


def non_negative(value, arg, owner):
    """A finite number >= 0 (`gamma`, `smooth`, ...)."""
    return number(value, arg, owner, low=0.0)


def flag(value, arg, owner):
    """True or False (NumPy booleans accepted; 0/1 and strings are not)."""
    if not isinstance(value, (bool, np.bool_)):
        raise _type_error(owner, arg, value, "True or False")
    return bool(value)


def choice(value, arg, owner, choices):
    """One of `choices` (strings)."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(
            f"{owner}: expected `{arg}` to be one of {list(choices)}. Received: {arg}={value!r}"
        )
    return value


def integer(value, arg, owner, *, low):
    """An integer >= `low` (NumPy integers accepted)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or (
        value < low
    ):
        raise ValueError(
            f"{owner}: expected `{arg}` to be an integer >= {low}. Received: {arg}={value!r}"
        )
    return int(value)


def ignore_class(value, owner):
    """None, or an integer label (`255`, `-1`; an integral float such as `255.0` is accepted,
    as labels often arrive as floats)."""
    if value is None:
        return None
    try:
        integral = not isinstance(value, (bool, np.bool_, str, bytes)) and (
            float(value).is_integer()
        )
    except (TypeError, ValueError):
        integral = False
    if not integral:
        raise TypeError(
            f"{owner}: expected `ignore_class` to be None or an integer label. "
            f"Received: ignore_class={value!r}"
        )
    return int(value)


def vector_or_scalar(value, arg, owner, allow_none=False, nonnegative=True):
    """A scalar or 1-D per-class (or per-label) argument; returns a float, a tuple of floats,
    or None (`allow_none`)."""
    if value is None:
        if allow_none:
            return None
        raise TypeError(f"{owner}: expected `{arg}` to be a number. Received: {arg}=None")
    if isinstance(value, (dict, str, bytes)):
        raise TypeError(
            f"{owner}: expected `{arg}` to be a number or a 1-D sequence of numbers. "
            f"Received: {arg}={value!r}"
        )
    arr = np.asarray(value, dtype="float64")
    if arr.ndim > 1:
        raise ValueError(
            f"{owner}: expected `{arg}` to be a number or a 1-D sequence. Received: "
            f"{arg} with shape {arr.shape}."
        )
    if not np.all(np.isfinite(arr)) or (nonnegative and np.any(arr < 0)):
        kind = "non-negative finite" if nonnegative else "finite"
        raise ValueError(
            f"{owner}: expected `{arg}` to be {kind}. Received: {arg}={arr.tolist()!r}"
        )
    return float(arr) if arr.ndim == 0 else tuple(float(v) for v in arr)
