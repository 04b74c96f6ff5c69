"""The model file: its config schema, validation, and pickle-free read/write.

A LODE is stored as one `.npz` holding the weight arrays (torch `state_dict` names) and
one UTF-8 JSON config (format version, architecture sizes, integrator, channel names and
normalization, time unit, planner defaults, a summary of the training data). Nothing is
unpickled: array headers are checked before any data is read and object arrays are
refused. Every key, shape, dtype and value is validated, and each error names the file,
the key, what was expected and what was found (docs/model-format.md).

The `planner` section of the file holds the planner's defaults (`keras_lode.model.defaults`)
and, for a controlled model, its trust region (`keras_lode.model.trust_region`).
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import zipfile

import numpy as np

from keras_lode._atomic import write_atomic
from keras_lode.constants import CHANNELS as CHANNEL_NAMES
from keras_lode.model.defaults import PLANNER_DEFAULTS
from keras_lode.model.trust_region import TrustRegion

logger = logging.getLogger(__name__)

__all__ = [
    "CHANNEL_NAMES",
    "FORMAT",
    "FORMAT_VERSION",
    "KINDS",
    "PLANNER_DEFAULTS",
    "controlled_config",
    "default_config",
    "member_weight_shapes",
    "model_kind",
    "json_clean",
    "read_model_file",
    "save_model",
    "validate",
    "weight_shapes",
]

FORMAT = "keras_lode.lode"
FORMAT_VERSION = "1.0"

_ARCH_FIXED = {
    "encoder": "gru_reverse",
    "state_activation": "relu",
    "field_activation": "softplus",
    "field_output": "tanh",
}
_CONFIG_KEYS = {
    "format",
    "format_version",
    "architecture",
    "integrator",
    "channels",
    "time",
    "planner",
    "training",
    "metadata",
}
_ARCH_KEYS = {"channels", "hidden", "latent", "state", "width", "depth", *_ARCH_FIXED}
#: The two kinds of model a file can hold: the paper's LODE, where the LR is one of the
#: decoded channels, and the controlled LODE, where the LR path is an input.
KINDS = ("generative", "controlled")
_CONTROLLED_ARCH_FIXED = {
    "encoder": "gru_reverse",
    "field_activation": "softplus",
    "field_output": "tanh",
    "control": "log_lr_linear",
    "outputs": ["loss", "metric"],
}
_CONTROLLED_ARCH_KEYS = {"hidden", "state", "width", "depth", "window", *_CONTROLLED_ARCH_FIXED}
_CONTROLLED_KEYS = (_CONFIG_KEYS - set()) | {"members", "calibration"}
_PLANNER_KEYS = {*PLANNER_DEFAULTS, "lr_range"}
_MAX_CONFIG_BYTES = 1 << 20
_MAX_WEIGHT_ELEMENTS = 1 << 24


# --------------------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------------------


def default_config(
    *,
    channels=3,
    hidden=20,
    latent=20,
    state=20,
    width=20,
    depth=2,
    step_size=1.0,
    time_scale=1.0,
    points_per_epoch=10,
    horizon=60,
    mean=None,
    std=None,
    lr_range=(1e-4, 1e-1),
    planner=None,
    training=None,
    metadata=None,
):
    """Builds a complete, valid model-file config.

    Args:
        channels, hidden, latent, state, width, depth: architecture sizes. `depth` is
            the number of hidden layers (of `width` units) of each MLP.
        step_size: RK4 step, in scaled time units.
        time_scale: multiplier from log-point index to model time.
        points_per_epoch: log points per epoch (P) of the training runs.
        horizon: number of log points (K) of the training runs.
        mean, std: per-channel normalization (default 0 and 1).
        lr_range: `(lo, hi)` learning rates seen in the training runs; the planner
            clips to it.
        planner: overrides of the planner defaults (`window`, `samples`, `sigma`,
            `tol`, `loss_floor`, `top_k`, `replan_every`, `anchor`, `lr_range`).
        training: JSON summary of the training data and errors.
        metadata: free-form JSON metadata.

    Returns:
        A config dict that `validate` accepts.
    """
    mean = [0.0] * channels if mean is None else [float(v) for v in np.ravel(mean)]
    std = [1.0] * channels if std is None else [float(v) for v in np.ravel(std)]
    planner_cfg = dict(PLANNER_DEFAULTS)
    planner_cfg["lr_range"] = [float(lr_range[0]), float(lr_range[1])]
    if planner:
        unknown = set(planner) - _PLANNER_KEYS
        if unknown:
            raise ValueError(
                f"Argument `planner` has unknown keys {sorted(unknown)}; "
                f"expected a subset of {sorted(_PLANNER_KEYS)}."
            )
        planner_cfg.update(planner)
        if "lr_range" in planner:
            planner_cfg["lr_range"] = [float(v) for v in planner["lr_range"]]
    names = list(CHANNEL_NAMES) if channels == 3 else [f"channel_{i}" for i in range(channels)]
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "architecture": {
            "channels": int(channels),
            "hidden": int(hidden),
            "latent": int(latent),
            "state": int(state),
            "width": int(width),
            "depth": int(depth),
            **_ARCH_FIXED,
        },
        "integrator": {"method": "rk4", "step_size": float(step_size)},
        "channels": {"names": names, "mean": mean, "std": std},
        "time": {
            "unit": "log_point",
            "scale": float(time_scale),
            "points_per_epoch": int(points_per_epoch),
            "horizon": int(horizon),
        },
        "planner": planner_cfg,
        "training": json_clean(dict(training or {}), "training"),
        "metadata": json_clean(dict(metadata or {}), "metadata"),
    }
    # Fail here, where the caller can see what they passed, not later at load time.
    validate_config(config)
    return config


def _mlp_shapes(prefix, n_in, n_out, width, depth):
    dims = [n_in] + [width] * depth + [n_out]
    shapes = {}
    for i in range(depth + 1):
        shapes[f"{prefix}.layers.{i}.weight"] = (dims[i + 1], dims[i])
        shapes[f"{prefix}.layers.{i}.bias"] = (dims[i + 1],)
    return shapes


def weight_shapes(config):
    """The expected weight names (torch `state_dict` names) and shapes for a config.

    A controlled file holds one set per ensemble member, named `member{i}.<name>`.
    """
    if model_kind(config) == "controlled":
        one = member_weight_shapes(config)
        return {
            f"member{i}.{name}": shape
            for i in range(config["members"])
            for name, shape in one.items()
        }
    a = config["architecture"]
    c, hid, lat, st = a["channels"], a["hidden"], a["latent"], a["state"]
    shapes = {
        "encoder.weight_ih": (3 * hid, c + 1),
        "encoder.weight_hh": (3 * hid, hid),
        "encoder.bias_ih": (3 * hid,),
        "encoder.bias_hh": (3 * hid,),
        "to_latent.weight": (lat, hid),
        "to_latent.bias": (lat,),
    }
    shapes.update(_mlp_shapes("to_state", lat, st, a["width"], a["depth"]))
    shapes.update(_mlp_shapes("field", st, st, a["width"], a["depth"]))
    shapes["field.scale"] = ()
    shapes["to_channels.weight"] = (c, st)
    shapes["to_channels.bias"] = (c,)
    return shapes


def member_weight_shapes(config):
    """Weight names and shapes of one member of a controlled ensemble.

    Encoder: a GRU over `[t / horizon, loss, ln lr, metric]` (normalized), read in reverse
    time order, and a linear map to the ODE state; field: an MLP over
    `[state, u, t / horizon]` (u the normalized ln LR); read-out: linear state ->
    normalized `[loss, metric]`.
    """
    a = config["architecture"]
    c, hid, st = len(CHANNEL_NAMES), a["hidden"], a["state"]
    shapes = {
        "encoder.weight_ih": (3 * hid, c + 1),
        "encoder.weight_hh": (3 * hid, hid),
        "encoder.bias_ih": (3 * hid,),
        "encoder.bias_hh": (3 * hid,),
        "to_state.weight": (st, hid),
        "to_state.bias": (st,),
    }
    shapes.update(_mlp_shapes("field", st + 2, st, a["width"], a["depth"]))
    shapes["field.scale"] = ()
    shapes["readout.weight"] = (2, st)
    shapes["readout.bias"] = (2,)
    return shapes


def controlled_config(
    *,
    members=5,
    hidden=24,
    state=24,
    width=32,
    depth=2,
    window=10,
    step_size=0.5,
    horizon=50,
    points_per_epoch=10,
    span=10.0,
    mean=None,
    std=None,
    lr_range=(1e-4, 1e-1),
    calibration=None,
    planner=None,
    training=None,
    metadata=None,
):
    """Builds a complete, valid config for a controlled ensemble file.

    Args:
        members: ensemble size M.
        hidden, state, width, depth: GRU hidden size, ODE state size, field MLP width
            and number of hidden layers.
        window: log points the encoder reads.
        step_size: RK4 step in model time; a run of `horizon` points spans `span`.
        horizon: log points K of the training runs; model time is `point * span / K`.
        points_per_epoch: P of the training runs.
        mean, std: normalization of `[loss, ln lr, metric]`.
        lr_range: the LR range the training runs visited.
        calibration: `{"sd_scale", "sd_floor"}`: the calibrated spread of a prediction is
            `sd_scale * sqrt(sd**2 + sd_floor**2)` (default 1 and 0: the raw spread).
        planner: planner settings stored with the model (`lr_range` is set from above).
        training, metadata: JSON summaries.
    """
    mean = [0.0, 0.0, 0.0] if mean is None else [float(v) for v in np.ravel(mean)]
    std = [1.0, 1.0, 1.0] if std is None else [float(v) for v in np.ravel(std)]
    cal = {"sd_scale": 1.0, "sd_floor": 0.0, **(calibration or {})}
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": "controlled",
        "architecture": {
            "hidden": int(hidden),
            "state": int(state),
            "width": int(width),
            "depth": int(depth),
            "window": int(window),
            **copy.deepcopy(_CONTROLLED_ARCH_FIXED),
        },
        "members": int(members),
        "integrator": {"method": "rk4", "step_size": float(step_size)},
        "channels": {"names": list(CHANNEL_NAMES), "mean": mean, "std": std},
        "time": {
            "unit": "log_point",
            "scale": float(span) / int(horizon),
            "points_per_epoch": int(points_per_epoch),
            "horizon": int(horizon),
        },
        "calibration": {k: float(v) for k, v in cal.items()},
        "planner": json_clean(
            {**(planner or {}), "lr_range": [float(lr_range[0]), float(lr_range[1])]}, "planner"
        ),
        "training": json_clean(dict(training or {}), "training"),
        "metadata": json_clean(dict(metadata or {}), "metadata"),
    }
    validate_config(config)
    return config


class _Checker:
    """Collects the context (file path) so every error names where it came from."""

    def __init__(self, path):
        self.path = path

    def fail(self, key, expected, found):
        raise ValueError(
            f"Invalid keras_lode model file {self.path}: key {key!r}: "
            f"expected {expected}, found {found}."
        )

    def section(self, config, key, required):
        value = config.get(key)
        if not isinstance(value, dict):
            self.fail(key, "a JSON object", type(value).__name__)
        missing = set(required) - set(value)
        if missing:
            self.fail(f"{key}.{sorted(missing)[0]}", "to be present", "it missing")
        return value

    def keys_exact(self, section, name, allowed):
        unknown = set(section) - set(allowed)
        if unknown:
            self.fail(f"{name}.{sorted(unknown)[0]}", f"one of {sorted(allowed)}", "unknown key")

    def integer(self, section, name, key, minimum):
        v = section[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            self.fail(f"{name}.{key}", f"an integer >= {minimum}", repr(v))
        return v

    def number(self, section, name, key, positive=False):
        v = section[key]
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            self.fail(f"{name}.{key}", "a finite number", repr(v))
        if positive and not v > 0:
            self.fail(f"{name}.{key}", "a number > 0", repr(v))
        return float(v)

    def vector(self, section, name, key, length, positive=False):
        v = section[key]
        if not isinstance(v, list) or len(v) != length:
            self.fail(f"{name}.{key}", f"a list of {length} numbers", repr(v))
        for i, x in enumerate(v):
            if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
                self.fail(f"{name}.{key}[{i}]", "a finite number", repr(x))
            if positive and not x > 0:
                self.fail(f"{name}.{key}[{i}]", "a number > 0", repr(x))
        return v


def model_kind(config) -> str:
    """`"generative"` (the paper's LODE; files without a `kind`) or `"controlled"`."""
    return config.get("kind", "generative") if isinstance(config, dict) else "generative"


def validate_config(config, path="<config>"):
    """Checks a config dict; raises ValueError naming the path, key, expected and found."""
    ck = _Checker(path)
    if not isinstance(config, dict):
        ck.fail("config", "a JSON object", type(config).__name__)
    kind = model_kind(config)
    if kind not in KINDS:
        ck.fail("kind", f"one of {list(KINDS)}", repr(kind))
    required = _CONFIG_KEYS if kind == "generative" else _CONTROLLED_KEYS
    ck.keys_exact(config, "config", required | {"kind"})
    missing = required - set(config)
    if missing:
        ck.fail(sorted(missing)[0], "to be present in the config", "it missing")
    if config["format"] != FORMAT:
        ck.fail("format", repr(FORMAT), repr(config["format"]))
    version = config["format_version"]
    if not isinstance(version, str) or not version.split(".")[0].isdigit():
        ck.fail("format_version", "a version string like '1.0'", repr(version))
    if version.split(".")[0] != FORMAT_VERSION.split(".")[0]:
        ck.fail(
            "format_version",
            f"major version {FORMAT_VERSION.split('.')[0]} (this keras_lode reads "
            f"{FORMAT_VERSION}); upgrade keras_lode or re-export the model",
            repr(version),
        )
    if kind == "controlled":
        _check_controlled_sections(config, ck)
    else:
        _check_generative_sections(config, ck)
    for key in ("training", "metadata"):
        if not isinstance(config[key], dict):
            ck.fail(key, "a JSON object", type(config[key]).__name__)
        _check_json(config[key], key, ck)


def _check_architecture(config, ck, keys, fixed, sizes):
    arch = ck.section(config, "architecture", keys)
    ck.keys_exact(arch, "architecture", keys)
    for key, minimum in sizes.items():
        ck.integer(arch, "architecture", key, minimum)
    for key, value in fixed.items():
        if arch[key] != value:
            ck.fail(f"architecture.{key}", repr(value), repr(arch[key]))
    return arch


def _check_common_sections(config, ck, channels):
    integ = ck.section(config, "integrator", {"method", "step_size"})
    ck.keys_exact(integ, "integrator", {"method", "step_size"})
    if integ["method"] != "rk4":
        ck.fail("integrator.method", "'rk4'", repr(integ["method"]))
    ck.number(integ, "integrator", "step_size", positive=True)

    chans = ck.section(config, "channels", {"names", "mean", "std"})
    ck.keys_exact(chans, "channels", {"names", "mean", "std"})
    names = chans["names"]
    if (
        not isinstance(names, list)
        or len(names) != channels
        or not all(isinstance(n, str) for n in names)
    ):
        ck.fail("channels.names", f"a list of {channels} strings", repr(names))
    ck.vector(chans, "channels", "mean", channels)
    ck.vector(chans, "channels", "std", channels, positive=True)

    time = ck.section(config, "time", {"unit", "scale", "points_per_epoch", "horizon"})
    ck.keys_exact(time, "time", {"unit", "scale", "points_per_epoch", "horizon"})
    if time["unit"] != "log_point":
        ck.fail("time.unit", "'log_point'", repr(time["unit"]))
    ck.number(time, "time", "scale", positive=True)
    ck.integer(time, "time", "points_per_epoch", 1)
    ck.integer(time, "time", "horizon", 1)


def _check_lr_range(planner, ck):
    lo, hi = ck.vector(planner, "planner", "lr_range", 2, positive=True)
    if not lo <= hi:
        ck.fail("planner.lr_range", "[lo, hi] with lo <= hi", repr([lo, hi]))


def _check_generative_sections(config, ck):
    sizes = {"channels": 1, "hidden": 1, "latent": 1, "state": 1, "width": 1, "depth": 0}
    arch = _check_architecture(config, ck, _ARCH_KEYS, _ARCH_FIXED, sizes)
    _check_common_sections(config, ck, arch["channels"])
    planner = ck.section(config, "planner", _PLANNER_KEYS)
    ck.keys_exact(planner, "planner", _PLANNER_KEYS)
    for key in ("window", "samples", "top_k", "replan_every"):
        ck.integer(planner, "planner", key, 1)
    ck.number(planner, "planner", "sigma")
    ck.number(planner, "planner", "tol", positive=True)
    ck.number(planner, "planner", "loss_floor", positive=True)
    if planner["sigma"] < 0:
        ck.fail("planner.sigma", "a number >= 0", repr(planner["sigma"]))
    if planner["anchor"] not in ("max_lr", "nearest"):
        ck.fail("planner.anchor", "'max_lr' or 'nearest'", repr(planner["anchor"]))
    _check_lr_range(planner, ck)


def _check_controlled_sections(config, ck):
    sizes = {"hidden": 1, "state": 1, "width": 1, "depth": 0, "window": 2}
    fixed = {k: v for k, v in _CONTROLLED_ARCH_FIXED.items()}
    _check_architecture(config, ck, _CONTROLLED_ARCH_KEYS, fixed, sizes)
    _check_common_sections(config, ck, len(CHANNEL_NAMES))
    if config["channels"]["names"] != list(CHANNEL_NAMES):
        ck.fail("channels.names", repr(list(CHANNEL_NAMES)), repr(config["channels"]["names"]))
    members = config["members"]
    if isinstance(members, bool) or not isinstance(members, int) or not 1 <= members <= 64:
        ck.fail("members", "an integer from 1 to 64", repr(members))
    cal = ck.section(config, "calibration", {"sd_scale", "sd_floor"})
    ck.keys_exact(cal, "calibration", {"sd_scale", "sd_floor"})
    ck.number(cal, "calibration", "sd_scale", positive=True)
    if ck.number(cal, "calibration", "sd_floor") < 0:
        ck.fail("calibration.sd_floor", "a number >= 0", repr(cal["sd_floor"]))
    planner = ck.section(config, "planner", {"lr_range"})
    if not isinstance(planner, dict):
        ck.fail("planner", "a JSON object", type(planner).__name__)
    _check_lr_range(planner, ck)
    _check_json(planner, "planner", ck)
    if planner.get("trust") is not None:
        try:
            TrustRegion.from_json(planner["trust"])
        except ValueError as e:
            ck.fail("planner.trust", "a trust region (see docs/model-format.md)", str(e))


def _check_json(value, key, ck):
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                ck.fail(f"{key}.{k!r}", "string keys", type(k).__name__)
            _check_json(v, f"{key}.{k}", ck)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_json(v, f"{key}[{i}]", ck)
    elif isinstance(value, float):
        if not math.isfinite(value):
            ck.fail(key, "a finite number or null (JSON has no NaN/inf)", repr(value))
    elif value is not None and not isinstance(value, str | int | bool):
        ck.fail(
            key, "a JSON value (object, list, string, number, bool, null)", type(value).__name__
        )


def json_clean(value, key="value"):
    """Turns NumPy scalars/arrays and tuples into plain JSON values, NaN/inf into null.

    Used for the free-form `training` and `metadata` sections so that an export at the
    end of a long training never fails on a NaN error figure or a `np.float32`: a
    non-finite number becomes `null` (logged, so nothing is lost silently).

    Raises:
        TypeError: a value that has no JSON form, naming its key.
    """
    if isinstance(value, dict):
        return {str(k): json_clean(v, f"{key}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_clean(v, f"{key}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, np.ndarray):
        return json_clean(value.tolist(), key)
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool | str | int) or value is None:
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        logger.warning(
            "keras_lode model file: %s is %r; stored as null (JSON has no NaN)", key, value
        )
        return None
    raise TypeError(
        f"`{key}` must be JSON data (dict, list, str, number, bool, None). "
        f"Received type {type(value).__name__}: {value!r}"
    )


def validate(config, weights, path="<memory>"):
    """Checks a config and its weights together.

    Every key, shape, dtype (float32/float64), finite value and size is checked.

    Args:
        config: the config dict.
        weights: dict name -> array.
        path: where they came from, for the error message.

    Raises:
        ValueError: naming the path, the key, what was expected and what was found.
    """
    validate_config(config, path)
    validate_weights(config, weights, path)


def validate_weights(config, weights, path="<memory>"):
    """Checks weights against an already validated config (see `validate`)."""
    ck = _Checker(path)
    expected = weight_shapes(config)
    for name in weights:
        if name not in expected:
            ck.fail(
                name,
                f"one of the weights of this architecture ({len(expected)} names)",
                "an unknown extra key",
            )
    for name, shape in expected.items():
        if name not in weights:
            ck.fail(name, f"a weight of shape {shape}", "it missing")
        w = weights[name]
        if not isinstance(w, np.ndarray):
            ck.fail(name, "a NumPy array", type(w).__name__)
        if w.dtype not in (np.float32, np.float64):
            ck.fail(name, "dtype float32 or float64", f"dtype {w.dtype}")
        if w.shape != tuple(shape):
            ck.fail(name, f"shape {tuple(shape)} (sizes from the config)", f"shape {w.shape}")
        if not np.all(np.isfinite(w)):
            ck.fail(name, "finite values", f"{int(np.sum(~np.isfinite(w)))} NaN/inf values")


# --------------------------------------------------------------------------------------
# Read and write
# --------------------------------------------------------------------------------------


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
    ck = _Checker(path)
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
