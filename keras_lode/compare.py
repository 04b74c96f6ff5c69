"""Train one task with several LR schedules over seeds and compare them.

This is the engine behind `keras-lode compare`, `keras-lode demo`, the examples and
`benchmarks/quality.py`. A *method* is one way of setting the learning rate:

- a parametric family at a peak LR: `cosine`, `onecycle`, `step`, `constant`;
- `lode`: the LODE schedule (`keras_lode.LODECallback`) with a model file;
- `replay`: follow the LR curve of one recorded run (e.g. the best run of a sweep);
- `retrieval`: at every log point, follow the LR curve of the sweep run whose recent
  window of (loss, log LR, metric) is nearest to the current one.

Every run measures the validation metric and the test metric at the end of each epoch,
so results can be read at the epoch of best validation (the paper's rule) and at the end.

Example:

```python
from keras_lode import compare
from keras_lode.tasks import get_task

spec = get_task("fmnist_cnn", scale="quick")
result = compare.train_one(spec, compare.Method("cosine", peak_lr=3e-3), seed=0)
print(result["test_at_best_val"], result["test_at_end"])
```
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

FAMILIES = ("cosine", "onecycle", "step", "constant")
"""Parametric baseline families (the sweep's schedule families)."""

METHOD_KINDS = FAMILIES + ("lode", "replay", "retrieval")


@dataclasses.dataclass
class Method:
    """One way of setting the LR during a run.

    Args:
        kind: one of `METHOD_KINDS`.
        peak_lr: peak LR of a parametric family (and the warm-up peak for `lode`).
        model: path of the LODE model file (`kind="lode"`).
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
        if self.kind in FAMILIES:
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
            self.label = f"{self.kind}@{self.peak_lr:.0e}" if self.kind in FAMILIES else self.kind


# ----------------------------------------------------------------------------- schedules


def make_schedule(family: str, peak_lr: float, total_steps: int):
    """Returns the LR schedule of a parametric `family` peaking at `peak_lr` over `total_steps`.

    Uses `keras_lode.schedules.make_schedule`, the very curves a `keras-lode sweep` records,
    so that the baselines here match the sweep's families.

    Args:
        family: one of `FAMILIES`.
        peak_lr: maximum LR.
        total_steps: optimizer steps of the whole run.

    Returns:
        A `keras.optimizers.schedules.LearningRateSchedule`.
    """
    if family not in FAMILIES:
        raise ValueError(f"Argument `family` must be one of {FAMILIES}. Received: {family!r}")
    from keras_lode import schedules

    return schedules.make_schedule(family, float(peak_lr), int(total_steps))


# ----------------------------------------------------------------------------- metrics


def predict_accuracy(model, x, y, batch_size: int = 512) -> float:
    """Top-1 accuracy of `model` on `(x, y)` (per position for sequence outputs), via predict.

    `model.evaluate` inside `fit` would reset the training metrics (DESIGN.md 3.5), so the
    metric is computed from `predict_on_batch` in NumPy.
    """
    from keras import ops

    correct = 0
    total = 0
    for i in range(0, len(x), batch_size):
        p = ops.convert_to_numpy(model.predict_on_batch(x[i : i + batch_size]))
        yb = np.asarray(y[i : i + batch_size])
        correct += int(np.sum(np.argmax(p, axis=-1) == yb))
        total += yb.size
    return correct / max(total, 1)


def _t_quantile_975(df: int) -> float:
    # Two-sided 95% Student-t quantiles; a table keeps scipy out of the dependencies.
    table = {
        1: 12.706,
        2: 4.303,
        3: 3.182,
        4: 2.776,
        5: 2.571,
        6: 2.447,
        7: 2.365,
        8: 2.306,
        9: 2.262,
        10: 2.228,
        11: 2.201,
        12: 2.179,
        13: 2.160,
        14: 2.145,
        15: 2.131,
        16: 2.120,
        17: 2.110,
        18: 2.101,
        19: 2.093,
        20: 2.086,
        25: 2.060,
        30: 2.042,
        40: 2.021,
        60: 2.000,
        120: 1.980,
    }
    if df <= 0:
        return float("nan")
    keys = sorted(table)
    for k in keys:
        if df <= k:
            return table[k]
    return 1.960


def paired_difference(a, b) -> dict:
    """Mean paired difference `a - b` with a 95% t-interval (pairs matched by position)."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError(
            f"paired_difference needs two 1-D arrays of equal non-zero length; got shapes "
            f"{a.shape} and {b.shape}."
        )
    d = a - b
    n = len(d)
    mean = float(d.mean())
    if n < 2:
        return {"mean": mean, "std": float("nan"), "n": n, "ci95": [float("nan")] * 2}
    sd = float(d.std(ddof=1))
    half = _t_quantile_975(n - 1) * sd / math.sqrt(n)
    return {"mean": mean, "std": sd, "n": n, "ci95": [mean - half, mean + half]}


