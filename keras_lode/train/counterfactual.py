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
  A calibration whose rule realized no gain held out is written with `switch: false`.

The calibration fitted on all groups becomes the model file's `planner.paired` section
(`with_paired_calibration`); it is `trusted` only if its cross-fitted coverage reached the
target (less a tolerance for the finite number of groups), and an untrusted one never
switches; neither does one whose rule is `switch: false`. Everything is NumPy.
"""

from __future__ import annotations

import dataclasses
import logging
import math

import numpy as np

from keras_lode.model.features import is_task_free
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
#: Coverage may fall this far below the target before the calibration is not trusted.
COVERAGE_TOLERANCE = 0.05


@dataclasses.dataclass
class BranchGroup:
    """The runs of one seed that differ only in the continuation after log point `position`.

    Attributes:
        seed: the runs' seed (groups are held out by seed).
        position: the branch point `n`.
        total_points: the runs' number of log points `K`.
        window: (W, 3) `[loss, ln lr, metric]` of the shared prefix up to `n`.
        names: (C,) continuation names; entry 0 is the default.
        paths: (C, K - 1 - n) LR per remaining point of each continuation.
        actual: (C,) final validation metric each run reached.
        points_per_epoch: the runs' P (for the horizon mapping).
        history: (n + 1, 3) the whole shared prefix from point 0 (a task-free model reads
            the run relative to its early state); None when only `window` is known.
        task: the runs' task (a zoo's groups are held out by task: `fit_paired(by="task")`).
        mode: the metric's direction, `"max"` or `"min"`.
    """

    seed: int
    position: int
    total_points: int
    window: np.ndarray
    names: list[str]
    paths: np.ndarray
    actual: np.ndarray
    points_per_epoch: int | None = None
    history: np.ndarray | None = None
    task: str | None = None
    mode: str = "max"

    def __post_init__(self):
        self.window = np.asarray(self.window, dtype=np.float64)
        if self.history is not None:
            self.history = np.asarray(self.history, dtype=np.float64)
            if self.history.shape != (self.position + 1, 3):
                raise ValueError(
                    f"BranchGroup(seed={self.seed}): `history` must hold the prefix's "
                    f"{self.position + 1} rows of 3 channels. Received {self.history.shape}"
                )
        if self.mode not in ("max", "min"):
            raise ValueError(f"BranchGroup: `mode` must be 'max' or 'min'. Received {self.mode!r}")
        self.paths = np.asarray(self.paths, dtype=np.float64)
        self.actual = np.asarray(self.actual, dtype=np.float64)
        c = len(self.names)
        r = self.total_points - 1 - self.position
        if c < 2 or self.paths.shape != (c, r) or self.actual.shape != (c,):
            raise ValueError(
                f"BranchGroup(seed={self.seed}): expected >= 2 names, paths of shape ({c}, {r}) "
                f"and {c} actual finals. Received paths {self.paths.shape}, actual "
                f"{self.actual.shape}"
            )


def branch_groups(runs, window: int) -> list[BranchGroup]:
    """The branch groups among recorded runs: each (base run, branch point) of a sweep's
    `--branches` runs (`Run.kind == "branch"`, `meta["branch"]` naming its `base` grid run,
    `at_point` and `candidate`), with the base run itself as the default continuation.

    Incomplete runs, runs of another length than their base and groups whose base is not
    among `runs` are left out. The actual outcome of a run is its last validation metric.

    Args:
        runs: `Run`s (e.g. `keras_lode.load_runs(sweep_dir)`: grid and branch runs).
        window: the model's window W (the group's window is the base's last W points).
    """
    # Runs of several tasks (a zoo) may share run ids: a base is found within its task.
    by_id = {(r.meta.get("task"), r.run_id): r for r in runs}
    members: dict = {}
    for r in runs:
        b = r.meta.get("branch")
        if r.kind != "branch" or not isinstance(b, dict) or r.status != "complete":
            continue
        key = (r.meta.get("task"), str(b["base"]), int(b["at_point"]))
        members.setdefault(key, []).append(r)
    groups = []
    order = sorted(members, key=lambda k: (str(k[0]), k[1], k[2]))
    for (task, base_id, n), branch_runs in ((k, members[k]) for k in order):
        base = by_id.get((task, base_id))
        if base is None or base.status != "complete" or not window - 1 <= n < len(base) - 1:
            continue
        K = len(base)
        kept = sorted((r for r in branch_runs if len(r) == K), key=lambda r: r.run_id)
        if not kept:
            continue
        names = ["default"] + [str(r.meta["branch"].get("candidate", r.run_id)) for r in kept]
        paths = np.stack([np.asarray(x.lr[n + 1 :], dtype=np.float64) for x in [base, *kept]])
        actual = np.array([float(x.metric[-1]) for x in [base, *kept]])
        seed, rows = int(base.meta.get("seed") or 0), base.channels()[: n + 1]
        groups.append(
            BranchGroup(
                seed,
                n,
                K,
                rows[n - window + 1 :],
                names,
                paths,
                actual,
                base.points_per_epoch,
                history=rows,
                task=base.meta.get("task"),
                mode=base.meta.get("mode") or "max",
            )  # fmt: skip
        )
    return groups


def member_gains(model, group: BranchGroup) -> np.ndarray:
    """(M, C): each member's predicted final of each continuation minus the default's.

    A run of another length than the model's horizon is mapped by fraction of training,
    as the planner maps it. A task-free model reads the group's whole prefix on its own
    grid (`keras_lode.model.features.model_grid`) and predicts in improvement units.
    """
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
        return finals - finals[:, :1]
    horizon = getattr(model, "horizon", None)
    scale = 1.0 if horizon is None else horizon / group.total_points
    window = group.window[-int(model.window) :]
    finals = predict_paths(model, window, group.paths, group.position, scale)[:, :, -1, 1]
    return finals - finals[:, :1]


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
            gains = member_gains(model, g)
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
        ok = np.isfinite(d).all(axis=0) & np.isfinite(actual)
        out.append({"seed": g.seed, "task": g.task, "start": start_kind(g),
                    "mean": d.mean(axis=0)[ok], "sd": sd[ok], "actual": actual[ok]})  # fmt: skip
    return out


def start_kind(group: BranchGroup) -> str:
    """`"constant"` when the group's default continuation holds its LR (within 1%), else
    `"schedule"` (the run was following a decaying or otherwise changing schedule)."""
    d = group.paths[0]
    return "constant" if float(d.max()) <= 1.01 * float(d.min()) else "schedule"


def _choices(cases, cal, kappa, margin, switch: bool = True) -> list[tuple[float, bool]]:
    """Per group, `(actual gain of the rule's choice, whether it left the default)`: the
    gain is 0 where it keeps the default (and always when `switch` is False)."""
    out = []
    for c in cases:
        if c["mean"].size == 0 or not switch:
            out.append((0.0, False))
            continue
        bound = c["mean"] - kappa * calibrated_sd(c["sd"], cal)
        best = int(np.argmax(bound))
        take = bool(bound[best] > margin)
        out.append((float(c["actual"][best]) if take else 0.0, take))
    return out


def _gains(cases, cal, kappa, margin, switch: bool = True) -> list[float]:
    """Per group, the actual gain of the rule's choice (0 where it keeps the default)."""
    return [gain for gain, _ in _choices(cases, cal, kappa, margin, switch)]


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


