"""MLflow runs as runs: `from_mlflow` imports every run of an MLflow experiment.

An MLflow run keeps whatever resolution it was logged at (`step_unit` says what MLflow's
`step` means). A run without a learning-rate history uses its logged LR parameter as a
constant and is flagged `lr_from_param`. A missing loss or metric key raises a
`ValueError` that names the key and lists the available ones.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from keras_lode.runs.parsing import positive_int, to_float
from keras_lode.runs.run import Run

__all__ = ["from_mlflow"]

_STATUS_FROM_MLFLOW = {
    "FINISHED": "complete",
    "RUNNING": "running",
    "SCHEDULED": "running",
    "FAILED": "failed",
    "KILLED": "failed",
}


def from_mlflow(
    experiment: str,
    *,
    tracking_uri: str | None = None,
    loss_key: str = "loss",
    metric_key: str = "val_accuracy",
    lr_key: str = "learning_rate",
    lr_param: str | Sequence[str] = ("learning_rate", "lr", "peak_lr"),
    step_unit: str = "epoch",
    steps_per_epoch: int | None = None,
    test_metric_key: str | None = None,
    run_ids: Iterable[str] | None = None,
    filter_string: str = "",
    meta: Mapping[str, Any] | None = None,
) -> list[Run]:
    """Imports the runs of an MLflow experiment.

    The log points of a run are the MLflow steps at which `loss_key` was logged; the
    metric and the learning rate are read at the same steps (NaN where the metric was
    not logged; the last earlier LR where the LR was not, flagged `lr_filled`). A run
    without an LR history uses its LR *parameter* (the first of `lr_param` it has) as a
    constant and is flagged `lr_from_param`. Known parameters fill the metadata:
    `schedule`, `seed`, `peak_lr`, `epochs`, `steps_per_epoch`, `optimizer_name`/`optimizer`,
    `model`; all parameters are kept under `meta["mlflow"]["params"]`.

    Example:

    ```python
    runs = from_mlflow("fmnist-sweep", tracking_uri="sqlite:///mlflow.db",
                       metric_key="val_accuracy", step_unit="epoch")
    ```

    Args:
        experiment: experiment name (or id).
        tracking_uri: the tracking store (default: MLflow's current one).
        loss_key: metric key of the training loss.
        metric_key: metric key of the validation metric.
        lr_key: metric key of the learning-rate history.
        lr_param: parameter name(s) holding the LR, used when `lr_key` is absent.
        step_unit: what MLflow's `step` counts: `"epoch"` (0-based epoch index, as Keras
            autologging logs; one point per epoch, flagged `epoch_level`) or `"step"`
            (the global optimizer step).
        steps_per_epoch: optimizer steps per epoch (default: the run's
            `steps_per_epoch` parameter, if any).
        test_metric_key: metric key of the final test metric, if logged.
        run_ids: import only these runs.
        filter_string: an MLflow search filter, e.g. `"params.seed = '0'"`.
        meta: extra metadata for every run.

    Returns:
        A list of `Run`, one per MLflow run, oldest first.

    Raises:
        ImportError: if MLflow is not installed.
        ValueError: unknown experiment (listing the available ones), a missing loss
            or metric key (naming it, listing the run's keys), no LR history and no LR
            parameter, or a bad argument.
    """
    if step_unit not in ("epoch", "step"):
        raise ValueError(f"Argument `step_unit` must be 'epoch' or 'step'. Received: {step_unit!r}")
    try:
        from mlflow.tracking import MlflowClient
    except ImportError as e:
        raise ImportError(
            "Importing MLflow runs needs MLflow: pip install 'keras_lode[mlflow]'"
        ) from e
    keys = _Keys(
        loss_key=loss_key,
        metric_key=metric_key,
        lr_key=lr_key,
        lr_params=(lr_param,) if isinstance(lr_param, str) else tuple(lr_param),
        step_unit=step_unit,
        steps_per_epoch=steps_per_epoch,
        test_metric_key=test_metric_key,
        meta=meta,
    )
    client = MlflowClient(tracking_uri=tracking_uri)
    exp = _experiment(client, experiment)
    infos = _search_runs(client, exp, filter_string, run_ids)
    return [_mlflow_run(client, r, exp, keys) for r in infos]


@dataclasses.dataclass(frozen=True)
class _Keys:
    """What `from_mlflow` reads from every run (its arguments, as documented there)."""

    loss_key: str
    metric_key: str
    lr_key: str
    lr_params: tuple[str, ...]
    step_unit: str
    steps_per_epoch: int | None
    test_metric_key: str | None
    meta: Mapping[str, Any] | None


def _experiment(client, experiment):
    """The experiment named (or numbered) `experiment`; an error lists the available ones."""
    exp = client.get_experiment_by_name(str(experiment))
    if exp is None and str(experiment).isdigit():
        try:
            exp = client.get_experiment(str(experiment))
        except Exception:
            exp = None
    if exp is None:
        names = sorted(e.name for e in client.search_experiments())
        raise ValueError(
            f"No MLflow experiment {experiment!r} in tracking store {client.tracking_uri!r}. "
            f"Available experiments: {names}"
        )
    return exp


def _search_runs(client, exp, filter_string: str, run_ids) -> list:
    """The experiment's runs matching `filter_string`, oldest first (only `run_ids` if given)."""
    infos = []
    token = None
    while True:
        page = client.search_runs(
            [exp.experiment_id],
            filter_string=filter_string,
            max_results=1000,
            order_by=["attributes.start_time ASC"],
            page_token=token,
        )
        infos.extend(page)
        token = page.token
        if not token:
            break
    if run_ids is not None:
        wanted = list(run_ids)
        found = {r.info.run_id for r in infos}
        missing = [r for r in wanted if r not in found]
        if missing:
            raise ValueError(
                f"Argument `run_ids`: runs {missing} are not in experiment {exp.name!r}."
            )
        infos = [r for r in infos if r.info.run_id in set(wanted)]
    return infos


def _mlflow_history(client, run_id: str, key: str) -> tuple[np.ndarray, np.ndarray, bool]:
    """(steps, values, had_duplicates) of one metric; the last value logged at a step wins."""
    history = sorted(client.get_metric_history(run_id, key), key=lambda m: (m.step, m.timestamp))
    by_step: dict[int, float] = {}
    for m in history:
        by_step[int(m.step)] = float(m.value)
    steps = np.array(sorted(by_step), dtype=np.int64)
    values = np.array([by_step[s] for s in steps], dtype=np.float64)
    return steps, values, len(by_step) != len(history)


def _mlflow_run(client, mrun, exp, keys: _Keys) -> Run:
    """One MLflow run as a `Run`: points at the steps where the loss was logged."""
    run_id = mrun.info.run_id
    metrics = mrun.data.metrics
    params = dict(mrun.data.params)
    where = f"MLflow run {run_id} ({mrun.info.run_name!r}) of experiment {exp.name!r}"
    for arg, key in (("loss_key", keys.loss_key), ("metric_key", keys.metric_key)):
        if key not in metrics:
            raise ValueError(
                f"{where} has no metric `{key}` (argument `{arg}`={key!r}). "
                f"Available metric keys: {sorted(metrics)}"
            )
    flags: list[str] = []
    steps, loss, dup = _mlflow_history(client, run_id, keys.loss_key)
    m_steps, m_vals, dup_m = _mlflow_history(client, run_id, keys.metric_key)
    metric = np.full(len(steps), np.nan)
    pos = np.searchsorted(steps, m_steps)
    ok = (pos < len(steps)) & (steps[np.minimum(pos, len(steps) - 1)] == m_steps)
    metric[pos[ok]] = m_vals[ok]
    if dup or dup_m:
        flags.append("mlflow_duplicate_steps")
    lr = _mlflow_lr(client, run_id, steps, keys, metrics, params, where, flags)

    spe = keys.steps_per_epoch
    spe = spe if spe is not None else params.get("steps_per_epoch")
    spe = positive_int("steps_per_epoch", spe) if spe not in (None, "", "None") else None
    gsteps, epoch, ppe = _mlflow_time(steps, keys.step_unit, spe, params, flags)

    status = _STATUS_FROM_MLFLOW.get(mrun.info.status, "complete")
    if status == "complete" and not np.all(np.isfinite(loss)):
        status = "diverged"
    info: dict[str, Any] = {
        "run_id": run_id,
        "task": params.get("task", exp.name),
        "model": params.get("model"),
        "optimizer": params.get("optimizer_name", params.get("optimizer")),
        "schedule": params.get("schedule"),
        "seed": _int_param(params, "seed"),
        "peak_lr": _float_param(params, "peak_lr"),
        "steps_per_epoch": spe,
        "points_per_epoch": ppe,
        "epochs": _int_param(params, "epochs"),
        "total_steps": _int_param(params, "total_steps"),
        "status": status,
        "metric_name": keys.metric_key,
        "mlflow": {
            "run_id": run_id,
            "run_name": mrun.info.run_name,
            "experiment_id": exp.experiment_id,
            "experiment": exp.name,
            "params": params,
        },
    }
    if info["peak_lr"] is None and len(lr) and np.any(np.isfinite(lr)):
        info["peak_lr"] = float(np.nanmax(lr))
    if info["total_steps"] is None and len(gsteps):
        info["total_steps"] = int(gsteps[-1])
    if keys.test_metric_key is not None:
        if keys.test_metric_key not in metrics:
            raise ValueError(
                f"{where} has no metric `{keys.test_metric_key}` (argument `test_metric_key`). "
                f"Available metric keys: {sorted(metrics)}"
            )
        info["test_metric"] = float(metrics[keys.test_metric_key])
    merged = {**info, **(dict(keys.meta) if keys.meta else {})}
    merged["flags"] = list(merged.get("flags", [])) + flags
    return Run(gsteps, epoch, lr, loss, metric, meta=merged)


def _mlflow_lr(client, run_id, steps, keys: _Keys, metrics, params, where, flags) -> np.ndarray:
    """The LR at each point: from the LR history, else the constant LR parameter."""
    if keys.lr_key in metrics:
        lr_steps, lr_vals, _ = _mlflow_history(client, run_id, keys.lr_key)
        # The LR is piecewise constant between logs: use the last value logged at or
        # before each point (the first logged value before the first LR log).
        idx = np.searchsorted(lr_steps, steps, side="right") - 1
        exact = np.isin(steps, lr_steps)
        lr = lr_vals[np.clip(idx, 0, len(lr_vals) - 1)]
        if not np.all(exact):
            flags.append("lr_filled")
        return lr
    name = next((p for p in keys.lr_params if p in params), None)
    if name is None:
        raise ValueError(
            f"{where} has no learning-rate history `{keys.lr_key}` (argument `lr_key`) and "
            f"no learning-rate parameter among {list(keys.lr_params)} (argument `lr_param`). "
            f"Available metric keys: {sorted(metrics)}; parameters: {sorted(params)}"
        )
    value = to_float(params[name], f"{where} parameter {name!r}")
    flags.append("lr_from_param")
    return np.full(len(steps), value)


def _mlflow_time(steps, step_unit: str, spe, params, flags):
    """`(global steps, epoch, points per epoch)` of the points, from what `step` counts."""
    if step_unit == "epoch":
        epoch = steps.astype(np.float64) + 1.0
        flags.append("epoch_level")
        if spe is not None:
            gsteps = (epoch * spe).astype(np.int64)
        else:
            gsteps = epoch.astype(np.int64)
            flags.append("steps_unknown")
        return gsteps, epoch, 1
    if spe is not None:
        epoch = steps / spe
        gaps = np.diff(steps)
        ppe = int(round(spe / float(np.median(gaps)))) if len(gaps) else None
    else:
        epoch = np.full(len(steps), np.nan)
        flags.append("epoch_unknown")
        ppe = _int_param(params, "points_per_epoch")
    return steps, epoch, ppe


def _int_param(params: Mapping[str, str], key: str) -> int | None:
    try:
        return int(float(params[key]))
    except (KeyError, TypeError, ValueError):
        return None


def _float_param(params: Mapping[str, str], key: str) -> float | None:
    try:
        return float(params[key])
    except (KeyError, TypeError, ValueError):
        return None
