"""One trial of a sweep: train, record, watch for divergence, record failures.

`run_trial(task, trial, out_dir)` trains one grid point with the family's parametric
schedule (`keras_lode.schedules.make_schedule`), records it with `keras_lode.RunRecorder`
at `task.points_per_epoch` log points per epoch, measures the final test metric and
writes `out_dir/<family>-lr<peak>-seed<seed>.run.csv`. A trial that diverges
(non-finite loss) is stopped and recorded as `"diverged"`; one that raises is recorded as
`"failed"` with the error in `meta["error"]`.

`python -m keras_lode.experiments.trial '<json>'` runs one trial in its own process (the
local engine's isolated and parallel trials, `keras_lode.experiments.engines`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from keras_lode._json import dumps
from keras_lode.experiments.grid import Trial, TrialResult
from keras_lode.runs import SUFFIX, Run, run_name, write_run
from keras_lode.tasks.loading import load_task
from keras_lode.tasks.task import Task, split_data

logger = logging.getLogger(__name__)

# The arrays of the last task loaded in this process (local trials and reused Ray actors
# run many trials of one task). The task itself is kept so its id cannot be reused.
_DATA_CACHE: dict[str, Any] = {"task": None, "data": None}


def run_trial(task: Task, trial: Trial, out_dir: str | os.PathLike) -> TrialResult:
    """Trains and records one trial; never raises for a failing trial.

    The run file is written once, at the end, with the final test metric; a trial
    that raises is written as a `"failed"` run holding the points recorded so far
    and the error.
    """
    out_dir = Path(out_dir)
    path = out_dir / f"{trial.run_id}{SUFFIX}"
    t0 = time.perf_counter()
    meta: dict[str, Any] = {
        **task.run_meta(),
        "task": task.name,
        "schedule": trial.family,
        "peak_lr": trial.peak_lr,
        "seed": trial.seed,
        "run_id": trial.run_id,
    }
    recorder = None
    try:
        import keras

        from keras_lode.callbacks import RunRecorder

        data = _task_data(task)
        model = _compiled_model(keras, task, trial, data, meta)
        recorder = RunRecorder(
            None,
            points_per_epoch=task.points_per_epoch,
            validation_data=data["val"],
            validation_samples=task.validation_samples,
            metric=task.metric,
            meta=meta,
            mode=task.mode,
        )
        watch = make_divergence_watch(keras, recorder)  # after the recorder
        model.fit(
            data["train"][0],
            data["train"][1],
            batch_size=task.batch_size,
            epochs=task.epochs,
            shuffle=True,
            verbose=0,
            callbacks=[recorder, watch],
        )
        run = _finished_run(recorder.run, watch, model, task, data["test"])
        run.meta["wall_seconds"] = round(time.perf_counter() - t0, 3)
        write_run(run, path)
        error = None
    except Exception as e:  # a failing trial is data about the sweep, not a reason to stop
        error = f"{type(e).__name__}: {e}"
        logger.warning("Trial %s failed: %s", trial.run_id, error)
        run = _failed_run(recorder, meta, error, traceback.format_exc(), t0)
        write_run(run, path)
    finally:
        try:
            import keras

            keras.backend.clear_session()
        except Exception:  # clearing is only a memory courtesy
            pass
    return TrialResult(
        run_id=trial.run_id,
        family=trial.family,
        peak_lr=trial.peak_lr,
        seed=trial.seed,
        path=str(path),
        status=run.status,
        test_metric=run.meta.get("test_metric"),
        seconds=round(time.perf_counter() - t0, 3),
        error=error,
    )


def _task_data(task: Task) -> dict:
    """The task's split arrays, cached for the next trial of the same task."""
    if _DATA_CACHE["task"] is task:
        return _DATA_CACHE["data"]
    _DATA_CACHE.update(task=None, data=None)  # one task's arrays at a time
    data = split_data(task.load_data())
    _DATA_CACHE.update(task=task, data=data)
    return data


