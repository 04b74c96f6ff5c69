"""keras_lode: learning-rate schedules learned from your sweep with a latent ODE.

The public names are resolved lazily so that NumPy-only work (loading a model,
planning) never pays for importing Keras (3-6 s) or torch. The Keras-side schedules must
still be registered for `keras.saving.load_model` whatever the import order: when Keras
is already imported they are imported at once; otherwise a one-shot import hook imports
them right after Keras itself has been imported (`_KerasImportHook`).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

__version__ = "0.1.0"

_LAZY = {
    "load_model": "keras_lode.model",
    "LatentODE": "keras_lode.model",
    "ControlledODE": "keras_lode.model",
    "plan": "keras_lode.planning",
    "Plan": "keras_lode.planning",
    "ControlPlan": "keras_lode.planning",
    "Run": "keras_lode.runs",
    "load_runs": "keras_lode.runs",
    "RunRecorder": "keras_lode.callbacks",
    "LODESchedule": "keras_lode.schedules",
    "LODECallback": "keras_lode.callbacks",
    "schedules": "keras_lode.schedules",
    "importers": "keras_lode.importers",
    "sweep": "keras_lode.sweep",
    "LODEWarning": "keras_lode._warnings",
    "import_keras": "keras_lode._backend",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'keras_lode' has no attribute {name!r}")
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:  # no Keras backend: say which and how to install it
        from keras_lode._backend import missing_backend_error

        error = missing_backend_error(e, f"keras_lode.{name}", rename=True)
        if error is None or error is e:
            raise
        raise error from e
    value = mod if module.endswith("." + name) else getattr(mod, name)
    globals()[name] = value
    return value


def __dir__():
    return __all__


# Modules whose classes `keras.saving.load_model` must find registered.
_SERIALIZABLE = ("keras_lode.schedules",)


def _register_serializables() -> None:
    for module in _SERIALIZABLE:
        importlib.import_module(module)


class _KerasImportHook(importlib.abc.MetaPathFinder):
    """Registers keras_lode's schedules right after `import keras` (one shot).

    `import keras_lode` must not import Keras, yet a model saved with a `LODESchedule` must
    load after `import keras_lode; import keras` as well as after the other order: Keras
    only imports the module of a custom class for its own packages, so the class has to be
    registered before `load_model`. The hook finds Keras' own spec, lets it load as usual
    and then imports the modules that register the schedules.
    """

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "keras":
            return None
        _remove_hook()
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_register(module):
            exec_module(module)
            try:
                _register_serializables()
            except Exception as e:  # never break `import keras` itself
                import warnings

                warnings.warn(
                    f"keras_lode could not register its schedules for keras.saving ({e!r}); "
                    "pass them in `custom_objects` to load a model that uses them.",
                    stacklevel=2,
                )

        spec.loader.exec_module = exec_then_register
        return spec


def _remove_hook() -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _KerasImportHook)]


if "keras" in sys.modules:
    # A saved model whose optimizer uses LODESchedule or a baseline schedule must find the
    # registered classes; with Keras already loaded this costs almost nothing.
    _register_serializables()
elif not any(isinstance(f, _KerasImportHook) for f in sys.meta_path):
    sys.meta_path.insert(0, _KerasImportHook())
