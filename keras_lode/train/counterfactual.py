"""Decisions calibrated on counterfactuals: branch groups, the paired spread, the rule's knobs.

A *branch group* is the runs of one seed that share everything up to log point `n` (same
initial weights, batch order and LRs) and differ only in the LR continuation after it: the
default (the schedule the run was following) and candidates from the planner's library.
Their final validation metrics are the actual paired gains of the very decision the
planner faces at `n`, free of seed noise in the prefix.

`fit_paired` measures, cross-fitted by seed (every figure of a seed's groups comes from a
fit on the other seeds' groups; for a task-free model over a zoo, by task):

- the ensemble's skill on those gains: Spearman rank correlation (within a group) and RMSE
  of the predicted gain (members' mean of candidate minus default) against the actual one;
- the coverage of `gain +/- 2 sd` by the actual gains: raw (the members' spread of the
  difference) and calibrated (`sd_scale * sqrt(sd**2 + sd_floor**2)`, split-conformal,
  fitted on the other seeds);
- the realized gain of the rule `switch to the best mean - kappa * sd_cal > margin`, with
  `kappa` and `margin` chosen on the other seeds by the gain they would have realized
  (when no choice of the grid gains there, the rule is never to switch), against always
  keeping the default (0) and the oracle (the best continuation of each group, in hindsight).
  A calibration whose rule, behind its gate, realized no gain held out is written with
  `switch: false` (the gate is set on the folds not held out, so this needs >= 3 seeds or
  tasks: with two, each fold's gate would rest on one fold and the rule never switches).
- the kinds of start the rule may switch from (`starts`, `keras_lode.model.paired_gate`):
  a constant LR or a changing schedule, each kept only if the cross-fitted rule gained on
  every held-out fold with groups of that kind.

With `prior=True` each candidate's predicted gain is first corrected by a continuation prior
(`keras_lode.model.prior`: what its LR shape gained on the training groups), fitted inside
each fold like the rest.

The calibration fitted on all groups becomes the model file's `planner.paired` section
(`with_paired_calibration`); it is `trusted` only if its cross-fitted coverage reached the
target (less a tolerance for the finite number of groups). When it may switch is the gate
of `keras_lode.model.paired_gate`: never with `switch: false`, only from its `starts`, and,
untrusted, only with a rule that does not use the spread (`kappa == 0`). Everything is NumPy.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from keras_lode.model.features import is_task_free
from keras_lode.model.paired_gate import START_KINDS, allowed_starts, gate_reason
from keras_lode.model.paired_gate import start_kind as path_start_kind
from keras_lode.model.prior import (
    SHAPE_FEATURES,
    applies,
    continuation_features,
    fit_prior,
    prior_gain,
)
from keras_lode.train.branches import BranchGroup, branch_groups
from keras_lode.train.decision import calibrated_sd, fit_spread_calibration, spearman

logger = logging.getLogger("keras_lode.train")

__all__ = [
    "KAPPAS",
    "MARGINS",
    "BranchGroup",
    "branch_groups",
    "evaluate_rule",
    "fit_paired",
    "member_gains",
    "start_kind",
    "paired_section",
    "with_paired_calibration",
]

#: The grids `kappa` and `margin` (metric units) are chosen from.
KAPPAS = (0.0, 0.5, 1.0, 2.0)
MARGINS = (0.0, 0.001, 0.0025, 0.005, 0.01)
#: The ridge penalty of a continuation prior fitted with the calibration (`fit_paired(prior=True)`).
PRIOR_RIDGE = 10.0
#: Coverage may fall this far below the target before the calibration is not trusted.
COVERAGE_TOLERANCE = 0.05


def member_gains(model, group: BranchGroup) -> np.ndarray:
    """(M, C): each member's predicted final of each continuation minus the default's.

    A run of another length than the model's horizon is mapped by fraction of training,
    as the planner maps it. A task-free model reads the group's whole prefix on its own
    grid (`keras_lode.model.features.model_grid`) and predicts in improvement units.
    """
    return _model_inputs(model, group)[0]


def _model_inputs(model, group: BranchGroup) -> tuple[np.ndarray, np.ndarray, tuple]:
    """`(member_gains, continuation_features, (n, K))` of a group, read where the planner
    reads them (a task-free model: on its own grid, in relative LRs; `n`, `K`: the branch
    point and the number of points there)."""
    from keras_lode.model.controlled import predict_paths

    if is_task_free(model):
        from keras_lode.model.features import model_grid

        if group.history is None:
            raise ValueError("A task-free model needs the branch group's whole prefix (`history`)")
        g = model_grid(
            model,
            group.history,
            position=group.position,
            total_points=group.total_points,
            paths=group.paths,
            mode=group.mode,
        )
        finals = predict_paths(model, g.window, g.paths, g.position, 1.0)[:, :, -1, 1]
        total = len(g.model_fractions)
        phi = continuation_features(g.window[:, 1], g.paths, g.position, total)
        return finals - finals[:, :1], phi, (g.position, total)
    horizon = getattr(model, "horizon", None)
    scale = 1.0 if horizon is None else horizon / group.total_points
    window = group.window[-int(model.window) :]
    finals = predict_paths(model, window, group.paths, group.position, scale)[:, :, -1, 1]
    n, total = group.position, group.total_points
    phi = continuation_features(window[:, 1], group.paths, n, total)  # the planner's window
    return finals - finals[:, :1], phi, (n, total)


def _cases(model, groups):
    """Per group: predicted mean gain, raw sd, actual gain of each non-default candidate.

    Gains are improvements: a decrease of the metric for a model whose `mode` is "min";
    for a task-free model, the improvement of the group's own metric (for a minimized one,
    `-ln(candidate / default)`), whatever the run's reference point.
    """
    free = is_task_free(model)
    sign = 1.0 if getattr(model, "mode", "max") == "max" else -1.0
    out = []
    for g in groups:
        try:
            gains, phi, point = _model_inputs(model, g)
        except ValueError as e:  # e.g. a branch point too early for a task-free model's window
            logger.info("branch group (seed %s, point %d) left out: %s", g.seed, g.position, e)
            continue
        d = (1.0 if free else sign) * gains[:, 1:]
        sd = d.std(axis=0, ddof=1) if d.shape[0] > 1 else np.zeros(d.shape[1])
        if free and g.mode == "min":
            with np.errstate(divide="ignore", invalid="ignore"):
                actual = -np.log(g.actual[1:] / g.actual[0])
        else:
            actual = (1.0 if free else sign) * (g.actual[1:] - g.actual[0])
        ok = np.isfinite(d).all(axis=0) & np.isfinite(actual) & np.isfinite(phi[1:]).all(axis=1)
        out.append({"seed": g.seed, "task": g.task, "start": start_kind(g),
                    "mean": d.mean(axis=0)[ok], "sd": sd[ok], "actual": actual[ok],
                    "phi": phi[1:][ok], "point": point})  # fmt: skip
    return out


def _fit_prior(cases, kind: str | None) -> dict | None:
    """The continuation prior (`keras_lode.model.prior`) fitted on the cases' candidates:
    `kind` "shape" (the shape alone) or "model_and_shape"; None: no prior."""
    if kind is None:
        return None
    n = sum(c["mean"].size for c in cases)
    if n <= len(SHAPE_FEATURES):
        raise ValueError(
            f"A continuation prior needs more than {len(SHAPE_FEATURES)} continuations to learn "
            f"from (in every fold's training groups); these have {n}. Record more branch "
            "runs (`keras-lode sweep --branches N`), or calibrate without a prior"
        )
    prior = fit_prior(
        np.concatenate([c["mean"] for c in cases]),
        np.concatenate([c["phi"] for c in cases]),
        np.concatenate([c["actual"] for c in cases]),
        ridge=PRIOR_RIDGE,
        with_model=kind == "model_and_shape",
    )
    # Where in training its decisions were made: the planner does not extrapolate past it.
    fractions = [(c["point"][0] + 1) / c["point"][1] for c in cases if c["mean"].size]
    prior["fractions"] = [float(min(fractions)), float(max(fractions))]
    return prior


def _with_prior(cases, prior: dict | None):
    """The cases with each candidate's gain corrected by `prior` (as they are if None); a
    case outside the fractions of training the prior was fitted on gets no gain (the planner
    keeps the default there)."""
    if prior is None:
        return cases
    return [{**c, "mean": prior_gain(c["mean"], c["phi"], prior)
             if applies(prior, *c["point"]) else 0.0 * c["mean"]} for c in cases]  # fmt: skip


def start_kind(group: BranchGroup) -> str:
    """`"constant"` when the group's default continuation holds its LR (within 1%), else
    `"schedule"` (the run was following a decaying or otherwise changing schedule); the
    planner reads its own default the same way (`keras_lode.model.paired_gate`)."""
    return path_start_kind(group.paths[0])


def _choices(cases, cal, kappa, margin, starts=START_KINDS) -> list[tuple[float, bool]]:
    """Per group, `(actual gain of the rule's choice, whether it left the default)`: the
    gain is 0 where it keeps the default (always on the groups whose kind of start is not
    in `starts`; none: the rule never switches)."""
    out = []
    for c in cases:
        if c["mean"].size == 0 or c["start"] not in starts:
            out.append((0.0, False))
            continue
        bound = c["mean"] - kappa * calibrated_sd(c["sd"], cal)
        best = int(np.argmax(bound))
        take = bool(bound[best] > margin)
        out.append((float(c["actual"][best]) if take else 0.0, take))
    return out


def _gains(cases, cal, kappa, margin, starts=START_KINDS) -> list[float]:
    """Per group, the actual gain of the rule's choice (0 where it keeps the default)."""
    return [gain for gain, _ in _choices(cases, cal, kappa, margin, starts)]


