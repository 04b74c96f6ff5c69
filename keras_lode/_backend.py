"""The Keras backend: a clear error when it is not installed, and a quiet TensorFlow start.

`pip install keras-lode` installs Keras but no backend (planning needs none). Keras then
fails on first use with a bare `ModuleNotFoundError: No module named 'tensorflow'`;
`missing_backend_error` turns that into an error naming the backend and how to install it.
Nothing here imports Keras at module level.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

# Backend -> (modules whose absence means the backend is missing, pip package, extra).
BACKENDS = {
    "tensorflow": (("tensorflow",), "tensorflow", "tf"),
    "jax": (("jax", "jaxlib"), "jax", "jax"),
    "torch": (("torch",), "torch", "torch"),
}


# Lines TensorFlow's C++ runtime writes to stderr while it loads, before
# TF_CPP_MIN_LOG_LEVEL applies (TensorFlow >= 2.20 logs them through absl).
_TF_NOISE = (
    "WARNING: All log messages before absl::InitializeLog() is called",
    "port.cc:",
    "cudart_stub.cc:",
    "cpu_feature_guard.cc:",
    "To enable the following instructions:",
    "oneDNN custom operations are on",
    "Unable to register cuDNN factory",
    "Unable to register cuFFT factory",
    "Unable to register cuBLAS factory",
    "computation_placer.cc:",
    "cuda_executor.cc:",
    "cuda_dnn.cc:",
    "cuda_fft.cc:",
    "cuda_blas.cc:",
    "TF-TRT Warning",
)


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


def missing_backend_error(
    exc: BaseException, what: str, rename: bool = False
) -> ModuleNotFoundError | None:
    """The clear error for `exc` if it says the Keras backend is not installed, else None.

    Args:
        exc: the `ModuleNotFoundError` raised while importing Keras (or a module using it).
        what: what needed it, e.g. `"keras_lode.LODESchedule"` or `"keras-lode demo"`.
        rename: when `exc` is already this error (raised by a module imported on the way),
            name `what` in it instead of that module (the name the user asked for).
    """
    if getattr(exc, "keras_lode_backend", None):
        if not rename or exc.keras_lode_what == what:
            return exc  # already this error, raised by a module imported on the way
        error = ModuleNotFoundError(str(exc).replace(exc.keras_lode_what, what, 1), name=exc.name)
        error.keras_lode_backend, error.keras_lode_what = exc.keras_lode_backend, what
        return error
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
    error.keras_lode_backend, error.keras_lode_what = backend, what
    return error


def import_keras(what: str = "keras", quiet: bool = False):
    """Imports and returns `keras`, raising `missing_backend_error` if its backend is missing.

    `keras = keras_lode.import_keras(quiet=True)` is `import keras` without TensorFlow's
    start-up lines (which `TF_CPP_MIN_LOG_LEVEL` no longer hides in TensorFlow >= 2.20).

    Args:
        what: what needs Keras (named in the error).
        quiet: hide TensorFlow's start-up log lines (`hide_tensorflow_noise`) and, unless
            the `tensorflow` logger has a level already, its warnings below ERROR (the
            tf.function retracing notes of many short fits), as the command line does.
    """
    try:
        if quiet:
            import logging

            tf_log = logging.getLogger("tensorflow")
            if tf_log.level == logging.NOTSET:  # unless the user set it: no retracing notes
                tf_log.setLevel(logging.ERROR)
            with hide_tensorflow_noise():
                import keras
        else:
            import keras
    except ModuleNotFoundError as e:
        error = missing_backend_error(e, what)
        if error is None:
            raise
        raise error from e
    return keras


class hide_tensorflow_noise:
    """Context manager: sets `TF_CPP_MIN_LOG_LEVEL=3` (unless set) and, while TensorFlow is
    imported inside it, drops the log lines its C++ runtime writes to stderr at load time.

    Other stderr output of the block is written back when it ends. A no-op for the
    stderr part when TensorFlow is already imported or the backend is not TensorFlow.
    """

    def __enter__(self):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        self._saved = None
        if "tensorflow" in sys.modules or backend_name() != "tensorflow":
            return self
        try:
            sys.stderr.flush()
            self._capture = tempfile.TemporaryFile(mode="w+b")
            self._saved = os.dup(2)
            os.dup2(self._capture.fileno(), 2)
        except (OSError, ValueError, AttributeError):  # no real fd 2 (e.g. captured stderr)
            self._saved = None
        return self

    def __exit__(self, *exc):
        if self._saved is None:
            return False
        try:
            sys.stderr.flush()
        finally:
            os.dup2(self._saved, 2)
            os.close(self._saved)
        self._capture.seek(0)
        text = self._capture.read().decode("utf-8", "replace")
        self._capture.close()
        kept = [line for line in text.splitlines(True) if not _is_tf_noise(line)]
        if kept:
            sys.stderr.write("".join(kept))
            sys.stderr.flush()
        return False


def _is_tf_noise(line: str) -> bool:
    return any(marker in line for marker in _TF_NOISE)
