"""Fitting the LR ceiling of a task-free model from its training tasks' sweeps.

Per optimizer kind (`keras_lode.model.lr_ceiling.OPTIMIZER_KINDS`), the ceiling is the
lowest sweep-best peak LR among the training tasks of that kind: each task's best config
is the (family, peak LR) of its complete grid runs with the best mean final validation
metric (`keras_lode.experiments.best.best_per_family`). Tasks whose runs name no optimizer
of a known kind, or have no complete grid runs, are left out and listed, as are runs that
name no task (a ceiling from a mixture of tasks would be nobody's) and runs without a
finite positive `peak_lr`. Fitting never raises on such runs: it leaves them out.
"""

from __future__ import annotations

import math
from collections import defaultdict

from keras_lode.model.lr_ceiling import optimizer_kind

__all__ = ["fit_lr_ceiling"]


def fit_lr_ceiling(runs) -> tuple[dict, dict]:
    """`(section, record)`: the model file's `planner.lr_ceiling` (kind -> LR; empty when
    no task qualifies) and `training.lr_ceiling`, what it came from.

    Args:
        runs: `keras_lode.Run`s of one or more tasks (`meta["task"]`, `meta["optimizer"]`).

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
        tasks[task] = {"optimizer": sorted(names)[0], "kind": kinds.pop(),
                       "best": best[0]["label"], "peak_lr": float(best[0]["peak_lr"])}  # fmt: skip
    section: dict[str, float] = {}
    for row in tasks.values():
        section[row["kind"]] = min(section.get(row["kind"], float("inf")), row["peak_lr"])
    record = {
        "rule": "per optimizer kind, the lowest sweep-best peak LR of the training tasks",
        "tasks": tasks,
        "left_out": left_out,
    }
    return section, record


def _peak(run) -> float | None:
    """The run's `peak_lr` if it is a finite positive number, else None."""
    value = run.meta.get("peak_lr")
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) and value > 0 else None
