"""Is this run one the model can plan? Checks a run's channels against the model's training runs.

A model only knows the runs it was trained on. `implausible(model, channels)` compares a run's
`[loss, ln lr, metric]` with what the model's training runs looked like (the normalization and
LR range stored in the model file) and returns what looks wrong, in words:

* learning rates outside the training runs' LR range by more than `lr_factor` (default 10x);
* a loss or metric whose median lies more than `z_max` (default 8) training standard
  deviations from the training runs' mean: another task, another metric, another scale;
* two channels that look swapped: exchanging them would bring the run close to the training
  runs' values while as given it is far from them (e.g. `lr` and `loss` columns exchanged
  under a correct header);
* a run recorded on another task than the model's (from the run's and the model's metadata).

`warn_implausible` issues these as one warning that names the run. The planner itself still
plans (its output stays inside the model's LR range); the warning is there so that a wrong
file or a wrong model does not go unnoticed.
"""

from __future__ import annotations

import math

import numpy as np

from keras_lode._warnings import warn as _warn
from keras_lode.constants import CHANNELS
from keras_lode.model.features import Reference, is_task_free

__all__ = ["implausible", "prediction_miss", "warn_implausible"]

_NAMES = ("loss", "lr", "metric")


def _stats(model):
    cfg = getattr(model, "config", None) or {}
    ch = cfg.get("channels", {})
    mean, std = ch.get("mean"), ch.get("std")
    if mean is None or std is None or len(mean) != 3:
        return None, None
    return np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)


def implausible(
    model, channels, *, task=None, lr_factor: float = 10.0, z_max: float = 8.0, mode="max"
) -> list[str]:
    """What looks wrong about a run for this model (an empty list when nothing does).

    Args:
        model: a loaded model (`LatentODE` or `ControlledODE`); objects without a config
            or LR range are checked only for what they have.
        channels: (T, 3) raw `[loss, ln lr, metric]` of the run (non-finite rows ignored).
        task: the run's task name, if known (compared with the model's `metadata.task`).
        lr_factor: how far outside the training LR range an LR may be.
        z_max: how many training standard deviations a channel's median may be off.
        mode: the run's metric direction; a task-free model (`model.features ==
            "relative"`) compares the run's relative features (`keras_lode.model.features`,
            from its first finite point) with its training runs' and has no task to match.
    """
    y = np.asarray(channels, dtype=np.float64)
    if y.ndim != 2 or y.shape[1] != 3:
        raise ValueError(f"Argument `channels` must have shape (T, 3). Received: {y.shape}")
    y = y[np.all(np.isfinite(y), axis=1)]
    problems = []
    if y.shape[0] == 0:
        return ["no finite log point to check"]
    if is_task_free(model):
        try:
            y = Reference.from_rows(y, mode).to_features(y)
        except ValueError as e:
            return [str(e)]
        y = y[np.all(np.isfinite(y), axis=1)]
        task = None  # a task-free model is for any task
    lr_range = getattr(model, "lr_range", None)
    if lr_range is not None:
        lo, hi = (float(v) for v in lr_range)
        lr = np.exp(y[:, 1])
        out = (lr < lo / lr_factor) | (lr > hi * lr_factor)
        if out.any():
            problems.append(
                f"channel 'lr': {int(out.sum())} of {len(lr)} LRs (from {lr.min():.3g} to "
                f"{lr.max():.3g}) lie more than {lr_factor:g}x outside the model's training "
                f"range [{lo:.3g}, {hi:.3g}]"
            )
    mean, std = _stats(model)
    if mean is not None:
        z = (np.median(y, axis=0) - mean) / std
        swapped = _swapped(y, mean, std, lr_range, lr_factor)
        if swapped is not None:
            i, j = swapped
            problems.append(
                f"channels '{_NAMES[i]}' and '{_NAMES[j]}' look swapped: exchanged, the run "
                "would look like the training runs, as given it does not"
            )
        for c in np.flatnonzero(np.abs(z) > z_max):
            if c == 1 and problems and problems[0].startswith("channel 'lr'"):
                continue  # already said
            problems.append(
                f"channel '{_NAMES[c]}' ({CHANNELS[c]}): median {np.median(y[:, c]):.4g} is "
                f"{z[c]:+.1f} training sd from the training runs' mean {mean[c]:.4g}"
            )
    model_task = (getattr(model, "config", None) or {}).get("metadata", {}).get("task")
    if task is not None and model_task is not None and str(task) != str(model_task):
        problems.append(f"the run's task {task!r} is not the model's task {model_task!r}")
    return problems


def prediction_miss(model, observed: float, predicted, *, z_max: float = 4.0) -> str | None:
    """The model's miss of the metric it can see, in words; None when it is close.

    A controlled model's prediction at the current point reconstructs the metric it was
    just shown. When the members' mean misses the observed value by more than `z_max`
    training standard deviations of the metric, the run is one the model cannot represent
    (another task, another metric), though its medians may pass `implausible`.

    Args:
        model: a loaded model with a config (`channels.std`).
        observed: the metric observed at the current point.
        predicted: the members' predictions of it.
    """
    _, std = _stats(model)
    predicted = np.asarray(predicted, dtype=np.float64)
    if std is None or not math.isfinite(observed) or not np.all(np.isfinite(predicted)):
        return None
    miss = abs(float(observed) - float(predicted.mean()))
    if miss <= z_max * std[2]:
        return None
    return (
        f"the model's prediction of the current validation metric ({predicted.mean():.4g}) "
        f"misses the observed {observed:.4g} by {miss / std[2]:.1f} training sd"
    )


def warn_implausible(model, channels, *, run_name: str, task=None, **kw):
    """Issues one `UserWarning` naming the run and every problem `implausible` finds.

    Returns:
        The list of problems (empty: no warning).
    """
    problems = implausible(model, channels, task=task, **kw)
    if problems:
        _warn(
            f"Run {run_name!r} does not look like the runs the model was trained on: "
            + "; ".join(problems)
            + ". Plans for it extrapolate; check the file's columns and the model."
        )
    return problems


def _oddness(y, mean, std, lr_range, lr_factor) -> float:
    """How unlike the training runs a run is: |z| of the medians plus the LR range excess."""
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.abs((np.median(y, axis=0) - mean) / std)
    score = float(np.sum(z))
    if lr_range is not None:
        lo, hi = (math.log(float(v)) for v in lr_range)
        ln = np.median(y[:, 1])
        score += max(lo - ln, ln - hi, 0.0) / math.log(lr_factor)
    return score if math.isfinite(score) else math.inf


def _swapped(y, mean, std, lr_range, lr_factor):
    """The pair of raw channels whose exchange makes the run look like the training runs."""
    base = _oddness(y, mean, std, lr_range, lr_factor)
    if base < 3.0:
        return None
    with np.errstate(divide="ignore", invalid="ignore"):
        raw = np.column_stack([y[:, 0], np.exp(y[:, 1]), y[:, 2]])  # loss, lr, metric
        best, pair = base, None
        for i, j in ((0, 1), (0, 2), (1, 2)):
            r = raw.copy()
            r[:, [i, j]] = r[:, [j, i]]
            if np.any(r[:, 1] <= 0):
                continue
            cand = np.column_stack([r[:, 0], np.log(r[:, 1]), r[:, 2]])
            score = _oddness(cand, mean, std, lr_range, lr_factor)
            if score < 0.3 * base and score < best:
                best, pair = score, (i, j)
    return pair
