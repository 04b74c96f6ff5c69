"""Comparison runs: train a task once per method and seed, measuring val/test per epoch.

This is the engine behind `keras-lode compare`, `keras-lode demo`, the examples and
`benchmarks/quality.py`. `train_one(task, method, seed)` trains the task's model with
one `keras_lode.experiments.methods.Method`; every run measures the validation metric and
the test metric at the end of each epoch, so results can be read at the epoch of best
validation (the paper's rule) and at the end. `run_comparison` trains every method on
every seed; `keras_lode.experiments.stats` summarizes the results.

Example:

```python
from keras_lode.experiments import Method, train_one
from keras_lode.tasks import get_task

task = get_task("fmnist_cnn", scale="quick")
result = train_one(task, Method("cosine", peak_lr=3e-3), seed=0)
print(result["test_at_best_val"], result["test_at_end"])
```
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from keras_lode.constants import FAMILIES
from keras_lode.experiments.methods import (
    AveragedWeights,
    Method,
    RetrievalController,
    TableController,
    lode_callback,
    plateau_callback,
    run_table,
    schedule_free_optimizer,
)


def epoch_batches(x, y, batch_size: int, seed: int, initial_epoch: int = 0):
    """Training batches in an order fixed by `seed` alone, reshuffled every epoch.

    Pass the fit's `initial_epoch` when resuming, so that epoch `e` keeps its order.

    `model.fit(..., shuffle=True)` draws its order from the backend's global random state,
    which anything else in the fit may advance (a callback's extra `predict`, for one), so
    two methods of one seed could see different batch orders after the first epoch. This
    `keras.utils.PyDataset` draws epoch `e`'s permutation from `np.random.default_rng([seed,
    e])`: every method of a seed sees the same batches in the same order.
    """
    import keras

    class EpochBatches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.epoch = int(initial_epoch)
            self.order = self._permutation()

        def _permutation(self):
            return np.random.default_rng([int(seed), self.epoch]).permutation(len(x))

        def __len__(self):
            return -(-len(x) // batch_size)

        def __getitem__(self, i):
            idx = self.order[i * batch_size : (i + 1) * batch_size]
            return x[idx], y[idx]

        def on_epoch_end(self):
            self.epoch += 1
            self.order = self._permutation()

    return EpochBatches()


def predict_accuracy(model, x, y, batch_size: int = 512) -> float:
    """Top-1 accuracy of `model` on `(x, y)` (per position for sequence outputs), via predict.

    `model.evaluate` inside `fit` would reset the training metrics (docs/design.md), so the
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


def _argmax_accuracy(y_true, y_pred) -> float:
    """Top-1 accuracy (per position for sequence outputs), as `predict_accuracy` computes it."""
    y_true = np.asarray(y_true)
    correct = int(np.sum(np.argmax(np.asarray(y_pred), axis=-1) == y_true))
    return correct / max(y_true.size, 1)


def evaluation_weights(model):
    """The weights a model is evaluated at: a `ScheduleFreeAdamW` model's averaged ones."""
    import contextlib

    import keras

    if isinstance(getattr(model, "optimizer", None), keras.optimizers.ScheduleFreeAdamW):
        return AveragedWeights(model)
    return contextlib.nullcontext()


def observer_class():
    """The comparison runs' observer callback class (built on first use: it needs Keras)."""
    from keras_lode.callbacks import LogPointObserver

    class Observer(LogPointObserver):
        """Records the LR and interval loss at P points per epoch, and val/test per epoch.

        The log points come from `keras_lode.callbacks.observer.LogPointObserver` (the observer of
        `RunRecorder` and `LODECallback`): they are found at batch begin and epoch end, so
        this callback does not override `on_train_batch_end` and Keras keeps its
        asynchronous callback dispatch (JAX). At each point it records the global step, the
        LR the interval's last step applied, the interval's mean training loss (from the
        loss tracker) and, with `val_points`, the accuracy on that subset.

        For `replay` and `retrieval` it also sets the LR (float-LR optimizer, assigned through
        `self.model.optimizer`, which is live on every backend) at each log point: replay as
        the point is taken, so the next step uses it; retrieval once the point's metric is
        read, a step after it has been dispatched. Another callback that reads the LR at
        log points (a `RunRecorder`, a float-LR `LODECallback`) must come before this one in
        the callback list to see the LR the interval ran with.
        """

        def __init__(
            self, task, data, steps_per_epoch, schedule=None, controller=None, val_points=None
        ):
            # The subset is measured whole (samples = its size), in the order given.
            super().__init__(
                task.points_per_epoch,
                validation_data=val_points,
                validation_samples=len(val_points[1]) if val_points is not None else 1024,
                metric=_argmax_accuracy if task.accuracy_metric else task.metric,
            )
            self.task = task
            self.data = data
            self.steps_per_epoch = steps_per_epoch
            self.total_steps = steps_per_epoch * task.epochs
            self.schedule = schedule
            self.controller = controller
            self.val_points = val_points  # (x, y) subset measured at every log point, or None
            self.points = {"step": [], "lr": [], "loss": [], "metric": []}
            self.per_epoch = []  # (self.epochs is the run's epoch count)
            self.measure = epoch_metric(task, data)

        def _fit_begin(self):
            if self.controller is not None:
                self.model.optimizer.learning_rate = self.controller.lr_at(0)

        def _point_taken(self, k):
            # Replay needs no measurement: its next LR is set as the point is taken, so the
            # next step uses it (retrieval reads the metric, a step later).
            if self.controller is not None and not self.controller.needs_measurement:
                step = self._epoch * self.steps_per_epoch + self.boundaries[k]
                new_lr = self.controller.observe(None, step, self.total_steps)
                self.model.optimizer.learning_rate = new_lr

        def on_log_point(self, point, logs):
            for key, values in self.points.items():
                values.append(point[key])
            if self.controller is not None and self.controller.needs_measurement:
                new_lr = self.controller.observe(self.points, point["step"], self.total_steps)
                # Through self.model: on JAX this syncs the state and fit re-reads it before
                # the next step (the one at whose begin this point was found, or the next
                # epoch's first).
                self.model.optimizer.learning_rate = new_lr

        def on_epoch_end(self, epoch, logs=None):
            super().on_epoch_end(epoch, logs)  # the epoch's last log point
            logs = logs if logs is not None else {}
            with evaluation_weights(self.model):
                val, test = self.measure(self.model, "val"), self.measure(self.model, "test")
            # What a later ReduceLROnPlateau watches (`plateau_callback`).
            logs["val_accuracy" if self.task.accuracy_metric else "val_metric"] = val
            self.per_epoch.append(
                {
                    "epoch": epoch + 1,
                    "train_loss": float(logs.get("loss", float("nan"))),
                    "val_metric": val,
                    "test_metric": test,
                }
            )

    return Observer


def epoch_metric(task, data):
    """`measure(model, split) -> float`: the task's metric on the whole `"val"` or `"test"`
    split: top-1 accuracy through `predict` for an accuracy task, else `task.metric`."""
    if task.accuracy_metric:
        splits = {"val": (data.x_val, data.y_val), "test": (data.x_test, data.y_test)}
        return lambda model, split: predict_accuracy(model, *splits[split])
    from keras_lode.callbacks import ValidationProbe

    probes = {split: ValidationProbe((x, y), samples=len(y), metric=task.metric)
              for split, (x, y) in (("val", (data.x_val, data.y_val)),
                                    ("test", (data.x_test, data.y_test)))}  # fmt: skip
    return lambda model, split: float(probes[split].measure(model))


def load_task_data(task, seed: int = 0):
    """`task.load_data()` as a `TaskData`, for a comparison run.

    The loader is called with `seed=` when it takes one (the example tasks), else with no
    argument, as a sweep calls it. What it returns may be anything a sweep accepts (a
    `TaskData`, a dict of `(x, y)` splits, ...: `keras_lode.tasks.task.split_data`),
    but a comparison also needs the test split: it reports the test metric.

    Raises:
        ValueError: the data has no usable train/val/test split (naming the task).
    """
    import inspect

    from keras_lode.tasks.task import TaskData, split_data

    try:
        params = inspect.signature(task.load_data).parameters.values()
        takes_seed = any(p.name == "seed" or p.kind is p.VAR_KEYWORD for p in params)
    except (TypeError, ValueError):  # no signature (a builtin): try the example tasks' call
        takes_seed = True
    data = task.load_data(seed=seed) if takes_seed else task.load_data()
    if isinstance(data, TaskData):
        return data
    parts = split_data(data)
    if parts["test"] is None:
        raise ValueError(
            f"Task {task.name!r}: a comparison reports the test metric, but `load_data()` "
            "returned no 'test' split. Return {'train': (x, y), 'val': (x, y), "
            "'test': (x, y)} (or a TaskData)."
        )
    arrays = [np.asarray(a) for part in ("train", "val", "test") for a in parts[part]]
    return TaskData(*arrays)


def train_one(
    task,
    method: Method,
    seed: int = 0,
    data=None,
    verbose: int = 0,
    measure_points: bool = False,
    record_to=None,
) -> dict:
    """Trains `task`'s model once with `method` and returns its measurements.

    Args:
        task: a `keras_lode.experiments.Task` (an example task from
            `keras_lode.tasks.get_task(...)` or your own, as a sweep takes it; its data is
            loaded with `load_task_data`).
        method: the LR method.
        seed: seed of initialization and batch order (`epoch_batches`: the same for every
            method of a seed).
        data: preloaded `TaskData` (loaded from `task` when None).
        verbose: passed to `model.fit`.
        measure_points: measure the validation metric at every log point (needed by
            `retrieval`; otherwise only at epoch ends, which is cheaper).
        record_to: directory; when given, a `keras_lode.RunRecorder` records the run there
            (a sweep run: P log points per epoch, validation metric at each) and the final
            test metric is added to its metadata.

    Returns:
        A JSON-ready dict: `method`, `kind`, `peak_lr`, `seed`, `epochs` (per-epoch val/test
        metric and train loss), `points` (per-log-point step, lr, interval loss, metric),
        `best_val`, `test_at_best_val`, `test_at_end`, `wall_s`, `backend`, and `lode`
        (`lode_summary`: the plans the LODE made, its switches and its history) for a
        method run through a `LODECallback` (`lode`, or a family's matched arm with a
        `model`), else None.
    """
    import keras

    data = data if data is not None else load_task_data(task, seed)
    steps_per_epoch = task.steps_per_epoch(len(data.x_train))
    total_steps = steps_per_epoch * task.epochs
    keras.utils.set_random_seed(int(seed))  # the same initial weights for every method
    model = task.build_model(seed=seed)
    lr, schedule, controller, lode_cb = _method_lr(task, method, data, total_steps, seed, verbose)
    # Retrieval reads the validation metric at every log point.
    measure_points = measure_points or method.kind == "retrieval"
    _compile(task, method, model, lr, total_steps)
    val_points = None
    if measure_points:
        n = min(len(data.x_val), 1024)
        val_points = (data.x_val[:n], data.y_val[:n])
    observer = observer_class()(task, data, steps_per_epoch, schedule=schedule,
                                controller=controller, val_points=val_points)  # fmt: skip
    recorder = None if record_to is None else _recorder(task, method, data, model, seed)
    # Log points are observed at batch begin, where a float-LR LODECallback (and the
    # observer itself, for replay/retrieval) assigns the next interval's LR: whoever records
    # the LR an interval ran with goes before whoever sets it.
    peer = plateau_callback(method, task) if method.kind == "plateau" else None
    callbacks = [cb for cb in (recorder, observer, lode_cb, peer) if cb is not None]
    t0 = time.perf_counter()
    # The batch order depends on the seed only (`epoch_batches`), whatever the method does.
    model.fit(
        epoch_batches(data.x_train, data.y_train, task.batch_size, seed),
        epochs=task.epochs,
        callbacks=callbacks,
        verbose=verbose,
    )
    wall = time.perf_counter() - t0
    epochs = observer.per_epoch
    vals = [e["val_metric"] for e in epochs]
    best = int(np.argmax(vals) if task.mode == "max" else np.argmin(vals))
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
        "task": task.name,
        "scale": task.scale,
        "backend": keras.backend.backend(),
        "steps_per_epoch": steps_per_epoch,
        "epochs": epochs,
        "points": observer.points,
        "best_epoch": best + 1,
        "best_val": vals[best],
        "test_at_best_val": epochs[best]["test_metric"],
        "test_at_end": epochs[-1]["test_metric"],
        "mode": task.mode,
        "accuracy": task.accuracy_metric,  # a fraction: tables show percent and points
        "wall_s": wall,
        "lode": None if lode_cb is None else lode_summary(lode_cb),
    }


def _compile(task, method: Method, model, lr, total_steps: int) -> None:
    """The task's optimizer and loss, or `ScheduleFreeAdamW` for that peer."""
    if method.kind == "schedulefree":
        optimizer = schedule_free_optimizer(method, task, total_steps)
        model.compile(optimizer=optimizer, loss=task.loss)
    else:
        task.compile(model, lr)


def _method_lr(task, method: Method, data, total_steps: int, seed: int, verbose: int):
    """`(lr, schedule, controller, lode_callback)`: what sets the LR under `method`.

    `lr` is what the optimizer is compiled with; the others are None where the method has
    none (a family has a schedule, `lode` a callback, `replay`/`retrieval` a controller).
    """
    if method.kind in FAMILIES and not method.model:
        from keras_lode.schedules import make_schedule

        schedule = make_schedule(method.kind, method.peak_lr, total_steps)
        return schedule, schedule, None, None
    if method.kind == "lode" or method.kind in FAMILIES:  # a LODE, or a matched arm
        lode_cb, lr = lode_callback(method, task, data, total_steps, seed, verbose)
        return lr, None, None, lode_cb
    if method.kind in ("plateau", "schedulefree"):  # a float LR (set by the peer itself)
        return float(method.peak_lr or 0.0025), None, None, None
    if method.kind == "replay":
        controller = TableController(*run_table(method.runs[0]))
    else:  # retrieval
        controller = RetrievalController(method.runs, **method.options)
    return controller.current_lr, None, controller, None


def _recorder(task, method: Method, data, model, seed: int):
    """A `RunRecorder` of the run as a sweep records one (P points per epoch)."""
    from keras_lode import RunRecorder

    return RunRecorder(
        None,
        points_per_epoch=task.points_per_epoch,
        validation_data=(data.x_val, data.y_val),
        validation_samples=1024,
        metric=task.metric,
        mode=task.mode,
        meta={
            "task": task.name,
            "model": model.name,
            "schedule": method.kind,
            "schedule_args": {},
            "peak_lr": method.peak_lr,
            "seed": int(seed),
            "metric_name": task.metric_name,
            "scale": task.scale,
        },
    )


def lode_summary(callback) -> dict:
    """What a `LODECallback` did in a run: its plans (fallbacks among them), its window W and
    the run's log points (a run no longer than W never plans)."""
    plans = getattr(callback, "plans", {})
    out = {
        "plans": len(plans),
        "fallbacks": sum(bool(getattr(p, "fallback", False)) for p in plans.values()),
        "window": getattr(callback, "window", None),
        "total_points": getattr(callback, "total_points", None),
        # (K, 3) observed [loss, ln lr, metric] per log point (null where not observed).
        "history": callback.history.tolist() if hasattr(callback, "_history") else None,
    }
    if getattr(callback, "kind", None) == "controlled":
        # Which replans left the default, and for what.
        out["switches"] = {
            str(n): p.chosen_name for n, p in sorted(plans.items()) if getattr(p, "switched", 0)
        }
    return out


def run_comparison(task, methods, seeds, verbose=0) -> list[dict]:
    """Trains every method on every seed (data loaded once) and returns the results.

    Prints one line per run (method, seed, test metric at best validation and at the end).
    """
    data = load_task_data(task, 0)
    results = []
    for seed in seeds:
        for m in methods:
            r = train_one(task, m, seed=seed, data=data, verbose=verbose)
            print(
                f"  {m.label:<20} seed {seed}: test@best-val {100 * r['test_at_best_val']:.2f}"
                f"  test@end {100 * r['test_at_end']:.2f}  ({r['wall_s']:.0f} s)",
                flush=True,
            )
            results.append(r)
    return results


def write_json(path, payload) -> Path:
    """Writes `payload` as strict JSON atomically (non-finite floats as null; see
    `keras_lode._json.write_json`)."""
    from keras_lode._json import write_json as _write_json

    return _write_json(path, payload, indent=1)
