"""Training the LODE in PyTorch + torchdiffeq (optional extra `keras_lode[train]`).

This is the only place keras_lode imports torch. Public names resolve lazily, and a
missing torch or torchdiffeq raises an ImportError that says how to install them.
"""

from __future__ import annotations

import importlib
import sys
import types

_LAZY = {
    "LatentODE": "keras_lode.train.model",
    "fit": "keras_lode.train.fit",
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


class _Package(types.ModuleType):
    """Keeps `keras_lode.train.fit` the function when the submodule `fit` is imported.

    Importing `keras_lode.train.fit` (the module) makes Python set the package attribute
    `fit` to that module, after which `from keras_lode.train import fit` would return the
    module, not the function. Binding the function instead keeps the public name right
    whichever import comes first; `from keras_lode.train.fit import ...` is unaffected.
    """

    def __setattr__(self, name, value):
        if name in _LAZY and isinstance(value, types.ModuleType):
            value = getattr(value, name, value)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
