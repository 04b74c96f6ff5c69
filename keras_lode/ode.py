"""The latent ODE (LODE) in NumPy: encoder, vector field, RK4 decode, model file.

This is the inference side of keras_lode. It imports neither keras nor torch: a model
trained with `keras_lode.train` (PyTorch + torchdiffeq) is exported to one pickle-free
`.npz` file, and this module loads it and reproduces the torch model's `encode` and
`decode` (float64: max abs error <= 1e-6), batched over many latents at once.

Architecture (DESIGN.md 3.2; sizes come from the file's config):

* channels `[loss, log_lr, metric]`, standardized with the training runs' mean/std;
* time: log-point index times `config["time"]["scale"]`;
* encoder: a GRU cell read over the window in reverse time order, input
  `[t_scaled, normalized channels]`, then a linear map hidden -> latent;
* decoder: MLP latent -> ODE state (ReLU), vector field `scale * tanh(MLP(h))`
  (softplus hidden activations), fixed-step RK4 (torchdiffeq's 3/8 rule, its grid, its
  linear interpolation), linear ODE state -> channels, de-standardized.

Example:

```python
import numpy as np
import keras_lode

model = keras_lode.load_model("models/fashion_mnist_cnn.npz")
t = np.arange(30.0)
z = model.encode(t, window)            # window: (30, 3) raw [loss, log_lr, metric]
y = model.decode(np.arange(120.0), np.stack([z, z]))   # (2, 120, 3)
```
"""

from __future__ import annotations

import copy
import functools
import json
import logging
import math
import os
import tempfile
import threading
import zipfile

import numpy as np

from keras_lode import integrate

logger = logging.getLogger(__name__)

__all__ = [
    "CHANNEL_NAMES",
    "FORMAT",
    "FORMAT_VERSION",
    "LatentODE",
    "default_config",
    "load_model",
    "random_model",
    "save_model",
    "validate",
    "weight_shapes",
]

FORMAT = "keras_lode.lode"
FORMAT_VERSION = "1.0"
CHANNEL_NAMES = ("loss", "log_lr", "metric")

# The planner defaults of the paper (DESIGN.md 3.4) plus the two knobs it leaves open.
PLANNER_DEFAULTS = {
    "window": 30,
    "samples": 30,
    "sigma": 0.15,
    "tol": 2.0,
    # Absolute floor on the loss band's half-width: the std of three nearly equal losses
    # can be ~0, which would make the band a single point that no decoded path hits.
    "loss_floor": 1e-3,
    "top_k": 3,
    "replan_every": 10,
    "anchor": "max_lr",
}

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
    """The expected weight names (torch `state_dict` names) and shapes for a config."""
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


def validate_config(config, path="<config>"):
    """Checks a config dict; raises ValueError naming the path, key, expected and found."""
    ck = _Checker(path)
    if not isinstance(config, dict):
        ck.fail("config", "a JSON object", type(config).__name__)
    ck.keys_exact(config, "config", _CONFIG_KEYS)
    missing = _CONFIG_KEYS - set(config)
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

    arch = ck.section(config, "architecture", _ARCH_KEYS)
    ck.keys_exact(arch, "architecture", _ARCH_KEYS)
    for key in ("channels", "hidden", "latent", "state", "width"):
        ck.integer(arch, "architecture", key, 1)
    ck.integer(arch, "architecture", "depth", 0)
    for key, value in _ARCH_FIXED.items():
        if arch[key] != value:
            ck.fail(f"architecture.{key}", repr(value), repr(arch[key]))

    integ = ck.section(config, "integrator", {"method", "step_size"})
    ck.keys_exact(integ, "integrator", {"method", "step_size"})
    if integ["method"] != "rk4":
        ck.fail("integrator.method", "'rk4'", repr(integ["method"]))
    ck.number(integ, "integrator", "step_size", positive=True)

    c = arch["channels"]
    chans = ck.section(config, "channels", {"names", "mean", "std"})
    ck.keys_exact(chans, "channels", {"names", "mean", "std"})
    names = chans["names"]
    if not isinstance(names, list) or len(names) != c or not all(isinstance(n, str) for n in names):
        ck.fail("channels.names", f"a list of {c} strings", repr(names))
    ck.vector(chans, "channels", "mean", c)
    ck.vector(chans, "channels", "std", c, positive=True)

    time = ck.section(config, "time", {"unit", "scale", "points_per_epoch", "horizon"})
    ck.keys_exact(time, "time", {"unit", "scale", "points_per_epoch", "horizon"})
    if time["unit"] != "log_point":
        ck.fail("time.unit", "'log_point'", repr(time["unit"]))
    ck.number(time, "time", "scale", positive=True)
    ck.integer(time, "time", "points_per_epoch", 1)
    ck.integer(time, "time", "horizon", 1)

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
    lo, hi = ck.vector(planner, "planner", "lr_range", 2, positive=True)
    if not lo <= hi:
        ck.fail("planner.lr_range", "[lo, hi] with lo <= hi", repr([lo, hi]))

    for key in ("training", "metadata"):
        if not isinstance(config[key], dict):
            ck.fail(key, "a JSON object", type(config[key]).__name__)
        _check_json(config[key], key, ck)


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
# Model file
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
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".lode-", suffix=".npz", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        # mkstemp creates the file 0600; give it the usual permissions (umask applied).
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


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


