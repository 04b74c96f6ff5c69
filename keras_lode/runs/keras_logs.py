"""Keras logs as runs: `from_csv_logger` (a `CSVLogger` file) and `from_history` (a `History`).

Keras logs are **epoch-level**, so an imported run has one log point per epoch (P=1)
and loses what a `RunRecorder` measures inside an epoch: the learning rate at each
point (the logged value is the one at the *end* of the epoch, after the epoch's last
step), the loss of each interval (the epoch loss is the mean over the whole epoch)
and the validation metric between epoch ends. Such runs carry the flag `epoch_level`.

A run without a learning-rate history falls back to a constant learning rate, the
`learning_rate=` argument, and is flagged `lr_from_param`. A missing loss or metric key
raises a `ValueError` that names the key and lists the available ones.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from keras_lode.runs.parsing import positive_int, to_float
from keras_lode.runs.run import Run

__all__ = ["from_csv_logger", "from_history"]

_LR_KEYS = ("learning_rate", "lr")


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
                columns[k].append(to_float(v, f"CSV log {path} line {lineno} column {k!r}"))
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
        k: [to_float(v, f"History key {k!r}") for v in _as_list(vals, k)]
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
        steps_per_epoch = positive_int("steps_per_epoch", steps_per_epoch)
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


def _as_list(values, key: str) -> list:
    if isinstance(values, str) or not isinstance(values, Iterable):
        raise TypeError(f"History key {key!r} must hold a list of numbers. Received: {values!r}")
    return [float(np.asarray(v)) for v in values]
