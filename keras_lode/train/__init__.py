"""Training the LODE in PyTorch + torchdiffeq (optional extra `keras_lode[train]`).

This is the only place keras_lode imports torch. Public names resolve lazily, and a
missing torch or torchdiffeq raises an ImportError that says how to install them.

Public names: `fit` (either kind), `fit_controlled`, `TorchLatentODE` (the torch twin of
the NumPy `keras_lode.model.LatentODE`; `LatentODE` is its alias, a fixed public name),
`ControlledMember` (one member of a controlled ensemble) and `require_torch`.
"""

from __future__ import annotations

import importlib

# Public name -> (module, attribute). `LatentODE` is the documented alias of the torch
# twin `TorchLatentODE` (the NumPy model is `keras_lode.model.LatentODE`); it stays a
# public name of this package.
_LAZY = {
    "ControlledMember": ("keras_lode.train.member", "ControlledMember"),
    "LatentODE": ("keras_lode.train.model", "TorchLatentODE"),
    "TorchLatentODE": ("keras_lode.train.model", "TorchLatentODE"),
    "fit": ("keras_lode.train.api", "fit"),
    "fit_controlled": ("keras_lode.train.ensemble", "fit_controlled"),
}

__all__ = sorted([*_LAZY, "require_torch"])


def require_torch():
    """Imports torch and torchdiffeq, or raises an ImportError that says how to install them.

    Raises:
        ImportError: torch or torchdiffeq is missing (the cause is the original error).
    """
    try:
        import torch  # noqa: F401
        import torchdiffeq  # noqa: F401
    except ImportError as e:
        raise ImportError(
            "keras_lode.train (training and exporting a LODE) needs torch and torchdiffeq; "
            "install with pip install 'keras-lode[train]'"
        ) from e


def __getattr__(name: str):
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'keras_lode.train' has no attribute {name!r}")
    require_torch()
    module, attribute = target
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


def __dir__():
    return __all__