def _read_file(path):
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
    validate(config, weights, path)
    return config, weights


def load_model(path, dtype=np.float64):
    """Loads a model file as a NumPy `LatentODE`.

    The file is read with `allow_pickle=False` semantics (array headers are checked
    before any data is read; object arrays are refused) and every key, shape, dtype,
    value and size is validated.

    Example:

    >>> model = keras_lode.load_model("models/fashion_mnist_cnn.npz")  # doctest: +SKIP

    Args:
        path: the `.npz` model file.
        dtype: compute dtype, `np.float64` (default) or `np.float32`.

    Returns:
        A `LatentODE`.

    Raises:
        FileNotFoundError: no file at `path`.
        ValueError: the file is not a valid model file; the message names the path,
            the key and expected vs found.
    """
    path = os.fspath(path)
    config, weights = _read_file(path)
    return LatentODE(config, weights, dtype=dtype)


# --------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------


def _sigmoid(x):
    # tanh form: no overflow warning for large |x|, same value to rounding.
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _softplus(x):
    # torch.nn.functional.softplus: x above the threshold 20, log1p(exp(x)) below.
    with np.errstate(under="ignore"):  # exp(-large) -> 0 is the right answer
        return np.where(x > 20, x, np.log1p(np.exp(np.minimum(x, 20))))


def _relu(x):
    return np.maximum(x, 0)


def _mlp(layers, x, activation, final=None):
    for w, b in layers[:-1]:
        x = activation(x @ w.T + b)
    w, b = layers[-1]
    x = x @ w.T + b
    return final(x) if final is not None else x


