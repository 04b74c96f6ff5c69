"""LogPointObserver: the callback base that finds and measures a run's log points.

`RunRecorder` and `LODECallback` both derive from it: it finds the P log points of each
epoch, measures the mean training loss over the steps since the previous log point and
the validation metric at the point, and hands each point to `on_log_point`.

Why not the obvious ways:

- Batch-end `logs["loss"]` is the running mean since the epoch start. The interval
  mean is computed from the loss tracker's (total, count) at consecutive log points,
  i.e. weighted by samples exactly as Keras weights it (falls back to differencing
  the running means by step counts when the model has no loss tracker).
- `model.evaluate` mid-epoch resets the shared metrics, so the validation metric is
  measured with `predict_on_batch` on a fixed validation subset, in fixed-size chunks
  (one trace of the predict function, no retracing for a ragged last chunk).
- On JAX the model state lives in a local tuple during the epoch; every access goes
  through `self.model`, which syncs it (and lets fit pick up assigned variables).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import keras
import numpy as np

from keras_lode._checks import check_int

logger = logging.getLogger(__name__)

_METRICS = ("accuracy", "sparse_categorical_accuracy", "categorical_accuracy", "binary_accuracy")
# Predict batch of the validation probe when none is given: the cheapest per sample on
# each backend's CPU kernels for the example tasks (measured by a validation-cost
# script, now in git history; docs/benchmarks.md).
# PyTorch runs Keras's channels-last layers through layout copies whose cost grows
# out of cache with the batch, so 128-sample chunks take about half the time of one
# 1024 batch there; TensorFlow and JAX are fastest with one large batch. Every chunk
# has the same shape, so the predict function traces once.
_DEFAULT_CHUNK = {"torch": 128}
_MAX_CHUNK = 1024


def default_validation_batch_size(backend: str | None = None) -> int:
    """The predict batch `ValidationProbe` uses when `batch_size` is None."""
    return _DEFAULT_CHUNK.get(backend or keras.backend.backend(), _MAX_CHUNK)


# ---------------------------------------------------------------------- validation metric
def _accuracy(y_true: np.ndarray, y_pred: np.ndarray, kind: str) -> float:
    y_pred = np.asarray(y_pred)
    y_true = np.asarray(y_true)
    if y_pred.ndim >= 2 and y_pred.shape[-1] > 1 and kind != "binary_accuracy":
        pred = np.argmax(y_pred, axis=-1)
        if kind == "categorical_accuracy" or (kind == "accuracy" and y_true.shape == y_pred.shape):
            true = np.argmax(y_true, axis=-1)
        else:
            true = y_true.reshape(pred.shape).astype(np.int64)
        return float(np.mean(pred == true))
    # One output unit: probabilities (or logits, which share the sign of p - 0.5 only
    # when they are probabilities; documented: give a callable for logits).
    pred = (y_pred.reshape(len(y_pred), -1) > 0.5).astype(np.int64)
    true = np.asarray(y_true).reshape(pred.shape).astype(np.int64)
    return float(np.mean(pred == true))


class ValidationProbe:
    """Measures a validation metric on a fixed subset with `predict_on_batch`.

    Args:
        validation_data: `(x, y)` NumPy arrays (or array-likes; `x` may be a list or
            dict of arrays for multi-input models).
        samples: size of the fixed subset (drawn once, seed 0; all if fewer).
        metric: `"accuracy"` (also `"sparse_categorical_accuracy"`,
            `"categorical_accuracy"`, `"binary_accuracy"`) or a callable
            `metric(y_true, y_pred) -> float` on NumPy arrays.
        batch_size: samples per `predict_on_batch` call; None picks the backend's
            cheapest (`default_validation_batch_size()`: 128 on PyTorch, else up to
            1024). It changes the cost, not the value measured.

    Raises:
        ValueError: if `validation_data` is not an `(x, y)` pair of equal lengths,
            `samples` or `batch_size` is not a positive int, or `metric` is an
            unknown name.
    """

    def __init__(
        self, validation_data, samples: int = 1024, metric="accuracy", batch_size: int | None = None
    ):
        if not isinstance(validation_data, tuple | list) or len(validation_data) != 2:
            raise ValueError(
                "Argument `validation_data` must be a tuple `(x, y)` of arrays. "
                f"Received: validation_data of type {type(validation_data).__name__}"
            )
        if isinstance(samples, bool) or not isinstance(samples, int) or samples <= 0:
            raise ValueError(
                f"Argument `validation_samples` must be a positive int. Received: {samples!r}"
            )
        if batch_size is not None and (
            isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0
        ):
            raise ValueError(
                "Argument `validation_batch_size` must be a positive int or None. "
                f"Received: {batch_size!r}"
            )
        if not callable(metric) and metric not in _METRICS:
            raise ValueError(
                f"Argument `metric` must be one of {_METRICS} or a callable "
                f"metric(y_true, y_pred) -> float. Received: metric={metric!r}"
            )
        x, y = validation_data
        x = keras.tree.map_structure(np.asarray, x)
        y = np.asarray(y)
        n = len(y)
        lengths = {len(a) for a in keras.tree.flatten(x)}
        if lengths != {n} or n == 0:
            raise ValueError(
                "Argument `validation_data` must hold x and y with the same, non-zero number "
                f"of samples. Received x lengths {sorted(lengths)} and y length {n}."
            )
        take = min(samples, n)
        rng = np.random.default_rng(0)
        index = np.sort(rng.choice(n, size=take, replace=False)) if take < n else np.arange(n)
        self.x = keras.tree.map_structure(lambda a: a[index], x)
        self.y = y[index]
        self.metric = metric
        self.metric_name = (
            metric if isinstance(metric, str) else getattr(metric, "__name__", "metric")
        )
        self.samples = take
        self.chunk = min(batch_size or default_validation_batch_size(), take)
        self._cached = None

    def _chunks(self) -> list:
        # Built once, as backend tensors, so no log point pays the host-to-device copy.
        if getattr(self, "_cached", None) is None:
            n, chunks = self.samples, []
            for start in range(0, n, self.chunk):
                idx = np.arange(start, start + self.chunk)
                # Pad the last chunk to the chunk size by wrapping around, so every
                # call has the same shape and the predict function is traced once.
                idx = np.where(idx < n, idx, idx % n)
                xb = keras.tree.map_structure(
                    lambda a, idx=idx: keras.ops.convert_to_tensor(a[idx]), self.x
                )
                chunks.append((xb, min(start + self.chunk, n) - start))
            self._cached = chunks
        return self._cached

    def measure(self, model) -> float:
        """Returns the metric of `model` on the subset."""
        preds = []
        for xb, keep in self._chunks():
            out = keras.tree.flatten(model.predict_on_batch(xb))[0]
            preds.append(np.asarray(keras.ops.convert_to_numpy(out))[:keep])
        y_pred = np.concatenate(preds, axis=0)
        if callable(self.metric):
            return float(self.metric(self.y, y_pred))
        return _accuracy(self.y, y_pred, self.metric)


# ---------------------------------------------------------------------- LR in effect
def current_learning_rate(optimizer) -> float:
    """The LR the optimizer applied on its last step (float; NaN if unknown).

    For a schedule that is `schedule(iterations - 1)`: `optimizer.learning_rate`
    would give the LR of the *next* step.
    """
    optimizer = getattr(optimizer, "inner_optimizer", optimizer)  # LossScaleOptimizer
    lr = getattr(optimizer, "_learning_rate", None)
    try:
        iterations = int(keras.ops.convert_to_numpy(optimizer.iterations))
        last = max(iterations - 1, 0)
        # A plan-serving schedule (LODESchedule) says its LR without a backend op; it is
        # recognized by that interface, so recording need not import the Keras side.
        if callable(getattr(lr, "lr_at", None)):
            return float(lr.lr_at(last))
        if isinstance(lr, keras.optimizers.schedules.LearningRateSchedule) or (
            callable(lr) and not isinstance(lr, keras.Variable)
        ):
            return float(keras.ops.convert_to_numpy(lr(last)))
        return float(keras.ops.convert_to_numpy(optimizer.learning_rate))
    except Exception as e:  # a user schedule we cannot evaluate eagerly
        logger.warning(
            "Could not read the learning rate (%s: %s); recording NaN.", type(e).__name__, e
        )
        return math.nan


# ---------------------------------------------------------------------- observer
class LogPointObserver(keras.callbacks.Callback):
    """Base callback: observes training at P log points per epoch.

    Subclasses implement `on_log_point(point)`; `point` is a dict with `index`
    (0-based log point of the run), `step` (global step at its end), `epoch`
    (epoch fraction), `lr` (LR in effect on the interval's last step), `loss` (mean
    training loss over the interval, sample-weighted like Keras) and `metric`
    (validation metric measured now, NaN without validation data).

    Args:
        points_per_epoch: log points per epoch P.
        validation_data: `(x, y)` for the validation metric, or None.
        validation_samples: size of the fixed validation subset.
        metric: metric name or callable, see `ValidationProbe`.
        validation_batch_size: predict batch of the validation measurement; None
            picks the backend's cheapest (see `ValidationProbe`).
    """

    def __init__(
        self,
        points_per_epoch: int | None = 10,
        validation_data=None,
        validation_samples: int = 1024,
        metric: str | Callable = "accuracy",
        validation_batch_size: int | None = None,
    ):
        super().__init__()
        if points_per_epoch is not None:
            points_per_epoch = check_int("points_per_epoch", points_per_epoch)
        self.points_per_epoch = points_per_epoch
        self.probe = (
            ValidationProbe(validation_data, validation_samples, metric, validation_batch_size)
            if validation_data is not None
            else None
        )
        self.metric_name = (
            self.probe.metric_name
            if self.probe
            else (metric if isinstance(metric, str) else getattr(metric, "__name__", "metric"))
        )
        self.seconds = 0.0  # time spent inside this callback during the last fit
        self._warned_no_tracker = False

    # -- geometry -------------------------------------------------------------------
    def _setup_geometry(self) -> None:
        params = self.params or {}
        spe = params.get("steps")
        if not spe:
            raise ValueError(
                f"{type(self).__name__} needs the number of steps per epoch to place its log "
                "points. Pass `steps_per_epoch` to fit (or data of known length). "
                f"Received: steps={spe!r}"
            )
        p = self.points_per_epoch
        if spe < p:
            raise ValueError(
                f"{type(self).__name__}: points_per_epoch={p} exceeds the steps per epoch "
                f"({spe}); use a smaller points_per_epoch or smaller batches."
            )
        self.steps_per_epoch = int(spe)
        self.epochs = int(params.get("epochs") or 1)
        # Steps run per train-function call (and per batch-begin hook).
        self._per_call = max(int(getattr(self.model, "steps_per_execution", 1) or 1), 1)
        self.total_points = self.epochs * p
        # Steps completed within an epoch at each log point (last one = epoch end).
        self.boundaries = [int(round((k + 1) * spe / p)) for k in range(p)]

    def _loss_tracker(self, model):
        for m in getattr(model, "metrics", []):
            if m.name == "loss" and hasattr(m, "total") and hasattr(m, "count"):
                return m
        return None

    def loss_tracker_state(self, model) -> tuple[float, float] | None:
        """`(total, count)` of `model`'s loss tracker now, or None without one.

        The running sum and sample count behind Keras's epoch-mean loss; interval losses
        are differences of two such states. Reading it waits for the dispatched steps.
        """
        tracker = self._loss_tracker(model)
        if tracker is None:
            return None
        total = float(keras.ops.convert_to_numpy(tracker.total))
        count = float(keras.ops.convert_to_numpy(tracker.count))
        return total, count

    # -- Keras hooks ----------------------------------------------------------------
    def on_train_begin(self, logs=None):
        t0 = time.perf_counter()
        self.seconds = 0.0
        self._setup_geometry()
        self._fit_begin()
        self.seconds += time.perf_counter() - t0

    def on_epoch_begin(self, epoch, logs=None):
        t0 = time.perf_counter()
        self._epoch = int(epoch)
        self._next = 0  # index into self.boundaries
        self._base = (0.0, 0.0)  # loss tracker (total, count) at the previous point
        self._base_steps = 0  # steps completed in this epoch at the previous point
        self._started = 0  # steps of this epoch begun so far (all complete at epoch end)
        self._epoch_begin(int(epoch))
        self.seconds += time.perf_counter() - t0

    # Log points are found at batch *begin* (and the epoch's last one at epoch end), never
    # in on_train_batch_end: overriding that hook turns off Keras's asynchronous callback
    # dispatch for the whole fit on JAX. The state after `b` steps is the same at the begin
    # of batch b as at the end of batch b - 1, and the loss comes from the loss tracker.
    def on_train_batch_begin(self, batch, logs=None):
        done = int(batch)  # steps completed in this epoch
        self._started = min(done + self._per_call, self.steps_per_epoch)
        if self._next >= len(self.boundaries) or done < self.boundaries[self._next]:
            return
        self._observe(done, None)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        done = self._started
        if done >= self.steps_per_epoch:
            if self._next < len(self.boundaries):
                self._observe(self.steps_per_epoch, logs)
            return
        # The epoch stopped early (`model.stop_training` set mid-epoch, e.g. by
        # TerminateOnNaN, or data that ran out): record the points its steps reached,
        # then the steps after the last of them as one partial point, never points for
        # steps that did not run.
        if self._next < len(self.boundaries) and done >= self.boundaries[self._next]:
            self._observe(done, logs)
        if done > self._base_steps:
            self._observe(done, logs, partial=True)

    def _observe(self, done: int, epoch_logs: dict | None, partial: bool = False) -> None:
        t0 = time.perf_counter()
        logs = epoch_logs if epoch_logs is not None else {}
        model = self.model  # syncs the JAX state once for everything below
        loss = self._interval_loss(model, epoch_logs, done)
        metric = self._measure(model)
        lr = current_learning_rate(model.optimizer)
        if partial:
            self.on_partial_point(
                {
                    "index": self._epoch * self.points_per_epoch + self._next,
                    "step": self._epoch * self.steps_per_epoch + done,
                    "epoch": self._epoch + done / self.steps_per_epoch,
                    "lr": lr,
                    "loss": loss,
                    "metric": metric,
                },
                logs,
            )
            self.seconds += time.perf_counter() - t0
            return
        while self._next < len(self.boundaries) and done >= self.boundaries[self._next]:
            k = self._next
            self._next += 1
            point = {
                "index": self._epoch * self.points_per_epoch + k,
                "step": self._epoch * self.steps_per_epoch + done,
                "epoch": self._epoch + (k + 1) / self.points_per_epoch,
                "lr": lr,
                "loss": loss,
                "metric": metric,
            }
            self.on_log_point(point, logs)
        self.seconds += time.perf_counter() - t0

    def _measure(self, model) -> float:
        if self.probe is None:
            return math.nan
        try:
            return self.probe.measure(model)
        except Exception as e:  # never kill the user's fit over a measurement
            logger.warning(
                "Validation metric failed at a log point (%s: %s); recording NaN.",
                type(e).__name__,
                e,
            )
            return math.nan

    def _interval_loss(self, model, epoch_logs: Mapping[str, Any] | None, done: int) -> float:
        state = self.loss_tracker_state(model)
        prev_total, prev_count = self._base
        prev_steps = self._base_steps
        self._base_steps = done
        evaluated = epoch_logs is not None and any(k.startswith("val_") for k in epoch_logs)
        if state is not None and not evaluated:
            total, count = state
            self._base = (total, count)
            if count - prev_count > 0:
                return (total - prev_total) / (count - prev_count)
            return math.nan
        # At epoch end after fit's own validation, `evaluate` has reset the loss tracker:
        # use the epoch mean from the logs, with the epoch's sample count extrapolated
        # from the previous point (exact when all batches have the same size).
        if epoch_logs is not None and "loss" in epoch_logs:
            mean = float(epoch_logs["loss"])
            if prev_steps == 0:
                return mean
            n_epoch = prev_count * done / prev_steps
            if n_epoch > prev_count:
                return (mean * n_epoch - prev_total) / (n_epoch - prev_count)
        if state is None and not self._warned_no_tracker:
            self._warned_no_tracker = True
            logger.warning(
                "%s: the model has no loss tracker (custom train_step?); the interval "
                "loss is NaN except at epoch ends.",
                type(self).__name__,
            )
        return math.nan

    # -- subclass hooks ---------------------------------------------------------------
    def _fit_begin(self) -> None:
        """Called at train begin after the geometry is known."""

    def _epoch_begin(self, epoch: int) -> None:
        """Called at each epoch begin."""

    def on_log_point(self, point: dict, logs: dict) -> None:
        """Called at every log point; see the class docstring."""

    def on_partial_point(self, point: dict, logs: dict) -> None:
        """Called once when an epoch stops early between two log points.

        `point` has the keys of `on_log_point`; its `step` and `epoch` are where the
        epoch stopped and its `loss` is the mean over the steps since the last log
        point. It is not one of the P points per epoch (ignored by default).
        """