# ----------------------------------------------------------------------------- callbacks


def _argmax_accuracy(y_true, y_pred) -> float:
    """Top-1 accuracy (per position for sequence outputs), as `predict_accuracy` computes it."""
    y_true = np.asarray(y_true)
    correct = int(np.sum(np.argmax(np.asarray(y_pred), axis=-1) == y_true))
    return correct / max(y_true.size, 1)


def _observer_class():
    from keras_lode.runs.observer import LogPointObserver

    class Observer(LogPointObserver):
        """Records the LR and interval loss at P points per epoch, and val/test per epoch.

        The log points come from `keras_lode.runs.observer.LogPointObserver` (the observer of
        `RunRecorder` and `LODECallback`): they are found at batch begin and epoch end, so
        this callback does not override `on_train_batch_end` and Keras keeps its
        asynchronous callback dispatch (JAX). At each point it records the global step, the
        LR the interval's last step applied, the interval's mean training loss (from the
        loss tracker) and, with `val_points`, the accuracy on that subset.

        For `replay` and `retrieval` it also sets the LR (float-LR optimizer, assigned through
        `self.model.optimizer`, which is live on every backend) at each log point; a point
        is observed before the first step of the next interval, so that step uses the new
        LR. Another callback that reads the LR at log points (a `RunRecorder`, a float-LR
        `LODECallback`) must come before this one in the callback list to see the LR the
        interval ran with.
        """

        def __init__(
            self, spec, data, steps_per_epoch, schedule=None, controller=None, val_points=None
        ):
            # The subset is measured whole (samples = its size), in the order given.
            super().__init__(
                spec.points_per_epoch,
                validation_data=val_points,
                validation_samples=len(val_points[1]) if val_points is not None else 1024,
                metric=_argmax_accuracy,
            )
            self.spec = spec
            self.data = data
            self.steps_per_epoch = steps_per_epoch
            self.total_steps = steps_per_epoch * spec.epochs
            self.schedule = schedule
            self.controller = controller
            self.val_points = val_points  # (x, y) subset measured at every log point, or None
            self.points = {"step": [], "lr": [], "loss": [], "metric": []}
            self.per_epoch = []  # (self.epochs is the run's epoch count)

        def _fit_begin(self):
            if self.controller is not None:
                self.model.optimizer.learning_rate = self.controller.lr_at(0)

        def on_log_point(self, point, logs):
            for key, values in self.points.items():
                values.append(point[key])
            if self.controller is not None:
                new_lr = self.controller.observe(self.points, point["step"], self.total_steps)
                # Through self.model: on JAX this syncs the state and fit re-reads it before
                # the next step (the one at whose begin this point was found, or the next
                # epoch's first).
                self.model.optimizer.learning_rate = new_lr

        def on_epoch_end(self, epoch, logs=None):
            super().on_epoch_end(epoch, logs)  # the epoch's last log point
            logs = logs or {}
            val = predict_accuracy(self.model, self.data.x_val, self.data.y_val)
            test = predict_accuracy(self.model, self.data.x_test, self.data.y_test)
            self.per_epoch.append(
                {
                    "epoch": epoch + 1,
                    "train_loss": float(logs.get("loss", float("nan"))),
                    "val_metric": val,
                    "test_metric": test,
                }
            )

    return Observer


