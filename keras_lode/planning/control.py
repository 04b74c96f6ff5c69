"""The control planner: score candidate LR schedules with a controlled LODE, switch only when sure.

With a controlled model (`model.kind == "controlled"`) the LR path is an input of the
dynamics, so at log point `n` of a `K`-point run the planner

1. builds the library of continuations for points `n + 1 .. K - 1`
   (`keras_lode.planning.candidates`): the *default* (the continuation of the schedule the
   run follows now), constants and decays from a few multiples of the current LR, kept
   only inside the training runs' LR range and the trust region;
2. predicts, for every member of the ensemble and every candidate in one batched
   `model.predict`, the validation metric at the run's last point `K - 1` (never past it);
3. scores each candidate by its lower confidence bound `mean - kappa * sd` over the
   members, with the spread calibrated on held-out runs (`model.spread`);
4. switches to the best-bounded candidate only if its bound beats the default's *mean* by
   `margin`; otherwise the plan is the default's continuation, exactly.

The metric is maximized (an accuracy). A run whose length differs from the model's horizon
is mapped by fraction of training, as the generative planner does.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from keras_lode._checks import check_number
from keras_lode.model.defaults import CONTROL_DEFAULTS
from keras_lode.model.trust_region import TrustRegion
from keras_lode.planning import candidates as lib
from keras_lode.planning.generative import (
    _check_position,
    _check_window,
    _model_defaults,
    _pick,
    _resolve_current_plan,
    _resolve_lr_range,
    _time_scale,
)

__all__ = ["CONTROL_DEFAULTS", "ControlPlan", "plan_control"]


@dataclasses.dataclass
class ControlPlan:
    """The result of one control-planning call.

    Attributes:
        lr: (R,) LR for each remaining log point `position + 1 .. total_points - 1`.
        names: (C,) candidate names; entry 0 is `"default"`.
        paths: (C, R) each candidate's LRs.
        mean, sd, bound: (C,) predicted final metric (ensemble mean), its calibrated sd,
            and the lower bound `mean - kappa * sd` (NaN/-inf for a non-finite prediction).
        chosen: index of the candidate `lr` follows (0: the default).
        switched: True when the plan left the default.
        reason: why it switched or stayed, in words.
        predictions: (M, C, T, 2) raw `[loss, metric]` per member, candidate and point
            `position .. total_points - 1`.
        rejected: `{name: why}` of library entries outside the LR range or trust region.
        trust: (lowest, highest) ln-LR jump allowed from the current state.
        kappa, margin: the decision rule's settings.
        position, total_points: the log point `n` and the run's length `K`.
        lr_range: (low, high) of the training runs.
        time_scale: model log points per run log point (1.0 unless mapped).
        window: the (W, 3) observed window.
        fallback: True when no prediction was usable and the plan is the default.
        timings: seconds in `library`, `predict` and `selection`.
    """

    lr: np.ndarray
    names: list[str]
    paths: np.ndarray
    mean: np.ndarray
    sd: np.ndarray
    bound: np.ndarray
    chosen: int
    switched: bool
    reason: str
    predictions: np.ndarray
    rejected: dict[str, str]
    trust: tuple[float, float]
    kappa: float
    margin: float
    position: int
    total_points: int
    lr_range: tuple[float, float]
    time_scale: float
    window: np.ndarray
    fallback: bool = False
    timings: dict[str, float] = dataclasses.field(default_factory=dict)

    kind = "controlled"

    @property
    def points(self) -> np.ndarray:
        """Run log points that `lr` covers: `position + 1 .. total_points - 1`."""
        return np.arange(self.position + 1, self.total_points)

    @property
    def chosen_name(self) -> str:
        return self.names[self.chosen]

    def table(self, top: int | None = None) -> list[dict]:
        """Candidates as rows `{name, mean, sd, bound}`, best bound first."""
        order = np.argsort(-np.nan_to_num(self.bound, nan=-np.inf), kind="stable")
        rows = [
            {
                "name": self.names[i],
                "mean": float(self.mean[i]),
                "sd": float(self.sd[i]),
                "bound": float(self.bound[i]),
            }
            for i in order[:top]
        ]
        return rows

    def summary(self) -> str:
        """One line for verbose output, e.g. in the callback's replan log."""
        head = (
            f"LODE control plan at point {self.position}/{self.total_points}: "
            f"{len(self.names)} candidates"
        )
        if self.rejected:
            head += f" ({len(self.rejected)} outside range/trust region)"
        d = f"default {self.mean[0]:.4g} +/- {self.sd[0]:.2g}"
        verb = "switched to" if self.switched else "kept"
        return (
            f"{head}; {d}; {verb} {self.chosen_name!r} ({self.reason}); "
            f"lr {self.lr[0]:.3g} -> {self.lr[-1]:.3g}"
        )


