"""`load_model`: a model file -> the NumPy model of its kind."""

from __future__ import annotations

import os

import numpy as np

from keras_lode.model.controlled import ControlledODE
from keras_lode.model.format import model_kind, read_model_file
from keras_lode.model.latent_ode import LatentODE

__all__ = ["load_model"]


def load_model(path, dtype=np.float64):
    """Loads a model file as a NumPy `LatentODE` or `ControlledODE` (by its `kind`).

    The file is read with `allow_pickle=False` semantics (array headers are checked
    before any data is read; object arrays are refused) and every key, shape, dtype,
    value and size is validated. Files without a `kind` are the paper's generative
    LODE.

    Example:

    >>> model = keras_lode.load_model("models/fmnist_cnn.npz")  # doctest: +SKIP

    Args:
        path: the `.npz` model file.
        dtype: compute dtype, `np.float64` (default) or `np.float32`.

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
    cls = ControlledODE if model_kind(config) == "controlled" else LatentODE
    return cls(config, weights, dtype=dtype, _validated=True)
