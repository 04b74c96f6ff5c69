"""The planners' stored defaults: part of the model file's contract.

A model file's `planner` section starts from these values and may override any of them;
both planners (`keras_lode.planning`) fall back to them where neither the call nor the
file sets a value, and the trainer writes them into the files it exports. Keeping them
here lets `train/` and `planning/` agree without importing each other.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "CONTROL_DEFAULTS",
    "DEFAULT_ENDS",
    "DEFAULT_STARTS",
    "GENERATIVE_DEFAULTS",
    "PLANNER_DEFAULTS",
    "SHAPES",
]

# The planner defaults of the paper (docs/design.md) plus the two knobs it leaves open:
# the generative file's `planner` section.
PLANNER_DEFAULTS: dict[str, Any] = {
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

#: The paper's planner options (the callback's cadence left out).
GENERATIVE_DEFAULTS: dict[str, Any] = {
    k: v for k, v in PLANNER_DEFAULTS.items() if k != "replan_every"
}

#: Multiples of the current LR a candidate may start at.
DEFAULT_STARTS = (0.5, 1.0, 2.0)
#: End levels as fractions of the start level; the bottom of the LR range is always added.
DEFAULT_ENDS = (0.1, 0.01)
#: Decaying shapes of the library (plus `"constant"` and the caller's `"default"`).
SHAPES = ("cosine", "linear", "exp", "wsd25", "wsd50", "wsd75")

#: The control planner's defaults, where neither the call nor the file sets a value.
CONTROL_DEFAULTS: dict[str, Any] = {
    "kappa": 1.0,
    "margin": 0.001,
    "starts": DEFAULT_STARTS,
    "ends": DEFAULT_ENDS,
    "shapes": SHAPES,
    # Cadence of the callback, in fractions of the run (see LODECallback).
    "first_replan": 0.2,
    "replan_every": 0.1,
}