def _cross_fit(cases, by: str, folds, level, kappas, margins):
    """Each fold held out in turn: calibration and rule fitted on the others, applied to it.

    Returns `(covered, realized, per_fold, by_start)`: per held-out case whether its
    actual gains fell inside +/- 2 calibrated sd, each fold's summed realized gain, each
    fold's summary and `(gain, case)` pairs per kind of start.
    """
    covered, realized, per_fold, by_start = [], [], [], {}
    for fold in folds:
        train = [c for c in cases if c[by] != fold]
        test = [c for c in cases if c[by] == fold]
        res = np.concatenate([c["actual"] - c["mean"] for c in train])
        sd = np.concatenate([c["sd"] for c in train])
        cal = fit_spread_calibration(res, sd, level)
        kappa, margin, switch = _choose_rule(train, cal, kappas, margins)
        for c in test:
            covered.append(np.abs(c["actual"] - c["mean"]) <= 2 * calibrated_sd(c["sd"], cal))
        gains = _gains(test, cal, kappa, margin, switch)
        r = float(np.mean(gains))
        realized.append(r * len(test))
        for c, gain in zip(test, gains, strict=True):
            by_start.setdefault(c["start"], []).append((gain, c))
        per_fold.append({by: fold if by == "task" else int(fold), "kappa": kappa,
                         "margin": margin, "switch": switch, "realized": 100 * r,
                         "groups": len(test), "oracle": 100 * _oracle(test)})  # fmt: skip
    return covered, realized, per_fold, by_start


