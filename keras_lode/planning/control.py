"""The control planner: score candidate LR schedules with a controlled LODE, switch only when sure.

With a controlled model (`model.kind == "controlled"`) the LR path is an input of the
dynamics, so at log point `n` of a `K`-point run the planner

1. builds the library of continuations for points `n + 1 .. K - 1`
   (`keras_lode.planning.candidates`): the *default* (the continuation of the schedule the
   run follows now), constants and decays from a few multiples of the current LR, kept
   only inside the training runs' LR range and the trust region;
2. predicts, for every member of the ensemble and every candidate in one batched
   `model.predict`, the validation metric at the run's last point `K - 1` (never past it);
3. decides with one of two rules:
   - `"paired"` (a model file with a `planner.paired` calibration, fitted on on-policy
     branch runs: runs of one seed that share a prefix and differ only in the
     continuation, `keras_lode.train.counterfactual`): each member predicts the candidate's
     *gain* over the default (the members share most of their bias, which cancels in the
     difference); the gain's spread over the members is calibrated on held-out branch
     groups; the planner switches to the candidate with the best lower bound
     `mean(gain) - kappa * sd_cal(gain)` when that bound exceeds `margin` — if the
     calibration's gate lets it (`keras_lode.model.paired_gate`): never when its rule
     realized no gain held out (`switch: false`), only from the kinds of start (a
     constant LR or a changing schedule) on which it gained on every held-out fold
     (`starts`), and not on a spread that failed its coverage (`trusted: false`).
   - `"absolute"` (older files): each candidate's bound `mean - kappa * sd` of its final
     metric, the spread calibrated on held-out runs (`model.spread`); it switches when
     the best bound beats the default's *mean* by `margin`.
4. otherwise the plan is the default's continuation, exactly.

The metric is maximized (an accuracy) or, for a model whose `mode` is `"min"` (a loss,
perplexity, bits per character), minimized: bounds are then upper bounds and a gain is a
decrease. A run whose length differs from the model's horizon
is mapped by fraction of training, as the generative planner does.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from keras_lode._checks import check_number, config_with_options
from keras_lode.model.controlled import predict_paths
from keras_lode.model.defaults import CONTROL_DEFAULTS
from keras_lode.model.paired_gate import gate_reason, start_kind
from keras_lode.model.prior import applies, continuation_features, prior_gain
from keras_lode.model.trust_region import TrustRegion
from keras_lode.planning import candidates as lib
from keras_lode.planning import common
from keras_lode.planning.plans import ControlPlan

__all__ = [
    "CONTROL_DEFAULTS",
    "ControlOptions",
    "ControlPlan",
    "paired_spread",
    "plan_control",
]


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
        rule: `"paired"` or `"absolute"` (module docstring); None: paired when the model
            file has a paired calibration. `kappa` and `margin` default to the rule's own
            (the paired calibration stores those chosen on held-out branch groups).
        max_lr: the LR ceiling: no candidate rises above `max(max_lr, current LR)` (the
            default, the schedule in effect, is exempt); None: the model's
            `planner.lr_ceiling` for `optimizer`, if it has one
            (`keras_lode.model.lr_ceiling`), and `inf` none.
        optimizer: the run's optimizer class name (`"AdamW"`, `"SGD"`) or the optimizer,
            which picks the model's LR ceiling; `LODECallback` passes the fit's. A model
            with a ceiling and a run whose optimizer it does not know (or None) gets no
            raise at all.
    """

    kappa: float | None = None
    margin: float | None = None
    starts: tuple | None = None
    ends: tuple | None = None
    shapes: tuple | None = None
    lr_range: tuple | None = None
    trust: bool = True
    rule: str | None = None
    max_lr: float | None = None
    optimizer: str | None = None


