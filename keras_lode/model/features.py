"""Task-free input features: what a run's channels mean on every task.

A model trained on one task's runs reads raw channels (`[loss, ln lr, metric]`): its loss
scale, LR scale and metric scale are that task's. A model meant for tasks it never saw
reads the same channels *relative to the run itself* (`channels.features == "relative"` in
its file):

* time is the fraction of training: every run is resampled to the model's `horizon`
  points (point `g` sits at fraction `(g + 1) / horizon`, as run point `j` of a `K`-point
  run sits at `(j + 1) / K`);
* the LR is relative to the run's LR at its reference point (below): `ln(lr / lr_0)` (a
  constant run is 0 throughout; a decay reads the same at 1e-3 with AdamW as at 0.1 with
  SGD);
* the training loss is relative to the loss there: `loss / loss_0`;
* the metric is its *improvement* since then, in the metric's good
  direction: `m - m_0` for a maximized metric (accuracy, in [0, 1]: points of it), and
  `-ln(m / m_0)` for a minimized one (validation loss, perplexity, bits per character are
  positive and shrink by factors), so a model of improvements serves both directions and
  its predicted *gain* of a decision is a change of that improvement.

The reference is the run's state at fraction `1 / horizon` of training (the model's first
point, interpolated between log points): every run has it before any planner acts, and the
same fit gives the same reference however densely it is logged.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from keras_lode._checks import check_int, check_position

__all__ = [
    "FEATURES",
    "ModelGrid",
    "Reference",
    "is_task_free",
    "model_grid",
    "relative_run",
    "resample_rows",
    "run_window",
]

#: How a model reads a run: `"absolute"` (raw channels of its own task, the default of
#: files without `channels.features`) or `"relative"` (task-free, this module).
FEATURES = ("absolute", "relative")


def is_task_free(model) -> bool:
    """Whether `model` reads runs in relative features (`model.features == "relative"`);
    objects without `features` read raw channels."""
    return getattr(model, "features", "absolute") == "relative"


def _history(rows) -> np.ndarray:
    """A run's raw `[loss, ln lr, metric]` rows from its first log point, checked."""
    rows = np.asarray(rows, dtype=np.float64)
    if rows.ndim != 2 or rows.shape[1] != 3 or rows.shape[0] == 0:
        raise ValueError(
            "The run's history must have shape (n + 1, 3) from its first log point. "
            f"Received shape {rows.shape}."
        )
    return rows


@dataclasses.dataclass(frozen=True)
class Reference:
    """A run's own scale: its loss, ln LR and metric at the reference point, and the direction.

    Attributes:
        loss: the training loss at the reference point (> 0).
        log_lr: ln of the LR there.
        metric: the validation metric there (> 0 for `mode="min"`).
        mode: `"max"` or `"min"`, the direction in which the metric improves.
    """

    loss: float
    log_lr: float
    metric: float
    mode: str = "max"

    def __post_init__(self):
        if self.mode not in ("max", "min"):
            raise ValueError(f"Argument `mode` must be 'max' or 'min'. Received: {self.mode!r}")
        values = (self.loss, self.log_lr, self.metric)
        if not all(math.isfinite(v) for v in values):
            raise ValueError(
                "The run's reference point must have a finite loss, LR and metric to serve as "
                f"the reference of task-free features. Received: {values}"
            )
        if self.loss <= 0:
            raise ValueError(
                f"Task-free features need a positive training loss; the first is {self.loss}"
            )
        if self.mode == "min" and self.metric <= 0:
            raise ValueError(
                "Task-free features read a minimized metric as a ratio, so it must be > 0; "
                f"the first is {self.metric}"
            )

    @classmethod
    def at_fraction(cls, rows, total_points: int, horizon: int, mode: str = "max") -> Reference:
        """The reference of a `total_points`-point run from its rows `0 .. n`: its state at
        fraction `1 / horizon` of training (a task-free model's first point), linear between
        log points, so the same fit gives the same reference however densely it is logged."""
        rows = _history(rows)
        x = (np.arange(rows.shape[0]) + 1.0) / int(total_points)
        at = 1.0 / int(horizon)
        if at > x[-1] + 1e-12:
            raise ValueError(
                f"The run has not reached fraction 1/{horizon} of training, the reference of "
                "task-free features"
            )
        first = [float(np.interp(at, x, rows[:, c])) for c in range(3)]
        return cls(*first, mode)

    @classmethod
    def from_rows(cls, rows, mode: str = "max") -> Reference:
        """The reference of a run whose raw `[loss, ln lr, metric]` rows start at point 0."""
        rows = _history(rows)
        loss, log_lr, metric = (float(v) for v in rows[0])
        return cls(loss, log_lr, metric, mode)

    def to_features(self, rows) -> np.ndarray:
        """Raw `[loss, ln lr, metric]` rows -> relative `[loss, ln lr, improvement]` rows."""
        y = np.array(rows, dtype=np.float64)
        y[..., 0] = y[..., 0] / self.loss
        y[..., 1] = y[..., 1] - self.log_lr
        y[..., 2] = self.improvement(y[..., 2])
        return y

    def improvement(self, metric):
        """The metric's improvement since the reference point (see the module docstring)."""
        m = np.asarray(metric, dtype=np.float64)
        if self.mode == "max":
            return m - self.metric
        with np.errstate(divide="ignore", invalid="ignore"):
            return -np.log(m / self.metric)

    def metric_from(self, improvement):
        """The inverse of `improvement`: the raw metric."""
        f = np.asarray(improvement, dtype=np.float64)
        if self.mode == "max":
            return self.metric + f
        return self.metric * np.exp(-f)

    def predictions_from(self, pred) -> np.ndarray:
        """Predicted relative `[loss, improvement]` (last axis) -> raw `[loss, metric]`."""
        p = np.array(pred, dtype=np.float64)
        p[..., 0] = p[..., 0] * self.loss
        p[..., 1] = self.metric_from(p[..., 1])
        return p