def _mean_spearman(cases) -> float | None:
    """Mean within-group rank correlation of predicted and actual gains (None if none)."""
    rho = [r for r in (spearman(c["mean"], c["actual"]) for c in cases) if math.isfinite(r)]
    return float(np.mean(rho)) if rho else None


def _realized(cases, cal, kappa, margin) -> float:
    """Mean actual gain of the rule over the groups (0 where it keeps the default)."""
    return float(np.mean(_gains(cases, cal, kappa, margin)))


def _oracle(cases) -> float:
    """Mean gain of the best continuation of each group in hindsight (0 if none gains)."""
    return float(np.mean([max(0.0, c["actual"].max(initial=0.0)) for c in cases]))


def _choose_rule(cases, cal, kappas, margins) -> tuple[float, float, bool]:
    """`(kappa, margin, switch)`: the rule of the best realized gain (ties go to the more
    cautious); `switch` is False when no rule of the grid gained over keeping the default,
    so the planner should not switch at all."""
    best = None
    for kappa in sorted(kappas, reverse=True):
        for margin in sorted(margins, reverse=True):
            r = _realized(cases, cal, kappa, margin)
            if best is None or r > best[0] + 1e-12:
                best = (r, kappa, margin)
    return best[1], best[2], best[0] > 1e-12


