"""The Keras backend: a clear error when it is not installed.

`pip install keras-lode` installs Keras but no backend (planning needs none). Keras then
fails on first use with a bare `ModuleNotFoundError: No module named 'tensorflow'`;
`missing_backend_error` turns that into an error naming the backend and how to install it.
Nothing here imports Keras at module level.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

# Backend -> (modules whose absence means the backend is missing, pip package, extra).
BACKENDS = {
    "tensorflow": (("tensorflow",), "tensorflow", "tf"),
    "jax": (("jax", "jaxlib"), "jax", "jax"),
    "torch": (("torch",), "torch", "torch"),
}


def backend_name() -> str:
    """The backend Keras will use: `KERAS_BACKEND`, else `~/.keras/keras.json`, else TF."""
    name = os.environ.get("KERAS_BACKEND")
    if name:
        return name
    home = os.environ.get("KERAS_HOME") or str(Path("~/.keras").expanduser())
    try:
        with open(Path(home) / "keras.json", encoding="utf-8") as f:
            name = json.load(f).get("backend")
    except (OSError, ValueError, AttributeError):
        name = None
    return name or "tensorflow"


def install_hint(backend: str) -> str:
    """How to install `backend`, e.g. "`pip install tensorflow` (or `pip install -e .[tf]`)"."""
    _, package, extra = BACKENDS.get(backend, ((), backend, None))
    hint = f"`pip install {package}`"
    if extra:
        hint += f' (or `pip install -e ".[{extra}]"` from a checkout)'
    return hint


def missing_backend_error(exc: BaseException, what: str) -> ModuleNotFoundError | None:
    """The clear error for `exc` if it says the Keras backend is not installed, else None.

    Args:
        exc: the `ModuleNotFoundError` raised while importing Keras (or a module using it).
        what: what needed it, e.g. `"keras_lode.LODESchedule"` or `"keras-lode demo"`.
    """
    if getattr(exc, "keras_lode_backend", None):
        return exc  # already this error, raised by a module imported on the way
    if not isinstance(exc, ModuleNotFoundError) or not exc.name:
        return None
    missing = exc.name.split(".")[0]
    backend = next((b for b, (mods, _, _) in BACKENDS.items() if missing in mods), None)
    if backend is None:
        return None
    others = " or ".join(f"KERAS_BACKEND={b}" for b in BACKENDS if b != backend)
    error = ModuleNotFoundError(
        f"{what} needs Keras, and Keras needs a backend: the backend is {backend!r} "
        f"(KERAS_BACKEND={os.environ.get('KERAS_BACKEND') or '<unset>, Keras default'}) but "
        f"the module {missing!r} is not installed. Install it with {install_hint(backend)}, "
        f"or choose another installed backend with {others}.",
        name=exc.name,
    )
    error.keras_lode_backend = backend
    return error


def import_keras(what: str):
    """Imports and returns `keras`, raising `missing_backend_error` if its backend is missing.

    Args:
        what: what needs Keras (named in the error).
    """
    try:
        import keras
    except ModuleNotFoundError as e:
        error = missing_backend_error(e, what)
        if error is None:
            raise
        raise error from e
    return keras
