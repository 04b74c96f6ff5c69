"""Building model-file configs: `default_config` (generative), `controlled_config`.

The `planner` section of a file holds the planner's defaults
(`keras_lode.model.defaults`). Each builder validates what it builds, so a bad argument
fails where the caller passed it, not later at load time.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
from typing import Any

import numpy as np

from keras_lode.model.defaults import PLANNER_DEFAULTS
from keras_lode.model.options import resolve_options
from keras_lode.model.schema import (
    ARCH_FIXED,
    CHANNEL_NAMES,
    CONTROLLED_ARCH_FIXED,
    FORMAT,
    FORMAT_VERSION,
    PLANNER_KEYS,
)
from keras_lode.model.validation import validate_config

logger = logging.getLogger(__name__)

__all__ = [
    "ControlledSpec",
    "GenerativeSpec",
    "controlled_config",
    "default_config",
    "json_clean",
]


@dataclasses.dataclass(frozen=True)
class GenerativeSpec:
    """What a generative model file is built from (`default_config`).

    Attributes:
        channels, hidden, latent, state, width, depth: architecture sizes. `depth` is
            the number of hidden layers (of `width` units) of each MLP.
        step_size: RK4 step, in scaled time units.
        time_scale: multiplier from log-point index to model time.
        points_per_epoch: log points per epoch (P) of the training runs.
        horizon: number of log points (K) of the training runs.
        mean, std: per-channel normalization (default 0 and 1).
        mode: `"max"` (the metric is an accuracy: higher is better) or `"min"` (a loss,
            perplexity or bits per character); stored as `channels.mode` when `"min"`.
        lr_range: `(lo, hi)` learning rates seen in the training runs; the planner
            clips to it.
        planner: overrides of the planner defaults (`window`, `samples`, `sigma`,
            `tol`, `loss_floor`, `top_k`, `replan_every`, `anchor`, `lr_range`).
        training: JSON summary of the training data and errors.
        metadata: free-form JSON metadata.
    """

    channels: int = 3
    hidden: int = 20
    latent: int = 20
    state: int = 20
    width: int = 20
    depth: int = 2
    step_size: float = 1.0
    time_scale: float = 1.0
    points_per_epoch: int = 10
    horizon: int = 60
    mean: Any = None
    std: Any = None
    mode: str = "max"
    lr_range: Any = (1e-4, 1e-1)
    planner: dict | None = None
    training: dict | None = None
    metadata: dict | None = None


def default_config(spec: GenerativeSpec | None = None, **options):
    """Builds a complete, valid model-file config.

    Example:

    >>> config = default_config(hidden=8, latent=4, horizon=50)  # doctest: +SKIP

    Args:
        spec: a `GenerativeSpec` (default: its defaults).
        **options: fields of `GenerativeSpec` to set (`channels`, `hidden`, `latent`,
            `state`, `width`, `depth`, `step_size`, `time_scale`, `points_per_epoch`,
            `horizon`, `mean`, `std`, `mode`, `lr_range`, `planner`, `training`,
            `metadata`).

    Returns:
        A config dict that `validate` accepts.

    Raises:
        TypeError: an unknown option.
        ValueError: a value the model file does not allow (named as in the file).
    """
    s = resolve_options(GenerativeSpec, spec, options, "keras_lode.model.default_config")
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "architecture": {
            "channels": int(s.channels),
            "hidden": int(s.hidden),
            "latent": int(s.latent),
            "state": int(s.state),
            "width": int(s.width),
            "depth": int(s.depth),
            **ARCH_FIXED,
        },
        "integrator": {"method": "rk4", "step_size": float(s.step_size)},
        "channels": {**_generative_channels(s.channels, s.mean, s.std), **_mode(s.mode)},
        "time": {
            "unit": "log_point",
            "scale": float(s.time_scale),
            "points_per_epoch": int(s.points_per_epoch),
            "horizon": int(s.horizon),
        },
        "planner": _generative_planner(s.planner, s.lr_range),
        "training": json_clean(dict(s.training or {}), "training"),
        "metadata": json_clean(dict(s.metadata or {}), "metadata"),
    }
    # Fail here, where the caller can see what they passed, not later at load time.
    validate_config(config)
    return config


def _mode(mode) -> dict:
    """`{"mode": "min"}` for a minimized metric; nothing for the default `"max"` (so files of
    accuracy models stay readable by keras_lode versions without the key)."""
    if mode not in ("max", "min"):
        raise ValueError(f"Argument `mode` must be 'max' or 'min'. Received: {mode!r}")
    return {"mode": "min"} if mode == "min" else {}


def _generative_channels(channels, mean, std):
    mean = [0.0] * channels if mean is None else [float(v) for v in np.ravel(mean)]
    std = [1.0] * channels if std is None else [float(v) for v in np.ravel(std)]
    names = list(CHANNEL_NAMES) if channels == 3 else [f"channel_{i}" for i in range(channels)]
    return {"names": names, "mean": mean, "std": std}


def _generative_planner(planner, lr_range):
    planner_cfg = dict(PLANNER_DEFAULTS)
    planner_cfg["lr_range"] = [float(lr_range[0]), float(lr_range[1])]
    if planner:
        unknown = set(planner) - PLANNER_KEYS
        if unknown:
            raise ValueError(
                f"Argument `planner` has unknown keys {sorted(unknown)}; "
                f"expected a subset of {sorted(PLANNER_KEYS)}."
            )
        planner_cfg.update(planner)
        if "lr_range" in planner:
            planner_cfg["lr_range"] = [float(v) for v in planner["lr_range"]]
    return planner_cfg


@dataclasses.dataclass(frozen=True)
class ControlledSpec:
    """What a controlled ensemble file is built from (`controlled_config`).

    Attributes:
        members: ensemble size M.
        hidden, state, width, depth: GRU hidden size, ODE state size, field MLP width
            and number of hidden layers.
        window: log points the encoder reads.
        step_size: RK4 step in model time; a run of `horizon` points spans `span`.
        horizon: log points K of the training runs; model time is `point * span / K`.
        points_per_epoch: P of the training runs.
        span: model time of a whole run.
        mean, std: normalization of `[loss, ln lr, metric]`.
        mode: `"max"` or `"min"`: the metric's direction (see `GenerativeSpec`).
        features: `"absolute"` (raw channels of the task's runs) or `"relative"` (task-free:
            `keras_lode.model.features`); stored as `channels.features` when relative.
        lr_range: the LR range the training runs visited.
        calibration: `{"sd_scale", "sd_floor"}`: the calibrated spread of a prediction is
            `sd_scale * sqrt(sd**2 + sd_floor**2)` (default 1 and 0: the raw spread).
        planner: planner settings stored with the model (`lr_range` is set from above).
        training, metadata: JSON summaries.
    """

    members: int = 5
    hidden: int = 24
    state: int = 24
    width: int = 32
    depth: int = 2
    window: int = 10
    step_size: float = 0.5
    horizon: int = 50
    points_per_epoch: int = 10
    span: float = 10.0
    mean: Any = None
    std: Any = None
    mode: str = "max"
    features: str = "absolute"
    lr_range: Any = (1e-4, 1e-1)
    calibration: dict | None = None
    planner: dict | None = None
    training: dict | None = None
    metadata: dict | None = None


def controlled_config(spec: ControlledSpec | None = None, **options):
    """Builds a complete, valid config for a controlled ensemble file.

    Example:

    >>> config = controlled_config(members=3, window=6, horizon=40)  # doctest: +SKIP

    Args:
        spec: a `ControlledSpec` (default: its defaults).
        **options: fields of `ControlledSpec` to set (`members`, `hidden`, `state`,
            `width`, `depth`, `window`, `step_size`, `horizon`, `points_per_epoch`,
            `span`, `mean`, `std`, `mode`, `features`, `lr_range`, `calibration`, `planner`,
            `training`, `metadata`).

    Returns:
        A config dict that `validate` accepts.

    Raises:
        TypeError: an unknown option.
        ValueError: a value the model file does not allow (named as in the file).
    """
    s = resolve_options(ControlledSpec, spec, options, "keras_lode.model.controlled_config")
    mean = [0.0, 0.0, 0.0] if s.mean is None else [float(v) for v in np.ravel(s.mean)]
    std = [1.0, 1.0, 1.0] if s.std is None else [float(v) for v in np.ravel(s.std)]
    cal = {"sd_scale": 1.0, "sd_floor": 0.0, **(s.calibration or {})}
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": "controlled",
        "architecture": {
            "hidden": int(s.hidden),
            "state": int(s.state),
            "width": int(s.width),
            "depth": int(s.depth),
            "window": int(s.window),
            **copy.deepcopy(CONTROLLED_ARCH_FIXED),
        },
        "members": int(s.members),
        "integrator": {"method": "rk4", "step_size": float(s.step_size)},
        "channels": {
            "names": list(CHANNEL_NAMES),
            "mean": mean,
            "std": std,
            **_mode(s.mode),
            **_features(s.features),
        },
        "time": {
            "unit": "log_point",
            "scale": float(s.span) / int(s.horizon),
            "points_per_epoch": int(s.points_per_epoch),
            "horizon": int(s.horizon),
        },
        "calibration": {k: float(v) for k, v in cal.items()},
        "planner": json_clean(
            {**(s.planner or {}), "lr_range": [float(s.lr_range[0]), float(s.lr_range[1])]},
            "planner",
        ),
        "training": json_clean(dict(s.training or {}), "training"),
        "metadata": json_clean(dict(s.metadata or {}), "metadata"),
    }
    validate_config(config)
    return config


def _features(features: str) -> dict:
    """`{"features": "relative"}` for a task-free model; nothing for the default
    `"absolute"` (files of a task's own runs are unchanged)."""
    return {"features": features} if features != "absolute" else {}


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
