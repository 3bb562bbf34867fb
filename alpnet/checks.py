"""Checks of the arguments of alpnet's public functions, shared by the modules that take them.

Each check names the argument, the value and what is accepted, and raises alpnet's own
error, so that a bad argument never surfaces as a TypeError from deep inside.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from .errors import AlpnetError, CaseError

__all__ = ["check_number", "check_seed"]


def check_number(name: str, value: Any, *, low: float | None = None, high: float | None = None,
                 low_open: bool = False, whole: bool = False) -> float:
    """Check one numeric argument of a public function and return it.

    Parameters
    ----------
    name : str
        The argument as the caller wrote it (``cost_weight``), named in the message.
    value : object
        What was passed. A real number (``int``, ``float``, numpy scalars); never a bool
        or a string, which are refused rather than converted.
    low, high : float, optional
        Inclusive bounds (``low`` exclusive with ``low_open``).
    whole : bool, default False
        Require a whole number (``2`` or ``2.0``).

    Returns
    -------
    float or int
        The value, as an ``int`` with ``whole``, else a ``float``.

    Raises
    ------
    CaseError
        Naming the argument, the value and what is accepted, for a value that is not a
        number, not finite, not whole (with ``whole``) or out of range.
    """
    kind = "a whole number" if whole else "a finite number"
    if low is not None and high is not None:
        accepted = f"{kind} in {'(' if low_open else '['}{low:g}, {high:g}]"
    elif low is not None:
        accepted = f"{kind} {'>' if low_open else '>='} {low:g}"
    else:
        accepted = kind if high is None else f"{kind} <= {high:g}"
    try:
        shown = f"{name} '{str(value):.60}'"
    except ValueError:  # an int with more digits than Python prints
        shown = f"{name} '<a {type(value).__name__} too long to print>'"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise CaseError(f"{shown}: not a number ({type(value).__name__}); accepted: {accepted}")
    try:
        x = float(value)
    except OverflowError:  # an int beyond any float
        x = math.inf
    if not math.isfinite(x) or (whole and not x.is_integer()):
        raise CaseError(f"{shown}: not {kind}; accepted: {accepted}")
    if (low is not None and (x <= low if low_open else x < low)) or (high is not None and x > high):
        raise CaseError(f"{shown}: out of range; accepted: {accepted}")
    return int(x) if whole else x


def check_seed(seed: Any) -> None:
    """A random seed: a whole number >= 0, or None (draw afresh).

    Raises
    ------
    AlpnetError
        Naming the value.
    """
    if seed is not None and (not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0):
        raise AlpnetError(f"seed must be a whole number >= 0, or None; got {seed!r} instead")
