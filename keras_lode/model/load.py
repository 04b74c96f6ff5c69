"""`load_model`: a model file -> the NumPy model of its kind."""

from __future__ import annotations

import os

import numpy as np

from keras_lode.model.controlled import ControlledODE
from keras_lode.model.io import read_model_file
from keras_lode.model.latent_ode import LatentODE
from keras_lode.model.schema import model_kind

__all__ = ["load_model"]


def load_model(path, dtype=None):
    """Loads a model file as a NumPy `LatentODE` or `ControlledODE` (by its `kind`).

    The file is read with `allow_pickle=False` semantics (array headers are checked
    before any data is read; object arrays are refused) and every key, shape, dtype,
    value and size is validated. Files without a `kind` are the paper's generative
    LODE.

    Example:

    >>> model = keras_lode.load_model("models/fmnist_cnn.npz")  # doctest: +SKIP

    Args:
        path: the `.npz` model file.
        dtype: compute dtype, `np.float64` or `np.float32`; default float64 for a
            generative model and float32 for a controlled one (its float32 predictions
            agree with float64 to ~1e-6, far below the metric differences a plan is
            chosen on, and a replan takes two-thirds of the time:
            `benchmarks/control_latency.py`).

    Returns:
        A `LatentODE` (`model.kind == "generative"`) or a `ControlledODE`
        (`model.kind == "controlled"`).

    Raises:
        FileNotFoundError: no file at `path`.
        ValueError: the file is not a valid model file; the message names the path,
            the key and expected vs found.
    """
    path = os.fspath(path)
    config, weights = read_model_file(path)
    controlled = model_kind(config) == "controlled"
    if dtype is None:
        dtype = np.float32 if controlled else np.float64
    cls = ControlledODE if controlled else LatentODE
    return cls(config, weights, dtype=dtype, _validated=True)
