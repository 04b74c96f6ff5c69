"""Strict JSON for every JSON file the package writes.

Python's `json` writes NaN and Infinity as the bare tokens `NaN` / `Infinity` by default,
which strict JSON readers (JavaScript, jq, most other languages) reject. Here a non-finite
float becomes `null`, NumPy scalars and arrays become numbers and lists, and the dump is made
with `allow_nan=False`, so nothing non-standard can slip through.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from keras_lode._atomic import write_atomic


def json_safe(obj: Any) -> Any:
    """`obj` with every non-finite float replaced by None (recursively), NumPy values as
    Python ones, tuples as lists and mapping keys as str; other values unchanged."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, str | int | bool) or obj is None:
        return obj
    if isinstance(obj, Mapping):
        return {str(k) if not isinstance(k, str) else k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    tolist = getattr(obj, "tolist", None)  # NumPy scalars and arrays
    if callable(tolist):
        return json_safe(tolist())
    return obj


def dumps(obj: Any, **kwargs) -> str:
    """`json.dumps` of `json_safe(obj)`, strict (`allow_nan=False`)."""
    return json.dumps(json_safe(obj), allow_nan=False, **kwargs)


def write_json(path, payload, indent: int | None = 1) -> Path:
    """Writes `payload` as strict JSON (`dumps`) atomically: a temporary file, then a rename.

    The file gets the usual mode (the umask applies), as any file `open` creates.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = dumps(payload, indent=indent)
    return write_atomic(path, lambda f: f.write(text + "\n"))
