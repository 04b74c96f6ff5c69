"""The LR ceiling: how high a planner may raise a run's LR, by the run's optimizer.

A task-free model reads a run relative to its own LR, so it cannot tell a run whose LR is
too low from one whose LR is already at the edge of what its task tolerates: the same raise
that rescues a constant run at Keras' default LR makes a run at its task's best peak LR
diverge. The ceiling is what the training runs know about that edge. Per optimizer kind
(`OPTIMIZER_KINDS`: optimizers whose LRs live on one scale), it is the lowest of the
training tasks' sweep-best peak LRs: no task the model learned from was best above it.

The planner drops any candidate continuation whose LR rises above `max(ceiling, current
LR)`: a run already above the ceiling may hold or anneal, never rise further. A run whose
optimizer is of no kind the model knows (or unnamed) gets ceiling 0: no raises at all.

In a model file, `planner.lr_ceiling` maps kind to LR, e.g. `{"adam": 0.003, "sgd": 0.05}`
(`keras_lode.train.lr_ceiling` fits it; `training.lr_ceiling` records each task's best
peak). NumPy-free.
"""

from __future__ import annotations

import math

__all__ = ["OPTIMIZER_KINDS", "ceiling_for", "check_ceiling", "optimizer_kind", "optimizer_name"]

#: Optimizer kind -> the lower-cased Keras class names of that kind (one LR scale each).
OPTIMIZER_KINDS = {
    "adam": ("adam", "adamw", "nadam", "adamax"),
    "sgd": ("sgd",),
}


def optimizer_kind(name) -> str | None:
    """The kind of an optimizer class name (`"AdamW"` -> `"adam"`) or of an optimizer (a
    mixed-precision `LossScaleOptimizer` is read by the one it wraps); None if unknown."""
    if name is None:
        return None
    if not isinstance(name, str):
        name = optimizer_name(name)
    low = name.strip().lower()
    for kind, names in OPTIMIZER_KINDS.items():
        if low in names:
            return kind
    return None


def optimizer_name(optimizer) -> str:
    """The class name whose LR scale counts: a `LossScaleOptimizer`'s inner optimizer's."""
    return type(getattr(optimizer, "inner_optimizer", optimizer)).__name__


def ceiling_for(section, optimizer) -> tuple[float | None, str]:
    """`(ceiling, why)` for a run with optimizer class name `optimizer`.

    Args:
        section: the model file's `planner.lr_ceiling` (None: the model has none).
        optimizer: the optimizer's class name (e.g. `"AdamW"`) or the optimizer, or None
            if unknown.

    Returns:
        `(None, why)` when the model has no ceiling (no limit beyond its LR range);
        `(0.0, why)` for an optimizer of a kind the ceiling does not know (no raises);
        else the kind's ceiling LR.
    """
    if not section:
        return None, "the model has no LR ceiling"
    kind = optimizer_kind(optimizer)
    if optimizer is not None and not isinstance(optimizer, str):
        optimizer = optimizer_name(optimizer)
    if kind is None or kind not in section:
        known = ", ".join(sorted(section))
        return 0.0, (
            f"optimizer {optimizer!r} is of no kind the model's LR ceiling knows ({known}): "
            "the planner does not raise the LR"
        )
    value = float(section[kind])
    return value, f"{optimizer}: LR ceiling {value:.3g} (the lowest best peak LR of its kind)"


def check_ceiling(section) -> tuple[str, str] | None:
    """`(expected, found)` of what is wrong with a `planner.lr_ceiling` section, or None
    if it is well formed."""
    if not isinstance(section, dict) or not section:
        return "a non-empty JSON object of optimizer kind -> LR", repr(section)
    for kind, value in section.items():
        if kind not in OPTIMIZER_KINDS:
            return f"optimizer kinds among {sorted(OPTIMIZER_KINDS)}", repr(kind)
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok or not math.isfinite(value) or value <= 0:
            return f"a positive finite LR for {kind!r}", repr(value)
    return None
