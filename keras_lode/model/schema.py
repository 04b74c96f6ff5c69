"""The model file's schema: format name and version, kinds, sections, weight layout.

A LODE is stored as one `.npz` holding the weight arrays (torch `state_dict` names) and
one UTF-8 JSON config (format version, architecture sizes, integrator, channel names and
normalization, time unit, planner defaults, a summary of the training data);
docs/model-format.md. This module says what a file holds; `keras_lode.model.config`
builds configs, `keras_lode.model.validation` checks them and `keras_lode.model.io`
reads and writes files.
"""

from __future__ import annotations

from keras_lode.constants import CHANNELS as CHANNEL_NAMES
from keras_lode.model.defaults import PLANNER_DEFAULTS

__all__ = [
    "ARCH_FIXED",
    "ARCH_KEYS",
    "CHANNEL_NAMES",
    "CONFIG_KEYS",
    "CONTROLLED_ARCH_FIXED",
    "CONTROLLED_ARCH_KEYS",
    "CONTROLLED_KEYS",
    "FORMAT",
    "FORMAT_VERSION",
    "KINDS",
    "PLANNER_KEYS",
    "member_weight_shapes",
    "model_kind",
    "weight_shapes",
]

#: The `format` entry of every model file, and the version this keras_lode writes (a file
#: of another major version is refused).
FORMAT = "keras_lode.lode"
FORMAT_VERSION = "1.0"

#: Architecture entries of a generative file that have one allowed value.

ARCH_FIXED = {
    "encoder": "gru_reverse",
    "state_activation": "relu",
    "field_activation": "softplus",
    "field_output": "tanh",
}
#: Top-level sections of a generative file (a controlled one adds two: `CONTROLLED_KEYS`).
CONFIG_KEYS = {
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
ARCH_KEYS = {"channels", "hidden", "latent", "state", "width", "depth", *ARCH_FIXED}
#: The two kinds of model a file can hold: the paper's LODE, where the LR is one of the
#: decoded channels, and the controlled LODE, where the LR path is an input.
KINDS = ("generative", "controlled")
CONTROLLED_ARCH_FIXED = {
    "encoder": "gru_reverse",
    "field_activation": "softplus",
    "field_output": "tanh",
    "control": "log_lr_linear",
    "outputs": ["loss", "metric"],
}
CONTROLLED_ARCH_KEYS = {"hidden", "state", "width", "depth", "window", *CONTROLLED_ARCH_FIXED}
CONTROLLED_KEYS = CONFIG_KEYS | {"members", "calibration"}
PLANNER_KEYS = {*PLANNER_DEFAULTS, "lr_range"}


def model_kind(config) -> str:
    """`"generative"` (the paper's LODE; files without a `kind`) or `"controlled"`."""
    return config.get("kind", "generative") if isinstance(config, dict) else "generative"


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
