"""Training data for the LODE: run validation, normalization, held-out split, windows.

NumPy only (no torch here), so the same checks serve the trainer, the evaluation
and the command line.

A training example is a *window*: a context of `W` consecutive log points cut from
a run (what the encoder reads) and the whole run as the target (what the decoded
trajectory is scored against). All windows of one mini-batch share their start,
because the encoder reads one time grid per batch.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from keras_lode._checks import check_int
from keras_lode.constants import CHANNELS

logger = logging.getLogger("keras_lode.train")


@dataclass
class RunSet:
    """Runs that passed validation, as one array.

    Attributes:
        runs: the accepted `keras_lode.Run` objects, in input order.
        y: float64 array (N, K, C) of raw channel values `[loss, log lr, metric]`.
        points_per_epoch: P shared by every run.
        horizon: K, the number of log points shared by every run.
        skipped: reason -> number of runs skipped for it.
    """

    runs: list
    y: np.ndarray
    points_per_epoch: int
    horizon: int
    skipped: dict = field(default_factory=dict)

    def skipped_message(self, total: int) -> str | None:
        """One line saying how many runs were skipped and why, or None."""
        if not self.skipped:
            return None
        n = sum(self.skipped.values())
        reasons = ", ".join(f"{v} {k}" for k, v in sorted(self.skipped.items()))
        return f"Skipped {n} of {total} runs: {reasons}."


def prepare_runs(runs, *, window: int) -> RunSet:
    """Check training runs and keep the usable ones.

    Runs with NaN/inf values in any channel (a diverged run, an unmeasured metric,
    an LR <= 0) and runs with fewer than `window` log points are skipped and
    counted; the count is logged and returned. Runs that disagree on the time unit
    (points per epoch P) or on the horizon (log points K) are an error: a model has
    one time unit and one horizon, and picking some of the runs silently would lose
    data.

    Args:
        runs: iterable of `keras_lode.Run` (anything with `channels()` and `meta`).
        window: context window W in log points, >= 2.

    Returns:
        A `RunSet`.

    Raises:
        TypeError: if `runs` is not a sequence of runs, or `window` not an int.
        ValueError: if no run is usable, or P or K differ between runs.
    """
    window = check_int("window", window, minimum=2)
    if isinstance(runs, str | bytes) or not hasattr(runs, "__iter__"):
        raise TypeError(
            "Argument `runs` must be a list of keras_lode.Run. "
            f"Received: runs of type {type(runs).__name__}"
        )
    runs = list(runs)
    if not runs:
        raise ValueError("Argument `runs` must contain at least one run. Received: runs=[]")
    arrays, kept, skipped = [], [], Counter()
    for i, run in enumerate(runs):
        if not (hasattr(run, "channels") and hasattr(run, "meta")):
            raise TypeError(
                "Argument `runs` must contain keras_lode.Run objects. "
                f"Received: runs[{i}] of type {type(run).__name__}"
            )
        with np.errstate(divide="ignore", invalid="ignore"):
            y = np.asarray(run.channels(), dtype=np.float64)
        if y.ndim != 2 or y.shape[1] != len(CHANNELS):
            raise ValueError(
                f"runs[{i}].channels() must have shape (K, {len(CHANNELS)}). Received: {y.shape}"
            )
        if "partial_last_point" in (getattr(run, "flags", None) or ()):
            y = y[:-1]  # an early stop's short last interval is not a log point
        if y.shape[0] < window:
            skipped[f"shorter than the window ({window} log points)"] += 1
            continue
        if not np.all(np.isfinite(y)):
            skipped["with NaN/inf values"] += 1
            continue
        arrays.append(y)
        kept.append(run)
    result_skipped = dict(skipped)
    if not kept:
        reasons = ", ".join(f"{v} {k}" for k, v in result_skipped.items())
        raise ValueError(f"No usable training run among {len(runs)}: {reasons}.")
    ps = Counter(_points_per_epoch(r) for r in kept)
    if len(ps) > 1:
        raise ValueError(
            "Training runs must share one time unit, but they mix points_per_epoch values "
            f"{_describe(ps)} (value: number of runs). Record or resample them with one P."
        )
    if None in ps:
        raise ValueError(
            f"{ps[None]} training run(s) have no points_per_epoch: set meta['points_per_epoch'] "
            "or record an epoch column it can be inferred from."
        )
    ks = Counter(a.shape[0] for a in arrays)
    if len(ks) > 1:
        raise ValueError(
            "Training runs must share one horizon, but they mix run lengths "
            f"{_describe(ks)} (log points: number of runs). Train one model per horizon, "
            "or drop the truncated runs."
        )
    rs = RunSet(
        runs=kept,
        y=np.stack(arrays),
        points_per_epoch=next(iter(ps)),
        horizon=next(iter(ks)),
        skipped=result_skipped,
    )
    message = rs.skipped_message(len(runs))
    if message:
        logger.warning(message)
    return rs


def _points_per_epoch(run) -> int | None:
    p = getattr(run, "points_per_epoch", None)
    if p is None:
        p = run.meta.get("points_per_epoch")
    return None if p is None else int(p)


def _describe(counter: Counter) -> str:
    return "{" + ", ".join(f"{k}: {v}" for k, v in sorted(counter.items(), key=str)) + "}"


def family_of(run) -> str:
    """Schedule family of a run (`meta["schedule"]`), `"unknown"` when missing."""
    return str(run.meta.get("schedule") or "unknown")


def split_runs(runs: list, *, val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Hold out whole runs for validation, stratified by schedule family.

    Every family keeps at least one run for training (so the family-mean
    predictor exists for every held-out run); at least one run is held out.

    Args:
        runs: the accepted runs.
        val_fraction: share of runs held out, in (0, 1).
        seed: seed of the shuffle.

    Returns:
        `(train_indices, val_indices)`, each sorted.

    Raises:
        ValueError: if there are fewer than 3 runs (2 to train on, since the latent
            spread is a batch statistic, and 1 to validate on).
    """
    if not (isinstance(val_fraction, int | float) and 0 < val_fraction < 1):
        raise ValueError(
            f"Argument `val_fraction` must be in (0, 1). Received: val_fraction={val_fraction!r}"
        )
    n = len(runs)
    if n < 3:
        raise ValueError(
            f"Need at least 3 usable runs for a held-out validation split (2 to train, 1 to "
            f"validate). Received: {n} usable run(s)."
        )
    rng = np.random.default_rng(seed)
    by_family: dict[str, list[int]] = {}
    for i, run in enumerate(runs):
        by_family.setdefault(family_of(run), []).append(i)
    val: list[int] = []
    spare: list[int] = []
    for fam in sorted(by_family):
        idx = list(rng.permutation(by_family[fam]))
        k = min(int(math.floor(val_fraction * len(idx) + 0.5)), len(idx) - 1)
        val += idx[:k]
        spare += idx[k : len(idx) - 1]  # could be held out without emptying the family
    if not val:
        # Every family has a single run, or the fraction rounds to zero.
        val = [spare[0]] if spare else [int(rng.integers(n))]
    train = sorted(set(range(n)) - set(val))
    if len(train) < 2:
        raise ValueError(
            f"Need at least 2 training runs after holding out {len(val)} for validation. "
            f"Received: {n} usable runs with val_fraction={val_fraction}."
        )
    return train, sorted(int(i) for i in val)


