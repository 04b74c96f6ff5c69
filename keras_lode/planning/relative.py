"""The control planner for a task-free model: plan on the model's grid, serve the run's.

A task-free model (`model.features == "relative"`, `keras_lode.model.features`) reads a
run relative to its state at fraction `1 / horizon` of training, on `model.horizon` points
evenly spaced in the
fraction of training. So `plan_relative`, given the run's whole history (raw rows from
point 0):

1. takes the reference (first loss, LR and metric, the metric's direction `mode`);
2. resamples the history onto the model's grid up to the last model point `g` the run has
   reached (fraction `(g + 1) / horizon <= (n + 1) / K`), and the plan in effect onto the
   points after it; turns both into relative features;
3. plans there with the control planner, exactly as for a task's own model (candidates,
   trust region and calibration are all in relative units);
4. maps the result back: LRs onto the run's points `n + 1 .. K - 1` (ln LR linear in the
   fraction of training, times the run's reference LR), predictions into the run's metric.

When the planner keeps the default, the plan is the plan in effect exactly (no resampling
round trip), so a task-free LODE that never switches is bit-identical to its warm-up.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from keras_lode.model.features import ModelGrid, model_grid
from keras_lode.model.paired_gate import start_kind
from keras_lode.planning import common
from keras_lode.planning.control import plan_control
from keras_lode.planning.plans import ControlPlan

__all__ = ["ModelGrid", "model_grid", "plan_relative"]  # the grid lives in model.features


def plan_relative(
    model,
    history,
    *,
    position: int,
    total_points: int,
    current_plan=None,
    mode: str = "max",
    **options,
) -> ControlPlan:
    """Plan the rest of a run with a task-free controlled model.

    Args:
        model: a `ControlledODE` with `features == "relative"`.
        history: `(position + 1, 3)` raw `[loss, ln lr, metric]` of the run's log points
            `0 .. position` (the whole run so far: its start holds the reference).
        position: current log point `n`.
        total_points: the run's number of log points `K`.
        current_plan: LRs the run follows from here (length `K - 1 - n`, or `K`); None
            holds the current LR.
        mode: the run's metric direction, `"max"` or `"min"`.
        **options: options of `plan_control` (`ControlOptions` fields); an `lr_range` and
            a `max_lr` are in the run's LRs (the model's own range is relative to the first
            LR; its `planner.lr_ceiling` in LRs, by `optimizer`).

    Returns:
        A `ControlPlan` in the run's units (LRs, predicted metric, the absolute rule's
        bound); its `gain`, `gain_sd`, `sd`, the paired rule's `bound` and the numbers in
        `reason` stay in improvement units (accuracy for a maximized metric, ln-ratio for a
        minimized one).

    Raises:
        ValueError: a history of the wrong shape, an unusable first point, or a point too
            early for the model's window.
    """
    if "config" in options:
        raise TypeError(
            "plan_relative takes the planner's options as keywords (its `lr_range` and "
            "`max_lr` are in the run's LRs), not a `config`"
        )
    n, K = common.check_position(position, total_points)
    held = common.resolve_current_plan(current_plan, n, K)
    paths = None if held is None else held[None]
    grid = model_grid(model, history, position=n, total_points=K, paths=paths, mode=mode)
    rows = np.asarray(history, dtype=np.float64)
    ref, g, features = grid.reference, grid.position, grid.window
    held_model = grid.paths[0]
    lr0 = float(np.exp(ref.log_lr))
    run_frac, model_frac = grid.run_fractions, grid.model_fractions
    defaults = common.model_defaults(model)
    if options.get("lr_range") is not None:  # given in the run's LRs: relative to its first
        options["lr_range"] = tuple(float(v) / lr0 for v in options["lr_range"])
    elif "lr_range" in defaults:
        options["lr_range"] = tuple(defaults["lr_range"])  # relative, like the candidates
    # The LR ceiling is in the run's LRs (the call's, or the model's for the optimizer), and
    # is floored at the run's own current LR (the grid's last point may lie before it).
    ceiling = common.resolve_ceiling(
        options.pop("max_lr", None), options.pop("optimizer", None), defaults
    )
    current = float(np.exp(rows[n, 1]))
    cap = None if ceiling is None else max(ceiling, current)
    # (None: no ceiling, which plan_control must not look up again without the optimizer.)
    options["max_lr"] = float("inf") if cap is None else ceiling / lr0
    if cap is not None:
        options["current_lr"] = current / lr0
    p = plan_control(
        model,
        features,
        position=g,
        total_points=len(model_frac),
        current_plan=held_model,
        # Read on the run's own plan: the grid's resampling may add or hide a step.
        start="constant" if held is None else start_kind(held),
        **options,
    )
    return _to_run(p, ref, lr0, rows, held, n, K, g, run_frac, model_frac, cap)


def _to_run(p: ControlPlan, ref, lr0, rows, held, n, K, g, run_frac, model_frac, cap=None):
    """The plan `p` (on the model's grid, relative units) in the run's points and units;
    the candidates clipped at `cap` (run LRs), which the interpolation from the grid's last
    point could otherwise pass on the run's first points (their predictions are those of
    the unclipped paths on the grid: they differ only there)."""
    src = model_frac[g:]  # the plan's points g .. H-1 (g: the window's last)
    dst = run_frac[n + 1 :]

    def ln_paths(paths):  # (C, H-1-g) relative LR -> (C, K-1-n) run LR
        ln = np.concatenate([np.full((paths.shape[0], 1), p.window[-1, 1]), np.log(paths)], 1)
        return np.exp(np.stack([np.interp(dst, src, row) for row in ln]) + ref.log_lr)

    paths = ln_paths(np.asarray(p.paths, dtype=np.float64))
    if cap is not None:
        paths = np.minimum(paths, cap)
    # The default is the plan in effect, exactly (or the current LR held).
    paths[0] = held if held is not None else np.exp(rows[n, 1])
    lr = paths[p.chosen].copy()
    pred = ref.predictions_from(p.predictions)  # (M, C, H-g, 2) at model points g..H-1
    at = np.concatenate([run_frac[n : n + 1], dst])
    flat = pred.reshape(-1, pred.shape[2], 2)
    pred_run = np.stack(
        [np.stack([np.interp(at, src, s[:, c]) for c in range(2)], -1) for s in flat]
    ).reshape(*pred.shape[:2], at.size, 2)
    return dataclasses.replace(
        p,
        lr=lr,
        paths=paths,
        mean=ref.metric_from(p.mean),
        # The absolute rule's bound is a metric level too; the paired rule's is a gain.
        bound=ref.metric_from(p.bound) if p.rule == "absolute" else p.bound,
        reason=f"{p.reason} (task-free: in the metric's improvement since 1/horizon of training)",
        predictions=pred_run,
        position=n,
        total_points=K,
        lr_range=(p.lr_range[0] * lr0, p.lr_range[1] * lr0),
        time_scale=len(model_frac) / K,
        window=rows[-p.window.shape[0] :],
    )