def _cross_fit(cases, by: str, folds, level, kappas, margins, prior=None, nested=True):
    """Each fold held out in turn: calibration, rule (and the continuation prior of kind
    `prior`, `_fit_prior`) fitted on the others, applied to it; with `nested`, also the
    gate of kinds of start (`allowed_starts`), chosen by the same cross-fit on the others.

    Returns `(covered, realized, per_fold, by_start, gated)`: per held-out case whether its
    actual gains fell inside +/- 2 calibrated sd, each fold's summed realized gain, each
    fold's summary, `(gain, case)` pairs per kind of start, and each fold's summed gain
    of the rule behind its gate (nested; else empty).
    """
    covered, realized, per_fold, by_start, gated = [], [], [], {}, []
    for fold in folds:
        train = [c for c in cases if c[by] != fold]
        inner = [f for f in folds if f != fold]
        starts = set()  # the gate as the other folds alone would set it (none from one)
        if nested and len(inner) >= 2:
            try:
                inner_fit = _cross_fit(train, by, inner, level, kappas, margins, prior, False)
                starts = set(allowed_starts(inner_fit[2]))
            except ValueError as e:  # e.g. too few continuations for a prior in a fold
                logger.info("no gate for the fold %s held out: %s", fold, e)
        test = [c for c in cases if c[by] == fold]
        fitted = _fit_prior(train, prior)
        train, test = _with_prior(train, fitted), _with_prior(test, fitted)
        res = np.concatenate([c["actual"] - c["mean"] for c in train])
        sd = np.concatenate([c["sd"] for c in train])
        cal = fit_spread_calibration(res, sd, level)
        kappa, margin, switch = _choose_rule(train, cal, kappas, margins)
        for c in test:
            covered.append(np.abs(c["actual"] - c["mean"]) <= 2 * calibrated_sd(c["sd"], cal))
        gains = _gains(test, cal, kappa, margin, START_KINDS if switch else ())
        r = float(np.mean(gains))
        realized.append(r * len(test))
        for c, gain in zip(test, gains, strict=True):
            by_start.setdefault(c["start"], []).append((gain, c))
        kinds = {k: 100 * float(np.mean([g for g, c in zip(gains, test, strict=True)
                                         if c["start"] == k]))
                 for k in START_KINDS if any(c["start"] == k for c in test)}  # fmt: skip
        per_fold.append({by: fold if by == "task" else int(fold), "kappa": kappa,
                         "margin": margin, "switch": switch, "realized": 100 * r,
                         "by_start": kinds, "groups": len(test),
                         "oracle": 100 * _oracle(test)})  # fmt: skip
        if nested:
            gated.append(sum(g for g, c in zip(gains, test, strict=True) if c["start"] in starts))
            per_fold[-1].update(starts=sorted(starts), gated=100 * gated[-1] / len(test))
    return covered, realized, per_fold, by_start, gated


