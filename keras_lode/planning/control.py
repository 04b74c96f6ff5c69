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

from keras_lode._checks import check_number, config_with_options
from keras_lode.model.defaults import CONTROL_DEFAULTS
from keras_lode.model.trust_region import TrustRegion
from keras_lode.planning import candidates as lib
from keras_lode.planning import common
from keras_lode.planning.plans import ControlPlan

__all__ = ["CONTROL_DEFAULTS", "ControlOptions", "ControlPlan", "plan_control"]


@dataclasses.dataclass(frozen=True)
class ControlOptions:
    """Options of the control planner (`plan_control`).

    Options left as None take their value from the model's `planner_defaults`, then from
    `CONTROL_DEFAULTS` (`lr_range`: from the model's `planner_defaults`, then
    `model.lr_range`).

    Attributes:
        kappa: pessimism: a candidate's score is `mean - kappa * sd`.
        margin: how much (metric units) the best bound must beat the default's mean by.
        starts, ends, shapes: the library (see `candidate_library`).
        lr_range: (low, high) LR range candidates must stay in.
        trust: False ignores the model's trust region (candidates only need to stay in
            `lr_range`); for experiments.
    """

    kappa: float | None = None
    margin: float | None = None
    starts: tuple | None = None
    ends: tuple | None = None
    shapes: tuple | None = None
    lr_range: tuple | None = None
    trust: bool = True


def plan_control(
    model,
    window,
    *,
    position: int,
    total_points: int,
    current_plan=None,
    points_per_epoch: int | None = None,
    config: ControlOptions | None = None,
    **options,
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
        points_per_epoch: the run's P, for the horizon-mapping warning.
        config: a `ControlOptions`; None for one with every option at its default.
        **options: fields of `ControlOptions` (`kappa`, `margin`, `starts`, `ends`,
            `shapes`, `lr_range`, `trust`), overriding `config`'s.

    Returns:
        A `ControlPlan`.

    Raises:
        ValueError / TypeError: bad arguments, an unknown option or a window of the wrong
            shape.
    """
    t0 = time.perf_counter()
    opts = config_with_options(ControlOptions, config, options, "plan_control")
    defaults = common.model_defaults(model)
    kappa, margin, library = _resolve_rules(opts, defaults)
    n, K = common.check_position(position, total_points)
    window = _model_window(model, common.check_window(window, n))
    lo, hi = common.resolve_lr_range(opts.lr_range, defaults, model)
    held = common.resolve_current_plan(current_plan, n, K)
    scale = common.time_scale(model, K, points_per_epoch)
    region = None
    if opts.trust and defaults.get("trust") is not None:
        region = TrustRegion.from_json(defaults["trust"])
    cands, allowed = _candidates(window, n, K, (lo, hi), held, region, library)
    t1 = time.perf_counter()
    pred = _predict(model, window, cands, n, K, scale)
    t2 = time.perf_counter()

    mean, sd, bound = _score(model, pred, kappa)
    chosen, fallback, reason = _decide(cands.names, mean, bound, margin)
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


def _resolve_rules(opts: ControlOptions, defaults: dict) -> tuple[float, float, dict]:
    """`(kappa, margin, library)`: the decision rule and the library's `starts/ends/shapes`."""

    def pick(name):
        return common.pick(name, getattr(opts, name), defaults, CONTROL_DEFAULTS)

    kappa = check_number("kappa", pick("kappa"), minimum=0.0)
    margin = check_number("margin", pick("margin"))
    starts = _positive_tuple("starts", pick("starts"))
    ends = _positive_tuple("ends", pick("ends"))
    shapes = tuple(pick("shapes"))
    unknown = sorted(set(shapes) - set(lib.SHAPES))
    if unknown:
        raise ValueError(f"Unknown candidate shape(s) {unknown}; expected some of {lib.SHAPES}")
    return kappa, margin, {"starts": starts, "ends": ends, "shapes": shapes}


def _candidates(window, n: int, K: int, lr_range, held, region, library: dict):
    """`(library, allowed)`: the candidate continuations and the trust region's ln-LR jumps."""
    lr_now = float(np.exp(window[-1, 1]))
    fraction = n / K
    cands = lib.candidate_library(
        lr_now,
        K - 1 - n,
        lr_range=lr_range,
        default=held,
        trust=region,
        fraction=fraction,
        **library,
    )
    allowed = region.allowed(lr_now, fraction) if region is not None else (-np.inf, np.inf)
    return cands, allowed


def _model_window(model, window: np.ndarray) -> np.ndarray:
    """The last `model.window` rows of the window; an error if it has fewer."""
    W = int(getattr(model, "window", window.shape[0]))
    if window.shape[0] < W:
        raise ValueError(
            f"Argument `window` has {window.shape[0]} rows; this model reads {W} "
            "(plan from a later point or pass more history)"
        )
    return window[-W:]


def _predict(model, window: np.ndarray, cands, n: int, K: int, scale: float) -> np.ndarray:
    """(M, C, K - n, 2): every member's `[loss, metric]` under every candidate."""
    W = window.shape[0]
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
    return pred


def _score(model, pred: np.ndarray, kappa: float):
    """`(mean, sd, bound)` of each candidate's final metric; -inf bounds where not finite."""
    final = pred[:, :, -1, 1]  # (M, C): the metric at the run's last point
    mean, sd = model.spread(final)
    mean, sd = np.asarray(mean, np.float64), np.asarray(sd, np.float64)
    bound = mean - kappa * sd
    return mean, sd, np.where(np.isfinite(bound), bound, -np.inf)


def _decide(names, mean, bound, margin: float) -> tuple[int, bool, str]:
    """`(chosen, fallback, reason)`: switch only if the best bound beats the default's mean."""
    usable = np.isfinite(bound)
    if not usable[0]:
        return 0, True, "the default's prediction is not finite; following the default"
    others = np.flatnonzero(usable[1:]) + 1
    if others.size == 0:
        return 0, False, "no other usable candidate"
    best = int(others[np.argmax(bound[others])])
    gain = bound[best] - mean[0]
    if gain > margin:
        reason = (
            f"its bound {bound[best]:.4g} beats the default's mean {mean[0]:.4g} by "
            f"{gain:.3g} > margin {margin:.3g}"
        )
        return best, False, reason
    reason = (
        f"best other {names[best]!r} bound {bound[best]:.4g} does not beat the "
        f"default's mean {mean[0]:.4g} by margin {margin:.3g}"
    )
    return 0, False, reason


def _positive_tuple(name, values) -> tuple[float, ...]:
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError) as e:
        raise TypeError(f"Argument `{name}` must be a sequence of numbers: {e}") from e
    if not out or not all(np.isfinite(v) and v > 0 for v in out):
        raise ValueError(f"Argument `{name}` must be non-empty, finite and > 0. Received: {out}")
    return out
