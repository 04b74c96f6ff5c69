"""Argument checks shared by the package; each error names the argument and the value."""

from __future__ import annotations

import math
import numbers

__all__ = ["check_int", "check_number"]


def check_int(name: str, value, *, minimum: int | None = 1) -> int:
    """`value` as an int >= `minimum` (None: no bound); bools and non-integers are refused.

    Raises:
        TypeError: not an integer (a bool, float or string).
        ValueError: below `minimum`.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"Argument `{name}` must be an int. Received: {name}={value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"Argument `{name}` must be >= {minimum}. Received: {name}={value}")
    return value


def check_number(name: str, value, *, minimum: float | None = None, strict: bool = False) -> float:
    """`value` as a finite float, >= `minimum` (> with `strict`).

    Raises:
        TypeError: not a real number (a bool or string).
        ValueError: not finite, or below the bound.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"Argument `{name}` must be a number. Received: {name}={value!r}")
    value = float(value)
    bad = not math.isfinite(value)
    if minimum is not None:
        bad = bad or value < minimum or (strict and value == minimum)
    if bad:
        bound = "" if minimum is None else f" and {'>' if strict else '>='} {minimum}"
        raise ValueError(f"Argument `{name}` must be finite{bound}. Received: {name}={value}")
    return value
