"""Many keyword options, one dataclass: `resolve_options` for `f(..., config=None, **options)`.

A function with many options takes an instance of an options dataclass and/or the same
options as keywords (Keras style), so both `fit(runs, epochs=3)` and
`fit(runs, FitConfig(epochs=3))` work and the options are checked in one place: the
dataclass (its `__post_init__`).
"""

from __future__ import annotations

import dataclasses

__all__ = ["resolve_options"]


def resolve_options(cls, config, options: dict, where: str):
    """`config` (an instance of the dataclass `cls`, or None for its defaults) with
    `options` replacing its fields.

    Args:
        cls: the options dataclass.
        config: an instance of `cls`, or None.
        options: keyword options, each the name of a field of `cls`.
        where: the public name of the function, for the error message.

    Returns:
        A new instance of `cls` (its `__post_init__` has checked every field).

    Raises:
        TypeError: `config` is not a `cls`, or an option is not a field of `cls`.
    """
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(options) - set(names))
    if unknown:
        raise TypeError(f"Unknown option(s) {unknown} for {where}; expected some of {names}.")
    if config is None:
        return cls(**options)
    if not isinstance(config, cls):
        raise TypeError(
            f"Argument `config` of {where} must be a {cls.__name__} or None. "
            f"Received: config={config!r}"
        )
    return dataclasses.replace(config, **options)
