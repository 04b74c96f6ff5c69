"""Importers: turn the runs you already have into `keras_lode.Run`s.

- `from_csv_logger(path)`: a file written by `keras.callbacks.CSVLogger`.
- `from_history(history)`: the `History` object returned by `model.fit` (or its dict).
- `from_mlflow(experiment, tracking_uri=...)`: every run of an MLflow experiment.

Keras logs are **epoch-level**, so an imported run has one log point per epoch (P=1)
and loses what a `RunRecorder` measures inside an epoch: the learning rate at each
point (the logged value is the one at the *end* of the epoch, after the epoch's last
step), the loss of each interval (the epoch loss is the mean over the whole epoch)
and the validation metric between epoch ends. Such runs carry the flag `epoch_level`.
An MLflow run keeps whatever resolution it was logged at (`step_unit` says what MLflow's
`step` means).

A run without a learning-rate history falls back to a constant learning rate — the
`learning_rate=` argument, or for MLflow the logged LR parameter — and is flagged
`lr_from_param`. A missing loss or metric key raises a `ValueError` that names the key
and lists the available ones.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from keras_lode.runs import Run

_LR_KEYS = ("learning_rate", "lr")
_STATUS_FROM_MLFLOW = {
    "FINISHED": "complete",
    "RUNNING": "running",
    "SCHEDULED": "running",
    "FAILED": "failed",
    "KILLED": "failed",
}


# ---------------------------------------------------------------------- Keras logs
def from_csv_logger(
    path: str | os.PathLike,
    *,
    loss_key: str = "loss",
    metric_key: str = "val_accuracy",
    lr_key: str | None = None,
    learning_rate: float | None = None,
    steps_per_epoch: int | None = None,
    meta: Mapping[str, Any] | None = None,
) -> Run:
    """Imports a `keras.callbacks.CSVLogger` file as an epoch-level `Run`.

    Example:

    ```python
    model.fit(x, y, validation_data=(xv, yv), epochs=20,
              callbacks=[keras.callbacks.CSVLogger("log.csv")])
    run = from_csv_logger("log.csv", steps_per_epoch=469, meta={"seed": 0})
    ```

    Args:
        path: the CSV file (columns `epoch`, `loss`, `val_accuracy`, ...).
        loss_key: column of the training loss.
        metric_key: column of the validation metric.
        lr_key: column of the learning rate; `None` tries `learning_rate` then `lr`.
        learning_rate: constant LR to use when the file has no LR column
            (the run is flagged `lr_from_param`).
        steps_per_epoch: optimizer steps per epoch; gives the `step` column real
            global steps (otherwise `step` counts epochs and the run is flagged
            `steps_unknown`).
        meta: extra metadata for the run (task, schedule, peak_lr, seed, ...).

    Returns:
        A `Run` with one point per epoch, flagged `epoch_level`.

    Raises:
        ValueError: a missing key (naming it and listing the columns), no LR
            column and no `learning_rate`, or a value that is not a number.
    """
    path = Path(path)
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames:
            raise ValueError(f"CSV log {path} is empty; expected a header row from CSVLogger.")
        columns: dict[str, list[float]] = {k: [] for k in reader.fieldnames}
        for lineno, row in enumerate(reader, start=2):
            if None in row or any(v is None for v in row.values()):
                raise ValueError(
                    f"CSV log {path} line {lineno} has a different number of fields than its "
                    f"header {reader.fieldnames}."
                )
            for k, v in row.items():
                columns[k].append(_to_float(v, f"CSV log {path} line {lineno} column {k!r}"))
    epochs = columns.pop("epoch", None)
    return _epoch_level_run(
        columns,
        epochs,
        source=f"CSV log {path}",
        loss_key=loss_key,
        metric_key=metric_key,
        lr_key=lr_key,
        learning_rate=learning_rate,
        steps_per_epoch=steps_per_epoch,
        meta=meta,
    )


def from_history(
    history,
    *,
    loss_key: str = "loss",
    metric_key: str = "val_accuracy",
    lr_key: str | None = None,
    learning_rate: float | None = None,
    steps_per_epoch: int | None = None,
    meta: Mapping[str, Any] | None = None,
) -> Run:
    """Imports a Keras `History` (returned by `model.fit`) as an epoch-level `Run`.

    Example:

    ```python
    history = model.fit(x, y, validation_split=0.1, epochs=5)
    run = from_history(history, meta={"schedule": "cosine", "peak_lr": 1e-3, "seed": 0})
    ```

    Args:
        history: a `keras.callbacks.History` or its `history` dict (key -> list).
        loss_key, metric_key, lr_key, learning_rate, meta: as in `from_csv_logger`.
        steps_per_epoch: as in `from_csv_logger`; defaults to `history.params["steps"]`.

    Returns:
        A `Run` with one point per epoch, flagged `epoch_level`.

    Raises:
        ValueError: as `from_csv_logger`.
        TypeError: if `history` is neither a `History` nor a dict.
    """
    epochs = None
    if isinstance(history, Mapping):
        logs = history
    elif isinstance(getattr(history, "history", None), Mapping):
        logs = history.history
        params = getattr(history, "params", None) or {}
        if steps_per_epoch is None and params.get("steps"):
            steps_per_epoch = int(params["steps"])
        if getattr(history, "epoch", None):
            epochs = [float(e) for e in history.epoch]
    else:
        raise TypeError(
            "Argument `history` must be a keras.callbacks.History or a dict of lists. "
            f"Received: {type(history).__name__}"
        )
    columns = {
        k: [_to_float(v, f"History key {k!r}") for v in _as_list(vals, k)]
        for k, vals in logs.items()
    }
    extra_flags = []
    has_lr = any(key in columns for key in ((lr_key,) if lr_key else _LR_KEYS))
    if not has_lr and learning_rate is None:
        # Keras does not log the LR by default; the optimizer that trained the model can
        # still tell which LR was in effect at each step.
        n = len(columns.get(loss_key, []))
        lr = _lr_from_optimizer(getattr(history, "model", None), n, steps_per_epoch, epochs)
        if lr is not None:
            columns["learning_rate"] = list(lr[0])
            lr_key = "learning_rate"
            extra_flags.append(lr[1])
    run = _epoch_level_run(
        columns,
        epochs,
        source="History",
        loss_key=loss_key,
        metric_key=metric_key,
        lr_key=lr_key,
        learning_rate=learning_rate,
        steps_per_epoch=steps_per_epoch,
        meta=meta,
    )
    for flag in extra_flags:
        run.add_flag(flag)
    return run


def _lr_from_optimizer(model, n_epochs, steps_per_epoch, epochs):
    """Per-epoch mean LR from the optimizer of a fitted model, with the flag to add."""
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None or n_epochs == 0:
        return None
    import keras

    schedule = getattr(optimizer, "_learning_rate", None)
    if isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
        if not steps_per_epoch:
            return None
        first = np.asarray(epochs if epochs is not None else range(n_epochs), dtype=np.int64)
        out = []
        for e in first:
            steps = np.arange(e * steps_per_epoch, (e + 1) * steps_per_epoch)
            values = keras.ops.convert_to_numpy(schedule(keras.ops.convert_to_tensor(steps)))
            out.append(float(np.mean(values)))
        return out, "lr_from_schedule"
    value = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
    return [value] * n_epochs, "lr_from_optimizer"


def _epoch_level_run(
    columns: dict[str, list[float]],
    epochs: list[float] | None,
    *,
    source: str,
    loss_key: str,
    metric_key: str,
    lr_key: str | None,
    learning_rate: float | None,
    steps_per_epoch: int | None,
    meta: Mapping[str, Any] | None,
) -> Run:
    available = sorted(columns)
    for arg, key in (("loss_key", loss_key), ("metric_key", metric_key)):
        if key not in columns:
            raise ValueError(
                f"{source} has no {arg.split('_')[0]} key `{key}` (argument `{arg}`={key!r}). "
                f"Available keys: {available}"
            )
    loss = np.asarray(columns[loss_key], dtype=np.float64)
    k = len(loss)
    lengths = {key: len(v) for key, v in columns.items()}
    if any(n != k for n in lengths.values()):
        raise ValueError(f"{source} has columns of different lengths: {lengths}")
    flags = ["epoch_level"]
    lr, lr_source = _epoch_lr(columns, lr_key, learning_rate, source, available, k)
    if lr_source == "param":
        flags.append("lr_from_param")
    # Keras counts epochs from 0; the point of epoch e is logged at its end, e + 1.
    idx = np.asarray(epochs if epochs is not None else range(k), dtype=np.float64)
    if len(idx) != k:
        raise ValueError(f"{source}: {len(idx)} epoch indices for {k} rows.")
    epoch = idx + 1.0
    if steps_per_epoch is not None:
        steps_per_epoch = _positive_int("steps_per_epoch", steps_per_epoch)
        step = epoch * steps_per_epoch
    else:
        step = epoch
        flags.append("steps_unknown")
    info = {
        "points_per_epoch": 1,
        "steps_per_epoch": steps_per_epoch,
        "epochs": int(epoch[-1]) if k else 0,
        "total_steps": int(step[-1]) if k else 0,
        "metric_name": metric_key,
        "source": source,
    }
    if lr_source == "param":
        info["peak_lr"] = float(learning_rate)
    merged = {**info, **(dict(meta) if meta else {})}
    if not np.all(np.isfinite(loss)) and merged.get("status", "complete") == "complete":
        merged["status"] = "diverged"
    merged["flags"] = list(merged.get("flags", [])) + flags
    run = Run(step, epoch, lr, loss, columns[metric_key], meta=merged)
    if run.meta.get("peak_lr") is None and k and np.any(np.isfinite(run.lr)):
        run.meta["peak_lr"] = float(np.nanmax(run.lr))
    return run


def _epoch_lr(columns, lr_key, learning_rate, source, available, k):
    keys = (lr_key,) if lr_key is not None else _LR_KEYS
    for key in keys:
        if key in columns:
            return np.asarray(columns[key], dtype=np.float64), "log"
    if lr_key is not None and learning_rate is None:
        raise ValueError(
            f"{source} has no learning-rate key `{lr_key}` (argument `lr_key`). "
            f"Available keys: {available}. Pass `learning_rate=` to use a constant LR."
        )
    if learning_rate is None:
        raise ValueError(
            f"{source} has no learning-rate column (looked for {list(_LR_KEYS)}; available "
            f"keys: {available}). Pass `lr_key=` to name it or `learning_rate=` for a "
            "constant LR."
        )
    lr = float(learning_rate)
    if not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"Argument `learning_rate` must be > 0. Received: {learning_rate!r}")
    return np.full(k, lr), "param"


# ---------------------------------------------------------------------- MLflow
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
    lr_params = (lr_param,) if isinstance(lr_param, str) else tuple(lr_param)
    client = MlflowClient(tracking_uri=tracking_uri)
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
    return [
        _mlflow_run(
            client,
            r,
            exp,
            loss_key=loss_key,
            metric_key=metric_key,
            lr_key=lr_key,
            lr_params=lr_params,
            step_unit=step_unit,
            steps_per_epoch=steps_per_epoch,
            test_metric_key=test_metric_key,
            meta=meta,
        )
        for r in infos
    ]


def _mlflow_history(client, run_id: str, key: str) -> tuple[np.ndarray, np.ndarray, bool]:
    """(steps, values, had_duplicates) of one metric; the last value logged at a step wins."""
    history = sorted(client.get_metric_history(run_id, key), key=lambda m: (m.step, m.timestamp))
    by_step: dict[int, float] = {}
    for m in history:
        by_step[int(m.step)] = float(m.value)
    steps = np.array(sorted(by_step), dtype=np.int64)
    values = np.array([by_step[s] for s in steps], dtype=np.float64)
    return steps, values, len(by_step) != len(history)


def _mlflow_run(
    client,
    mrun,
    exp,
    *,
    loss_key,
    metric_key,
    lr_key,
    lr_params,
    step_unit,
    steps_per_epoch,
    test_metric_key,
    meta,
) -> Run:
    run_id = mrun.info.run_id
    metrics = mrun.data.metrics
    params = dict(mrun.data.params)
    where = f"MLflow run {run_id} ({mrun.info.run_name!r}) of experiment {exp.name!r}"
    for arg, key in (("loss_key", loss_key), ("metric_key", metric_key)):
        if key not in metrics:
            raise ValueError(
                f"{where} has no metric `{key}` (argument `{arg}`={key!r}). "
                f"Available metric keys: {sorted(metrics)}"
            )
    flags: list[str] = []
    steps, loss, dup = _mlflow_history(client, run_id, loss_key)
    m_steps, m_vals, dup_m = _mlflow_history(client, run_id, metric_key)
    metric = np.full(len(steps), np.nan)
    pos = np.searchsorted(steps, m_steps)
    ok = (pos < len(steps)) & (steps[np.minimum(pos, len(steps) - 1)] == m_steps)
    metric[pos[ok]] = m_vals[ok]
    if dup or dup_m:
        flags.append("mlflow_duplicate_steps")

    if lr_key in metrics:
        lr_steps, lr_vals, _ = _mlflow_history(client, run_id, lr_key)
        # The LR is piecewise constant between logs: use the last value logged at or
        # before each point (the first logged value before the first LR log).
        idx = np.searchsorted(lr_steps, steps, side="right") - 1
        exact = np.isin(steps, lr_steps)
        lr = lr_vals[np.clip(idx, 0, len(lr_vals) - 1)]
        if not np.all(exact):
            flags.append("lr_filled")
    else:
        name = next((p for p in lr_params if p in params), None)
        if name is None:
            raise ValueError(
                f"{where} has no learning-rate history `{lr_key}` (argument `lr_key`) and "
                f"no learning-rate parameter among {list(lr_params)} (argument `lr_param`). "
                f"Available metric keys: {sorted(metrics)}; parameters: {sorted(params)}"
            )
        value = _to_float(params[name], f"{where} parameter {name!r}")
        lr = np.full(len(steps), value)
        flags.append("lr_from_param")

    spe = steps_per_epoch if steps_per_epoch is not None else params.get("steps_per_epoch")
    spe = _positive_int("steps_per_epoch", spe) if spe not in (None, "", "None") else None
    if step_unit == "epoch":
        epoch = steps.astype(np.float64) + 1.0
        flags.append("epoch_level")
        if spe is not None:
            gsteps = (epoch * spe).astype(np.int64)
        else:
            gsteps = epoch.astype(np.int64)
            flags.append("steps_unknown")
        ppe = 1
    else:
        gsteps = steps
        if spe is not None:
            epoch = steps / spe
            gaps = np.diff(steps)
            ppe = int(round(spe / float(np.median(gaps)))) if len(gaps) else None
        else:
            epoch = np.full(len(steps), np.nan)
            flags.append("epoch_unknown")
            ppe = _int_param(params, "points_per_epoch")

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
        "metric_name": metric_key,
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
    if test_metric_key is not None:
        if test_metric_key not in metrics:
            raise ValueError(
                f"{where} has no metric `{test_metric_key}` (argument `test_metric_key`). "
                f"Available metric keys: {sorted(metrics)}"
            )
        info["test_metric"] = float(metrics[test_metric_key])
    merged = {**info, **(dict(meta) if meta else {})}
    merged["flags"] = list(merged.get("flags", [])) + flags
    return Run(gsteps, epoch, lr, loss, metric, meta=merged)


# ---------------------------------------------------------------------- helpers
def _to_float(value, where: str) -> float:
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return math.nan  # CSVLogger leaves a cell empty when a key is missing that epoch
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: expected a number, received {value!r}.") from None


def _as_list(values, key: str) -> list:
    if isinstance(values, str) or not isinstance(values, Iterable):
        raise TypeError(f"History key {key!r} must hold a list of numbers. Received: {values!r}")
    return [float(np.asarray(v)) for v in values]


def _positive_int(name: str, value) -> int:
    try:
        as_float = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"Argument `{name}` must be a positive int. Received: {value!r}") from None
    if not as_float.is_integer() or as_float <= 0:
        raise ValueError(f"Argument `{name}` must be a positive int. Received: {value!r}")
    return int(as_float)


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