def _cross_fit_prior(cases, by, folds, level, kappas, margins, prior: bool):
    """`(kind, cross_fit, choice)`: with `prior`, the kind of continuation prior whose
    cross-fitted realized gain is the higher (the shape alone, or with the ensemble's own
    gain), its `_cross_fit` and both gains (points); without, no prior."""
    if not prior:
        return None, _cross_fit(cases, by, folds, level, kappas, margins), None
    fits = {k: _cross_fit(cases, by, folds, level, kappas, margins, k)
            for k in ("shape", "model_and_shape")}  # fmt: skip
    choice = {k: 100 * float(np.sum(f[1]) / len(cases)) for k, f in fits.items()}
    kind = max(choice, key=lambda k: (choice[k], k == "shape"))
    return kind, fits[kind], choice


def _realized_summary(realized, cases, by_start: dict, by: str, gated) -> dict:
    """`fit_paired`'s `realized`: the cross-fitted rule's gain, overall and per kind of
    start, and behind its gate (nested: each fold's gate set on the others)."""
    return {
        "rule": 100 * float(np.sum(realized) / len(cases)),
        "gated": 100 * float(np.sum(gated) / len(cases)),
        "default": 0.0,
        "oracle": 100 * _oracle(cases),
        "by_start": {
            k: {
                "groups": len(v),
                "rule": 100 * float(np.mean([g for g, _ in v])),
                "oracle": 100 * _oracle([c for _, c in v]),
            }
            for k, v in sorted(by_start.items())
        },
        "units": "points: 100 x the gain in the metric (for a task-free model of a "
        f"minimized metric, 100 x -ln(candidate / default)); cross-fitted by {by}",
    }