def resample_rows(rows, horizon: int) -> np.ndarray:
    """A `(K, C)` run's rows on `horizon` points evenly spaced in the fraction of training.

    Run point `j` of `K` sits at fraction `(j + 1) / K`, output point `g` at
    `(g + 1) / horizon`; values are linear in between (channels as given: pass ln LR, not
    the LR) and held flat before the first point. The last point is the run's last.
    """
    horizon = check_int("horizon", horizon, minimum=2)
    y = np.asarray(rows, dtype=np.float64)
    K = y.shape[0]
    x_run = (np.arange(K) + 1.0) / K
    x_out = (np.arange(horizon) + 1.0) / horizon
    return np.stack([np.interp(x_out, x_run, y[:, c]) for c in range(y.shape[1])], axis=1)


def _planned_points(run) -> int | None:
    """K the run was planned for (`meta["epochs"]` x P), or None when the meta has none."""
    epochs, P = run.meta.get("epochs"), run.meta.get("points_per_epoch")
    try:
        return int(epochs) * int(P) if epochs and P else None
    except (TypeError, ValueError):
        return None


def relative_run(run, horizon: int = 50, mode: str | None = None):
    """A `keras_lode.Run` with task-free channels on `horizon` points (a model's training run).

    Args:
        run: a `keras_lode.Run` with finite values at its first log point.
        horizon: log points of the result (one "epoch" of `horizon` points: the whole run).
        mode: the metric's direction; default the run's `meta["mode"]` (else `"max"`).

    Returns:
        A `Run` whose `lr` is `lr / lr_0`, `loss` is `loss / loss_0` and `metric` the
        improvement (module docstring), with `meta` of the original plus `features`,
        `source_points` (its K) and `source_mode`; its `mode` is `"max"`.

    Raises:
        ValueError: the run's first point is not a usable reference, or it stopped before
            the log points its meta plans (`epochs` x `points_per_epoch`).
    """
    from keras_lode.runs.run import Run

    mode = mode or run.meta.get("mode") or "max"
    with np.errstate(divide="ignore", invalid="ignore"):
        y = np.asarray(run.channels(), dtype=np.float64)
    if "partial_last_point" in (getattr(run, "flags", None) or ()):
        y = y[:-1]
    planned = _planned_points(run)
    if planned is not None and y.shape[0] < planned:
        raise ValueError(
            f"Run {getattr(run, 'run_id', '?')!r} stopped at log point {y.shape[0]} of its "
            f"planned {planned}: its fraction of training is unknown"
        )
    y = resample_rows(y, horizon)
    ref = Reference.from_rows(y, mode)  # its state at fraction 1 / horizon
    f = ref.to_features(y)
    g = np.arange(1, horizon + 1)
    meta = {
        **run.meta,
        "features": "relative",
        "source_points": int(len(run.lr)),
        "source_mode": mode,
        "mode": "max",
        "points_per_epoch": int(horizon),
    }
    lr = np.exp(f[:, 1])
    return Run(step=g, epoch=g / horizon, lr=lr, loss=f[:, 0], metric=f[:, 2], meta=meta)


