"""What both planners share: their options, the checks of a call's arguments, the time mapping.

`plan_generative` and `plan_control` take the same call arguments (a window of the run, the
position in it, the run's length, the plan in effect) and resolve their options the same way
(the call's value, else the model's `planner_defaults`, else the planner's table); the
helpers here do both, so neither planner reaches into the other.
"""

from __future__ import annotations

import dataclasses
import math
import numbers

import numpy as np

from keras_lode._checks import check_int, check_number, check_position
from keras_lode._warnings import warn as _warn
from keras_lode.constants import CHANNELS
from keras_lode.planning.plans import Plan

__all__ = [
    "check_position",
    "check_window",
    "metric_sign",
    "model_defaults",
    "option_names",
    "pick",
    "resolve_current_plan",
    "resolve_ceiling",
    "resolve_lr_range",
    "time_scale",
]


def option_names(config_class) -> tuple[str, ...]:
    """The option names of a planner: the fields of its options dataclass, in order."""
    return tuple(f.name for f in dataclasses.fields(config_class))


def metric_sign(model) -> float:
    """+1 when the model's metric is maximized (`model.mode == "max"`, the default), -1 when
    it is minimized (a loss, perplexity, bits per character)."""
    mode = getattr(model, "mode", "max")
    if mode not in ("max", "min"):
        raise ValueError(f"model.mode must be 'max' or 'min'. Received: {mode!r}")
    return 1.0 if mode == "max" else -1.0


def model_defaults(model) -> dict:
    """`model.planner_defaults` (a dict; empty when the model has none)."""
    defaults = getattr(model, "planner_defaults", None) or {}
    if not isinstance(defaults, dict):
        raise TypeError(
            f"model.planner_defaults must be a dict. Received: {type(defaults).__name__}"
        )
    return defaults


def pick(name: str, value, defaults: dict, table: dict):
    """The call's value, else the model's `planner_defaults`, else `table`'s."""
    if value is not None:
        return value
    if defaults.get(name) is not None:
        return defaults[name]
    return table[name]


def resolve_lr_range(lr_range, defaults: dict, model) -> tuple[float, float]:
    """`(low, high)`: the call's `lr_range`, else the model's planner default, else its own."""
    source = "lr_range"
    if lr_range is None:
        lr_range, source = defaults.get("lr_range"), "model.planner_defaults['lr_range']"
    if lr_range is None:
        lr_range, source = getattr(model, "lr_range", None), "model.lr_range"
    if lr_range is None:
        raise ValueError("No LR range: pass `lr_range=(low, high)` (the model defines none)")
    try:
        lo, hi = (float(v) for v in lr_range)
    except (TypeError, ValueError) as e:
        raise ValueError(
            f"`{source}` must be a pair (low, high) of numbers. Received: {lr_range!r}"
        ) from e
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo <= hi):
        raise ValueError(
            f"`{source}` must satisfy 0 < low <= high (finite). Received: ({lo}, {hi})"
        )
    return lo, hi


def resolve_ceiling(max_lr, optimizer, defaults: dict) -> float | None:
    """The LR ceiling of a plan (the run's LRs): the call's `max_lr`, else the model's
    `planner.lr_ceiling` for the run's optimizer (`keras_lode.model.lr_ceiling.ceiling_for`:
    0, no raises, for an optimizer it does not know), else None (no ceiling, as for
    `max_lr=inf`)."""
    from keras_lode.model.lr_ceiling import ceiling_for

    if max_lr is not None:
        if isinstance(max_lr, numbers.Real) and math.isinf(float(max_lr)) and max_lr > 0:
            return None  # no ceiling, whatever the model's
        return check_number("max_lr", max_lr, minimum=0.0)
    return ceiling_for(defaults.get("lr_ceiling"), optimizer)[0]


def check_window(window, n: int) -> np.ndarray:
    """The window as a finite (W, 3) float array of at most `n + 1` rows."""
    try:
        arr = np.asarray(window, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"Argument `window` must be a numeric (W, 3) array: {e}") from e
    if arr.ndim != 2 or arr.shape[1] != 3 or arr.shape[0] < 1:
        raise ValueError(
            "Argument `window` must have shape (W, 3) with columns [loss, ln lr, metric] and "
            f"W >= 1. Received: shape {arr.shape}"
        )
    if arr.shape[0] > n + 1:
        raise ValueError(
            f"Argument `window` has {arr.shape[0]} rows but only position + 1 = {n + 1} log "
            "points exist (rows are points position - W + 1 .. position)"
        )
    for c, name in enumerate(CHANNELS):
        bad = np.flatnonzero(~np.isfinite(arr[:, c]))
        if bad.size:
            raise ValueError(
                f"Argument `window` has non-finite {name} (column {c}) at {bad.size} row(s) "
                f"{bad[:5].tolist()}{'...' if bad.size > 5 else ''}: every value must be finite"
            )
    return arr


def resolve_current_plan(current_plan, n: int, K: int) -> np.ndarray | None:
    """The LRs the plan in effect gives points `n + 1 .. K - 1` (None without a plan)."""
    if current_plan is None:
        return None
    if isinstance(current_plan, Plan) or all(
        hasattr(current_plan, a) for a in ("lr", "position", "total_points")
    ):  # a Plan or a ControlPlan
        if current_plan.total_points != K or current_plan.position > n:
            raise ValueError(
                "Argument `current_plan` is a Plan for another run or a later point "
                f"(position {current_plan.position}, total_points {current_plan.total_points});"
                f" expected total_points {K} and position <= {n}"
            )
        arr = np.asarray(current_plan.lr, dtype=np.float64)[n - current_plan.position :]
    else:
        try:
            arr = np.asarray(current_plan, dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise ValueError(f"Argument `current_plan` must be numeric: {e}") from e
        if arr.ndim != 1 or arr.shape[0] not in (K, K - 1 - n):
            raise ValueError(
                f"Argument `current_plan` must be 1-D with {K - 1 - n} (remaining points) or "
                f"{K} (whole run) LRs. Received: shape {arr.shape}"
            )
        if arr.shape[0] == K:
            arr = arr[n + 1 :]
    if not np.all(np.isfinite(arr) & (arr > 0)):
        raise ValueError("Argument `current_plan` must hold finite, positive LRs")
    return arr.copy()


def time_scale(model, K: int, points_per_epoch) -> float:
    """Model time per run log point; warns when the run is mapped by fraction of training."""
    horizon = getattr(model, "horizon", None)
    model_p = getattr(model, "points_per_epoch", None)
    if horizon is None:
        return 1.0
    horizon = check_int("model.horizon", horizon, minimum=1)
    p_differs = (
        points_per_epoch is not None
        and model_p is not None
        and int(points_per_epoch) != int(model_p)
    )
    if K == horizon and not p_differs:
        return 1.0
    scale = horizon / K
    detail = f"{K} log points" + (
        f" at {points_per_epoch} per epoch" if points_per_epoch is not None else ""
    )
    _warn(
        f"The run ({detail}) differs from the model's horizon ({horizon} log points"
        + (f" at {model_p} per epoch" if model_p is not None else "")
        + f"): mapping by fraction of training, run point i -> model time i * {scale:.6g}."
    )
    return scale