def fit_normalization(y: np.ndarray, *, min_std: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std over every log point of the training runs.

    Args:
        y: (N, K, C) raw channel values.
        min_std: a channel with a smaller std (e.g. one constant LR for every run)
            gets std 1, so it is centered but not blown up.

    Returns:
        `(mean, std)`, float64 arrays of shape (C,).
    """
    flat = y.reshape(-1, y.shape[-1])
    mean = flat.mean(axis=0)
    std = flat.std(axis=0)
    std = np.where(std < min_std, 1.0, std)
    return mean, std


class WindowSampler:
    """Draws mini-batches of training windows from an (N, K, C) array of runs.

    Each batch has one start `s`, uniform on `[0, K - W]`, and `batch_size` runs
    drawn without replacement (with replacement when there are fewer runs).
    """

    def __init__(self, y: np.ndarray, *, window: int, seed: int):
        if y.ndim != 3 or y.shape[1] < window:
            raise ValueError(f"Expected runs of shape (N, K >= {window}, C). Received: {y.shape}")
        self.y = y
        self.window = int(window)
        self.rng = np.random.default_rng(seed)

    def sample(self, batch_size: int) -> tuple[int, np.ndarray, np.ndarray]:
        """One batch: `(start, context (B, W, C), target (B, K, C))`, raw units."""
        n, k, _ = self.y.shape
        start = int(self.rng.integers(0, k - self.window + 1))
        idx = self.rng.choice(n, size=batch_size, replace=batch_size > n)
        batch = self.y[idx]
        return start, batch[:, start : start + self.window], batch


def validation_starts(horizon: int, window: int, count: int = 5) -> list[int]:
    """Fixed window starts spread over the run, used to score held-out runs."""
    last = horizon - window
    return sorted({int(round(x)) for x in np.linspace(0, last, count)})


#: How members differ beyond their initialization (`ControlledFitConfig.resample`).
RESAMPLES = ("bootstrap", "none", "seeds")


def member_runs(train, seeds, resample: str, index: int, rng) -> np.ndarray:
    """The training-run indices member `index` sees.

    `"bootstrap"`: a resample of `train` with replacement; `"none"`: all of them (members
    differ only in initialization and batch order); `"seeds"`: all but the runs of one
    training seed (member i leaves out the i-th seed, cyclically), so that members disagree
    where the seeds do.
    """
    train = np.asarray(train)
    if resample == "bootstrap":
        return rng.choice(train, size=len(train), replace=True)
    if resample == "none":
        return train
    seeds = np.asarray(seeds, dtype=object)[train]
    known = sorted({s for s in seeds if s is not None})
    if len(known) < 2:
        return train
    keep = train[seeds != known[index % len(known)]]
    return keep if keep.size else train


def controlled_batch(y, idx, rng, batch_size, window, time_scale):
    """A controlled member's batch: (run, cut) pairs in local time, the encoder's
    window up to the cut and the run's actual LR path, loss and metric from it to the end
    (`keras_lode.train.ensemble`)."""
    n_runs, k, _ = y.shape
    runs = rng.choice(idx, size=batch_size, replace=True)
    cuts = rng.integers(window - 1, k - 1, size=batch_size)  # at least one future point
    length = k - int(cuts.min())
    j = np.arange(length)
    pts = np.minimum(cuts[:, None] + j[None, :], k - 1)  # hold the last value past the end
    fut = y[runs[:, None], pts]  # (B, L, 3)
    mask = (cuts[:, None] + j[None, :]) <= k - 1
    wpts = cuts[:, None] - window + 1 + np.arange(window)[None, :]
    return {
        "t_window": wpts.astype(np.float64),
        "window": y[runs[:, None], wpts],
        "knots": j * time_scale,
        "log_lr": fut[..., 1],
        "target": fut[..., [0, 2]],
        "mask": mask,
        "last": k - 1 - cuts,  # index of the run's final point in local time
        "offset": cuts * time_scale,
    }
