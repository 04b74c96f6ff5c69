"""keras_lode: learning-rate schedules learned from your sweep with a latent ODE.

The public names are resolved lazily so that NumPy-only work (loading a model,
planning) never pays for importing Keras (3-6 s) or torch. When Keras is already
imported, the Keras-side classes are imported at once so that their serialization
registration is in place for `keras.saving.load_model`.
"""

from __future__ import annotations

import importlib
import sys

__version__ = "0.1.0"

_LAZY = {
    "load_model": "keras_lode.model",
    "LatentODE": "keras_lode.model",
    "plan": "keras_lode.planning",
    "Plan": "keras_lode.planning",
    "Run": "keras_lode.runs",
    "load_runs": "keras_lode.runs",
    "RunRecorder": "keras_lode.runs.recorder",
    "LODESchedule": "keras_lode.lode_schedule",
    "LODECallback": "keras_lode.callback",
    "schedules": "keras_lode.schedules",
    "importers": "keras_lode.importers",
    "sweep": "keras_lode.sweep",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'keras_lode' has no attribute {name!r}")
    mod = importlib.import_module(module)
    value = mod if module.endswith("." + name) else getattr(mod, name)
    globals()[name] = value
    return value


def __dir__():
    return __all__


if "keras" in sys.modules:
    # A saved model whose optimizer uses LODESchedule or a baseline schedule must find the
    # registered classes; with Keras already loaded this costs almost nothing.
    importlib.import_module("keras_lode.lode_schedule")
    importlib.import_module("keras_lode.schedules")
