"""Training the LODE in PyTorch + torchdiffeq (optional extra `keras_lode[train]`).

This is the only place keras_lode imports torch. Public names resolve lazily, and a
missing torch or torchdiffeq raises an ImportError that says how to install them.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "LatentODE": "keras_lode.train.model",
    "fit": "keras_lode.train.api",
    "fit_controlled": "keras_lode.train.ensemble",
    "ControlledMember": "keras_lode.train.controlled",
}

__all__ = sorted(_LAZY)


def _require_torch():
    try:
        import torch  # noqa: F401
        import torchdiffeq  # noqa: F401
    except ImportError as e:
        raise ImportError(
            "keras_lode.train (training and exporting a LODE) needs torch and torchdiffeq; "
            "install with pip install 'keras-lode[train]'"
        ) from e


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'keras_lode.train' has no attribute {name!r}")
    _require_torch()
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