class _FieldKernel:
    """The vector field's RK4 loop with preallocated buffers (the decode hot path).

    Each layer's input buffer carries a trailing column of ones and each weight matrix
    a trailing row holding the bias, so one `matmul` does `x @ W.T + b` with no
    temporaries. The field's `scale` is folded into the RK stage coefficients.
    """

    def __init__(self, layers, scale, batch, dtype):
        self.dtype = dtype
        self.scale = dtype(scale)
        self.aug = [
            np.ascontiguousarray(np.vstack([w.T, b[None, :]]), dtype=dtype) for w, b in layers
        ]
        self.bufs = []
        for a in self.aug:
            buf = np.empty((batch, a.shape[0]), dtype=dtype)
            buf[:, -1] = 1
            self.bufs.append(buf)
        n = layers[-1][0].shape[0]
        self.k = [np.empty((batch, n), dtype=dtype) for _ in range(4)]
        self.scratch = [np.empty((batch, a.shape[1]), dtype=dtype) for a in self.aug[:-1]]
        self.safe = False

    def tanh_mlp(self, out):
        """`tanh(MLP(bufs[0][:, :-1]))` into `out` (softplus hidden layers)."""
        bufs, aug = self.bufs, self.aug
        for i in range(len(aug) - 1):
            dst = bufs[i + 1][:, :-1]
            np.matmul(bufs[i], aug[i], out=dst)
            if self.safe:
                # max(log1p(exp(min(x, 20))), x) is torch's thresholded softplus to
                # within 2e-9 (softplus(x) > x for every x). exp never sees a large
                # argument: overflowing inputs also send NumPy's exp down a slow path.
                scr = self.scratch[i]
                np.minimum(dst, 20, out=scr)
                np.exp(scr, out=scr)
                np.log1p(scr, out=scr)
                np.maximum(dst, scr, out=dst)
            else:
                # Plain log1p(exp(x)): two ufuncs. It overflows only for x > ~88 (float32)
                # or ~709 (float64); the caller then reruns with `safe`.
                np.exp(dst, out=dst)
                np.log1p(dst, out=dst)
        np.matmul(bufs[-1], aug[-1], out=out)
        np.tanh(out, out=out)

    def integrate(self, h0, grid):
        """RK4 over `grid` from `h0`; returns `(states, overflowed)`.

        `overflowed` says a floating-point overflow or invalid operation happened. In
        the fast form that means exp() overflowed in a softplus; the result may then be
        wrong even where finite (tanh squashes an inf to +-1), so the caller reruns.
        """
        states = np.empty((len(grid),) + h0.shape, dtype=self.dtype)
        states[0] = h0
        x = self.bufs[0][:, :-1]
        k1, k2, k3, k4 = self.k
        dts = np.diff(grid)
        third = self.dtype(_ONE_THIRD)
        y = h0
        flags = []
        # NumPy checks the FP status after every ufunc anyway: the callback costs nothing
        # unless something overflowed.
        with np.errstate(
            over="call",
            invalid="call",
            under="ignore",
            divide="ignore",
            call=lambda kind, flag: flags.append(kind),
        ):
            for i, dt in enumerate(dts):
                c = dt * self.scale
                x[...] = y
                self.tanh_mlp(k1)
                np.multiply(k1, c * third, out=x)
                x += y
                self.tanh_mlp(k2)
                np.multiply(k1, -third, out=x)
                x += k2
                x *= c
                x += y
                self.tanh_mlp(k3)
                np.subtract(k1, k2, out=x)
                x += k3
                x *= c
                x += y
                self.tanh_mlp(k4)
                # y1 = y0 + c/8 * (k1 + 3 (k2 + k3) + k4), written into the next state row.
                nxt = states[i + 1]
                np.add(k2, k3, out=nxt)
                nxt *= 3
                nxt += k1
                nxt += k4
                nxt *= c * self.dtype(0.125)
                nxt += y
                y = nxt
        return states, bool(flags)


_ONE_THIRD = 1 / 3


DECODE_METHODS = ("fast", "reference", "jax")


@functools.cache
def _jax_rk4(n_layers, dtype_name):
    """A jitted RK4 (3/8 rule) loop over a given grid, for the vector field, on the CPU.

    jax is imported here, only when asked for. It runs on the CPU device whatever the
    default device is (these arrays are tiny) and in float64 inside a local
    `jax.enable_x64` scope, so the user's global JAX settings are untouched.
    """
    try:
        import jax
        import jax.numpy as jnp
    except ImportError as e:
        raise ImportError(
            "LatentODE.decode(method='jax') needs jax; install with pip install 'keras-lode[jax]'"
        ) from e
    cpu = jax.devices("cpu")[0]
    x64 = dtype_name == "float64"

    def field(layers, scale, h):
        for w, b in layers[:-1]:
            h = jax.nn.softplus(h @ w.T + b)
        w, b = layers[-1]
        return scale * jnp.tanh(h @ w.T + b)

    def run(layers, scale, h0, dts):
        def step(y, dt):
            k1 = field(layers, scale, y)
            k2 = field(layers, scale, y + dt * k1 * (1 / 3))
            k3 = field(layers, scale, y + dt * (k2 - k1 * (1 / 3)))
            k4 = field(layers, scale, y + dt * (k1 - k2 + k3))
            y1 = y + (k1 + 3 * (k2 + k3) + k4) * dt * 0.125
            return y1, y1

        _, ys = jax.lax.scan(step, h0, dts)
        return jnp.concatenate([h0[None], ys])

    jitted = jax.jit(run)

    def call(layers, scale, h0, dts):
        with jax.enable_x64(x64):
            args = jax.device_put((layers, scale, h0, dts), cpu)
            return np.asarray(jitted(*args))

    return call


