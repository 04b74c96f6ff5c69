"""Synthetic training runs from a known dynamical model of training (NumPy only).

The runs stand in for a real sweep in tests, demos and benchmarks: they have the
shape of `keras_lode.Run` (log points of loss, learning rate and metric, plus the
run metadata) and come from a small model of training in which the loss responds
to the learning rate in a way that neither a constant nor the mean curve of a
schedule family can capture:

- *Progress* grows with the LR: the distance to the optimum after log point `n` is
  `d_n = (1 + c * S_n) ** -gamma` with `S_n = (1/K) * sum_{m<=n} x_m ** a` and
  `x = lr / lr_ref`, so a run at a higher LR (or a schedule that keeps the LR high
  for longer) gets further.
- The *noise floor* grows with the LR too: the loss carries an extra
  `b * sqrt(e_n)` where `e_n` follows `x_n` with a short lag. Annealing the LR
  therefore produces the familiar drop of the loss, and the size of the drop
  depends on the peak LR.
- The metric (an accuracy in [0, 1]) follows the noise-free loss.
- Above `diverge_lr` the run blows up: the loss grows geometrically, becomes
  `inf`, and the run is marked `diverged` with the `nonfinite_loss` flag, the way
  a recorder would keep a diverged run.

Time is measured in fractions of training, so the same family and peak LR give
the same curve shape whatever the number of log points.

Example:

```python
from keras_lode.runs.synthetic import synthetic_runs

runs = synthetic_runs(n_runs=20, points=100, points_per_epoch=10, seed=0)
runs[0].meta["schedule"], runs[0].channels().shape   # ('cosine', (100, 3))
```
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from keras_lode._checks import check_int
from keras_lode.constants import FAMILIES, PAPER_FAMILIES

DEFAULT_PEAK_LRS = (1e-3, 2.4e-3, 5.6e-3, 1.3e-2, 3.2e-2)
"""Five log-spaced peak LRs, as in the paper's sweeps."""

# Parameters of the dynamical model; chosen so that the five default peak LRs give
# visibly different curves and none of them diverges.
_LR_REF = 1e-2  # LR at which progress runs at rate `_C`
_C = 8.0  # progress per unit of (x ** a) per whole run
_A = 0.7  # progress exponent on the LR
_GAMMA = 0.8  # power law of the distance to the optimum
_L_INF = 0.25  # loss at the optimum
_AMP = 2.0  # loss gap at initialization
_B = 0.25  # noise-floor amplitude: loss += _B * sqrt(lr_eff / lr_ref)
_LAG = 0.02  # lag of the noise floor behind the LR, as a fraction of the run
_ACC_MAX = 0.95
_ACC_SLOPE = 0.38  # metric = _ACC_MAX - _ACC_SLOPE * (noise-free loss - _L_INF)
_LOSS_NOISE = 0.01
_METRIC_NOISE = 0.003


def schedule_lr(family: str, peak_lr: float, points: int) -> np.ndarray:
    """The LR in effect at each log point for one schedule family.

    Args:
        family: one of `FAMILIES`: `"cosine"` (cosine decay to 1% of the peak),
            `"onecycle"` (linear warm-up from peak/25 over the first 30%, then
            cosine decay to peak/1000), `"constant"`, `"step"` (step decay: x0.1 at 50%
            and again at 75% of training), `"linear"` (linear decay to peak/1000),
            `"wsd"` (the peak for 80% of training, then linear decay to peak/1000).
        peak_lr: the peak learning rate, > 0.
        points: number of log points K, >= 2.

    Returns:
        float64 array of shape (points,), all values > 0.

    Raises:
        ValueError: for an unknown family, a non-positive LR or fewer than 2 points.
    """
    if family not in FAMILIES:
        raise ValueError(
            f"Argument `family` must be one of {FAMILIES}. Received: family={family!r}"
        )
    if not (isinstance(peak_lr, int | float) and math.isfinite(peak_lr) and peak_lr > 0):
        raise ValueError(
            f"Argument `peak_lr` must be a finite number > 0. Received: peak_lr={peak_lr!r}"
        )
    if int(points) != points or points < 2:
        raise ValueError(f"Argument `points` must be an integer >= 2. Received: points={points!r}")
    # Fraction of training at the middle of each log interval.
    f = (np.arange(points) + 0.5) / points
    if family == "cosine":
        shape = 0.01 + 0.99 * 0.5 * (1.0 + np.cos(np.pi * f))
    elif family == "onecycle":
        warm = 0.3
        up = 1 / 25 + (1 - 1 / 25) * f / warm
        g = np.clip((f - warm) / (1 - warm), 0.0, 1.0)
        down = 1e-3 + (1 - 1e-3) * 0.5 * (1.0 + np.cos(np.pi * g))
        shape = np.where(f < warm, up, down)
    elif family == "constant":
        shape = np.ones(points)
    elif family == "linear":
        shape = 1.0 + (1e-3 - 1.0) * f
    elif family == "wsd":
        shape = np.where(f < 0.8, 1.0, 1.0 + (1e-3 - 1.0) * (f - 0.8) / 0.2)
    else:  # step
        shape = np.where(f < 0.5, 1.0, np.where(f < 0.75, 0.1, 0.01))
    return float(peak_lr) * shape


