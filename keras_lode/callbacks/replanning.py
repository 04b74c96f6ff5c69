"""One replan of `LODECallback`: the window, the plausibility check, the planner call.

Kept apart from the callback's bookkeeping so that each can be read on its own: `replan`
turns the callback's history at log point n into a checked plan (or a warning saying why
there is none), `plot_replan` draws it, `observed_run` turns the history into a `Run`.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from keras_lode._warnings import warn
from keras_lode.model.features import Reference, is_task_free

__all__ = ["observed_run", "plot_replan", "replan"]

logger = logging.getLogger(__name__)


def _window_problem(window: np.ndarray) -> str | None:
    if not np.all(np.isfinite(window[:, 0])):
        return "the window has a non-finite training loss"
    if not np.all(np.isfinite(window[:, 2])):
        return "the window has missing (NaN) validation values"
    if not np.all(np.isfinite(window[:, 1])):
        return "the window has a non-finite learning rate"
    return None


def _check_once(callback, n: int) -> None:
    """Once per fit: a warning if this run is unlike the model's training runs."""
    if callback.checked_run:
        return
    callback.checked_run = True
    try:
        from keras_lode.planning.plausibility import warn_implausible

        task = getattr(getattr(callback, "options", None), "task", None)
        mode = getattr(getattr(callback, "options", None), "mode", None) or "max"
        problems = warn_implausible(
            callback.lode, callback.history[: n + 1], run_name="this fit", task=task, mode=mode
        )
        if problems:
            callback.stranger = "; ".join(problems)
    except Exception as e:  # a check must never stop the fit
        logger.warning("LODECallback could not check the run: %s", e)


def _ceiling_options(callback) -> dict:
    """`{"optimizer": name}`, the fit's optimizer class name, for a controlled model's LR
    ceiling (`keras_lode.model.lr_ceiling`), unless the call set `max_lr` or `optimizer`.
    Once per fit: the ceiling is logged, or, for an optimizer the ceiling does not know
    (the planner will not raise the LR), a `LODEWarning` says so."""
    from keras_lode.model.lr_ceiling import ceiling_for, optimizer_name

    given = callback.planner_overrides
    if callback.kind != "controlled" or any(
        given.get(k) is not None for k in ("max_lr", "optimizer")
    ):
        return {}
    # A LossScaleOptimizer (mixed precision) wraps the one whose LR scale counts.
    name = optimizer_name(getattr(callback.model, "optimizer", None))
    if not getattr(callback, "ceiling_logged", False):
        callback.ceiling_logged = True
        section = (getattr(callback.lode, "planner_defaults", None) or {}).get("lr_ceiling")
        value, why = ceiling_for(section, name)
        if value == 0.0:
            warn(f"LODECallback: {why}; pass max_lr= to set a ceiling yourself.")
        else:
            logger.info("LODECallback: %s", why)
    return {"optimizer": name}


def _with_ceiling(callback) -> dict:
    """The planner options of the call, with the fit's optimizer filled in where the call
    left it unset (`_ceiling_options`)."""
    ceiling = _ceiling_options(callback)
    given = {k: v for k, v in callback.planner_overrides.items() if k not in ceiling}
    return {**ceiling, **given}


def _check_prediction_once(callback, n: int, window, result) -> None:
    """Once per fit, at the first plan of a controlled model: does its reconstruction of the
    current metric land near the observed one? (A warning if not; never stops the fit.)"""
    done = getattr(callback, "checked_prediction", False)
    if done or getattr(result, "kind", "") != "controlled":
        return
    callback.checked_prediction = True
    try:
        from keras_lode.planning.plausibility import prediction_miss

        observed, predicted = float(window[-1, 2]), result.predictions[:, 0, 0, 1]
        if is_task_free(callback.lode):
            ref = Reference.at_fraction(callback.history[: n + 1], callback.total_points,
                                        callback.lode.horizon, callback.options.mode)  # fmt: skip
            observed, predicted = float(ref.improvement(observed)), ref.improvement(predicted)
        miss = prediction_miss(callback.lode, observed, predicted)
        if miss is not None:
            callback.stranger = miss
            warn(
                f"LODECallback: this fit does not look like the runs the model was trained on "
                f"(log point {n}): {miss}. Its plans extrapolate; is this the model of this "
                "task and metric?"
            )
    except Exception as e:  # a check must never stop the fit
        logger.warning("LODECallback could not check the model's prediction: %s", e)


def _kept(callback, n: int, result, reason: str):
    """`(plan, lrs)` keeping the plan in effect: `result` marked as not switched, with
    `reason`."""
    default = np.asarray(callback.tables.table[n + 1 :], dtype=np.float64)
    result = dataclasses.replace(result, lr=default.copy(), chosen=0, switched=False,
                                 reason=reason)  # fmt: skip
    return result, default