class LatentODE:
    """The NumPy latent ODE: `encode` a window of a run, `decode` a latent into a run.

    Usually obtained from `load_model(path)`; `random_model()` builds one with random
    weights for tests.

    Args:
        config: a model-file config (see `default_config`, docs/model-format.md).
        weights: dict name -> array, torch `state_dict` names.
        dtype: compute dtype, `np.float64` or `np.float32`.

    Raises:
        ValueError: invalid config or weights, or an unsupported dtype.
    """

    def __init__(self, config, weights, dtype=np.float64):
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise ValueError(f"Argument `dtype` must be float32 or float64. Received: {dtype}")
        weights = {k: np.asarray(v) for k, v in weights.items()}
        validate(config, weights)
        self._config = copy.deepcopy(config)
        self.dtype = dtype.type
        self.weights = {k: v.astype(dtype) for k, v in weights.items()}
        a = config["architecture"]
        self.channels, self.latent, self.state = a["channels"], a["latent"], a["state"]
        self.step_size = float(config["integrator"]["step_size"])
        self.time_scale = float(config["time"]["scale"])
        self.mean = np.asarray(config["channels"]["mean"], dtype=dtype)
        self.std = np.asarray(config["channels"]["std"], dtype=dtype)
        w = self.weights
        self._to_state = self._layers("to_state", a["depth"])
        self._field = self._layers("field", a["depth"])
        self._scale = w["field.scale"]
        self._kernels = {}
        self._lock = threading.Lock()
        self._safe = False
        self.decode_method = "fast"

    def _layers(self, prefix, depth):
        return [
            (self.weights[f"{prefix}.layers.{i}.weight"], self.weights[f"{prefix}.layers.{i}.bias"])
            for i in range(depth + 1)
        ]

    # -- read-only views of the config ------------------------------------------------------

    @property
    def config(self):
        """The model file's config (a copy: editing it does not change the model)."""
        return copy.deepcopy(self._config)

    @property
    def points_per_epoch(self):
        return int(self._config["time"]["points_per_epoch"])

    @property
    def horizon(self):
        """Number of log points (K) of the runs the model was trained on."""
        return int(self._config["time"]["horizon"])

    @property
    def lr_range(self):
        lo, hi = self._config["planner"]["lr_range"]
        return float(lo), float(hi)

    @property
    def planner_defaults(self):
        return copy.deepcopy(self._config["planner"])

    @property
    def channel_names(self):
        return list(self._config["channels"]["names"])

    def __repr__(self):
        a = self._config["architecture"]
        return (
            f"LatentODE(hidden={a['hidden']}, latent={a['latent']}, state={a['state']}, "
            f"width={a['width']}, depth={a['depth']}, step_size={self.step_size}, "
            f"dtype={np.dtype(self.dtype).name})"
        )

    # -- pieces ----------------------------------------------------------------------------

    def _times(self, t, name="t"):
        t = np.asarray(t)
        if t.ndim != 1 or t.size < 1:
            raise ValueError(
                f"Argument `{name}` must be a 1-D array of log-point indices. "
                f"Received shape {t.shape}."
            )
        if not np.issubdtype(t.dtype, np.number) or np.issubdtype(t.dtype, np.complexfloating):
            raise TypeError(f"Argument `{name}` must be numeric. Received dtype {t.dtype}.")
        t = t.astype(self.dtype)
        if not np.all(np.isfinite(t)):
            raise ValueError(f"Argument `{name}` must hold finite times.")
        if t.size > 1 and not np.all(t[1:] > t[:-1]):
            raise ValueError(f"Argument `{name}` must be strictly increasing.")
        return t * self.dtype(self.time_scale)

    def normalize(self, y):
        """Raw channel values -> standardized."""
        return (np.asarray(y, dtype=self.dtype) - self.mean) / self.std

    def denormalize(self, y):
        """Standardized channel values -> raw."""
        return np.asarray(y, dtype=self.dtype) * self.std + self.mean

    def encode(self, t, y):
        """Encodes a window of a run into a latent state.

        The GRU reads the window from its last point to its first, with the scaled
        log-point index as an extra input. What `z` represents is what the model was
        trained for: keras_lode.train decodes it from `t = 0` of the run, so
        `decode(np.arange(K), z)` reconstructs the whole run.

        Args:
            t: `(W,)` log-point indices of the window, strictly increasing.
            y: `(W, C)` raw channel values `[loss, log_lr, metric]`, or `(B, W, C)`.

        Returns:
            `(L,)`, or `(B, L)` for batched `y`.

        Raises:
            ValueError: shapes that do not fit, non-finite values.
        """
        ts = self._times(t)
        y = np.asarray(y)
        batched = y.ndim == 3
        if y.ndim not in (2, 3) or y.shape[-2:] != (ts.size, self.channels):
            raise ValueError(
                f"Argument `y` must have shape (W, C) = ({ts.size}, {self.channels}) or "
                f"(B, {ts.size}, {self.channels}) to match `t`. Received shape {y.shape}."
            )
        if not np.issubdtype(y.dtype, np.number):
            raise TypeError(f"Argument `y` must be numeric. Received dtype {y.dtype}.")
        yn = self.normalize(y)
        if not np.all(np.isfinite(yn)):
            raise ValueError(
                "Argument `y` holds NaN/inf values; the encoder needs finite "
                "[loss, log_lr, metric] at every point of the window (fill or drop them)."
            )
        if not batched:
            yn = yn[None]
        b = yn.shape[0]
        w = self.weights
        wih, whh = w["encoder.weight_ih"], w["encoder.weight_hh"]
        bih, bhh = w["encoder.bias_ih"], w["encoder.bias_hh"]
        hid = whh.shape[1]
        x = np.concatenate([np.broadcast_to(ts[None, :, None], (b, ts.size, 1)), yn], axis=-1)
        # Input projections of all points at once; only the recurrence is sequential.
        gi_all = x @ wih.T + bih
        h = np.zeros((b, hid), dtype=self.dtype)
        for i in range(ts.size - 1, -1, -1):
            gi = gi_all[:, i]
            gh = h @ whh.T + bhh
            r = _sigmoid(gi[:, :hid] + gh[:, :hid])
            zg = _sigmoid(gi[:, hid : 2 * hid] + gh[:, hid : 2 * hid])
            n = np.tanh(gi[:, 2 * hid :] + r * gh[:, 2 * hid :])
            h = n + zg * (h - n)
        z = h @ w["to_latent.weight"].T + w["to_latent.bias"]
        return z if batched else z[0]

    def initial_state(self, z):
        """Latent `(..., L)` -> ODE state `(..., N)` (the ReLU MLP)."""
        return _mlp(self._to_state, np.asarray(z, dtype=self.dtype), _relu)

    def field(self, t, h):
        """The vector field `scale * tanh(MLP(h))`; autonomous, `t` is ignored."""
        return self._scale * _mlp(self._field, h, _softplus, np.tanh)

    def _integrate_reference(self, h0, ts):
        return integrate.odeint(self.field, h0, ts, method="rk4", step_size=self.step_size)

    def _integrate_fast(self, h0, ts):
        grid = integrate.make_grid(ts, self.step_size)
        s = h0.shape[0]
        # The kernel's buffers are shared state: a decode running in another thread
        # gets a private kernel instead of racing on them.
        owned = self._lock.acquire(blocking=False)
        try:
            kernel = self._kernels.get(s) if owned else None
            if kernel is None:
                kernel = _FieldKernel(self._field, self._scale, s, self.dtype)
                if owned:
                    if len(self._kernels) > 8:  # bounded: a few batch sizes are typical
                        self._kernels.clear()
                    self._kernels[s] = kernel
            kernel.safe = self._safe
            states, overflowed = kernel.integrate(h0, grid)
            if overflowed and not kernel.safe:
                # The two-ufunc softplus overflowed (huge pre-activations): redo it
                # safely, and stay safe for this model (its dynamics reach that range).
                self._safe = kernel.safe = True
                states, _ = kernel.integrate(h0, grid)
        finally:
            if owned:
                self._lock.release()
        if len(ts) == 1:
            return states[:1]
        return integrate.interpolate(states, grid, ts)

    def _integrate_jax(self, h0, ts):
        grid = integrate.make_grid(ts, self.step_size)
        if len(grid) == 1:
            return h0[None].copy()
        run = _jax_rk4(len(self._field), np.dtype(self.dtype).name)
        states = run(self._field, self._scale, h0, np.diff(grid))
        if len(ts) == 1:
            return states[:1]
        return integrate.interpolate(states, grid, ts)

    def decode(self, t, z, *, return_states=False, method=None):
        """Decodes latent states into channel trajectories at times `t`.

        `z` is the latent state at `t[0]` (torchdiffeq's `odeint` convention); the ODE
        state is integrated with fixed-step RK4 on the scaled times, exactly as the
        torch twin does, and mapped back to raw channel units.

        Args:
            t: `(T,)` strictly increasing log-point indices.
            z: `(L,)` or `(S, L)` latent states.
            return_states: also return the ODE states `(T, N)` / `(S, T, N)`.
            method: how to integrate; `None` uses `self.decode_method` (default
                `"fast"`). `"fast"`: NumPy, fused and preallocated (the default);
                `"reference"`: the generic `keras_lode.integrate.odeint`; `"jax"`: the
                same RK4 steps as one jitted `lax.scan` on the CPU (needs jax; the first
                call per output length compiles). All agree with torch to rounding.

        Returns:
            `(T, C)` or `(S, T, C)` raw `[loss, log_lr, metric]`; with
            `return_states`, a tuple `(y, states)`.

        Raises:
            ValueError: bad shapes or values, unknown `method`.
        """
        if method is None:
            method = self.decode_method
        if method not in DECODE_METHODS:
            raise ValueError(
                f"Argument `method` must be one of {DECODE_METHODS}. Received: method={method!r}"
            )
        ts = self._times(t)
        z = np.asarray(z)
        if z.ndim not in (1, 2) or z.shape[-1] != self.latent:
            raise ValueError(
                f"Argument `z` must have shape (L,) or (S, L) with L = {self.latent}. "
                f"Received shape {z.shape}."
            )
        z = z.astype(self.dtype)
        if not np.all(np.isfinite(z)):
            raise ValueError("Argument `z` holds NaN/inf values.")
        single = z.ndim == 1
        h0 = self.initial_state(z[None] if single else z)
        if method == "fast":
            states = self._integrate_fast(h0, ts)
        elif method == "jax":
            states = self._integrate_jax(h0, ts)
        else:
            states = self._integrate_reference(h0, ts)
        states = np.swapaxes(states, 0, 1)  # (S, T, N)
        w = self.weights
        y = self.denormalize(states @ w["to_channels.weight"].T + w["to_channels.bias"])
        if single:
            y, states = y[0], states[0]
        return (y, states) if return_states else y

    # Copies and pickles (deepcopy, multiprocessing, Ray) carry the weights and config;
    # the lock and the scratch buffers are rebuilt.
    def __getstate__(self):
        state = self.__dict__.copy()
        state["_kernels"] = {}
        del state["_lock"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()

    # -- file ------------------------------------------------------------------------------

    def save(self, path):
        """Writes this model to a pickle-free `.npz` file (see `save_model`)."""
        save_model(path, self._config, self.weights)


def random_model(
    seed=0,
    *,
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
    channels=3,
    dtype=np.float64,
    field_scale=1.0,
):
    """A `LatentODE` with random weights (torch-like uniform init), NumPy only.

    For tests and demos: decodes to smooth, non-trivial trajectories.

    Args:
        seed: random seed.
        hidden, latent, state, width, depth, step_size, time_scale, points_per_epoch,
            horizon, mean, std, lr_range, channels: see `default_config`.
        dtype: compute dtype.
        field_scale: initial value of the vector field's `scale`.

    Returns:
        A `LatentODE`.
    """
    config = default_config(
        channels=channels,
        hidden=hidden,
        latent=latent,
        state=state,
        width=width,
        depth=depth,
        step_size=step_size,
        time_scale=time_scale,
        points_per_epoch=points_per_epoch,
        horizon=horizon,
        mean=mean,
        std=std,
        lr_range=lr_range,
    )
    rng = np.random.default_rng(seed)
    weights = {}
    for name, shape in weight_shapes(config).items():
        if name == "field.scale":
            weights[name] = np.asarray(field_scale, dtype=np.float64)
            continue
        if name.startswith("encoder."):
            fan_in = hidden
        else:
            layer = name.rsplit(".", 1)[0]
            fan_in = weight_shapes(config)[layer + ".weight"][1]
        bound = 1.0 / math.sqrt(fan_in)
        weights[name] = rng.uniform(-bound, bound, size=shape)
    return LatentODE(config, weights, dtype=dtype)