@dataclasses.dataclass
class ModelGrid:
    """A run's planning problem on a task-free model's grid (`model_grid`).

    Attributes:
        reference: the run's `Reference` (its state at 1/horizon and metric direction).
        position: `g`, the last model point the run has reached.
        window: (W, 3) relative features at model points `g - W + 1 .. g`.
        paths: (C, H - 1 - g) relative LRs of the given paths at model points `g + 1 ..`.
        run_fractions, model_fractions: the fraction of training of every run / model point.
    """

    reference: Reference
    position: int
    window: np.ndarray
    paths: np.ndarray
    run_fractions: np.ndarray
    model_fractions: np.ndarray


def model_grid(model, history, *, position: int, total_points: int, paths, mode="max"):
    """The run's history and LR paths on the model's grid, in relative features.

    Args:
        model: a task-free model (`horizon`, `window`).
        history: `(position + 1, 3)` raw rows of the run's points `0 .. position`.
        position, total_points: the run's `n` and `K`.
        paths: (C, K - 1 - n) LRs of continuations for run points `n + 1 .. K - 1`; None
            holds the current LR.
        mode: the run's metric direction.

    Returns:
        A `ModelGrid`.

    Raises:
        ValueError: a history of the wrong shape, an unusable first point, or a point too
            early (or late) for the model's window.
    """
    n, K = check_position(position, total_points)
    rows = np.asarray(history, dtype=np.float64)
    if rows.ndim != 2 or rows.shape != (n + 1, 3):
        raise ValueError(
            "A task-free model plans from the run's whole history: `history` must have shape "
            f"(position + 1, 3) = ({n + 1}, 3), the rows of log points 0..{n}. "
            f"Received shape {rows.shape}."
        )
    H, W = int(model.horizon), int(model.window)
    ref = Reference.at_fraction(rows, K, H, mode)
    g = int(np.floor((n + 1) * H / K + 1e-9)) - 1  # last model point the run has reached
    if g - W + 1 < 0 or g >= H - 1:
        first = int(np.ceil(W * K / H)) - 1
        raise ValueError(
            f"This task-free model reads {W} of its {H} points ({W / H:.0%} of training) "
            f"and must have one left to plan: at log point {n} of {K} the run is too "
            f"{'early' if g < H - 1 else 'late'} (plan from point {first} to {K - 2})"
        )
    run_frac = (np.arange(K) + 1.0) / K
    model_frac = (np.arange(H) + 1.0) / H
    window = np.stack(
        [np.interp(model_frac[g - W + 1 : g + 1], run_frac[: n + 1], rows[:, c]) for c in range(3)],
        axis=1,
    )
    if paths is None:
        paths = np.full((1, K - 1 - n), np.exp(rows[n, 1]))
    paths = np.atleast_2d(np.asarray(paths, dtype=np.float64))
    if paths.shape[1] != K - 1 - n:
        raise ValueError(
            f"Argument `paths` must have {K - 1 - n} LRs per path (points {n + 1}..{K - 1}). "
            f"Received shape {paths.shape}."
        )
    # Each path's ln LR over all K run points (observed, then the path), on the model grid.
    ln = np.concatenate([np.broadcast_to(rows[:, 1], (len(paths), n + 1)), np.log(paths)], 1)
    on_grid = np.stack([np.interp(model_frac[g + 1 :], run_frac, row) for row in ln])
    return ModelGrid(ref, g, ref.to_features(window), np.exp(on_grid - ref.log_lr),
                     run_frac, model_frac)  # fmt: skip


def run_window(model, window: int, total_points: int) -> int:
    """The run's log points a model's window spans: `window` itself, or for a task-free model
    (whose window is on its own grid of `horizon` points) `ceil(window * K / horizon)`."""
    if not is_task_free(model):
        return window
    return max(2, math.ceil(window * total_points / int(model.horizon) - 1e-9))
