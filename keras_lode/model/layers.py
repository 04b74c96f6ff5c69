"""NumPy building blocks shared by both kinds of model: activations, MLP, GRU step.

Each one computes what its torch counterpart computes (to rounding), so the NumPy
models reproduce their torch twins in `keras_lode.train`.
"""

from __future__ import annotations

import copy

import numpy as np

__all__ = ["ConfigViews", "check_points", "gru_step", "mlp", "relu", "sigmoid", "softplus"]


def sigmoid(x):
    """The logistic function in its tanh form: no overflow warning for large `|x|`."""
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def softplus(x):
    """`torch.nn.functional.softplus`: `x` above the threshold 20, `log1p(exp(x))` below."""
    with np.errstate(under="ignore"):  # exp(-large) -> 0 is the right answer
        return np.where(x > 20, x, np.log1p(np.exp(np.minimum(x, 20))))


def relu(x):
    """`max(x, 0)`."""
    return np.maximum(x, 0)


def mlp(layers, x, activation, final=None):
    """Applies `[(weight, bias), ...]` (torch `nn.Linear` layout) with `activation` between
    layers and `final` (if given) on the output."""
    for w, b in layers[:-1]:
        x = activation(x @ w.T + b)
    w, b = layers[-1]
    x = x @ w.T + b
    return final(x) if final is not None else x


def gru_step(gi, gh, h):
    """One `torch.nn.GRUCell` update from the input and hidden projections.

    Args:
        gi: `(B, 3H)` input projection `x @ W_ih.T + b_ih` (gates r, z, n).
        gh: `(B, 3H)` hidden projection `h @ W_hh.T + b_hh`.
        h: `(B, H)` the hidden state.

    Returns:
        The new hidden state, `(B, H)`.
    """
    hid = h.shape[-1]
    r = sigmoid(gi[:, :hid] + gh[:, :hid])
    zg = sigmoid(gi[:, hid : 2 * hid] + gh[:, hid : 2 * hid])
    n = np.tanh(gi[:, 2 * hid :] + r * gh[:, 2 * hid :])
    return n + zg * (h - n)


def check_points(t, name, dtype):
    """`t` as a 1-D, finite, strictly increasing array of log points in `dtype`.

    Raises:
        ValueError: not 1-D or empty, non-finite, not strictly increasing.
        TypeError: not numeric (or complex).
    """
    t = np.asarray(t)
    if t.ndim != 1 or t.size < 1:
        raise ValueError(
            f"Argument `{name}` must be a 1-D array of log points. Received shape {t.shape}."
        )
    if not np.issubdtype(t.dtype, np.number) or np.issubdtype(t.dtype, np.complexfloating):
        raise TypeError(f"Argument `{name}` must be numeric. Received dtype {t.dtype}.")
    t = t.astype(dtype)
    if not np.all(np.isfinite(t)):
        raise ValueError(f"Argument `{name}` must hold finite log points.")
    if t.size > 1 and not np.all(t[1:] > t[:-1]):
        raise ValueError(f"Argument `{name}` must be strictly increasing.")
    return t


class ConfigViews:
    """Read-only views of a model file's config, shared by both kinds of NumPy model."""

    _config: dict

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
    def mode(self) -> str:
        """`"max"` (higher metric is better, the default) or `"min"` (`channels.mode`)."""
        return str(self._config["channels"].get("mode", "max"))

    @property
    def features(self) -> str:
        """`"absolute"` (raw channels of its task, the default) or `"relative"` (task-free,
        `keras_lode.model.features`; `channels.features`)."""
        return str(self._config["channels"].get("features", "absolute"))

    @property
    def planner_defaults(self):
        return copy.deepcopy(self._config["planner"])