def fit_paired(
    model,
    groups: list[BranchGroup],
    *,
    level: float = 0.85,
    kappas=KAPPAS,
    margins=MARGINS,
    by: str | None = None,
    prior: bool = False,
) -> dict:
    """Cross-fitted skill, coverage and realized gain on branch groups (module docstring).

    Args:
        model: a controlled `ControlledODE` (a task's own or task-free).
        groups: `BranchGroup`s.
        level: the coverage target of `gain +/- 2 sd_cal`.
        kappas, margins: the grids the rule is chosen from.
        by: what is held out: `"seed"` (a task's own model: its sweep's seeds) or
            `"task"` (a task-free model over a zoo: every figure of a task's groups comes
            from a calibration on the other tasks' groups, as a new task would meet it).
            Default: `"task"` for a task-free model, else `"seed"`.
        prior: also fit a continuation prior (`keras_lode.model.prior`): each candidate's
            gain becomes `alpha * model_gain + shape . weights`, fitted (like everything
            else) on the folds not held out; the shape alone (`alpha = 0`) or with the
            ensemble's gain, whichever realized more cross-fitted (`prior_choice`; the
            kind is chosen on the same folds it is scored on, so `realized` is a little
            optimistic for it); the one fitted on all groups is `prior`.

    Returns:
        A JSON-ready dict: `groups`, `seeds`, `candidates`, `spearman`, `rmse` (points),
        `coverage` `{raw, calibrated, level}`, `realized` `{rule, gated, default, oracle,
        by_start}` (points, cross-fitted; `gated`: the rule behind its gate of kinds of
        start, the gate itself chosen on the other folds; `by_start`: the ungated rule's
        realized gain and the oracle's on the groups of each kind of start, `start_kind`),
        `calibration`
        `{sd_scale, sd_floor}` and `rule` `{kappa, margin, switch, starts}` fitted on all
        groups (`starts`: `allowed_starts` of the folds), `trusted`, `by` and `folds` (per
        held-out seed or task: its rule, realized gain, and that gain per kind of start),
        `prior` (the continuation prior fitted on all groups, or None) and `prior_choice`
        (with a prior: each kind's cross-fitted realized gain, points).

    Raises:
        ValueError: fewer than 2 seeds or tasks (nothing to hold out), or an unknown `by`.
    """
    by = by or ("task" if is_task_free(model) else "seed")
    if by not in ("seed", "task"):
        raise ValueError(f"Argument `by` must be 'seed' or 'task'. Received: {by!r}")
    cases = _cases(model, groups)
    seeds = sorted({c["seed"] for c in cases})
    if by == "task" and any(c["task"] is None for c in cases):
        raise ValueError(
            "Holding out tasks needs every branch group's task (the runs' meta['task']); "
            "some have none. Record the runs with their task, or hold out seeds (by='seed')"
        )
    folds = sorted({c[by] for c in cases}, key=lambda v: (str(type(v)), v))
    if len(folds) < 2:
        raise ValueError(
            f"fit_paired needs branch groups of >= 2 {by}s to hold one out. Received: {folds}"
            + ("; with one task's sweep, hold out seeds (by='seed')" if by == "task" else "")
        )
    kind, crossed, choice = _cross_fit_prior(cases, by, folds, level, kappas, margins, prior)
    covered, realized, per_fold, by_start, gated = crossed
    fitted = _fit_prior(cases, kind)
    cases = _with_prior(cases, fitted)
    res = np.concatenate([c["actual"] - c["mean"] for c in cases])
    sd = np.concatenate([c["sd"] for c in cases])
    cal = fit_spread_calibration(res, sd, level)
    kappa, margin, switch = _choose_rule(cases, cal, kappas, margins)
    # The rule is fitted on every group; whether to switch at all is judged held out: a
    # procedure (rule and gate) that realized no gain on the groups it did not see never
    # switches, and it switches only from the kinds of start it gained on in every fold.
    switch = switch and float(np.sum(gated)) > 1e-12
    starts = allowed_starts(per_fold)
    coverage = float(np.mean(np.concatenate(covered)))
    return {
        "groups": len(cases),
        "seeds": [int(s) for s in seeds],
        "candidates": int(sum(c["mean"].size for c in cases)),
        "spearman": _mean_spearman(cases),
        "rmse": 100 * float(np.sqrt(np.mean(res**2))),
        "coverage": {
            "raw": float(np.mean(np.abs(res) <= 2 * sd)),
            "calibrated": coverage,
            "level": level,
        },  # fmt: skip
        "realized": _realized_summary(realized, cases, by_start, by, gated),
        "calibration": {k: float(v) for k, v in cal.items()},
        "rule": {
            "kappa": float(kappa),
            "margin": float(margin),
            "switch": bool(switch),
            "starts": starts,
        },  # fmt: skip
        "trusted": bool(coverage >= level - COVERAGE_TOLERANCE),
        "by": by,
        "folds": per_fold,
        "prior": fitted,
        "prior_choice": choice,
    }