def plan_control(
    model,
    window,
    *,
    position: int,
    total_points: int,
    current_plan=None,
    points_per_epoch: int | None = None,
    config: ControlOptions | None = None,
    current_lr: float | None = None,
    start: str | None = None,
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
    print(p.summary(), *p.table(top=5), sep="\n")
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
        current_lr, start: the run's current LR, below which the LR ceiling never cuts
            (None: the window's last), and its kind of start (`paired_gate.start_kind`;
            None: the default candidate's); the task-free planner passes the run's own.
        **options: fields of `ControlOptions` (`kappa`, `margin`, `starts`, `ends`,
            `shapes`, `lr_range`, `trust`, `rule`, `max_lr`, `optimizer`), overriding
            `config`'s.

    Returns:
        A `ControlPlan`.

    Raises:
        ValueError / TypeError: bad arguments, an unknown option or a bad window shape.
    """
    t0 = time.perf_counter()
    opts = config_with_options(ControlOptions, config, options, "plan_control")
    defaults = common.model_defaults(model)
    paired = _paired_calibration(opts.rule, defaults)
    kappa, margin, library = _resolve_rules(opts, defaults, paired)
    n, K = common.check_position(position, total_points)
    window = _model_window(model, common.check_window(window, n))
    lo, hi = common.resolve_lr_range(opts.lr_range, defaults, model)
    held = common.resolve_current_plan(current_plan, n, K)
    scale = common.time_scale(model, K, points_per_epoch)
    use = opts.trust and defaults.get("trust") is not None
    region = TrustRegion.from_json(defaults["trust"]) if use else None
    cap = _cap(opts, defaults, np.exp(window[-1, 1]) if current_lr is None else current_lr)
    cands, allowed = _candidates(window, n, K, (lo, hi), held, region, library, cap)
    t1 = time.perf_counter()
    pred = _predict(model, window, cands, n, K, scale)
    t2 = time.perf_counter()

    context = (*_prior_inputs(paired, window, cands.lr, n, K), start or start_kind(cands.lr[0]))
    mean, sd, bound, gain, gain_sd, (chosen, fallback, reason) = _choose(
        model, cands.names, pred, kappa, margin, paired, context
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
        rule="absolute" if paired is None else "paired",
        gain=gain,
        gain_sd=gain_sd,
    )


def _prior_inputs(paired, window, paths, n: int, K: int) -> tuple[np.ndarray | None, str | None]:
    """`(shape, outside)`: the candidates' `continuation_features` when the paired
    calibration has a continuation prior and this point lies within the fractions of
    training its decisions were fitted on (one point of slack); else None, and `outside`
    says why the planner keeps the default (the prior does not extrapolate)."""
    prior = (paired or {}).get("prior")
    if prior is None:
        return None, None
    if applies(prior, n, K):
        return continuation_features(window[:, 1], paths, n, K), None
    lo, hi = prior["fractions"]
    fraction = (n + 1) / K
    return None, (
        f"at {fraction:.0%} of training, outside the {lo:.0%}-{hi:.0%} its continuation prior "
        "was fitted on: following the default"
    )


def _choose(model, names, pred, kappa, margin, paired, context=(None, None, None)):
    """Score the candidates and pick one by the absolute rule, or the paired one when
    `paired` holds the model's paired calibration. `context` is `(shape, outside, start)`
    for the paired rule: the candidates' `continuation_features` (when it carries a
    continuation prior), why the prior does not apply here (None if it does) and the
    kind of start (`keras_lode.model.paired_gate.start_kind` of the default).

    Returns (mean, sd, bound, gain, gain_sd, (chosen, fallback, reason)); gain and gain_sd
    are None under the absolute rule.
    """
    sign = common.metric_sign(model)
    mean, sd, bound = _score(model, pred, kappa, sign)
    if paired is None:
        return mean, sd, bound, None, None, _decide(names, mean, bound, margin, sign)
    shape, outside, start = context
    gain, gain_sd, bound = _score_paired(pred, paired, kappa, sign, shape)
    why_not = gate_reason(paired, start, kappa) or outside
    decision = (0, False, why_not) if why_not else _decide_paired(names, gain, bound, margin)
    return mean, sd, bound, gain, gain_sd, decision


def _paired_calibration(rule, defaults: dict) -> dict | None:
    """The model's paired calibration when the rule is paired; None for the absolute rule."""
    paired = defaults.get("paired")
    if rule is None:
        return paired
    if rule not in ("paired", "absolute"):
        raise ValueError(f"Argument `rule` must be 'paired' or 'absolute'. Received: {rule!r}")
    if rule == "absolute":
        return None
    if paired is None:
        raise ValueError(
            "rule='paired' needs a model file with a paired calibration (planner.paired, "
            "fitted on branch runs: `keras-lode calibrate`); this model has none"
        )
    return paired


def _resolve_rules(opts: ControlOptions, defaults: dict, paired) -> tuple[float, float, dict]:
    """`(kappa, margin, library)`: the decision rule and the library's `starts/ends/shapes`."""

    def pick(name):
        return common.pick(name, getattr(opts, name), defaults, CONTROL_DEFAULTS)

    rule = paired or {}
    kappa = opts.kappa if opts.kappa is not None else rule.get("kappa", pick("kappa"))
    margin = opts.margin if opts.margin is not None else rule.get("margin", pick("margin"))
    kappa = check_number("kappa", kappa, minimum=0.0)
    margin = check_number("margin", margin)
    starts = _positive_tuple("starts", pick("starts"))
    ends = _positive_tuple("ends", pick("ends"))
    shapes = tuple(pick("shapes"))
    unknown = sorted(set(shapes) - set(lib.SHAPES))
    if unknown:
        raise ValueError(f"Unknown candidate shape(s) {unknown}; expected some of {lib.SHAPES}")
    return kappa, margin, {"starts": starts, "ends": ends, "shapes": shapes}


def _cap(opts: ControlOptions, defaults: dict, current_lr: float) -> float | None:
    """The LR no candidate may rise above: the LR ceiling (the call's, or the model's for
    the run's optimizer) floored at the run's current LR; None: no ceiling."""
    ceiling = common.resolve_ceiling(opts.max_lr, opts.optimizer, defaults)
    return None if ceiling is None else max(ceiling, float(current_lr))


def _candidates(window, n: int, K: int, lr_range, held, region, library: dict, max_lr=None):
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
        max_lr=max_lr,
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
    return predict_paths(model, window, cands.lr, n, scale)


def _score(model, pred: np.ndarray, kappa: float, sign: float = 1.0):
    """`(mean, sd, bound)` of each candidate's final metric; the bound is the pessimistic
    side (`mean - kappa * sd`, or `+` for a minimized metric), worst where not finite."""
    final = pred[:, :, -1, 1]  # (M, C): the metric at the run's last point
    mean, sd = model.spread(final)
    mean, sd = np.asarray(mean, np.float64), np.asarray(sd, np.float64)
    bound = mean - sign * kappa * sd
    return mean, sd, np.where(np.isfinite(bound), bound, -sign * np.inf)


def paired_spread(member_gains, calibration: dict):
    """`(mean, sd)` of the members' gains (axis 0) with the paired calibration's spread:
    `sd_scale * sqrt(sd**2 + sd_floor**2)`."""
    v = np.asarray(member_gains, dtype=np.float64)
    mean = v.mean(axis=0)
    sd = v.std(axis=0, ddof=1) if v.shape[0] > 1 else np.zeros_like(mean)
    return mean, float(calibration["sd_scale"]) * np.sqrt(sd**2 + calibration["sd_floor"] ** 2)


def _score_paired(pred: np.ndarray, paired: dict, kappa: float, sign: float = 1.0, shape=None):
    """`(gain, sd, bound)`: each candidate's predicted gain over the default (member by
    member; an improvement: a decrease of a minimized metric; corrected by the calibration's
    continuation prior, `keras_lode.model.prior`, when it has one), its calibrated sd and
    lower bound; the default's are 0."""
    final = pred[:, :, -1, 1]  # (M, C)
    gain, sd = paired_spread(sign * (final - final[:, :1]), paired)
    if paired.get("prior") is not None:  # without `shape` (outside its fractions): no gain
        gain = prior_gain(gain, shape, paired["prior"]) if shape is not None else 0.0 * gain
    gain[0], sd[0] = 0.0, 0.0
    bound = gain - kappa * sd
    return gain, sd, np.where(np.isfinite(bound), bound, -np.inf)


def _decide_paired(names, gain, bound, margin: float) -> tuple[int, bool, str]:
    """`(chosen, fallback, reason)`: switch only if the best gain's lower bound > margin
    (the calibration's gate, `keras_lode.model.paired_gate`, already let it switch)."""
    others = np.flatnonzero(np.isfinite(bound[1:])) + 1
    if others.size == 0:
        return 0, not np.isfinite(gain[1:]).any(), "no other usable candidate"
    best = int(others[np.argmax(bound[others])])
    if bound[best] > margin:
        return best, False, (
            f"its predicted gain {gain[best]:+.3g} has lower bound {bound[best]:+.3g} > "
            f"margin {margin:.3g}"
        )  # fmt: skip
    return 0, False, (
        f"best other {names[best]!r} gain {gain[best]:+.3g} has lower bound "
        f"{bound[best]:+.3g} <= margin {margin:.3g}"
    )  # fmt: skip


def _decide(names, mean, bound, margin: float, sign: float = 1.0) -> tuple[int, bool, str]:
    """`(chosen, fallback, reason)`: switch only if the best bound beats the default's mean
    (is above it for a maximized metric, below it for a minimized one) by `margin`."""
    usable = np.isfinite(bound)
    if not usable[0]:
        return 0, True, "the default's prediction is not finite; following the default"
    others = np.flatnonzero(usable[1:]) + 1
    if others.size == 0:
        return 0, False, "no other usable candidate"
    best = int(others[np.argmax(sign * bound[others])])
    gain = sign * (bound[best] - mean[0])
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
