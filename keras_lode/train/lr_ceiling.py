"""Fitting the LR ceiling of a task-free model from its training tasks' sweeps.

Per optimizer kind (`keras_lode.model.lr_ceiling.OPTIMIZER_KINDS`), the ceiling is the
lowest sweep-best peak LR among the training tasks of that kind: each task's best config
is the (family, peak LR) of its complete grid runs with the best mean final validation
metric (`keras_lode.experiments.best.best_per_family`). With `tolerance > 0` a task's
peak is instead its highest *near-best* peak LR: the highest whose best family's mean is
within `tolerance` seed standard deviations (of the best config's seeds) of the best, so
that a top peak that ties the best within noise counts. Tasks whose runs name no optimizer
of a known kind, or have no complete grid runs, are left out and listed, as are runs that
name no task (a ceiling from a mixture of tasks would be nobody's) and runs without a
finite positive `peak_lr`. Fitting never raises on such runs: it leaves them out.
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

from keras_lode.model.lr_ceiling import optimizer_kind

__all__ = ["fit_lr_ceiling"]


def fit_lr_ceiling(runs, tolerance: float = 0.0) -> tuple[dict, dict]:
    """`(section, record)`: the model file's `planner.lr_ceiling` (kind -> LR; empty when
    no task qualifies) and `training.lr_ceiling`, what it came from.

    Args:
        runs: `keras_lode.Run`s of one or more tasks (`meta["task"]`, `meta["optimizer"]`).
        tolerance: how many seed standard deviations below the best a peak LR may be and
            still count (0: the best peak itself).

    Returns:
        `section`, e.g. `{"adam": 0.003, "sgd": 0.05}`, and `record`: `{"rule", "tasks":
        {task: {"optimizer", "kind", "best", "peak_lr"}}, "left_out": {task: why}}`.
    """
    from keras_lode.experiments.best import best_per_family

    by_task, left_out = defaultdict(list), {}
    for run in runs:
        task = run.meta.get("task")
        if task is None:
            left_out["(no task)"] = "runs that name no task"
        elif _peak(run) is not None:
            by_task[str(task)].append(run)
        else:
            left_out.setdefault(str(task), "no run with a finite positive peak_lr")
    for task in by_task:
        left_out.pop(task, None)
    tasks = {}
    for task, task_runs in sorted(by_task.items()):
        names = {r.meta.get("optimizer") for r in task_runs} - {None}
        kinds = {optimizer_kind(n) for n in names}
        if len(kinds) != 1 or None in kinds:
            left_out[task] = f"optimizer(s) {sorted(map(str, names))}: not one known kind"
            continue
        try:
            best = best_per_family(task_runs)
        except ValueError as e:  # e.g. runs of one task that mix metric directions
            left_out[task] = str(e)
            continue
        if not best:
            left_out[task] = "no complete grid runs with a finite final metric"
            continue
        peak = float(best[0]["peak_lr"])
        tasks[task] = {"optimizer": sorted(names)[0], "kind": kinds.pop(),
                       "best": best[0]["label"], "best_peak_lr": peak,
                       "peak_lr": _near_best(task_runs, peak, tolerance)}  # fmt: skip
    section: dict[str, float] = {}
    for row in tasks.values():
        section[row["kind"]] = min(section.get(row["kind"], float("inf")), row["peak_lr"])
    near = "" if tolerance == 0 else f" within {tolerance:g} seed sd of the best"
    record = {
        "rule": f"per optimizer kind, the lowest sweep-best peak LR{near} of the training tasks",
        "tolerance": float(tolerance),
        "tasks": tasks,
        "left_out": left_out,
    }
    return section, record


def _near_best(runs, best_peak: float, tolerance: float) -> float:
    """The highest peak LR whose best family's mean final metric is within `tolerance` seed
    sd (of the best config) of the best; `best_peak` itself when `tolerance` is 0."""
    if tolerance <= 0:
        return best_peak
    from keras_lode.experiments.best import config_scores

    sign, scores = config_scores(runs)
    by_peak: dict[float, float] = {}
    for (_, peak), vals in scores.items():
        by_peak[peak] = max(by_peak.get(peak, -math.inf), sign * float(np.mean(vals)))
    (_, top), vals = max(scores.items(), key=lambda kv: sign * float(np.mean(kv[1])))
    sd = float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0
    best = by_peak[top]
    return max(p for p, v in by_peak.items() if best - v <= tolerance * sd)


def _peak(run) -> float | None:
    """The run's `peak_lr` if it is a finite positive number, else None."""
    value = run.meta.get("peak_lr")
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) and value > 0 else None
