"""Sweeps: train a grid of schedule families x peak LRs x seeds and record every run.

A sweep is the LODE's training data. `sweep(task, out_dir)` trains one model per grid
point with the family's parametric schedule (`keras_lode.schedules.make_schedule`),
records it with `keras_lode.RunRecorder` at `task.points_per_epoch` log points per
epoch, measures the final test metric, and writes one run file per trial to
`out_dir/<family>-lr<peak>-seed<seed>.run.csv`.

- A trial that diverges (non-finite loss) is stopped and recorded as `"diverged"`; one
  that raises is recorded as `"failed"` with the error in `meta["error"]`. The sweep
  goes on either way.
- Rerunning a sweep skips trials whose run file is already `"complete"` or `"diverged"`
  (failed trials are retried unless `retry_failed=False`), so an interrupted sweep
  resumes where it stopped.
- Engines: `"local"` (in this process, or one subprocess per trial with `isolate=True`
  or `workers > 1`) and `"ray"` (Ray Tune; `address=` joins an existing cluster).

Tasks are given as `Task` objects or as strings that every worker can import:
`"package.module:attr"`, `"path/to/file.py:attr"` (the attribute may be a `Task`, a
zero-argument factory returning one, or an object with `as_sweep_task()`), or
`"keras_lode.tasks:<name>:<scale>"` / a bare example-task name for the built-in tasks.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import itertools
import json
import logging
import math
import os
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from keras_lode.runs import SUFFIX, Run, read_run, run_name, write_run
from keras_lode.schedules import FAMILIES

logger = logging.getLogger(__name__)

ENGINES = ("local", "ray")
#: Statuses of a run file that a rerun leaves alone.
DONE_STATUSES = ("complete", "diverged")


@dataclasses.dataclass
class Task:
    """A training task a sweep can run: model, data and training settings.

    Example:

    ```python
    def build(seed):
        return keras.Sequential([keras.Input((64,)), keras.layers.Dense(10, "softmax")])

    def data():
        return {"train": (x_tr, y_tr), "val": (x_va, y_va), "test": (x_te, y_te)}

    task = Task("digits_mlp", build, data, epochs=5, batch_size=64, points_per_epoch=4)
    ```

    Args:
        name: task name, stored as `meta["task"]` of every run.
        build_model: `build_model(seed) -> keras.Model` (compiled or not: the sweep
            compiles it with its own optimizer, loss and schedule).
        load_data: `load_data()` returning the train/validation/test arrays: a dict
            `{"train": (x, y), "val": (x, y), "test": (x, y)}`, a dict or object with
            `x_train, y_train, x_val, y_val, x_test, y_test`; the test split is optional.
        epochs: training epochs per trial.
        batch_size: training batch size.
        points_per_epoch: log points per epoch P recorded by `RunRecorder`.
        make_optimizer: `make_optimizer(learning_rate) -> keras optimizer`; default
            `keras.optimizers.AdamW(learning_rate)`.
        loss: the Keras loss.
        metric: the validation metric (a `RunRecorder` metric name or a callable
            `metric(y_true, y_pred) -> float` on NumPy arrays).
        validation_samples: size of the fixed validation subset measured at each point.
        peak_lrs, seeds, families: the default grid of this task.
        schedule_args: per-family extra arguments of `make_schedule`, e.g.
            `{"cosine": {"warmup_steps": 100}}`.
        meta: extra metadata stored in every run (e.g. `{"model": "cnn-96k"}`).
    """

    name: str
    build_model: Callable[[int], Any]
    load_data: Callable[[], Any]
    epochs: int
    batch_size: int = 128
    points_per_epoch: int = 10
    make_optimizer: Callable[[Any], Any] | None = None
    loss: Any = "sparse_categorical_crossentropy"
    metric: Any = "accuracy"
    validation_samples: int = 1024
    peak_lrs: Sequence[float] = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
    seeds: Sequence[int] = (0, 1, 2, 3, 4)
    families: Sequence[str] = FAMILIES
    schedule_args: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    meta: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"Task `name` must be a non-empty str. Received: {self.name!r}")
        for key in ("build_model", "load_data"):
            if not callable(getattr(self, key)):
                raise TypeError(f"Task `{key}` must be callable. Received: {getattr(self, key)!r}")
        for key in ("epochs", "batch_size", "points_per_epoch", "validation_samples"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"Task `{key}` must be a positive int. Received: {key}={value!r}")
        unknown = sorted(set(self.schedule_args) - set(FAMILIES))
        if unknown:
            raise ValueError(
                f"Task `schedule_args` has unknown families {unknown}. Expected some of {FAMILIES}."
            )


@dataclasses.dataclass(frozen=True)
class Trial:
    """One grid point of a sweep."""

    family: str
    peak_lr: float
    seed: int

    @property
    def run_id(self) -> str:
        return run_name(self.family, self.peak_lr, self.seed)


@dataclasses.dataclass
class TrialResult:
    """What a sweep did with one trial."""

    run_id: str
    family: str
    peak_lr: float
    seed: int
    path: str
    status: str
    skipped: bool = False
    test_metric: float | None = None
    seconds: float = 0.0
    error: str | None = None


# ---------------------------------------------------------------------- grid
def make_grid(
    families: Iterable[str] = FAMILIES,
    peak_lrs: Iterable[float] = (1e-3,),
    seeds: Iterable[int] = (0,),
) -> list[Trial]:
    """The trials of a grid, families x peak LRs x seeds, in that nesting order.

    Raises:
        ValueError: unknown family, non-positive LR, or an empty axis.
    """
    families, peak_lrs, seeds = list(families), list(peak_lrs), list(seeds)
    for arg, values in (("families", families), ("peak_lrs", peak_lrs), ("seeds", seeds)):
        if not values:
            raise ValueError(f"Argument `{arg}` must not be empty.")
    bad = [f for f in families if f not in FAMILIES]
    if bad:
        raise ValueError(f"Argument `families` has unknown families {bad}. Expected {FAMILIES}.")
    for lr in peak_lrs:
        if not (isinstance(lr, int | float) and math.isfinite(lr) and lr > 0):
            raise ValueError(f"Argument `peak_lrs` must hold positive numbers. Received: {lr!r}")
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, int | np.integer):
            raise ValueError(f"Argument `seeds` must hold ints. Received: {s!r}")
    trials = [
        Trial(f, float(lr), int(s)) for f, lr, s in itertools.product(families, peak_lrs, seeds)
    ]
    ids = [t.run_id for t in trials]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})
        raise ValueError(f"The grid has repeated trials {dup}; check `peak_lrs` and `seeds`.")
    return trials


# ---------------------------------------------------------------------- tasks
def load_task(spec: str | Task, scale: str | None = None) -> Task:
    """Resolves a task given as a `Task` or an import string (see the module docstring).

    Args:
        spec: a `Task`, `"module:attr"`, `"path/to/file.py:attr"`,
            `"module:name:scale"` or a bare example-task name.
        scale: scale of a built-in example task (`"quick"`, `"cpu"`, `"full"`).

    Raises:
        ValueError: if the spec cannot be resolved (naming what was missing).
    """
    if isinstance(spec, Task):
        return spec
    if not isinstance(spec, str):
        return _as_task(spec, repr(spec))
    parts = spec.split(":")
    if len(parts) == 1:
        from keras_lode.tasks import get_task

        return _as_task(get_task(spec, **({"scale": scale} if scale else {})), spec)
    target, attr, *rest = parts
    if len(rest) > 1:
        raise ValueError(f"Task spec {spec!r} must be 'module:attr' or 'module:attr:arg'.")
    arg = rest[0] if rest else scale
    if target.endswith(".py"):
        path = Path(target).resolve()
        if not path.is_file():
            raise ValueError(f"Task spec {spec!r}: no Python file at {path}.")
        mod_name = f"_keras_lode_task_{abs(hash(str(path)))}"
        module = sys.modules.get(mod_name)
        if module is None:
            module_spec = importlib.util.spec_from_file_location(mod_name, path)
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[mod_name] = module
            module_spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as e:
            raise ValueError(f"Task spec {spec!r}: cannot import module {target!r} ({e}).") from e
    obj = getattr(module, attr, None)
    if obj is None:
        if hasattr(module, "get_task"):  # a registry such as keras_lode.tasks
            obj = module.get_task(attr, **({"scale": arg} if arg else {}))
        else:
            names = sorted(n for n in dir(module) if not n.startswith("_"))
            raise ValueError(
                f"Task spec {spec!r}: module {target!r} has no attribute {attr!r}. "
                f"Available: {names}"
            )
    elif rest and callable(obj) and not isinstance(obj, Task):
        obj = obj(rest[0])
    return _as_task(obj, spec)


def _absolute_spec(spec: str) -> str:
    """Makes the file of a 'path/to/file.py:attr' spec absolute (workers run elsewhere)."""
    target, sep, rest = spec.partition(":")
    if sep and target.endswith(".py"):
        return f"{Path(target).resolve()}:{rest}"
    return spec


def _as_task(obj, spec: str) -> Task:
    if isinstance(obj, Task):
        return obj
    if hasattr(obj, "as_sweep_task"):
        return _as_task(obj.as_sweep_task(), spec)
    if callable(obj):
        return _as_task(obj(), spec)
    raise ValueError(
        f"Task spec {spec!r} resolved to a {type(obj).__name__}, expected a keras_lode.sweep."
        "Task, a factory returning one, or an object with as_sweep_task()."
    )


def split_data(data) -> dict[str, tuple | None]:
    """Normalizes what `Task.load_data()` returns to `{"train", "val", "test"}` pairs."""
    out: dict[str, tuple | None] = {}
    for part, aliases in (
        ("train", ("train",)),
        ("val", ("val", "validation")),
        ("test", ("test",)),
    ):
        pair = None
        for alias in aliases:
            if isinstance(data, Mapping) and alias in data:
                pair = data[alias]
            elif isinstance(data, Mapping) and f"x_{alias}" in data:
                pair = (data[f"x_{alias}"], data.get(f"y_{alias}"))
            elif hasattr(data, f"x_{alias}"):
                pair = (getattr(data, f"x_{alias}"), getattr(data, f"y_{alias}", None))
            if pair is not None:
                break
        if pair is None:
            if part == "test":
                out[part] = None
                continue
            keys = sorted(data) if isinstance(data, Mapping) else type(data).__name__
            raise ValueError(
                f"Task `load_data()` returned no {part!r} split (looked for keys {aliases} or "
                f"x_{aliases[0]}/y_{aliases[0]}). Received: {keys}"
            )
        if not isinstance(pair, tuple | list) or len(pair) != 2 or pair[1] is None:
            raise ValueError(
                f"Task `load_data()` split {part!r} must be an (x, y) pair. "
                f"Received: {type(pair).__name__}"
            )
        out[part] = (pair[0], pair[1])
    return out


# ---------------------------------------------------------------------- one trial
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
        **dict(task.meta),
        "task": task.name,
        "schedule": trial.family,
        "peak_lr": trial.peak_lr,
        "seed": trial.seed,
        "run_id": trial.run_id,
    }
    recorder = None
    try:
        import keras

        from keras_lode.runs.observer import ValidationProbe
        from keras_lode.runs.recorder import RunRecorder
        from keras_lode.schedules import make_schedule

        if _DATA_CACHE["task"] is task:
            data = _DATA_CACHE["data"]
        else:
            _DATA_CACHE.update(task=None, data=None)  # one task's arrays at a time
            data = split_data(task.load_data())
            _DATA_CACHE.update(task=task, data=data)
        x, y = data["train"]
        n = len(y)
        steps_per_epoch = -(-n // task.batch_size)
        total = steps_per_epoch * task.epochs
        schedule = make_schedule(
            trial.family, trial.peak_lr, total, **dict(task.schedule_args.get(trial.family, {}))
        )
        keras.utils.set_random_seed(trial.seed)
        model = task.build_model(trial.seed)
        optimizer = (
            task.make_optimizer(schedule)
            if task.make_optimizer is not None
            else keras.optimizers.AdamW(learning_rate=schedule)
        )
        model.compile(optimizer=optimizer, loss=task.loss)
        config = schedule.get_config()
        config.pop("name", None)
        meta.update(
            model=meta.get("model") or model.name,
            optimizer=type(optimizer).__name__,
            schedule_args=config,
        )
        recorder = RunRecorder(
            None,
            points_per_epoch=task.points_per_epoch,
            validation_data=data["val"],
            validation_samples=task.validation_samples,
            metric=task.metric,
            meta=meta,
        )
        watch = _make_divergence_watch(keras, recorder)  # after the recorder
        model.fit(
            x,
            y,
            batch_size=task.batch_size,
            epochs=task.epochs,
            shuffle=True,
            verbose=0,
            callbacks=[recorder, watch],
        )
        run = recorder.run
        if watch.stopped_at is not None:
            # Stopped at the log point whose interval loss went non-finite (the recorder
            # already calls the run diverged; the flag and step say that fit was stopped).
            run.status = "diverged"
            run.add_flag("terminated_on_nan")
            run.meta["diverged_at_step"] = watch.stopped_at
        if run.status == "complete" and data["test"] is not None:
            xt, yt = data["test"]
            probe = ValidationProbe((xt, yt), samples=len(yt), metric=task.metric)
            run.meta["test_metric"] = float(probe.measure(model))
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


def _make_divergence_watch(keras, recorder):
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


# ---------------------------------------------------------------------- the sweep
def sweep(
    task: str | Task,
    out_dir: str | os.PathLike,
    *,
    families: Iterable[str] | None = None,
    peak_lrs: Iterable[float] | None = None,
    seeds: Iterable[int] | None = None,
    engine: str = "local",
    address: str | None = None,
    workers: int = 1,
    isolate: bool = False,
    retry_failed: bool = True,
    scale: str | None = None,
    cpus_per_trial: float = 1,
    gpus_per_trial: float = 0,
    timeout: float | None = None,
    progress: bool = True,
) -> list[TrialResult]:
    """Runs (or resumes) a sweep and returns one `TrialResult` per grid point.

    Example:

    ```python
    from keras_lode.sweep import sweep

    results = sweep("my_tasks.py:TASK", "runs/", peak_lrs=[1e-3, 3e-3], seeds=[0, 1])
    runs = keras_lode.load_runs("runs/", status="complete")
    ```

    Args:
        task: a `Task` or a task spec string (workers of the `ray` engine and
            isolated local trials import it; a `Task` object is pickled instead).
        out_dir: directory of the run files (created if needed).
        families, peak_lrs, seeds: the grid (default: the task's).
        engine: `"local"` or `"ray"`.
        address: Ray cluster address (`"auto"`, `"ray://host:10001"`); None starts
            a local Ray instance unless Ray is already initialized.
        workers: trials run at once (local: subprocesses; ray: max concurrent
            trials, default as many as the cluster fits).
        isolate: run each local trial in its own subprocess (needs a spec string).
        retry_failed: rerun trials whose run file says `"failed"`.
        scale: scale of a built-in example task.
        cpus_per_trial, gpus_per_trial: Ray resources of one trial.
        timeout: seconds after which an isolated local trial is killed and
            recorded as failed.
        progress: show a tqdm progress bar.

    Returns:
        A list of `TrialResult`, in grid order.

    Raises:
        ValueError: bad arguments or an unresolvable task.
    """
    if engine not in ENGINES:
        raise ValueError(f"Argument `engine` must be one of {ENGINES}. Received: {engine!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"Argument `workers` must be a positive int. Received: {workers!r}")
    if isinstance(task, str):
        task = _absolute_spec(task)
    resolved = load_task(task, scale)
    trials = make_grid(
        families if families is not None else resolved.families,
        peak_lrs if peak_lrs is not None else resolved.peak_lrs,
        seeds if seeds is not None else resolved.seeds,
    )
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    results: dict[Trial, TrialResult] = {}
    pending = []
    for t in trials:
        done = _finished(out_dir / f"{t.run_id}{SUFFIX}", retry_failed)
        if done is not None:
            results[t] = _result_from_run(t, done, out_dir, skipped=True)
        else:
            pending.append(t)
    if results:
        logger.info(
            "Sweep %s: %d of %d trials already done.", resolved.name, len(results), len(trials)
        )
    bar = _progress(len(trials), len(results), resolved.name, progress)
    try:
        if pending:
            if engine == "ray":
                ran = _run_ray(
                    task,
                    resolved,
                    pending,
                    out_dir,
                    address,
                    workers,
                    scale,
                    cpus_per_trial,
                    gpus_per_trial,
                    bar,
                )
            elif isolate or workers > 1:
                if not isinstance(task, str):
                    raise ValueError(
                        "Isolated or parallel local trials import the task in a subprocess: "
                        "give `task` as a spec string ('module:attr' or 'file.py:attr'). "
                        f"Received a {type(task).__name__}."
                    )
                ran = _run_subprocesses(task, scale, pending, out_dir, workers, timeout, bar)
            else:
                ran = {}
                for t in pending:
                    ran[t] = run_trial(resolved, t, out_dir)
                    _tick(bar, ran[t])
            results.update(ran)
    finally:
        if bar is not None:
            bar.close()
    return [results[t] for t in trials]


def _finished(path: Path, retry_failed: bool) -> Run | None:
    if not path.exists():
        return None
    try:
        run = read_run(path)
    except ValueError as e:
        logger.warning("Rerunning trial: its run file %s is unreadable (%s).", path, e)
        return None
    if run.status in DONE_STATUSES or (run.status == "failed" and not retry_failed):
        return run
    return None


def _result_from_run(trial: Trial, run: Run, out_dir: Path, *, skipped=False, seconds=0.0):
    return TrialResult(
        run_id=trial.run_id,
        family=trial.family,
        peak_lr=trial.peak_lr,
        seed=trial.seed,
        path=str(out_dir / f"{trial.run_id}{SUFFIX}"),
        status=run.status,
        skipped=skipped,
        test_metric=run.meta.get("test_metric"),
        seconds=float(run.meta.get("wall_seconds") or seconds),
        error=run.meta.get("error"),
    )


def _progress(total: int, done: int, name: str, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=done, desc=f"sweep {name}", unit="run", file=sys.stderr)


def _tick(bar, result: TrialResult) -> None:
    if bar is not None:
        bar.set_postfix_str(f"{result.run_id}: {result.status}")
        bar.update(1)


# ---------------------------------------------------------------------- subprocesses
def _run_subprocesses(spec, scale, trials, out_dir, workers, timeout, bar):
    from concurrent.futures import ThreadPoolExecutor, as_completed

    def one(t: Trial) -> TrialResult:
        payload = json.dumps(
            {
                "task": spec,
                "scale": scale,
                "out_dir": str(out_dir),
                "family": t.family,
                "peak_lr": t.peak_lr,
                "seed": t.seed,
            }
        )
        t0 = time.perf_counter()
        path = out_dir / f"{t.run_id}{SUFFIX}"
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "keras_lode.sweep", payload],
                capture_output=True,
                text=True,
                timeout=timeout,
            )
            error = (
                None
                if proc.returncode == 0
                else (f"trial process exited with code {proc.returncode}: {proc.stderr[-2000:]}")
            )
        except subprocess.TimeoutExpired:
            error = f"trial process killed after timeout={timeout} s"
        run = None
        if path.exists():
            try:
                run = read_run(path)
            except ValueError:
                run = None
        if run is None or (error and run.status not in ("failed", *DONE_STATUSES)):
            run = Run(
                [],
                [],
                [],
                [],
                [],
                meta={
                    "task": spec,
                    "schedule": t.family,
                    "peak_lr": t.peak_lr,
                    "seed": t.seed,
                    "run_id": t.run_id,
                    "status": "failed",
                    "error": error or "no run file written",
                },
            )
            write_run(run, path)
        return _result_from_run(t, run, out_dir, seconds=time.perf_counter() - t0)

    out = {}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(one, t): t for t in trials}
        for fut in as_completed(futures):
            out[futures[fut]] = fut.result()
            _tick(bar, out[futures[fut]])
    return out


def _trial_main(argv: Sequence[str]) -> int:
    """Entry point of an isolated trial: `python -m keras_lode.sweep '<json>'`."""
    args = json.loads(argv[0])
    task = load_task(args["task"], args.get("scale"))
    trial = Trial(args["family"], float(args["peak_lr"]), int(args["seed"]))
    result = run_trial(task, trial, args["out_dir"])
    print(json.dumps(dataclasses.asdict(result)))
    return 0


# ---------------------------------------------------------------------- Ray Tune
def _ray_trainable(config, task=None, scale=None, out_dir=None):
    from ray import tune

    resolved = load_task(task, scale)
    t = config["trial"]
    result = run_trial(resolved, Trial(t["family"], float(t["peak_lr"]), int(t["seed"])), out_dir)
    tune.report(
        {
            "status": result.status,
            "test_metric": float("nan") if result.test_metric is None else result.test_metric,
            "run_id": result.run_id,
        }
    )


def _run_ray(task, resolved, trials, out_dir, address, workers, scale, cpus, gpus, bar):
    try:
        import ray
        from ray import tune
    except ImportError as e:
        raise ImportError("The ray engine needs Ray Tune: pip install 'keras_lode[ray]'") from e

    started = not ray.is_initialized()
    if started:
        import keras

        # Workers must train on the same Keras backend as this process.
        env = {"KERAS_BACKEND": keras.backend.backend()}
        kwargs: dict[str, Any] = {"runtime_env": {"env_vars": env}, "log_to_driver": False}
        if address is None:
            kwargs["include_dashboard"] = False
        ray.init(address=address, **kwargs)
    # A Task object travels pickled by Ray; a spec string is imported by each worker.
    payload = task if isinstance(task, str) else resolved
    by_id = {t.run_id: t for t in trials}

    class _Progress(tune.Callback):
        def on_trial_complete(self, iteration, trials, trial, **info):
            if bar is not None:
                result = trial.last_result or {}
                bar.set_postfix_str(f"{result.get('run_id', '')}: {result.get('status', '')}")
                bar.update(1)

        def on_trial_error(self, iteration, trials, trial, **info):
            if bar is not None:
                bar.update(1)

    storage = tempfile.mkdtemp(prefix="keras_lode_ray_")
    try:
        trainable = tune.with_resources(
            tune.with_parameters(_ray_trainable, task=payload, scale=scale, out_dir=str(out_dir)),
            {"cpu": cpus, "gpu": gpus},
        )
        tuner = tune.Tuner(
            trainable,
            param_space={"trial": tune.grid_search([dataclasses.asdict(t) for t in trials])},
            tune_config=tune.TuneConfig(
                max_concurrent_trials=workers if workers > 1 else None,
                # Reusing the trial actors pays the Keras import and the data load once
                # per worker instead of once per trial.
                reuse_actors=True,
            ),
            run_config=tune.RunConfig(
                name=f"sweep_{resolved.name}",
                storage_path=storage,
                verbose=0,
                callbacks=[_Progress()],
            ),
        )
        grid = tuner.fit()
        errors = {}
        for res in grid:
            if res.error is not None:
                t = res.config["trial"]
                errors[run_name(t["family"], t["peak_lr"], t["seed"])] = repr(res.error)
    finally:
        import shutil

        shutil.rmtree(storage, ignore_errors=True)
        if started:  # leave no Ray processes behind that this call started
            ray.shutdown()
    out = {}
    for rid, t in by_id.items():
        path = out_dir / f"{rid}{SUFFIX}"
        run = None
        if path.exists():
            try:
                run = read_run(path)
            except ValueError:
                run = None
        if run is None:
            # The worker died before it could record the trial (e.g. out of memory).
            run = Run(
                [],
                [],
                [],
                [],
                [],
                meta={
                    "task": resolved.name,
                    "schedule": t.family,
                    "peak_lr": t.peak_lr,
                    "seed": t.seed,
                    "run_id": rid,
                    "status": "failed",
                    "error": errors.get(rid, "Ray trial ended without a run file"),
                },
            )
            write_run(run, path)
        out[t] = _result_from_run(t, run, out_dir)
    return out


if __name__ == "__main__":
    # Run the trial through the imported module, not this `__main__` copy, so that the
    # task file's `keras_lode.sweep.Task` is the class `load_task` checks against.
    from keras_lode.sweep import _trial_main as _main

    sys.exit(_main(sys.argv[1:]))