def simulate(
    lr: np.ndarray, *, seed: int = 0, diverge_lr: float = 0.3
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Run the dynamical model of training under a given LR per log point.

    Args:
        lr: LR in effect at each log point, shape (K,), all > 0.
        seed: seed of the measurement noise and of the small per-run variation of
            the progress rate (a different seed is a different initialization).
        diverge_lr: LR above which the run blows up.

    Returns:
        `(loss, metric, diverged)`: float64 arrays of shape (K,) and a bool. After
        divergence the loss is `inf` and the metric is at chance (0.1).
    """
    lr = np.asarray(lr, dtype=np.float64)
    if lr.ndim != 1 or lr.size < 2 or not np.all(np.isfinite(lr)) or np.any(lr <= 0):
        raise ValueError(
            "Argument `lr` must be a 1-D array of >= 2 finite values > 0. "
            f"Received: shape={lr.shape}, min={np.min(lr) if lr.size else None}"
        )
    k = lr.size
    rng = np.random.default_rng(seed)
    rate = _C * math.exp(0.05 * rng.standard_normal())  # per-seed variation of ~5%
    x = lr / _LR_REF
    progress = rate * np.cumsum(x**_A) / k
    dist = (1.0 + progress) ** -_GAMMA
    # The noise floor follows the LR with a first-order lag of _LAG of the run.
    keep = math.exp(-1.0 / max(_LAG * k, 1e-9))
    eff = np.empty(k)
    e = x[0]
    for n in range(k):
        e = keep * e + (1 - keep) * x[n]
        eff[n] = e
    clean = _L_INF + _AMP * dist + _B * np.sqrt(eff)
    # Divergence: above diverge_lr the loss grows geometrically (by 1.5x per log point
    # per unit of excess LR ratio) and becomes inf once it passes 1e6.
    excess = np.maximum(lr / diverge_lr - 1.0, 0.0)
    blow = np.cumsum(excess) * 8.0
    clean = clean * np.exp(blow)
    exploded = clean > 1e6
    diverged = bool(np.any(exploded))
    if diverged:
        first = int(np.argmax(exploded))
        exploded[first:] = True
    loss = clean * np.exp(_LOSS_NOISE * rng.standard_normal(k))
    metric = _ACC_MAX - _ACC_SLOPE * (np.minimum(clean, 10.0) - _L_INF)
    metric = metric + _METRIC_NOISE * rng.standard_normal(k)
    metric = np.clip(metric, 0.1, 1.0)
    loss[exploded] = np.inf
    metric[exploded] = 0.1
    return loss, metric, diverged


def synthetic_run(
    family: str,
    peak_lr: float,
    *,
    seed: int = 0,
    points: int = 600,
    points_per_epoch: int = 10,
    steps_per_point: int = 50,
    diverge_lr: float = 0.3,
):
    """One synthetic run as a `keras_lode.Run`.

    Args:
        family: schedule family, one of `FAMILIES`.
        peak_lr: peak LR of the schedule.
        seed: run seed (noise and per-run variation).
        points: number of log points K.
        points_per_epoch: log points per epoch P; `points` must be a multiple.
        steps_per_point: optimizer steps between two log points.
        diverge_lr: LR above which the run diverges.

    Returns:
        A `keras_lode.Run` with `meta["task"] == "synthetic"`.
    """
    _check_points(points, points_per_epoch, steps_per_point)
    lr = schedule_lr(family, peak_lr, points)
    return _run(lr, family, peak_lr, seed, points_per_epoch, steps_per_point, diverge_lr, {})


def synthetic_switched_run(
    family: str,
    peak_lr: float,
    to_family: str,
    to_peak_lr: float,
    at_point: int,
    *,
    seed: int = 0,
    points: int = 600,
    points_per_epoch: int = 10,
    steps_per_point: int = 50,
    diverge_lr: float = 0.3,
):
    """A run that follows one schedule up to `at_point`, then another from there on.

    The synthetic twin of a switched sweep run: the same seed as the run of
    `(family, peak_lr)`, so everything up to and including `at_point` is identical to it,
    then the LR of `(to_family, to_peak_lr)` as that schedule would go on at the same
    point of training. `meta["switch"]` records the base run, the point and the target;
    `meta["schedule"]` and `meta["peak_lr"]` stay those of the base run.

    Raises:
        ValueError: `at_point` outside `[1, points - 2]`, or bad schedule arguments.
    """
    from keras_lode.runs.run import run_name

    check_int("at_point", at_point, minimum=1)
    if at_point > points - 2:
        raise ValueError(
            f"Argument `at_point` must be <= points - 2 = {points - 2}. Received: {at_point}"
        )
    _check_points(points, points_per_epoch, steps_per_point)
    lr = schedule_lr(family, peak_lr, points).copy()
    lr[at_point + 1 :] = schedule_lr(to_family, to_peak_lr, points)[at_point + 1 :]
    base = run_name(family, peak_lr, seed)
    switch = {
        "base": base,
        "at_point": int(at_point),
        "to_schedule": to_family,
        "to_peak_lr": float(to_peak_lr),
    }
    extra = {"switch": switch, "run_id": f"{base}-to-{to_family}-lr{to_peak_lr:.4g}-at{at_point}"}
    return _run(lr, family, peak_lr, seed, points_per_epoch, steps_per_point, diverge_lr, extra)


def synthetic_switched_runs(trials, *, points: int = 600, points_per_epoch: int = 10) -> list:
    """The synthetic twin of each switched trial (`keras_lode.experiments.make_switched_trials`).

    Args:
        trials: objects with `family`, `peak_lr`, `seed` and `switch` (`to_family`,
            `to_peak_lr`, `at_point`), as `Trial` has.
        points, points_per_epoch: the runs' K and P.
    """
    return [
        synthetic_switched_run(
            t.family,
            t.peak_lr,
            t.switch.to_family,
            t.switch.to_peak_lr,
            t.switch.at_point,
            seed=t.seed,
            points=points,
            points_per_epoch=points_per_epoch,
        )
        for t in trials
    ]


def _check_points(points, points_per_epoch, steps_per_point):
    check_int("points", points, minimum=2)
    check_int("points_per_epoch", points_per_epoch, minimum=1)
    check_int("steps_per_point", steps_per_point, minimum=1)
    if points % points_per_epoch:
        raise ValueError(
            "Argument `points` must be a multiple of `points_per_epoch`. "
            f"Received: points={points}, points_per_epoch={points_per_epoch}"
        )


def _run(lr, family, peak_lr, seed, points_per_epoch, steps_per_point, diverge_lr, extra):
    from keras_lode.runs import Run

    points = lr.size
    loss, metric, diverged = simulate(lr, seed=seed, diverge_lr=diverge_lr)
    steps_per_epoch = steps_per_point * points_per_epoch
    step = (np.arange(points, dtype=np.int64) + 1) * steps_per_point
    meta = {
        "task": "synthetic",
        "model": "synthetic-dynamics",
        "optimizer": "sgd",
        "schedule": family,
        "schedule_args": {"peak_lr": float(peak_lr)},
        "peak_lr": float(peak_lr),
        "seed": int(seed),
        "steps_per_epoch": int(steps_per_epoch),
        "points_per_epoch": int(points_per_epoch),
        "total_steps": int(step[-1]),
        "epochs": points // points_per_epoch,
        "status": "diverged" if diverged else "complete",
        "test_metric": float(metric[-1]),
        "metric_name": "accuracy",
        "flags": ["nonfinite_loss"] if diverged else [],
        **extra,
    }
    return Run(step=step, epoch=step / steps_per_epoch, lr=lr, loss=loss, metric=metric, meta=meta)


def synthetic_runs(
    n_runs: int = 100,
    *,
    points: int = 600,
    points_per_epoch: int = 10,
    seed: int = 0,
    families: tuple[str, ...] = PAPER_FAMILIES,
    peak_lrs: tuple[float, ...] = DEFAULT_PEAK_LRS,
    steps_per_point: int = 50,
    diverge_lr: float = 0.3,
) -> list:
    """A synthetic sweep: schedule families x peak LRs x seeds.

    Runs are generated seed by seed, each seed covering every (family, peak LR)
    pair, until `n_runs` runs exist; 100 runs with the defaults is the paper's
    sweep (4 families x 5 peak LRs x 5 seeds).

    Args:
        n_runs: number of runs, >= 1.
        points: log points per run K.
        points_per_epoch: log points per epoch P.
        seed: first run seed; run seeds are `seed, seed + 1, ...`.
        families: schedule families to cycle through (default: the paper's four).
        peak_lrs: peak LRs to cycle through.
        steps_per_point: optimizer steps between log points.
        diverge_lr: LR above which a run diverges (default: above every default peak).

    Returns:
        List of `keras_lode.Run`.
    """
    check_int("n_runs", n_runs, minimum=1)
    if not families or not peak_lrs:
        raise ValueError(
            "Arguments `families` and `peak_lrs` must be non-empty. "
            f"Received: families={families!r}, peak_lrs={peak_lrs!r}"
        )
    # itertools.product would exhaust the infinite seed counter: nest by hand.
    grid = (
        (s, family, lr)
        for s in itertools.count(int(seed))
        for family in families
        for lr in peak_lrs
    )
    return [
        synthetic_run(
            family,
            lr,
            seed=s,
            points=points,
            points_per_epoch=points_per_epoch,
            steps_per_point=steps_per_point,
            diverge_lr=diverge_lr,
        )
        for s, family, lr in itertools.islice(grid, n_runs)
    ]
