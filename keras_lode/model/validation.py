"""Validation of a model file's config and weights.

Every key, shape, dtype and value is checked, and each error names the file, the key,
what was expected and what was found (docs/model-format.md). The `planner` section of a
controlled file may hold a trust region (`keras_lode.model.trust_region`).
"""

from __future__ import annotations

import math

import numpy as np

from keras_lode.model.features import FEATURES
from keras_lode.model.lr_ceiling import check_ceiling
from keras_lode.model.paired_gate import START_KINDS
from keras_lode.model.schema import (
    ARCH_FIXED,
    ARCH_KEYS,
    CHANNEL_NAMES,
    CONFIG_KEYS,
    CONTROLLED_ARCH_FIXED,
    CONTROLLED_ARCH_KEYS,
    CONTROLLED_KEYS,
    FORMAT,
    FORMAT_VERSION,
    KINDS,
    PLANNER_KEYS,
    model_kind,
    weight_shapes,
)
from keras_lode.model.trust_region import TrustRegion

__all__ = ["Checker", "validate", "validate_config", "validate_weights"]


class Checker:
    """Raises the model file's errors: each names the file, the key, what was expected and
    what was found.

    Args:
        path: where the config and weights came from (a file path or `"<memory>"`).
    """

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
    ck = Checker(path)
    if not isinstance(config, dict):
        ck.fail("config", "a JSON object", type(config).__name__)
    kind = model_kind(config)
    if kind not in KINDS:
        ck.fail("kind", f"one of {list(KINDS)}", repr(kind))
    required = CONFIG_KEYS if kind == "generative" else CONTROLLED_KEYS
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
    ck.keys_exact(chans, "channels", {"names", "mean", "std", "mode", "features"})
    if chans.get("mode", "max") not in ("max", "min"):
        ck.fail("channels.mode", "'max' or 'min'", repr(chans["mode"]))
    if chans.get("features", "absolute") not in FEATURES:
        ck.fail("channels.features", " or ".join(map(repr, FEATURES)), repr(chans["features"]))
    if chans.get("features", "absolute") == "relative" and config.get("kind") != "controlled":
        ck.fail("channels.features", "'relative' only in a controlled model", "a generative one")
    if chans.get("features", "absolute") == "relative" and chans.get("mode", "max") != "max":
        ck.fail("channels.mode", "'max' with relative features (they are improvements)", "'min'")
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
    arch = _check_architecture(config, ck, ARCH_KEYS, ARCH_FIXED, sizes)
    _check_common_sections(config, ck, arch["channels"])
    planner = ck.section(config, "planner", PLANNER_KEYS)
    ck.keys_exact(planner, "planner", PLANNER_KEYS)
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
    fixed = {k: v for k, v in CONTROLLED_ARCH_FIXED.items()}
    _check_architecture(config, ck, CONTROLLED_ARCH_KEYS, fixed, sizes)
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
    if planner.get("paired") is not None:
        _check_paired(planner["paired"], ck)
    if "lr_ceiling" in planner:
        problem = check_ceiling(planner["lr_ceiling"])
        if problem is not None:
            ck.fail("planner.lr_ceiling", *problem)


def _check_paired(paired, ck):
    """`planner.paired`: the paired decision rule's calibration (docs/model-format.md)."""
    keys = {"sd_scale", "sd_floor", "kappa", "margin", "trusted", "level", "coverage"}
    if not isinstance(paired, dict):
        ck.fail("planner.paired", "a JSON object", type(paired).__name__)
    missing = sorted(keys - set(paired))
    if missing:
        ck.fail("planner.paired", f"the keys {sorted(keys)}", f"missing {missing}")
    ck.number(paired, "planner.paired", "sd_scale", positive=True)
    for key in ("sd_floor", "kappa"):
        if ck.number(paired, "planner.paired", key) < 0:
            ck.fail(f"planner.paired.{key}", "a number >= 0", repr(paired[key]))
    ck.number(paired, "planner.paired", "margin")
    for key in ("trusted", "switch"):
        if key in paired and not isinstance(paired[key], bool):
            ck.fail(f"planner.paired.{key}", "true or false", repr(paired[key]))
    for key in ("level", "coverage"):
        if not 0 <= ck.number(paired, "planner.paired", key) <= 1:
            ck.fail(f"planner.paired.{key}", "a number in [0, 1]", repr(paired[key]))
    starts = paired.get("starts", [])
    if not isinstance(starts, list) or not all(k in START_KINDS for k in starts):
        ck.fail("planner.paired.starts", f"a list of kinds of start out of {list(START_KINDS)}",
                repr(starts))  # fmt: skip
    if paired.get("prior") is not None:
        _check_prior(paired["prior"], ck)


def _check_prior(prior, ck):
    """`planner.paired.prior`: a continuation prior (`keras_lode.model.prior`)."""
    from keras_lode.model.prior import SHAPE_FEATURES

    if not isinstance(prior, dict):
        ck.fail("planner.paired.prior", "a JSON object", type(prior).__name__)
    if prior.get("features") != list(SHAPE_FEATURES):
        ck.fail("planner.paired.prior.features", f"the list {list(SHAPE_FEATURES)}",
                repr(prior.get("features")))  # fmt: skip
    for key in ("alpha", "weights"):
        if key not in prior:
            ck.fail("planner.paired.prior", f"the key {key!r}", f"keys {sorted(prior)}")
    ck.number(prior, "planner.paired.prior", "alpha")
    ck.vector(prior, "planner.paired.prior", "weights", len(SHAPE_FEATURES))
    if "fractions" in prior:
        ck.vector(prior, "planner.paired.prior", "fractions", 2)
        lo, hi = prior["fractions"]
        if not 0 <= lo <= hi <= 1:
            ck.fail("planner.paired.prior.fractions", "[lo, hi] with 0 <= lo <= hi <= 1",
                    repr(prior["fractions"]))  # fmt: skip


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
    ck = Checker(path)
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
