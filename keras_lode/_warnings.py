"""Warnings that point at the user's line, not at keras_lode's (or Keras's) internals.

A warning from inside `model.fit` (the callback, the planner it calls) is raised many frames
below the user's code: Keras's training loop, the callback list, keras_lode itself. A fixed
`stacklevel` would name one of those files. `warn` walks up the stack past every frame of
keras_lode, Keras and the backends (and Python's frozen import frames), so the warning
names the first frame of the user's own code (e.g. their `model.fit(...)` line),
which is also where a `warnings.filterwarnings(..., module=...)` filter applies.

Every such warning is a `LODEWarning` (a `UserWarning`), so one filter silences or escalates
them all: `warnings.filterwarnings("ignore", category=keras_lode.LODEWarning)`.
"""

from __future__ import annotations

import os
import sys
import warnings

__all__ = ["LODEWarning", "warn"]


class LODEWarning(UserWarning):
    """A warning from keras_lode: a skipped replan, an implausible run, a mapped horizon..."""


_PACKAGES = ("keras_lode", "keras", "tensorflow", "jax", "jaxlib", "torch", "tf_keras", "optree")


def _library_dirs() -> tuple[str, ...]:
    dirs = []
    for name in _PACKAGES:
        mod = sys.modules.get(name)
        path = getattr(mod, "__file__", None) if mod is not None else None
        if path:
            dirs.append(os.path.dirname(os.path.abspath(path)) + os.sep)
    return tuple(dirs)


def user_stacklevel() -> int:
    """The `stacklevel` that makes a `warnings.warn` inside `warn` name the first user frame."""
    dirs = _library_dirs()
    frame = sys._getframe(2)  # the caller of `warn`
    level = 2
    while frame is not None:
        filename = os.path.abspath(frame.f_code.co_filename)
        if not filename.startswith(dirs) and not filename.startswith("<frozen"):
            return level
        frame = frame.f_back
        level += 1
    return 2


def warn(message: str, category: type[Warning] = LODEWarning) -> None:
    """`warnings.warn(message, category)` attributed to the first frame of the user's code."""
    warnings.warn(message, category, stacklevel=user_stacklevel())