def fit_paired(
    model,
    groups: list[BranchGroup],
    *,
    level: float = 0.85,
    kappas=KAPPAS,
    margins=MARGINS,
    by: str | None = None,
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

    Returns:
        A JSON-ready dict: `groups`, `seeds`, `candidates`, `spearman`, `rmse` (points),
        `coverage` `{raw, calibrated, level}`, `realized` `{rule, default, oracle,
        by_start}` (points, cross-fitted; `by_start`: the same rule's realized gain and the
        oracle's on the groups of each kind of start, `start_kind`), `calibration`
        `{sd_scale, sd_floor}` and `rule` `{kappa, margin, switch}` fitted on all groups,
        `trusted`, `by` and `folds` (per held-out seed or task: its rule and realized gain).

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
    covered, realized, per_fold, by_start = _cross_fit(cases, by, folds, level, kappas, margins)
    res = np.concatenate([c["actual"] - c["mean"] for c in cases])
    sd = np.concatenate([c["sd"] for c in cases])
    cal = fit_spread_calibration(res, sd, level)
    kappa, margin, switch = _choose_rule(cases, cal, kappas, margins)
    # The rule is fitted on every group; whether to switch at all is judged held out: a
    # procedure that realized no gain on the groups it did not see never switches.
    switch = switch and float(np.sum(realized)) > 1e-12
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
        "realized": {
            "rule": 100 * float(np.sum(realized) / len(cases)),
            "default": 0.0,
            "oracle": 100 * _oracle(cases),
            "by_start": {
                k: {
                    "groups": len(v),
                    "rule": 100 * float(np.mean([g for g, _ in v])),
                    "oracle": 100 * _oracle([c for _, c in v]),
                }
                for k, v in sorted(by_start.items())
            },  # fmt: skip
            "units": "points: 100 x the gain in the metric (for a task-free model of a "
            f"minimized metric, 100 x -ln(candidate / default)); cross-fitted by {by}",
        },
        "calibration": {k: float(v) for k, v in cal.items()},
        "rule": {"kappa": float(kappa), "margin": float(margin), "switch": bool(switch)},
        "trusted": bool(coverage >= level - COVERAGE_TOLERANCE),
        "by": by,
        "folds": per_fold,
    }


def evaluate_rule(model, groups: list[BranchGroup], section: dict) -> dict:
    """The paired rule of a calibration fitted elsewhere (`paired_section`), applied to
    other groups: what a fit would have done there (e.g. on a task the calibration never saw).

    Returns:
        `{groups, spearman, rmse, coverage, realized: {rule, oracle}, switched}` (points;
        `switched`: the share of groups where the rule left the default). An untrusted
        calibration never switches, nor does one with `switch: false`.
    """
    missing = sorted({"sd_scale", "sd_floor", "kappa", "margin"} - set(section))
    if missing:
        raise ValueError(
            f"evaluate_rule takes a model file's paired section (`paired_section(result)`); "
            f"this one lacks {missing}"
        )
    cases = _cases(model, groups)
    if not cases:
        return {"groups": 0}
    cal = {"sd_scale": section["sd_scale"], "sd_floor": section["sd_floor"]}
    kappa, margin = section["kappa"], section["margin"]
    trusted = section.get("trusted", True) and section.get("switch", True)
    choices = _choices(cases, cal, kappa, margin, switch=trusted)
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
        "trusted": result["trusted"],
        "level": result["coverage"]["level"],
        "coverage": result["coverage"]["calibrated"],
        "groups": result["groups"],
        "seeds": result["seeds"],
        "by": result["by"],
        "folds": [f[result["by"]] for f in result["folds"]],
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