class _TableController:
    """Follows an LR table given per fraction of training (replay)."""

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


def _run_table(run):
    """(fraction of training, lr) of a recorded run, dropping non-finite entries."""
    step = np.asarray(run.step, dtype=float)
    lr = np.asarray(run.lr, dtype=float)
    total = float(run.meta.get("total_steps") or (step[-1] if len(step) else 0))
    ok = np.isfinite(lr) & (lr > 0) & np.isfinite(step)
    if total <= 0 or ok.sum() == 0:
        raise ValueError(f"Run {getattr(run, 'run_id', '?')} has no usable LR curve.")
    return step[ok] / total, lr[ok]


class _RetrievalController(_TableController):
    """Nearest-neighbour retrieval: follow the sweep run whose recent window is closest.

    At each log point n >= window, the current window of standardized channels
    `[loss, log lr, metric]` over the last `window` points is compared with every sweep
    run's window at the same fraction of training; the LR table of the nearest run is
    followed until the next point. Before `window` points it follows the best run.
    """

    def __init__(self, runs, window=5):
        self.runs = list(runs)
        self.window = int(window)
        self.tables = [_run_table(r) for r in self.runs]
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


# ----------------------------------------------------------------------------- training


def _lode_callback(method: Method, spec, data, total_steps, seed, verbose):
    """A `LODECallback` for `method`, warm-started on a sweep family until its first plan.

    `method.options["warmup_family"]` (default `"constant"`) at `method.peak_lr` (default
    1e-3) is the schedule followed before the first plan: the LODE was trained on sweep runs,
    so a warm-up that looks like one gives its encoder an in-distribution window.
    """
    from keras_lode import LODECallback

    if not Path(method.model).is_file():
        raise FileNotFoundError(
            f"LODE model file not found: {method.model!r}. Pass --model PATH or train one with "
            "`keras-lode train`."
        )
    options = dict(method.options)
    family = options.pop("warmup_family", "constant")
    peak = float(method.peak_lr or 1e-3)
    warmup = make_schedule(family, peak, total_steps)
    # The run records the task's P log points per epoch; a model trained with another P
    # (or horizon) is mapped by fraction of training, with the callback's warning.
    options.setdefault("points_per_epoch", spec.points_per_epoch)
    cb = LODECallback(
        method.model,
        validation_data=(data.x_val, data.y_val),
        warmup=warmup,
        seed=seed,
        verbose=verbose,
        **options,
    )
    return cb, peak