def evaluate_rule(model, groups: list[BranchGroup], section: dict) -> dict:
    """The paired rule of a calibration fitted elsewhere (`paired_section`), applied to
    other groups: what a fit would have done there (e.g. on a task the calibration never saw).

    Returns:
        `{groups, spearman, rmse, coverage, realized: {rule, oracle}, switched}` (points;
        `switched`: the share of groups where the rule left the default). The
        calibration's gate applies (`keras_lode.model.paired_gate`): no switch where the
        planner would not switch, by the group's kind of start.
    """
    missing = sorted({"sd_scale", "sd_floor", "kappa", "margin"} - set(section))
    if missing:
        raise ValueError(
            f"evaluate_rule takes a model file's paired section (`paired_section(result)`); "
            f"this one lacks {missing}"
        )
    cases = _with_prior(_cases(model, groups), section.get("prior"))
    if not cases:
        return {"groups": 0}
    cal = {"sd_scale": section["sd_scale"], "sd_floor": section["sd_floor"]}
    kappa, margin = section["kappa"], section["margin"]
    allowed = {k for k in START_KINDS if gate_reason(section, k) is None}
    choices = _choices(cases, cal, kappa, margin, allowed)
    gains = [gain for gain, _ in choices]
    switched = sum(took for _, took in choices)
    res = np.concatenate([c["actual"] - c["mean"] for c in cases])
    sd = calibrated_sd(np.concatenate([c["sd"] for c in cases]), cal)
    return {
        "groups": len(cases),
        "spearman": _mean_spearman(cases),
        "rmse": 100 * float(np.sqrt(np.mean(res**2))),
        "coverage": float(np.mean(np.abs(res) <= 2 * sd)),
        "realized": {"rule": 100 * float(np.mean(gains)), "oracle": 100 * _oracle(cases)},
        "switched": switched / len(cases),
    }


def paired_section(result: dict) -> dict:
    """The model file's `planner.paired` section from a `fit_paired` result."""
    return {
        "sd_scale": result["calibration"]["sd_scale"],
        "sd_floor": result["calibration"]["sd_floor"],
        "kappa": result["rule"]["kappa"],
        "margin": result["rule"]["margin"],
        "switch": result["rule"].get("switch", True),
        **({"starts": list(result["rule"]["starts"])} if "starts" in result["rule"] else {}),
        "trusted": result["trusted"],
        "level": result["coverage"]["level"],
        "coverage": result["coverage"]["calibrated"],
        "groups": result["groups"],
        "seeds": result["seeds"],
        "by": result["by"],
        "folds": [f[result["by"]] for f in result["folds"]],
        **({"prior": result["prior"]} if result.get("prior") else {}),
    }


def with_paired_calibration(path, section: dict, out_path) -> None:
    """Writes the model file at `path` to `out_path` with `planner.paired = section`.

    The weights are copied as stored; the new file is validated as it is written.
    """
    from keras_lode.model.io import read_model_file, save_model

    config, weights = read_model_file(path)
    if config.get("kind") != "controlled":
        raise ValueError(f"{path}: a paired calibration needs a controlled model file")
    config["planner"]["paired"] = dict(section)
    save_model(out_path, config, weights)
