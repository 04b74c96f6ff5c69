"""Methods of a comparison: the ways of setting the learning rate during a run.

A *method* is one of:

- a parametric family at a peak LR: one of `keras_lode.constants.FAMILIES` (`cosine`,
  `onecycle`, `constant`, `step`, `linear`, `wsd`; `keras_lode.schedules.make_schedule`,
  the very curves a sweep records);
- `lode`: the LODE schedule (`keras_lode.LODECallback`) with a model file;
- `replay`: follow the LR curve of one recorded run (e.g. the best run of a sweep);
- `retrieval`: at every log point, follow the LR curve of the sweep run whose recent
  window of (loss, log LR, metric) is nearest to the current one;
- `plateau`: a constant LR with `keras.callbacks.ReduceLROnPlateau` (`plateau_callback`);
- `schedulefree`: `keras.optimizers.ScheduleFreeAdamW` (`schedule_free_optimizer`),
  evaluated at its averaged weights as its docs require.

The last two are the peers a user without a sweep reaches for (the `rescue` scenario).

`parse_methods` reads the `keras-lode compare --methods` list; `best_first` loads a
sweep's runs for `replay` / `retrieval`; `default_model` finds a task's shipped model.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np

from keras_lode.constants import FAMILIES

PEERS = ("plateau", "schedulefree")
METHOD_KINDS = FAMILIES + ("lode", "replay", "retrieval") + PEERS


@dataclasses.dataclass
class Method:
    """One way of setting the LR during a run.

    Args:
        kind: one of `METHOD_KINDS`.
        peak_lr: peak LR of a parametric family (and the warm-up peak for `lode`).
        model: path of the LODE model file (`kind="lode"`). For a parametric family it
            makes the method the *matched arm* of that LODE: the family's schedule is served
            through `LODECallback(model, planning=False)`, the very LR mechanism and
            measurements of the LODE, so a LODE that keeps this schedule trains exactly as
            this arm (a closed-form schedule computed in the compiled step differs from the
            table by float32 rounding on some steps, which training amplifies).
        runs: recorded runs (`keras_lode.Run`) for `replay` (the first one is followed) and
            `retrieval` (all of them are candidates).
        label: display name; defaults to e.g. `"cosine@3e-03"`.
        options: extra keyword arguments for `keras_lode.LODECallback` (`kind="lode"`) or
            `window` for `retrieval`.
    """

    kind: str
    peak_lr: float | None = None
    model: str | None = None
    runs: list | None = None
    label: str | None = None
    options: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if self.kind not in METHOD_KINDS:
            raise ValueError(
                f"Argument `kind` must be one of {METHOD_KINDS}. Received: kind={self.kind!r}"
            )
        if self.kind in FAMILIES or self.kind == "plateau":
            if self.peak_lr is None or not (math.isfinite(self.peak_lr) and self.peak_lr > 0):
                raise ValueError(
                    f"Method {self.kind!r} needs a finite `peak_lr` > 0. "
                    f"Received: peak_lr={self.peak_lr!r}"
                )
        if self.kind == "lode" and not self.model:
            raise ValueError("Method 'lode' needs `model`, the path of a LODE model file.")
        if self.kind in ("replay", "retrieval") and not self.runs:
            raise ValueError(f"Method {self.kind!r} needs `runs`, a non-empty list of Runs.")
        if self.label is None:
            named = self.kind in FAMILIES or (self.kind in PEERS and self.peak_lr is not None)
            self.label = f"{self.kind}@{self.peak_lr:.0e}" if named else self.kind


# ----------------------------------------------------------------------------- controllers


class TableController:
    """Follows an LR table given per fraction of training (replay)."""

    needs_measurement = False  # its LR depends on the step only

    def __init__(self, frac, lr):
        self.frac = np.asarray(frac, dtype=float)
        self.lr = np.asarray(lr, dtype=float)
        self.current_lr = float(self.lr[0])

    def lr_at(self, fraction):
        self.current_lr = float(np.interp(fraction, self.frac, self.lr))
        return self.current_lr

    def observe(self, points, step, total_steps):
        # The LR for the interval that starts now: the table's value at its midpoint ahead.
        return self.lr_at(min(step / total_steps, 1.0))


def run_table(run):
    """(fraction of training, lr) of a recorded run, dropping non-finite entries."""
    step = np.asarray(run.step, dtype=float)
    lr = np.asarray(run.lr, dtype=float)
    total = float(run.meta.get("total_steps") or (step[-1] if len(step) else 0))
    ok = np.isfinite(lr) & (lr > 0) & np.isfinite(step)
    if total <= 0 or ok.sum() == 0:
        raise ValueError(f"Run {getattr(run, 'run_id', '?')} has no usable LR curve.")
    return step[ok] / total, lr[ok]


class RetrievalController(TableController):
    """Nearest-neighbour retrieval: follow the sweep run whose recent window is closest.

    At each log point n >= window, the current window of standardized channels
    `[loss, log lr, metric]` over the last `window` points is compared with every sweep
    run's window at the same fraction of training; the LR table of the nearest run is
    followed until the next point. Before `window` points it follows the best run.
    """

    needs_measurement = True  # it reads the window of the point

    def __init__(self, runs, window=5):
        self.runs = list(runs)
        self.window = int(window)
        self.tables = [run_table(r) for r in self.runs]
        chans = [np.asarray(r.channels(), dtype=float) for r in self.runs]
        stacked = np.concatenate([c[np.all(np.isfinite(c), axis=1)] for c in chans])
        self.mean = stacked.mean(axis=0)
        self.std = np.where(stacked.std(axis=0) > 0, stacked.std(axis=0), 1.0)
        self.chans = chans
        self.choices = []
        super().__init__(*self.tables[0])

    def observe(self, points, step, total_steps):
        n = len(points["lr"])
        frac = min(step / total_steps, 1.0)
        if n >= self.window:
            cur = np.stack(
                [
                    np.asarray(points["loss"][-self.window :]),
                    np.log(np.asarray(points["lr"][-self.window :])),
                    np.asarray(points["metric"][-self.window :]),
                ],
                axis=1,
            )
            cur = (cur - self.mean) / self.std
            best, best_d = None, np.inf
            for i, (c, (fr, _)) in enumerate(zip(self.chans, self.tables, strict=True)):
                # align by fraction of training: the run's point nearest to `frac`
                j = int(np.argmin(np.abs(fr - frac))) if len(fr) == len(c) else None
                if j is None or j + 1 < self.window:
                    continue
                w = (c[j + 1 - self.window : j + 1] - self.mean) / self.std
                d = float(np.nanmean((w - cur) ** 2))
                if np.isfinite(d) and d < best_d:
                    best, best_d = i, d
            if best is not None:
                self.frac, self.lr = self.tables[best]
                self.choices.append(best)
        return self.lr_at(frac)


def lode_callback(method: Method, task, data, total_steps, seed, verbose):
    """A `LODECallback` for `method`, warm-started on a sweep family until its first plan.

    For a family method with a `model` (a matched arm) the callback follows the family's
    schedule and never plans.

    `method.options["warmup_family"]` (default `"constant"`) at `method.peak_lr` (default
    1e-3) is the schedule followed before the first plan: the LODE was trained on sweep runs,
    so a warm-up that looks like one gives its encoder an in-distribution window.

    The optimizer's LR is a `LODESchedule`, as the README recommends: the warm-up is then
    served exactly at every step, so a LODE that never leaves it trains exactly as the
    baseline it warmed up on (a float LR would hold each log point's LR for its interval).

    Returns:
        `(callback, schedule)`: the callback and the `LODESchedule` to compile with.
    """
    from keras_lode import LODECallback, LODESchedule
    from keras_lode.schedules import make_schedule

    if not Path(method.model).is_file():
        raise FileNotFoundError(
            f"LODE model file not found: {method.model!r}. Pass --model PATH or train one with "
            "`keras-lode train`."
        )
    options = dict(method.options)
    family = options.pop("warmup_family", "constant")
    warmup = options.pop("warmup", None)  # an LR table (a headroom candidate), else the family
    if method.kind in FAMILIES:  # the matched arm of a comparison: the family, planning off
        family, verbose = method.kind, 0
        options["planning"] = False
    peak = float(method.peak_lr or 1e-3)
    warmup = warmup if warmup is not None else make_schedule(family, peak, total_steps)
    # The run records the task's P log points per epoch; a model trained with another P
    # (or horizon) is mapped by fraction of training, with the callback's warning.
    options.setdefault("points_per_epoch", task.points_per_epoch)
    options.setdefault("task", task.name)  # the plausibility check names another task's run
    # The metric the task measures, in its direction (a model of the other one is refused).
    for key in ("metric", "mode"):
        if hasattr(task, key):
            options.setdefault(key, getattr(task, key))
    cb = LODECallback(
        method.model,
        validation_data=(data.x_val, data.y_val),
        warmup=warmup,
        seed=seed,
        verbose=verbose,
        **options,
    )
    return cb, LODESchedule(initial_learning_rate=peak)


# ----------------------------------------------------------------------------- peers


def plateau_callback(method: Method, task):
    """`keras.callbacks.ReduceLROnPlateau` as a user would set it for a run of `task.epochs`.

    It watches the validation metric the comparison measures at each epoch end
    (`val_accuracy`, mode max, for an accuracy task; else `val_metric` in the task's
    `mode`), cuts the LR by `factor` 0.2 (Keras suggests 0.1-0.5), waits `patience` epochs
    without improvement (0 for runs of up to 4 epochs, else 1: with a handful of epochs
    there is no room to wait) and stops at `peak_lr / 1000`. Options override any of these.
    """
    import keras

    accuracy = task.accuracy_metric
    args = {
        "monitor": "val_accuracy" if accuracy else "val_metric",
        "mode": "max" if accuracy else task.mode,
        "factor": 0.2,
        "patience": 0 if task.epochs <= 4 else 1,
        "min_lr": float(method.peak_lr) * 1e-3,
        "verbose": 0,
    }
    args.update(method.options)
    return keras.callbacks.ReduceLROnPlateau(**args)


def schedule_free_optimizer(method: Method, task, total_steps: int):
    """`keras.optimizers.ScheduleFreeAdamW` at its recommended settings.

    Refused on TensorFlow, where Keras' implementation does not follow its update rule
    (`benchmarks/schedule_free_check.py`: exact on JAX, 0.6% off after 50 steps on PyTorch).

    Learning rate `peak_lr` (default 0.0025, Keras' and the paper's AdamW default), a linear
    warm-up over 5% of the run (the paper warms up; Keras' default is none), and the task's
    AdamW weight decay (1e-2 if it has none). Options override any of these.
    """
    import keras

    if keras.backend.backend() == "tensorflow":
        raise ValueError(
            "Method 'schedulefree': keras.optimizers.ScheduleFreeAdamW does not follow its own "
            "update rule on the TensorFlow backend (Keras 3.15: its variable is off by 100% "
            "from the first step; benchmarks/schedule_free_check.py). Run this peer with "
            "KERAS_BACKEND=jax, where it does."
        )
    factory = getattr(task, "make_optimizer", None)
    decay = getattr(factory, "weight_decay", None)
    args = {
        "learning_rate": float(method.peak_lr or 0.0025),
        "warmup_steps": max(1, round(0.05 * total_steps)),
        "weight_decay": decay if decay is not None else 1e-2,
    }
    args.update(method.options)
    return keras.optimizers.ScheduleFreeAdamW(**args)


class AveragedWeights:
    """Evaluates a `ScheduleFreeAdamW` model at its averaged weights `x` (as its docs say).

    The model's variables hold the interpolation `y = (1 - beta_1) z + beta_1 x`, the optimizer
    keeps `z` (its `momentum` slots); `x = (y - (1 - beta_1) z) / beta_1`. Inside the context
    the trainable variables hold `x`, and `y` is restored on exit.
    """

    def __init__(self, model):
        self.model = model

    def __enter__(self):
        from keras import ops

        opt = self.model.optimizer
        opt = getattr(opt, "inner_optimizer", opt)  # a LossScaleOptimizer's own optimizer
        self.saved = []
        beta = float(opt.beta_1)
        for var in self.model.trainable_variables:
            z = opt._momentums[opt._get_variable_index(var)]
            y = ops.convert_to_numpy(var)
            self.saved.append((var, y))
            var.assign((y - (1 - beta) * ops.convert_to_numpy(z)) / beta)
        return self

    def __exit__(self, *exc):
        for var, y in self.saved:
            var.assign(y)
        return False


# ----------------------------------------------------------------------------- parsing


def parse_methods(
    text: str,
    model: str | None,
    runs_dir: str | None,
    lode_warmup: str = "constant",
    matched: bool = True,
) -> list[Method]:
    """Parses a `--methods` list (`lode[@LR],FAMILY@PEAK_LR,replay,retrieval`) into `Method`s.

    Args:
        text: the comma-separated list.
        model: LODE model file of the `lode` method.
        runs_dir: directory of sweep runs for `replay` / `retrieval` (see `best_first`).
        lode_warmup: the family the LODE follows until its first plan.
        matched: with a `lode` method in the list, serve every family through the LODE's
            own LR mechanism with planning off (matched arms, see `Method`).

    Raises:
        ValueError: an unknown method, a bad LR, a missing `runs_dir` or an empty list.
    """
    methods = []
    runs = None
    for item in [m.strip() for m in str(text).split(",") if m.strip()]:
        kind, _, lr = item.partition("@")
        if kind not in METHOD_KINDS:
            raise ValueError(
                f"Argument `--methods`: unknown method {kind!r} in {text!r}. "
                f"Expected some of {METHOD_KINDS}."
            )
        peak = None
        if lr:
            try:
                peak = float(lr)
            except ValueError as e:
                raise ValueError(
                    f"Argument `--methods`: {item!r} has a bad LR {lr!r}; expected e.g. "
                    "cosine@3e-3."
                ) from e
        if kind in ("replay", "retrieval"):
            if runs_dir is None:
                raise ValueError(f"Method {kind!r} needs `--runs DIR` (the sweep's runs).")
            if runs is None:
                runs = best_first(runs_dir)
            methods.append(Method(kind, runs=runs))
        elif kind == "lode":
            if lode_warmup not in FAMILIES:
                raise ValueError(
                    f"Argument `--lode-warmup` must be one of {FAMILIES}. Received: {lode_warmup!r}"
                )
            methods.append(
                Method("lode", peak_lr=peak, model=model, options={"warmup_family": lode_warmup})
            )
        else:
            methods.append(Method(kind, peak_lr=peak))
    if not methods:
        raise ValueError(f"Argument `--methods` is empty. Received: {text!r}")
    if matched and any(m.kind == "lode" for m in methods):
        for m in methods:
            if m.kind in FAMILIES:
                m.model = model
    return methods


def best_first(runs_dir: str):
    """Loads the complete runs of a sweep, best final validation metric first."""
    from keras_lode import load_runs

    runs = [r for r in load_runs(runs_dir) if r.status == "complete"]
    if not runs:
        raise ValueError(f"No complete runs in --runs {runs_dir!r}.")

    def score(r):
        m = [v for v in r.metric if math.isfinite(v)]
        return max(m) if m else -math.inf

    return sorted(runs, key=score, reverse=True)


def default_model(task: str) -> str | None:
    """Path of the task's shipped model: `models/` under the cwd or next to the package."""
    import keras_lode

    name = f"{task}.npz"
    for root in (Path.cwd(), Path(keras_lode.__file__).resolve().parent.parent):
        p = root / "models" / name
        if p.is_file():
            return str(p)
    return None