def train_one(
    spec,
    method: Method,
    seed: int = 0,
    data=None,
    verbose: int = 0,
    measure_points: bool = False,
    record_to=None,
) -> dict:
    """Trains `spec`'s model once with `method` and returns its measurements.

    Args:
        spec: a `keras_lode.tasks.TaskSpec`.
        method: the LR method.
        seed: seed of initialization and batch order.
        data: preloaded `TaskData` (loaded from `spec` when None).
        verbose: passed to `model.fit`.
        measure_points: measure the validation metric at every log point (needed by
            `retrieval`; otherwise only at epoch ends, which is cheaper).
        record_to: directory; when given, a `keras_lode.RunRecorder` records the run there
            (a sweep run: P log points per epoch, validation metric at each) and the final
            test metric is added to its metadata.

    Returns:
        A JSON-ready dict: `method`, `kind`, `peak_lr`, `seed`, `epochs` (per-epoch val/test
        metric and train loss), `points` (per-log-point step, lr, interval loss, metric),
        `best_val`, `test_at_best_val`, `test_at_end`, `wall_s`, `backend`.
    """
    import keras

    data = data if data is not None else spec.load_data(seed=seed)
    steps_per_epoch = spec.steps_per_epoch(len(data.x_train))
    total_steps = steps_per_epoch * spec.epochs
    model = spec.build_model(seed=seed)
    lode_cb = None
    schedule = None
    controller = None
    if method.kind in FAMILIES:
        schedule = make_schedule(method.kind, method.peak_lr, total_steps)
        lr = schedule
    elif method.kind == "lode":
        lode_cb, lr = _lode_callback(method, spec, data, total_steps, seed, verbose)
    elif method.kind == "replay":
        controller = _TableController(*_run_table(method.runs[0]))
        lr = controller.current_lr
    else:
        controller = _RetrievalController(method.runs, **method.options)
        lr = controller.current_lr
        measure_points = True
    spec.compile(model, lr)
    val_points = None
    if measure_points:
        n = min(len(data.x_val), 1024)
        val_points = (data.x_val[:n], data.y_val[:n])
    observer = _observer_class()(
        spec,
        data,
        steps_per_epoch,
        schedule=schedule,
        controller=controller,
        val_points=val_points,
    )
    recorder = None
    if record_to is not None:
        from keras_lode import RunRecorder

        recorder = RunRecorder(
            None,
            points_per_epoch=spec.points_per_epoch,
            validation_data=(data.x_val, data.y_val),
            validation_samples=1024,
            meta={
                "task": spec.name,
                "model": model.name,
                "schedule": method.kind,
                "schedule_args": {},
                "peak_lr": method.peak_lr,
                "seed": int(seed),
                "metric_name": spec.metric_name,
                "scale": spec.scale,
            },
        )
    # Log points are observed at batch begin, where a float-LR LODECallback (and the
    # observer itself, for replay/retrieval) assigns the next interval's LR: whoever records
    # the LR an interval ran with goes before whoever sets it.
    callbacks = [cb for cb in (recorder, observer, lode_cb) if cb is not None]
    t0 = time.perf_counter()
    model.fit(
        data.x_train,
        data.y_train,
        batch_size=spec.batch_size,
        epochs=spec.epochs,
        shuffle=True,
        callbacks=callbacks,
        verbose=verbose,
    )
    wall = time.perf_counter() - t0
    epochs = observer.per_epoch
    vals = [e["val_metric"] for e in epochs]
    best = int(np.argmax(vals))
    if recorder is not None:
        from keras_lode.runs import write_run

        run = recorder.run
        run.meta["test_metric"] = epochs[-1]["test_metric"]
        run.meta["test_metric_at_best_val"] = epochs[best]["test_metric"]
        write_run(run, Path(record_to) / f"{run.run_id}.run.csv")
    return {
        "method": method.label,
        "kind": method.kind,
        "peak_lr": method.peak_lr,
        "seed": int(seed),
        "task": spec.name,
        "scale": spec.scale,
        "backend": keras.backend.backend(),
        "steps_per_epoch": steps_per_epoch,
        "epochs": epochs,
        "points": observer.points,
        "best_epoch": best + 1,
        "best_val": vals[best],
        "test_at_best_val": epochs[best]["test_metric"],
        "test_at_end": epochs[-1]["test_metric"],
        "wall_s": wall,
    }


# ----------------------------------------------------------------------------- summaries


