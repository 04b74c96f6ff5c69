"""Argument checks shared by the package; each error names the argument and the value."""

from __future__ import annotations

import dataclasses
import math
import numbers

__all__ = ["check_int", "check_number", "config_with_options"]


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


def check_position(position, total_points) -> tuple[int, int]:
    """`(n, K)`, checked: a point must remain after `n` to plan."""
    K = check_int("total_points", total_points, minimum=2)
    n = check_int("position", position, minimum=0)
    if n >= K - 1:
        raise ValueError(
            f"Argument `position` must be < total_points - 1 = {K - 1} (a point must remain "
            f"to plan). Received: position={n}"
        )
    return n, K


def config_with_options(config_class, config, options: dict, fn_name: str):
    """`config` (or a default `config_class()`) with the keyword `options` applied.

    For functions that take `config=None, **options`: the old keywords keep working, and
    every option is checked here against the fields of the config dataclass.

    Args:
        config_class: a dataclass whose fields are the options.
        config: an instance of it, or None.
        options: the call's keyword options.
        fn_name: the function's name, for the error message.

    Returns:
        A `config_class` instance.

    Raises:
        TypeError: an option that is not a field, or a `config` of another type.
    """
    allowed = [f.name for f in dataclasses.fields(config_class)]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise TypeError(f"Unknown option(s) {unknown} for {fn_name}; expected some of {allowed}")
    if config is None:
        config = config_class()
    elif not isinstance(config, config_class):
        raise TypeError(
            f"Argument `config` must be a {config_class.__name__} or None. "
            f"Received: config={config!r}"
        )
    return dataclasses.replace(config, **options) if options else config