def plan_control(
    model,
    window,
    *,
    position: int,
    total_points: int,
    current_plan=None,
    kappa: float | None = None,
    margin: float | None = None,
    starts=None,
    ends=None,
    shapes=None,
    lr_range=None,
    trust: bool = True,
    points_per_epoch: int | None = None,
) -> ControlPlan:
    """Plan the rest of a run by scoring candidate schedules with a controlled LODE.

    The module docstring states the rule. Options left as None take their value from
    `model.planner_defaults`, then from `CONTROL_DEFAULTS`.

    Example:

    ```python
    model = keras_lode.load_model("my_controlled.npz")          # kind "controlled"
    p = keras_lode.plan(model, run.channels()[n - 9 : n + 1], position=n, total_points=50,
                        current_plan=schedule_lrs[n + 1 :])
    print(p.summary())
    for row in p.table(top=5):
        print(row)
    ```

    Args:
        model: a `ControlledODE` (or any object with `predict`, `spread`, `window`,
            `horizon`, `lr_range`, `planner_defaults`).
        window: (W, 3) raw `[loss, ln lr, metric]` at points `position - W + 1 .. position`;
            the model reads its last `model.window` rows.
        position: current log point `n`, `n < total_points - 1`.
        total_points: the run's number of log points `K`.
        current_plan: LRs the run would follow from here (length `K - 1 - n`, or `K` for
            the whole run): the default candidate. None holds the current LR.
        kappa: pessimism: a candidate's score is `mean - kappa * sd`.
        margin: how much (metric units) the best bound must beat the default's mean by.
        starts, ends, shapes: the library (see `candidate_library`).
        lr_range: (low, high) LR range candidates must stay in; default the model's.
        trust: False ignores the model's trust region (candidates only need to stay in
            `lr_range`); for experiments.
        points_per_epoch: the run's P, for the horizon-mapping warning.

    Returns:
        A `ControlPlan`.

    Raises:
        ValueError / TypeError: bad arguments or a window of the wrong shape.
    """
    t0 = time.perf_counter()
    defaults = _model_defaults(model)

    def pick(name, value):
        return _pick(name, value, defaults, CONTROL_DEFAULTS)

    kappa = check_number("kappa", pick("kappa", kappa), minimum=0.0)
    margin = check_number("margin", pick("margin", margin))
    starts = _positive_tuple("starts", pick("starts", starts))
    ends = _positive_tuple("ends", pick("ends", ends))
    shapes = tuple(pick("shapes", shapes))
    unknown = sorted(set(shapes) - set(lib.SHAPES))
    if unknown:
        raise ValueError(f"Unknown candidate shape(s) {unknown}; expected some of {lib.SHAPES}")
    n, K = _check_position(position, total_points)
    window = _check_window(window, n)
    W = int(getattr(model, "window", window.shape[0]))
    if window.shape[0] < W:
        raise ValueError(
            f"Argument `window` has {window.shape[0]} rows; this model reads {W} "
            "(plan from a later point or pass more history)"
        )
    window = window[-W:]
    lo, hi = _resolve_lr_range(lr_range, defaults, model)
    held = _resolve_current_plan(current_plan, n, K)
    scale = _time_scale(model, K, points_per_epoch)
    region = None
    if trust and defaults.get("trust") is not None:
        region = TrustRegion.from_json(defaults["trust"])

    lr_now = float(np.exp(window[-1, 1]))
    fraction = n / K
    cands = lib.candidate_library(
        lr_now,
        K - 1 - n,
        lr_range=(lo, hi),
        default=held,
        starts=starts,
        ends=ends,
        shapes=shapes,
        trust=region,
        fraction=fraction,
    )
    allowed = region.allowed(lr_now, fraction) if region is not None else (-np.inf, np.inf)
    t1 = time.perf_counter()

    # Model time: run point i is model point i * scale (the horizon mapping).
    t_window = np.arange(n - W + 1, n + 1, dtype=np.float64) * scale
    t = np.arange(n, K, dtype=np.float64) * scale
    log_lr = np.empty((len(cands.names), K - n))
    log_lr[:, 0] = window[-1, 1]
    log_lr[:, 1:] = np.log(cands.lr)
    pred = np.asarray(model.predict(t_window, window, t, log_lr))
    C = len(cands.names)
    if pred.ndim != 4 or pred.shape[1:] != (C, K - n, 2):
        raise ValueError(
            f"model.predict must return shape (M, {C}, {K - n}, 2). Received: {pred.shape}"
        )
    t2 = time.perf_counter()

    final = pred[:, :, -1, 1]  # (M, C): the metric at the run's last point
    mean, sd = model.spread(final)
    mean, sd = np.asarray(mean, np.float64), np.asarray(sd, np.float64)
    bound = mean - kappa * sd
    usable = np.isfinite(bound)
    bound = np.where(usable, bound, -np.inf)
    fallback = False
    chosen = 0
    if not usable[0]:
        fallback = True
        reason = "the default's prediction is not finite; following the default"
    else:
        others = np.flatnonzero(usable[1:]) + 1
        if others.size == 0:
            reason = "no other usable candidate"
        else:
            best = int(others[np.argmax(bound[others])])
            gain = bound[best] - mean[0]
            if gain > margin:
                chosen = best
                reason = (
                    f"its bound {bound[best]:.4g} beats the default's mean {mean[0]:.4g} by "
                    f"{gain:.3g} > margin {margin:.3g}"
                )
            else:
                reason = (
                    f"best other {cands.names[best]!r} bound {bound[best]:.4g} does not beat the "
                    f"default's mean {mean[0]:.4g} by margin {margin:.3g}"
                )
    t3 = time.perf_counter()
    return ControlPlan(
        lr=cands.lr[chosen].copy(),
        names=cands.names,
        paths=cands.lr,
        mean=mean,
        sd=sd,
        bound=bound,
        chosen=chosen,
        switched=chosen != 0,
        reason=reason,
        predictions=pred,
        rejected=cands.rejected,
        trust=(float(allowed[0]), float(allowed[1])),
        kappa=kappa,
        margin=margin,
        position=n,
        total_points=K,
        lr_range=(lo, hi),
        time_scale=scale,
        window=window,
        fallback=fallback,
        timings={"library": t1 - t0, "predict": t2 - t1, "selection": t3 - t2},
    )


def _positive_tuple(name, values) -> tuple[float, ...]:
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError) as e:
        raise TypeError(f"Argument `{name}` must be a sequence of numbers: {e}") from e
    if not out or not all(np.isfinite(v) and v > 0 for v in out):
        raise ValueError(f"Argument `{name}` must be non-empty, finite and > 0. Received: {out}")
    return out