def summarize(results: list[dict], reference: str | None = None, key="test_at_best_val"):
    """Per-method mean/std of `key` and the paired difference of every method vs `reference`.

    Args:
        results: dicts from `train_one`.
        reference: method label to compare against (e.g. `"lode"`); the best other method by
            mean is the baseline of the paired difference.
        key: `"test_at_best_val"` or `"test_at_end"`.

    Returns:
        `{"rows": [...], "paired": {...} or None}`; rows sorted by mean, best first.
    """
    by_method: dict[str, dict[int, float]] = {}
    for r in results:
        by_method.setdefault(r["method"], {})[r["seed"]] = r[key]
    rows = []
    for m, per_seed in by_method.items():
        v = np.array(list(per_seed.values()), dtype=float)
        rows.append(
            {
                "method": m,
                "n": len(v),
                "mean": float(v.mean()),
                "std": float(v.std(ddof=1)) if len(v) > 1 else float("nan"),
            }
        )
    rows.sort(key=lambda r: -r["mean"])
    paired = None
    if reference is not None and reference in by_method:
        others = [r for r in rows if r["method"] != reference]
        if others:
            base = others[0]["method"]
            seeds = sorted(set(by_method[reference]) & set(by_method[base]))
            if seeds:
                paired = paired_difference(
                    [by_method[reference][s] for s in seeds],
                    [by_method[base][s] for s in seeds],
                )
                paired.update({"reference": reference, "baseline": base, "key": key})
    return {"key": key, "rows": rows, "paired": paired}


def format_table(results: list[dict], reference: str | None = None) -> str:
    """A plain-text table of test accuracy (at best validation and at the end) per method."""
    a = summarize(results, reference, "test_at_best_val")
    b = {r["method"]: r for r in summarize(results, reference, "test_at_end")["rows"]}
    wall = {}
    for r in results:
        wall.setdefault(r["method"], []).append(r["wall_s"])
    lines = [
        f"{'method':<20} {'n':>3}  {'test@best-val (%)':>18}  {'test@end (%)':>15}  {'s/run':>6}",
    ]
    for r in a["rows"]:
        e = b[r["method"]]
        lines.append(
            f"{r['method']:<20} {r['n']:>3}  {100 * r['mean']:>9.2f} +/- {_pct(r['std']):>5}"
            f"  {100 * e['mean']:>6.2f} +/- {_pct(e['std']):>5}"
            f"  {np.median(wall[r['method']]):>6.1f}"
        )
    p = a["paired"]
    if p is not None:
        lo, hi = p["ci95"]
        lines.append(
            f"paired {p['reference']} - {p['baseline']} (test@best-val, n={p['n']}): "
            f"{100 * p['mean']:+.2f} points, 95% CI [{_pct(lo, sign=True)}, "
            f"{_pct(hi, sign=True)}]"
        )
    return "\n".join(lines)


def _pct(x, sign=False):
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{100 * x:+.2f}" if sign else f"{100 * x:.2f}"


def write_json(path, payload) -> Path:
    """Writes `payload` as JSON atomically (temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(payload, f, indent=1, allow_nan=True)
    os.replace(tmp, path)
    return path


def plot(results: list[dict], path, title: str = "") -> Path:
    """Plots the LR schedules and the validation/test accuracy curves of `results` to a PNG.

    One curve per method (the first seed of each method).

    Raises:
        ImportError: when matplotlib is not installed (`pip install 'keras_lode[plot]'`).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise ImportError("Plots need matplotlib: pip install 'keras_lode[plot]'") from e
    first: dict[str, dict] = {}
    for r in sorted(results, key=lambda r: r["seed"]):
        first.setdefault(r["method"], r)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for m, r in first.items():
        spe = r["steps_per_epoch"]
        steps = np.asarray(r["points"]["step"], dtype=float) / spe
        axes[0].plot(steps, r["points"]["lr"], label=m)
        ep = [e["epoch"] for e in r["epochs"]]
        axes[1].plot(ep, [100 * e["val_metric"] for e in r["epochs"]], marker="o", label=m)
        axes[2].plot(ep, [100 * e["test_metric"] for e in r["epochs"]], marker="o", label=m)
    axes[0].set(xlabel="epoch", ylabel="learning rate", yscale="log", title="LR schedule")
    axes[1].set(xlabel="epoch", ylabel="accuracy (%)", title="validation accuracy")
    axes[2].set(xlabel="epoch", ylabel="accuracy (%)", title="test accuracy")
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
