"""RunRecorder: records a `keras_lode.Run` during `model.fit`, on any Keras backend.

The log-point logic (interval losses, validation at the point) lives in
`keras_lode.callbacks.observer.LogPointObserver`, shared with `LODECallback`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from keras_lode.callbacks.observer import LogPointObserver
from keras_lode.model.lr_ceiling import optimizer_name
from keras_lode.runs.run import Run


class RunRecorder(LogPointObserver):
    """Records a `keras_lode.Run` of a `model.fit` at P log points per epoch.

    At each log point it records the global step, the epoch fraction, the LR in
    effect, the mean training loss over the steps since the previous log point and
    the validation metric measured at that point on a fixed validation subset
    (with the model's inference call, which leaves the training metrics alone). It writes
    `logs["learning_rate"]` so History/CSVLogger/TensorBoard record the LR. At the
    end of training the run is written atomically to `path` with status
    `"complete"`, or `"diverged"` if a loss went non-finite (the run is kept and
    flagged). Its own cost is reported in `run.meta["recorder_seconds"]` and
    `run.meta["recorder_fraction"]` (share of the fit's wall time).

    Example:

    ```python
    recorder = keras_lode.RunRecorder("runs/", validation_data=(x_val, y_val),
                                      meta={"task": "fmnist_cnn", "schedule": "cosine",
                                            "peak_lr": 1e-3, "seed": 0})
    model.fit(x, y, epochs=8, callbacks=[recorder])
    recorder.run.channels()        # (80, 3): loss, ln lr, accuracy
    ```

    Args:
        path: file (`*.run.csv`) or directory to write the run to at train end;
            None keeps it only in `self.run`.
        points_per_epoch: log points per epoch P.
        validation_data: `(x, y)` arrays for the validation metric (None: metric NaN).
        validation_samples: size of the fixed validation subset.
        metric: `"accuracy"` (or another name of `ValidationProbe`) or a callable.
        validation_batch_size: predict batch of the validation measurement; None
            picks the backend's cheapest (see `ValidationProbe`).
        meta: metadata for the run (task, schedule, peak_lr, seed, ...).
        verbose: 1 prints one line per epoch with the last log point.
        mode: `"max"` (an accuracy, the default) or `"min"` (a validation loss,
            perplexity, bits per character): the metric's direction, stored as
            `meta["mode"]`; a LODE trained on the runs inherits it.

    Raises:
        ValueError / TypeError: on invalid arguments (named in the message).
    """

    def __init__(
        self,
        path=None,
        *,
        points_per_epoch: int = 10,
        validation_data=None,
        validation_samples: int = 1024,
        metric: str | Callable = "accuracy",
        validation_batch_size: int | None = None,
        meta: Mapping[str, Any] | None = None,
        verbose: int = 0,
        mode: str = "max",
    ):
        super().__init__(
            points_per_epoch, validation_data, validation_samples, metric, validation_batch_size
        )
        if meta is not None and not isinstance(meta, Mapping):
            raise TypeError(f"Argument `meta` must be a dict. Received: meta={meta!r}")
        if mode not in ("max", "min"):
            raise ValueError(f"Argument `mode` must be 'max' or 'min'. Received: mode={mode!r}")
        self.path = Path(path) if path is not None else None
        self.meta = {"mode": mode, **dict(meta or {})}
        self.verbose = int(verbose)
        self.run = None
        self._rows: list[tuple] = []

    def _fit_begin(self) -> None:
        self._rows = []
        self._partial = False
        self.run = None
        self._t_begin = time.perf_counter()

    def on_log_point(self, point: dict, logs: dict) -> None:
        self._rows.append(
            (point["step"], point["epoch"], point["lr"], point["loss"], point["metric"])
        )
        logs["learning_rate"] = point["lr"]

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        t0 = time.perf_counter()
        if logs is not None and self._rows:
            logs["learning_rate"] = self._rows[-1][2]
        if self.verbose and self._rows:
            step, ep, lr, loss, metric = self._rows[-1]
            print(
                f"Epoch {epoch + 1}: RunRecorder point {len(self._rows)} step {step} "
                f"lr {lr:.4g} interval loss {loss:.4f} {self.metric_name} {metric:.4f}"
            )
        self.seconds += time.perf_counter() - t0

    def on_partial_point(self, point: dict, logs: dict) -> None:
        # The steps an early stop ran after the last log point (often where the loss
        # went non-finite): kept as the run's last row and flagged `partial_last_point`.
        self._partial = True
        self.on_log_point(point, logs)

    @property
    def rows(self) -> list[tuple]:
        """The points recorded so far, `(step, epoch, lr, loss, metric)` each; do not modify."""
        return self._rows

    def on_train_end(self, logs=None):
        super().on_train_end(logs)  # points still waiting to be read
        t0 = time.perf_counter()
        rows = self._rows
        cols = list(zip(*rows, strict=True)) if rows else [[], [], [], [], []]
        optimizer = getattr(self.model, "optimizer", None)
        lrs = np.asarray(cols[2], dtype=np.float64)
        losses = np.asarray(cols[3], dtype=np.float64)
        diverged = bool(len(losses)) and not np.all(np.isfinite(losses))
        meta = {
            # A LossScaleOptimizer is named by the one it wraps, whose LR scale counts.
            "optimizer": optimizer_name(optimizer) if optimizer is not None else None,
            "peak_lr": float(np.nanmax(lrs)) if np.any(np.isfinite(lrs)) else None,
            "metric_name": self.metric_name,
        }
        meta.update(self.meta)  # the user's values win
        wall = max(time.perf_counter() - getattr(self, "_t_begin", t0), 1e-9)
        meta.update(
            {
                "steps_per_epoch": self.steps_per_epoch,
                "points_per_epoch": self.points_per_epoch,
                "epochs": self.epochs,
                "total_steps": self.steps_per_epoch * self.epochs,
                "status": "diverged" if diverged else "complete",
                "validation_samples": self.probe.samples if self.probe else 0,
            }
        )
        flags = list(meta.get("flags") or [])
        if len(rows) - self._partial < self.total_points:
            flags.append("stopped_early")
        if self._partial:
            flags.append("partial_last_point")
        meta["flags"] = flags
        self.seconds += time.perf_counter() - t0
        meta["recorder_seconds"] = round(self.seconds, 4)
        meta["recorder_fraction"] = round(self.seconds / wall, 5)
        self.run = Run(*cols, meta=meta)
        if self.path is not None:
            self.run.save(self.path)