def _compiled_model(keras, task: Task, trial: Trial, data: dict, meta: dict):
    """The trial's model, compiled with its schedule; fills the model's part of `meta`."""
    from keras_lode.schedules import make_schedule

    n = len(data["train"][1])
    total = task.steps_per_epoch(n) * task.epochs
    schedule = make_schedule(
        trial.family, trial.peak_lr, total, **dict(task.schedule_args.get(trial.family, {}))
    )
    meta["kind"] = "grid" if trial.switch is None else "switched"  # Run.kind
    if trial.switch is not None:
        schedule, meta["switch"] = _switched(task, trial, schedule, n, total)
    if trial.branch is not None:
        meta["kind"] = "branch"
        schedule, meta["branch"] = _branched(keras, task, trial, schedule, n)
    keras.utils.set_random_seed(trial.seed)
    model = task.build_model(trial.seed)
    optimizer = task.build_optimizer(schedule)
    model.compile(optimizer=optimizer, loss=task.loss)
    config = schedule.get_config()
    config.pop("name", None)
    meta.update(
        model=meta.get("model") or model.name,
        optimizer=type(optimizer).__name__,
        schedule_args=config,
    )
    return model


def _finished_run(run: Run, watch, model, task: Task, test) -> Run:
    """The recorded run, marked if the watch stopped it, with the test metric if complete."""
    from keras_lode.callbacks import ValidationProbe

    if watch.stopped_at is not None:
        # Stopped at the log point whose interval loss went non-finite (the recorder
        # already calls the run diverged; the flag and step say that fit was stopped).
        run.status = "diverged"
        run.add_flag("terminated_on_nan")
        run.meta["diverged_at_step"] = watch.stopped_at
    if run.status == "complete" and test is not None:
        xt, yt = test
        probe = ValidationProbe((xt, yt), samples=len(yt), metric=task.metric)
        run.meta["test_metric"] = float(probe.measure(model))
    return run


def make_divergence_watch(keras, recorder):
    """Like `keras.callbacks.TerminateOnNaN`, at log points; remembers the step where it stopped.

    It reads the interval loss `recorder` (a `RunRecorder` placed before it in the callback
    list) measured at each log point, in the same `on_train_batch_begin` / `on_epoch_end`
    call, instead of the batch loss in `on_train_batch_end`: overriding that hook would turn
    off Keras's asynchronous callback dispatch for the whole fit (JAX), and reading the loss
    every batch would wait for every step. A non-finite interval loss counts as a divergence
    when the loss tracker's running total is non-finite too, or at an epoch end when the
    epoch's loss is (a model whose `train_step` does not update the tracker has NaN interval
    losses mid-epoch without diverging). `stopped_at` is the global step of that log point:
    the loss went non-finite in the interval ending there. The batch whose begin found the
    point still runs, then fit stops.
    """

    class DivergenceWatch(keras.callbacks.Callback):
        def __init__(self, recorder):
            super().__init__()
            self.recorder = recorder
            self.stopped_at = None
            self._seen = 0

        def on_train_begin(self, logs=None):
            self.stopped_at = None
            self._seen = 0

        def _check(self, epoch_logs=None):
            rows = self.recorder.rows
            while self._seen < len(rows) and self.stopped_at is None:
                step, _, _, loss, _ = rows[self._seen]
                self._seen += 1
                if not math.isfinite(loss) and self._diverged(epoch_logs):
                    self.stopped_at = int(step)
                    self.model.stop_training = True
            self._seen = len(rows)

        def _diverged(self, epoch_logs) -> bool:
            model = self.model
            state = self.recorder.loss_tracker_state(model)
            if state is not None and not math.isfinite(state[0]):
                return True
            loss = (epoch_logs or {}).get("loss")
            return loss is not None and not math.isfinite(float(loss))

        def on_train_batch_begin(self, batch, logs=None):
            if self._seen < len(self.recorder.rows):  # the recorder just saw a log point
                self._check()

        def on_epoch_end(self, epoch, logs=None):
            self._check(logs)

    return DivergenceWatch(recorder)


