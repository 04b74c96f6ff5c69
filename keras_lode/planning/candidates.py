"""The candidate continuations a control planner scores, and the trust region that limits them.

With a controlled LODE the LR path is an input, so planning is a search over explicit
schedules for the rest of the run. `candidate_library` builds that set from the current LR:

* `"default"`: the continuation of the schedule the run follows now (given by the caller);
* `"constant"` at each start level;
* `"cosine"`, `"linear"` and `"exp"` decays, and `"wsd25"`/`"wsd50"`/`"wsd75"` (hold for that
  share of the rest of the run, then decay linearly), from each start level to each end level.

Start levels are multiples of the current LR (`starts`, default 0.5x, 1x, 2x); end levels are
fractions of the start (`ends`, default 1/10 and 1/100) and the bottom of the training runs' LR
range. Every candidate stays inside `lr_range` and at or below `max_lr` (the planner's cap:
the model's LR ceiling, `keras_lode.model.lr_ceiling`, or the current LR if that is higher),
and every step of it (the first one from the
current LR, then each from the LR it reached) must lie inside the `TrustRegion`: the LR
changes the training runs made from a similar state (the same stretch of training, a similar
LR). Candidates that leave either are dropped, not clipped, and the planner reports why.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from keras_lode._checks import check_int, check_number
from keras_lode.model.defaults import DEFAULT_ENDS, DEFAULT_STARTS, SHAPES
from keras_lode.model.trust_region import TrustRegion

__all__ = [
    "DEFAULT_ENDS",
    "DEFAULT_STARTS",
    "SHAPES",
    "Candidates",
    "TrustRegion",
    "candidate_library",
]


@dataclasses.dataclass
class Candidates:
    """A set of LR continuations for points `position + 1 .. total_points - 1`.

    Attributes:
        names: (C,) names, e.g. `"cosine 1x->0.01x"`; entry 0 is `"default"`.
        lr: (C, R) LR at each remaining point.
        rejected: `{name: reason}` of the library entries that were dropped.
    """

    names: list[str]
    lr: np.ndarray
    rejected: dict[str, str]


def _decay(shape: str, start: float, end: float, steps: int) -> np.ndarray:
    """`steps` LRs from `start` (first point) to `end` (last point)."""
    f = np.linspace(0.0, 1.0, steps) if steps > 1 else np.ones(1)
    if shape == "cosine":
        return end + (start - end) * 0.5 * (1.0 + np.cos(np.pi * f))
    if shape == "linear":
        return start + (end - start) * f
    if shape == "exp":
        return start * (end / start) ** f
    if shape.startswith("wsd"):
        hold = int(shape[3:]) / 100.0
        g = np.clip((f - hold) / (1.0 - hold), 0.0, 1.0)
        return start + (end - start) * g
    raise ValueError(f"Unknown candidate shape {shape!r}; expected one of {SHAPES}")


def _ratio_name(x: float) -> str:
    return f"{x:.3g}x"


def candidate_library(
    lr_now: float,
    remaining: int,
    *,
    lr_range,
    default=None,
    starts=DEFAULT_STARTS,
    ends=DEFAULT_ENDS,
    shapes=SHAPES,
    trust: TrustRegion | None = None,
    fraction: float = 0.0,
    max_lr: float | None = None,
) -> Candidates:
    """The library of continuations from the current LR, filtered by range and trust region.

    Args:
        lr_now: the LR in effect at the current point (> 0).
        remaining: number of points R left to plan (>= 1).
        lr_range: (low, high): the LR range the training runs visited.
        default: (R,) the continuation of the schedule the run follows now; None holds
            `lr_now` (then `"default"` is the constant at 1x). It is always kept as it is,
            even where it leaves `lr_range` (a schedule that anneals to zero): staying the
            course is the fallback of every decision, and the plan is then that schedule.
        starts: start levels as multiples of `lr_now`.
        ends: end levels as fractions of the start level.
        shapes: decaying shapes to include (a subset of `SHAPES`).
        trust: the allowed LR changes, checked at every step of a candidate; None allows
            any path inside `lr_range`.
        fraction: the current point as a fraction of the run (for the trust region).
        max_lr: the cap no candidate may rise above (the caller floors a ceiling at the
            run's current LR); None: no cap.

    Returns:
        `Candidates`, the default first.
    """
    lr_now = check_number("lr_now", lr_now, minimum=0.0, strict=True)
    R = check_int("remaining", remaining, minimum=1)
    lo, hi = (float(v) for v in lr_range)
    if default is None:
        default = np.full(R, lr_now)
    default = np.asarray(default, dtype=np.float64)
    if default.shape != (R,):
        raise ValueError(
            f"Argument `default` must have {R} LRs (one per remaining point). "
            f"Received shape {default.shape}"
        )
    ceiling = math.inf if max_lr is None else float(max_lr)
    names, paths, rejected = ["default"], [default], {}
    # Point n + i is at fraction + i / K of the run, and 1 / K = (1 - fraction) / (R + 1).
    step = (1.0 - fraction) / (R + 1)

    def add(name, path):
        if name in names or name in rejected:
            return
        # A relative tolerance: levels computed at the range's edges may round past it.
        if path.min() < lo * (1 - 1e-9) or path.max() > hi * (1 + 1e-9):
            rejected[name] = f"leaves the training runs' LR range [{lo:.3g}, {hi:.3g}]"
            return
        if path.max() > ceiling * (1 + 1e-9):
            rejected[name] = (
                f"rises to {path.max():.3g}, above the LR ceiling {ceiling:.3g} (no training "
                "task was best above it)"
            )
            return
        left = trust.path_violation(lr_now, path, fraction, step) if trust is not None else None
        if left is not None:
            i, ratio, (low, high) = left
            where = "from the current LR" if i == 0 else f"at its step {i + 1} of {R}"
            rejected[name] = (
                f"jumps x{ratio:.3g} {where}; the training runs changed it by "
                f"x{math.exp(low):.3g} to x{math.exp(high):.3g} from similar states"
            )
            return
        names.append(name)
        paths.append(np.clip(path, lo, hi))

    for m in starts:
        start = lr_now * float(m)
        add(f"constant {_ratio_name(m)}", np.full(R, start))
        # Ends below the range are the bottom, which is always there.
        end_levels = [(_ratio_name(m * e), start * float(e)) for e in ends if start * float(e) > lo]
        end_levels.append(("bottom", lo))
        for shape in shapes:
            for end_name, end in end_levels:
                if end >= start:
                    continue
                add(f"{shape} {_ratio_name(m)}->{end_name}", _decay(shape, start, end, R))
    return Candidates(names=names, lr=np.stack(paths), rejected=rejected)
