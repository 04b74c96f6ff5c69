"""Sweeps: run a grid of schedule families x peak LRs x seeds on an engine, recording every run.

A sweep is the LODE's training data. `sweep(task, out_dir)` runs one trial per grid
point (`keras_lode.experiments.trial.run_trial`) and writes one run file per trial to
`out_dir/<family>-lr<peak>-seed<seed>.run.csv`.

- A trial that diverges (non-finite loss) is recorded as `"diverged"`; one that raises
  as `"failed"` with the error in `meta["error"]`. The sweep goes on either way.
- Rerunning a sweep skips trials whose run file is already `"complete"` or `"diverged"`
  (failed trials are retried unless `retry_failed=False`), so an interrupted sweep
  resumes where it stopped.
- Engines: `"local"` (in this process, or one subprocess per trial with `isolate=True`
  or `workers > 1`, running `python -m keras_lode.experiments.trial`) and `"ray"` (Ray
  Tune; `address=` joins an existing cluster).

Tasks are given as `Task` objects or as spec strings (see `keras_lode.experiments.task`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from keras_lode._checks import check_int, config_with_options
from keras_lode._json import dumps
from keras_lode.experiments.grid import Trial, TrialResult, make_grid, make_switched_trials
from keras_lode.experiments.trial import run_trial
from keras_lode.runs import SUFFIX, Run, read_run, run_name, write_run
from keras_lode.tasks.loading import absolute_spec, load_task
from keras_lode.tasks.task import Task

logger = logging.getLogger(__name__)

ENGINES = ("local", "ray")
#: Statuses of a run file that a rerun leaves alone.
DONE_STATUSES = ("complete", "diverged")


@dataclasses.dataclass(frozen=True)
class SweepConfig:
    """The options of a `sweep`, checked when built.

    Attributes:
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
        switched: number of switched trials to add after the grid
            (`keras_lode.experiments.grid.make_switched_trials`): grid points re-run from
            the same seed that change schedule mid-run, in groups of `switch_targets`
            continuations of one (base run, switch point). Default 0: a switched run costs
            as much as a grid run, and only the controlled LODE learns from them (about
            one per four grid runs is a good start).
        switch_targets: continuations per group of switched trials.
        switch_seed: seed of the draw of the switched trials.
        branches: branch trials to add once the grid is done (`make_branch_trials`, with
            `branch_candidates`, `branch_window`, `branch_seed`): what `keras-lode
            calibrate` calibrates a controlled LODE's decisions on.

    Raises:
        ValueError: an unknown `engine` or a `workers` that is not a positive int.
    """

    families: Iterable[str] | None = None
    peak_lrs: Iterable[float] | None = None
    seeds: Iterable[int] | None = None
    engine: str = "local"
    address: str | None = None
    workers: int = 1
    isolate: bool = False
    retry_failed: bool = True
    scale: str | None = None
    cpus_per_trial: float = 1
    gpus_per_trial: float = 0
    timeout: float | None = None
    progress: bool = True
    switched: int = 0
    switch_targets: int = 3
    switch_seed: int = 0
    branches: int = 0
    branch_candidates: int = 4
    branch_window: int = 10
    branch_seed: int = 0

    def __post_init__(self):
        if self.engine not in ENGINES:
            raise ValueError(
                f"Argument `engine` must be one of {ENGINES}. Received: {self.engine!r}"
            )
        try:
            check_int("workers", self.workers, minimum=1)
        except (TypeError, ValueError):
            raise ValueError(
                f"Argument `workers` must be a positive int. Received: {self.workers!r}"
            ) from None
        for name, minimum in (("branches", 0), ("branch_candidates", 1), ("branch_window", 2)):
            check_int(name, getattr(self, name), minimum=minimum)


def sweep(
    task: str | Task,
    out_dir: str | os.PathLike,
    config: SweepConfig | None = None,
    **options,
) -> list[TrialResult]:
    """Runs (or resumes) a sweep and returns one `TrialResult` per grid point.

    Example:

    ```python
    from keras_lode.experiments import sweep

    results = sweep("my_tasks.py:TASK", "runs/", peak_lrs=[1e-3, 3e-3], seeds=[0, 1])
    runs = keras_lode.load_runs("runs/", status="complete")
    ```

    Args:
        task: a `Task` or a task spec string (workers of the `ray` engine and
            isolated local trials import it; a `Task` object is pickled instead).
        out_dir: directory of the run files (created if needed).
        config: a `SweepConfig`; None for the defaults.
        **options: fields of `SweepConfig` (`families`, `peak_lrs`, `seeds`, `engine`,
            `address`, `workers`, `isolate`, `retry_failed`, `scale`, `cpus_per_trial`,
            `gpus_per_trial`, `timeout`, `progress`, `switched`, `switch_targets`,
            `switch_seed`, `branches`, `branch_candidates`, `branch_window`,
            `branch_seed`), overriding `config`'s.

    Returns:
        A list of `TrialResult`, in grid order (switched, then branch trials last).

    Raises:
        ValueError: bad arguments or an unresolvable task.
        TypeError: an unknown option.
    """
    cfg = config_with_options(SweepConfig, config, options, "sweep")
    if isinstance(task, str):
        task = absolute_spec(task)
    resolved = load_task(task, cfg.scale)
    trials = _trials(resolved, cfg.families, cfg.peak_lrs, cfg.seeds, cfg.switched,
                     cfg.switch_targets, cfg.switch_seed)  # fmt: skip
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    results = _run_all(task, resolved, trials, out_dir, cfg)
    if cfg.branches:
        ids = {t.run_id for t in trials if t.switch is None}
        branch = _branch_trials(resolved, out_dir, cfg, ids)
        results += _run_all(task, resolved, branch, out_dir, cfg)
    return results


def _branch_trials(task: Task, out_dir: Path, cfg: SweepConfig, ids) -> list[Trial]:
    """The branch trials once the grid (run ids `ids`) is done."""
    from keras_lode.experiments.grid import branch_trials_of
    from keras_lode.runs import load_runs

    grid = [r for r in load_runs(out_dir, kind="grid", on_error="warn") if r.run_id in ids]
    trials = branch_trials_of(grid, cfg.seeds if cfg.seeds is not None else task.seeds,
                              task.epochs * task.points_per_epoch, runs=cfg.branches,
                              candidates=cfg.branch_candidates, window=cfg.branch_window,
                              seed=cfg.branch_seed)  # fmt: skip
    if not trials:
        logger.warning("Sweep %s: no complete grid run to branch from.", task.name)
    return trials


def _run_all(task, resolved: Task, trials, out_dir: Path, cfg: SweepConfig) -> list:
    """Runs the trials not done yet (a rerun skips finished ones); a result per trial."""
    results: dict[Trial, TrialResult] = {}
    pending = []
    for t in trials:
        done = _finished(out_dir / f"{t.run_id}{SUFFIX}", cfg.retry_failed)
        if done is not None:
            results[t] = _result_from_run(t, done, out_dir, skipped=True)
        else:
            pending.append(t)
    if results:
        logger.info(
            "Sweep %s: %d of %d trials already done.", resolved.name, len(results), len(trials)
        )
    bar = _progress(len(trials), len(results), resolved.name, cfg.progress)
    try:
        if pending:
            results.update(_run_pending(task, resolved, pending, out_dir, cfg, bar))
    finally:
        if bar is not None:
            bar.close()
    return [results[t] for t in trials]


def _run_pending(task, resolved: Task, pending, out_dir: Path, cfg: SweepConfig, bar) -> dict:
    """Runs the trials not done yet on the configured engine; `{trial: result}`."""
    if cfg.engine == "ray":
        return _run_ray(task, resolved, pending, out_dir, cfg, bar)
    if cfg.isolate or cfg.workers > 1:
        if not isinstance(task, str):
            raise ValueError(
                "Isolated or parallel local trials import the task in a subprocess: "
                "give `task` as a spec string ('module:attr' or 'file.py:attr'). "
                f"Received a {type(task).__name__}."
            )
        return _run_subprocesses(task, cfg.scale, pending, out_dir, cfg.workers, cfg.timeout, bar)
    ran = {}
    for t in pending:
        ran[t] = run_trial(resolved, t, out_dir)
        _tick(bar, ran[t])
    return ran


def sweep_status(
    task: str | Task,
    out_dir: str | os.PathLike,
    *,
    families: Iterable[str] | None = None,
    peak_lrs: Iterable[float] | None = None,
    seeds: Iterable[int] | None = None,
    retry_failed: bool = True,
    scale: str | None = None,
    switched: int = 0,
    switch_targets: int = 3,
    switch_seed: int = 0,
) -> tuple[Task, list[tuple[Trial, str]]]:
    """What a `sweep` with these arguments would do, without training (`--dry-run`).

    Returns:
        The resolved `Task` and, per grid point in grid order, the `Trial` and either the
        status of its finished run file (a rerun skips it) or `"todo"`.

    Raises:
        ValueError: bad grid or an unresolvable task.
    """
    resolved = load_task(task, scale)
    grid = _trials(resolved, families, peak_lrs, seeds, switched, switch_targets, switch_seed)
    out_dir = Path(out_dir)
    status = []
    for t in grid:
        done = _finished(out_dir / f"{t.run_id}{SUFFIX}", retry_failed)
        status.append((t, done.status if done is not None else "todo"))
    return resolved, status


def _trials(task, families, peak_lrs, seeds, switched, switch_targets, switch_seed):
    families = list(families if families is not None else task.families)
    peak_lrs = list(peak_lrs if peak_lrs is not None else task.peak_lrs)
    seeds = list(seeds if seeds is not None else task.seeds)
    trials = make_grid(families, peak_lrs, seeds)
    if switched:
        trials += make_switched_trials(
            families,
            peak_lrs,
            seeds,
            runs=switched,
            points=task.epochs * task.points_per_epoch,
            targets=switch_targets,
            seed=switch_seed,
        )
    return trials


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
        payload = dumps(
            {
                "task": spec,
                "scale": scale,
                "out_dir": str(out_dir),
                **t.to_dict(),
            }
        )
        t0 = time.perf_counter()
        path = out_dir / f"{t.run_id}{SUFFIX}"
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "keras_lode.experiments.trial", payload],
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


# ---------------------------------------------------------------------- Ray Tune
def _ray_trainable(config, task=None, scale=None, out_dir=None):
    from ray import tune

    resolved = load_task(task, scale)
    t = config["trial"]
    result = run_trial(resolved, Trial.from_dict(t), out_dir)
    tune.report(
        {
            "status": result.status,
            "test_metric": float("nan") if result.test_metric is None else result.test_metric,
            "run_id": result.run_id,
        }
    )


def _run_ray(task, resolved, trials, out_dir, cfg: SweepConfig, bar):
    address, workers, scale = cfg.address, cfg.workers, cfg.scale
    cpus, gpus = cfg.cpus_per_trial, cfg.gpus_per_trial
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
            param_space={"trial": tune.grid_search([t.to_dict() for t in trials])},
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
