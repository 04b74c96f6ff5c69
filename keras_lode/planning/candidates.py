"""The candidate continuations a control planner scores, and the trust region that limits them.

With a controlled LODE the LR path is an input, so planning is a search over explicit
schedules for the rest of the run. `candidate_library` builds that set from the current LR:

* `"default"`: the continuation of the schedule the run follows now (given by the caller);
* `"constant"` at each start level;
* `"cosine"`, `"linear"` and `"exp"` decays, and `"wsd25"`/`"wsd50"`/`"wsd75"` (hold for that
  share of the rest of the run, then decay linearly), from each start level to each end level.

Start levels are multiples of the current LR (`starts`, default 0.5x, 1x, 2x); end levels are
fractions of the start (`ends`, default 1/10 and 1/100) and the bottom of the training runs' LR
range. Every candidate stays inside `lr_range`, and its first step (the jump from the current
LR) must lie inside the `TrustRegion`: the LR changes the training runs made from a similar
state (the same stretch of training, a similar LR). Candidates that leave either are dropped,
not clipped, and the planner reports why.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from keras_lode._checks import check_int, check_number

__all__ = [
    "DEFAULT_ENDS",
    "DEFAULT_STARTS",
    "SHAPES",
    "Candidates",
    "TrustRegion",
    "candidate_library",
]

#: Multiples of the current LR a candidate may start at.
DEFAULT_STARTS = (0.5, 1.0, 2.0)
#: End levels as fractions of the start level; the bottom of the LR range is always added.
DEFAULT_ENDS = (0.1, 0.01)
#: Decaying shapes of the library (plus `"constant"` and the caller's `"default"`).
SHAPES = ("cosine", "linear", "exp", "wsd25", "wsd50", "wsd75")


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
        trust: the allowed LR jumps; None allows any jump inside `lr_range`.
        fraction: the current point as a fraction of the run (for the trust region).

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
    names, paths, rejected = ["default"], [default], {}
    allowed = trust.allowed(lr_now, fraction) if trust is not None else (-np.inf, np.inf)

    def add(name, path):
        if name in names or name in rejected:
            return
        # A relative tolerance: levels computed at the range's edges may round past it.
        if path.min() < lo * (1 - 1e-9) or path.max() > hi * (1 + 1e-9):
            rejected[name] = f"leaves the training runs' LR range [{lo:.3g}, {hi:.3g}]"
            return
        jump = math.log(path[0] / lr_now)
        if not allowed[0] - 1e-9 <= jump <= allowed[1] + 1e-9:
            rejected[name] = (
                f"jumps x{path[0] / lr_now:.3g} from the current LR; the training runs "
                f"changed it by x{math.exp(allowed[0]):.3g} to x{math.exp(allowed[1]):.3g} "
                "from similar states"
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


@dataclasses.dataclass
class TrustRegion:
    """The LR jumps the training runs made from each kind of state.

    A state is a (stretch of training, LR level) cell: `fraction_edges` cut the run into
    bins of `t / K`, `ln_lr_edges` the ln LR. Cell `(i, j)` holds the largest fall
    (`down`, <= 0) and rise (`up`, >= 0) of ln LR from one log point to the next that any
    training run made from a state in that cell (switched runs make the large ones); NaN
    where no run was. `allowed(lr, fraction)` takes the extremes over the cells of the
    current stretch whose LR lies within `radius` (ln units) of the current LR, so that a
    planner only proposes changes the model has seen the effect of.
    """

    fraction_edges: np.ndarray
    ln_lr_edges: np.ndarray
    down: np.ndarray
    up: np.ndarray
    radius: float = math.log(2.0)

    @classmethod
    def from_runs(cls, runs, *, fraction_bins: int = 5, ln_lr_bin: float = math.log(2.0)):
        """Tabulates the one-point LR changes of `runs` (any objects with an `lr` array)."""
        check_int("fraction_bins", fraction_bins, minimum=1)
        ln_lr_bin = check_number("ln_lr_bin", ln_lr_bin, minimum=0.0, strict=True)
        samples = []
        for r in runs:
            ln = np.log(np.asarray(r.lr, dtype=np.float64))
            k = ln.size
            if k < 2 or not np.all(np.isfinite(ln)):
                continue
            frac = np.arange(k - 1) / k
            samples.append(np.stack([frac, ln[:-1], np.diff(ln)], axis=1))
        if not samples:
            raise ValueError("TrustRegion.from_runs needs at least one run with >= 2 finite LRs")
        s = np.concatenate(samples)
        lo, hi = float(s[:, 1].min()), float(s[:, 1].max())
        n_lr = max(1, math.ceil((hi - lo) / ln_lr_bin + 1e-9))
        ln_edges = lo + ln_lr_bin * np.arange(n_lr + 1)
        f_edges = np.linspace(0.0, 1.0, fraction_bins + 1)
        fi = np.clip(np.searchsorted(f_edges, s[:, 0], side="right") - 1, 0, fraction_bins - 1)
        li = np.clip(np.searchsorted(ln_edges, s[:, 1], side="right") - 1, 0, n_lr - 1)
        down = np.full((fraction_bins, n_lr), np.nan)
        up = np.full((fraction_bins, n_lr), np.nan)
        for i, j, d in zip(fi, li, s[:, 2], strict=True):
            down[i, j] = min(d, 0.0) if np.isnan(down[i, j]) else min(down[i, j], d)
            up[i, j] = max(d, 0.0) if np.isnan(up[i, j]) else max(up[i, j], d)
        return cls(f_edges, ln_edges, down, up)

    def allowed(self, lr: float, fraction: float) -> tuple[float, float]:
        """(lowest, highest) allowed ln-LR change from `lr` at `fraction` of the run.

        A state no training run visited allows no change: (0.0, 0.0).
        """
        ln = math.log(lr)
        nf = len(self.fraction_edges) - 1
        i = min(
            max(int(np.searchsorted(self.fraction_edges, fraction, side="right")) - 1, 0), nf - 1
        )
        centers = 0.5 * (self.ln_lr_edges[:-1] + self.ln_lr_edges[1:])
        half = 0.5 * float(np.min(np.diff(self.ln_lr_edges)))
        near = np.abs(centers - ln) <= self.radius + half
        down, up = self.down[i, near], self.up[i, near]
        down, up = down[np.isfinite(down)], up[np.isfinite(up)]
        return (float(down.min()) if down.size else 0.0, float(up.max()) if up.size else 0.0)

    def to_json(self) -> dict:
        """A JSON-ready dict (NaN as None) for the model file's planner section."""

        def clean(a):
            return [
                [None if not math.isfinite(v) else round(float(v), 6) for v in row] for row in a
            ]

        return {
            "fraction_edges": [float(v) for v in self.fraction_edges],
            "ln_lr_edges": [round(float(v), 6) for v in self.ln_lr_edges],
            "down": clean(self.down),
            "up": clean(self.up),
            "radius": float(self.radius),
        }

    @classmethod
    def from_json(cls, d: dict) -> TrustRegion:
        """The inverse of `to_json`; raises ValueError naming a malformed field."""
        try:
            f = np.asarray(d["fraction_edges"], dtype=np.float64)
            ln = np.asarray(d["ln_lr_edges"], dtype=np.float64)

            def table(key):
                return np.asarray(
                    [[np.nan if v is None else float(v) for v in row] for row in d[key]],
                    dtype=np.float64,
                )

            down, up = table("down"), table("up")
            radius = float(d.get("radius", math.log(2.0)))
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"Malformed trust region in the model file: {e!r}") from e
        shape = (len(f) - 1, len(ln) - 1)
        if (
            f.ndim != 1
            or ln.ndim != 1
            or min(shape) < 1
            or down.shape != shape
            or up.shape != shape
            or not (np.all(np.isfinite(f)) and np.all(np.isfinite(ln)))
            or not (np.all(np.diff(f) > 0) and np.all(np.diff(ln) > 0))
            or not (math.isfinite(radius) and radius >= 0)
        ):
            raise ValueError(
                "Malformed trust region in the model file: expected increasing finite edges and "
                f"(fractions, ln LRs) = {shape} tables. Received down {down.shape}, up {up.shape}"
            )
        return cls(f, ln, down, up, radius)