def _anchored(callback, n: int, result, lrs):
    """`(plan, lrs)`: as planned, or, when the fit is a stranger to a controlled model and
    `anchor_strangers` is on, the default (the plan in effect), with the plan's `reason`
    naming what it would have done; the first such replan says so once."""
    stranger = getattr(callback, "stranger", None)
    if stranger is None or not callback.options.anchor_strangers or callback.kind != "controlled":
        return result, lrs
    default = np.asarray(callback.tables.table[n + 1 :], dtype=np.float64)
    if result.switched:
        reason = (
            f"default-anchored (unlike the model's runs); the planner chose {result.chosen_name!r}"
        )
        result, default = _kept(callback, n, result, reason)
    if not getattr(callback, "anchor_warned", False):
        callback.anchor_warned = True
        warn(
            f"LODECallback: from log point {n} on this fit keeps its warm-up (default-anchored): "
            f"it is unlike the model's training runs ({callback.stranger}). Plans are still "
            "made and logged; pass anchor_strangers=False to follow them anyway."
        )
    return result, default


def _committed(callback, n: int, result, lrs):
    """`(plan, lrs)`: as planned, or, for a model whose paired calibration carries a
    continuation prior once this fit has switched, the plan in effect: the prior was fitted
    on decisions from runs that followed their own schedule, and decides once (a fit that
    has switched is in a state none of its groups was in). Plans are still made and logged.
    The switches are the callback's own record (kept in its state file across a resume)."""
    paired = (getattr(callback.lode, "planner_defaults", None) or {}).get("paired") or {}
    earlier = sorted(m for m in getattr(callback, "switches", ()) if m < n)
    deciding = paired.get("prior") is not None and getattr(result, "rule", None) == "paired"
    if not deciding or not earlier or not result.switched:
        return result, lrs
    reason = (
        f"the continuation prior decided at log point {earlier[0]}; the plan made there "
        f"holds (the planner chose {result.chosen_name!r})"
    )
    return _kept(callback, n, result, reason)


def _read_rows(callback, history, n: int):
    """The rows a task-free model reads: those up to its reference and its window's."""
    from keras_lode.model.features import run_window

    K, H = callback.total_points, int(callback.lode.horizon)
    start = history[: int(np.ceil(K / H)) + 1]
    return np.concatenate([start, history[n - run_window(callback.lode, callback.window, K) :]])


def replan(callback, n: int):
    """Plans the LRs of log points n+1 .. K-1 from the callback's history.

    Returns:
        `(plan, lrs)`, or `(None, None)` after a `LODEWarning` naming why the replan was
        skipped (training goes on with the current plan).
    """
    from keras_lode.planning import derive_seed, plan

    K = callback.total_points
    # (A task-free model may plan before a window's worth of points: then it is shorter.)
    window = callback.history[max(0, n - callback.window + 1) : n + 1]
    relative = is_task_free(callback.lode)
    # A task-free model reads the whole run (its reference is at 1/horizon of training), but
    # only the start and its window must be finite.
    given = callback.history[: n + 1] if relative else window
    cause = _window_problem(_read_rows(callback, given, n) if relative else window)
    if cause is None:
        _check_once(callback, n)
        try:
            result = plan(
                callback.lode,
                given,
                position=n,
                total_points=K,
                current_plan=callback.tables.table[n + 1 :],
                seed=derive_seed(callback.seed, n),
                points_per_epoch=callback.points_per_epoch,
                **({"mode": callback.options.mode} if relative else {}),
                **_with_ceiling(callback),
            )
            lrs = np.asarray(result.lr, dtype=np.float64)
            if lrs.shape != (K - n - 1,):
                got = lrs.shape[0] if lrs.ndim else 0
                raise ValueError(f"plan returned {got} LRs, expected {K - n - 1}")
            if not np.all(np.isfinite(lrs) & (lrs > 0)):
                raise ValueError("plan returned a non-finite or non-positive LR")
            _check_prediction_once(callback, n, window, result)
            return _anchored(callback, n, *_committed(callback, n, result, lrs))
        except Exception as e:  # planning must never kill the user's fit
            cause = f"planning raised {type(e).__name__}: {e}"
    warn(
        f"LODECallback: replan at log point {n} skipped ({cause}); training continues "
        "on the current plan."
    )
    return None, None


def plot_replan(result, plot_dir, n: int, observed: np.ndarray) -> None:
    """Writes `plot_dir/plan_<n>.png`; a failure is logged, never raised into the fit."""
    try:
        from keras_lode.planning.plot import plot_plan

        plot_dir.mkdir(parents=True, exist_ok=True)
        plot_plan(result, plot_dir / f"plan_{n:05d}.png", observed=observed)
    except Exception as e:  # a figure is optional; training is not
        logger.warning("LODECallback could not plot the plan at point %d: %s", n, e)


def observed_run(callback, meta=None):
    """The callback's observed log points as a `keras_lode.Run` (those seen so far)."""
    from keras_lode.runs import Run

    history = callback.history
    seen = np.flatnonzero(np.isfinite(history[:, 1]))
    loss = history[seen, 0]
    info = {"schedule": "lode", "seed": callback.seed, "metric_name": callback.metric_name}
    info.update(meta or {})
    info.update(
        {
            "steps_per_epoch": callback.steps_per_epoch,
            "points_per_epoch": callback.points_per_epoch,
            "epochs": callback.epochs,
            "total_steps": callback.steps_per_epoch * callback.epochs,
            "status": "complete" if np.all(np.isfinite(loss)) else "diverged",
        }
    )
    return Run(
        callback.point_steps()[seen],
        (seen + 1) / callback.points_per_epoch,
        np.exp(history[seen, 1]),
        loss,
        history[seen, 2],
        meta=info,
    )
