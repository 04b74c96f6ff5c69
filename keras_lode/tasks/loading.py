"""Resolving task specs: a `Task`, or a string every worker can import.

`"package.module:attr"`, `"path/to/file.py:attr"` (the attribute may be a `Task` or a
zero-argument factory returning one), or `"keras_lode.tasks:<name>:<scale>"` / a bare
example-task name for the built-in tasks.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

from keras_lode.tasks.registry import get_task
from keras_lode.tasks.task import Task

__all__ = ["absolute_spec", "load_task"]


def load_task(spec: str | Task, scale: str | None = None) -> Task:
    """Resolves a task given as a `Task` or an import string (see the module docstring).

    Args:
        spec: a `Task`, `"module:attr"`, `"path/to/file.py:attr"`,
            `"module:name:scale"` or a bare example-task name.
        scale: scale of a built-in example task (`"quick"`, `"cpu"`, `"full"`).

    Raises:
        ValueError: if the spec cannot be resolved (naming what was missing).
    """
    if isinstance(spec, Task):
        return spec
    if not isinstance(spec, str):
        return _as_task(spec, repr(spec))
    parts = spec.split(":")
    if len(parts) == 1:
        return _as_task(get_task(spec, **({"scale": scale} if scale else {})), spec)
    target, attr, *rest = parts
    if len(rest) > 1:
        raise ValueError(f"Task spec {spec!r} must be 'module:attr' or 'module:attr:arg'.")
    arg = rest[0] if rest else scale
    if target.endswith(".py"):
        path = Path(target).resolve()
        if not path.is_file():
            raise ValueError(f"Task spec {spec!r}: no Python file at {path}.")
        mod_name = f"_keras_lode_task_{abs(hash(str(path)))}"
        module = sys.modules.get(mod_name)
        if module is None:
            module_spec = importlib.util.spec_from_file_location(mod_name, path)
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[mod_name] = module
            module_spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as e:
            raise ValueError(f"Task spec {spec!r}: cannot import module {target!r} ({e}).") from e
    obj = getattr(module, attr, None)
    if obj is None:
        if hasattr(module, "get_task"):  # a registry such as keras_lode.tasks
            obj = module.get_task(attr, **({"scale": arg} if arg else {}))
        else:
            names = sorted(n for n in dir(module) if not n.startswith("_"))
            raise ValueError(
                f"Task spec {spec!r}: module {target!r} has no attribute {attr!r}. "
                f"Available: {names}"
            )
    elif rest and callable(obj) and not isinstance(obj, Task):
        obj = obj(rest[0])
    return _as_task(obj, spec)


def absolute_spec(spec: str) -> str:
    """Makes the file of a 'path/to/file.py:attr' spec absolute (workers run elsewhere)."""
    target, sep, rest = spec.partition(":")
    if sep and target.endswith(".py"):
        return f"{Path(target).resolve()}:{rest}"
    return spec


def _as_task(obj, spec: str) -> Task:
    if isinstance(obj, Task):
        return obj
    if callable(obj):
        return _as_task(obj(), spec)
    raise ValueError(
        f"Task spec {spec!r} resolved to a {type(obj).__name__}, expected a "
        "keras_lode.tasks.Task or a factory returning one."
    )
