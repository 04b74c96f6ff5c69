"""Values of imported logs: numbers from CSV cells and MLflow parameters (which are strings)."""

from __future__ import annotations

import math

from keras_lode._checks import check_int

__all__ = ["positive_int", "to_float"]


def to_float(value, where: str) -> float:
    """`value` as a float; NaN for an empty cell. `where` names it in the error."""
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return math.nan  # CSVLogger leaves a cell empty when a key is missing that epoch
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: expected a number, received {value!r}.") from None


def positive_int(name: str, value) -> int:
    """`value` as an int >= 1: an int, or a float or string holding one (MLflow params are str).

    Raises:
        ValueError: anything else, naming the argument and the value.
    """
    try:
        as_float = float(value)
        if not as_float.is_integer():
            raise ValueError(value)
        return check_int(name, int(as_float), minimum=1)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"Argument `{name}` must be a positive int. Received: {value!r}") from None
