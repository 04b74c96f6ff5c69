"""Reading and writing model files: one pickle-free `.npz` per model.

Nothing is unpickled: array headers are checked before any data is read and object
arrays are refused; the config and the weights are validated
(`keras_lode.model.validation`).
"""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np

from keras_lode._atomic import write_atomic
from keras_lode.model.schema import weight_shapes
from keras_lode.model.validation import Checker, validate, validate_config, validate_weights

__all__ = ["read_model_file", "save_model"]

_MAX_CONFIG_BYTES = 1 << 20
_MAX_WEIGHT_ELEMENTS = 1 << 24


def save_model(path, config, weights):
    """Writes a model file: the weights plus the JSON config, no pickle.

    The config is stored as a uint8 array of UTF-8 JSON bytes under key `"config"`. The
    file is written to a temporary name and then renamed, so a crash never leaves a
    half-written model at `path`.

    Args:
        path: destination, written exactly (no `.npz` is appended).
        config: the config dict (validated).
        weights: dict name -> float32/float64 array (validated).
    """
    path = os.fspath(path)
    weights = {k: np.asarray(v) for k, v in weights.items()}
    validate(config, weights, path=path)
    text = json.dumps(config, sort_keys=True, allow_nan=False)
    arrays = {"config": np.frombuffer(text.encode("utf-8"), dtype=np.uint8)}
    arrays.update(weights)
    write_atomic(path, lambda f: np.savez(f, **arrays), binary=True)


def _read_member(zf, name, ck, key, expect_shape=None, max_elements=_MAX_WEIGHT_ELEMENTS):
    """Reads one `.npy` member, checking its header before reading any data."""
    try:
        with zf.open(name) as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                ck.fail(key, "an .npy array of format 1.0 or 2.0", f"format {version}")
            if dtype.hasobject:
                ck.fail(key, "a numeric array", f"an object/pickled array (dtype {dtype})")
            if expect_shape is not None and tuple(shape) != tuple(expect_shape):
                ck.fail(
                    key,
                    f"shape {tuple(expect_shape)} (sizes from the config)",
                    f"shape {tuple(shape)}",
                )
            if int(np.prod(shape)) > max_elements:
                ck.fail(key, f"at most {max_elements} elements", f"shape {tuple(shape)}")
        with zf.open(name) as f:
            return np.lib.format.read_array(f, allow_pickle=False)
    except ValueError:
        raise
    except Exception as e:  # truncated data, CRC errors, bad headers: all reported alike
        ck.fail(key, "a readable .npy array", f"{type(e).__name__}: {e}")


def read_model_file(path):
    """Reads and validates a model file; returns `(config, weights)`."""
    ck = Checker(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"keras_lode model file not found: {path}")
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise ValueError(
            f"Invalid keras_lode model file {path}: not a readable .npz (zip) archive "
            f"({type(e).__name__}: {e}). Was it truncated or is it not a model file?"
        ) from None
    with zf:
        members = {}
        for info in zf.infolist():
            if not info.filename.endswith(".npy"):
                ck.fail(info.filename, "only .npy members", "another kind of member")
            members[info.filename[:-4]] = info.filename
        if "config" not in members:
            ck.fail("config", "a JSON config stored as uint8 bytes", "it missing")
        raw = _read_member(zf, members["config"], ck, "config", max_elements=_MAX_CONFIG_BYTES)
        if raw.dtype != np.uint8 or raw.ndim != 1:
            ck.fail("config", "a 1-D uint8 array of UTF-8 JSON", f"{raw.dtype} {raw.shape}")
        try:
            config = json.loads(raw.tobytes().decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            ck.fail("config", "UTF-8 JSON", f"invalid JSON ({e})")
        validate_config(config, path)
        expected = weight_shapes(config)
        weights = {}
        for key, member in members.items():
            if key == "config":
                continue
            if key not in expected:
                ck.fail(
                    key,
                    f"one of the weights of this architecture ({len(expected)} names)",
                    "an unknown extra key",
                )
            weights[key] = _read_member(zf, member, ck, key, expect_shape=expected[key])
    validate_weights(config, weights, path)
    return config, weights