def _failed_run(recorder, meta: dict, error: str, tb: str, t0: float) -> Run:
    rows = list(recorder.rows) if recorder is not None else []  # None: failed before fit
    cols = list(zip(*rows, strict=True)) if rows else [[], [], [], [], []]
    meta = dict(meta, status="failed", error=error, traceback=tb[-4000:])
    meta["wall_seconds"] = round(time.perf_counter() - t0, 3)
    try:
        return Run(*cols, meta=meta)
    except (TypeError, ValueError):  # the partial rows themselves were the problem
        return Run([], [], [], [], [], meta=meta)


def switch_step(task: Task, n_train: int, at_point: int) -> int:
    """The first optimizer step after log point `at_point` (where `RunRecorder` records it).

    Log point k of an epoch comes after `round((k + 1) * steps_per_epoch / P)` of its
    steps (`keras_lode.callbacks.observer.LogPointObserver`).
    """
    spe, p = task.steps_per_epoch(n_train), task.points_per_epoch
    epoch, k = divmod(int(at_point), p)
    return epoch * spe + int(round((k + 1) * spe / p))


def _switched(task, trial, base, n_train, total):
    from keras_lode.schedules import Switched, make_schedule

    sw = trial.switch
    target = make_schedule(
        sw.to_family, sw.to_peak_lr, total, **dict(task.schedule_args.get(sw.to_family, {}))
    )
    step = switch_step(task, n_train, sw.at_point)
    meta = {
        "base": run_name(trial.family, trial.peak_lr, trial.seed),
        "at_point": int(sw.at_point),
        "at_step": step,
        "to_schedule": sw.to_family,
        "to_peak_lr": float(sw.to_peak_lr),
    }
    return Switched(base, target, step), meta


def _branched(keras, task, trial, base, n_train):
    """A branch trial's schedule: `base`, then from the step a plan made at the branch point
    would reach (a step after it, at once at an epoch's end, as `LODECallback` applies one)
    the drawn continuation of the control planner's library there, served per log point
    as a `LODESchedule` serves a plan (`PointPath`)."""
    import zlib

    import numpy as np

    from keras_lode.planning.candidates import candidate_library
    from keras_lode.schedules import PointPath, Switched

    b, P = trial.branch, task.points_per_epoch
    K, n = task.epochs * P, int(trial.branch.at_point)
    if not 1 <= n <= K - 2:
        raise ValueError(f"A branch at log point {n} is outside [1, {K - 2}] ({K} points).")
    ends = np.array([switch_step(task, n_train, k) for k in range(K)])  # steps at each point
    lrs = np.array([float(keras.ops.convert_to_numpy(base(int(s) - 1))) for s in ends])
    library = candidate_library(lrs[n], K - 1 - n, lr_range=b.lr_range, default=lrs[n + 1 :])
    names = library.names[1:]
    if len(names) < b.of:
        raise ValueError(f"The planner's library at log point {n} holds {len(names)} "
                         f"continuations, fewer than the group's {b.of}.")  # fmt: skip
    base_id = run_name(trial.family, trial.peak_lr, trial.seed)
    rng = np.random.default_rng([b.draw_seed, trial.seed, n, zlib.crc32(base_id.encode())])
    j = 1 + int(rng.choice(len(names), size=b.of, replace=False)[b.pick])
    step = int(ends[n]) + int((n + 1) % P != 0)
    path = np.concatenate([lrs[: n + 1], library.lr[j]])
    schedule = Switched(base, PointPath(path, task.steps_per_epoch(n_train), P), step)
    meta = {"base": base_id, "at_point": n, "at_step": step, "candidate": library.names[j],
            "lr_now": float(lrs[n]), "path": [float(v) for v in library.lr[j]]}  # fmt: skip
    return schedule, meta


def main(argv: Sequence[str]) -> int:
    """Entry point of an isolated trial: `python -m keras_lode.experiments.trial '<json>'`.

    The JSON holds `task` (a spec string), `scale`, `out_dir` and the trial's fields
    (`Trial.to_dict`); the trial's `TrialResult` is printed as JSON.
    """
    args = json.loads(argv[0])
    task = load_task(args["task"], args.get("scale"))
    trial = Trial.from_dict(args)
    result = run_trial(task, trial, args["out_dir"])
    print(dumps(dataclasses.asdict(result)))  # strict JSON: a NaN metric is null
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
