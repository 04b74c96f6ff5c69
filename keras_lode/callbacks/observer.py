"""LogPointObserver: the callback base that finds and measures a run's log points.

`RunRecorder` and `LODECallback` both derive from it: it finds the P log points of each
epoch, measures the mean training loss over the steps since the previous log point and
the validation metric at the point, and hands each point to `on_log_point`.

Why not the obvious ways:

- Batch-end `logs["loss"]` is the running mean since the epoch start. The interval
  mean is computed from the loss tracker's (total, count) at consecutive log points,
  i.e. weighted by samples exactly as Keras weights it (falls back to the epoch mean at
  epoch end when the model has no loss tracker).
- `model.evaluate` mid-epoch resets the shared metrics, so the validation metric is
  measured on a fixed validation subset (`keras_lode.callbacks.validation`).
- Reading a device value on the host waits for every step dispatched before it. Inside
  an epoch a log point therefore only *takes* its values (`snapshot`: copies of the loss
  tracker and the step counter, the validation forward passes, all dispatched without
  waiting) and reads them one step later (`to_host`), after the next train step has
  been dispatched: the device keeps working while the host computes. The point reaches
  `on_log_point` then, so a plan made from it takes effect one step later than the point.
  The epoch's last point is read at epoch end, where Keras has synchronized anyway.
- On JAX the model state lives in a local tuple during the epoch; every access goes
  through `self.model`, which syncs it (and lets fit pick up assigned variables).
- Log points are found at batch *begin* (and the epoch's last one at epoch end), never in
  `on_train_batch_end`: overriding that hook turns off Keras's asynchronous callback
  dispatch for the whole fit on JAX.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

import keras
import numpy as np

from keras_lode._checks import check_int
from keras_lode.callbacks.validation import ValidationProbe

__all__ = ["LogPointObserver", "current_learning_rate", "snapshot", "to_host"]

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------- device reads
def snapshot(values: dict) -> dict:
    """Copies of the device values of a log point, taken now without waiting for them.

    Variables are copied (their value changes with the next step); tensors are kept.
    """
    out = {}
    for key, value in values.items():
        if isinstance(value, keras.Variable):
            value = keras.ops.copy(value.value)
        out[key] = value
    return out


def to_host(values: dict) -> dict:
    """Reads a `snapshot` to the host: NumPy values (the probe's outputs are left to it)."""
    out = {}
    for key, value in values.items():
        if key == "outputs" or value is None:
            out[key] = value
        else:
            out[key] = np.asarray(keras.ops.convert_to_numpy(value))
    return out


# ---------------------------------------------------------------------- LR in effect
def current_learning_rate(optimizer, step: int | None = None, value=None) -> float:
    """The LR the optimizer applied on step `step` (default: its last step); NaN if unknown.

    For a schedule that is `schedule(iterations - 1)`: `optimizer.learning_rate` would
    give the LR of the *next* step. `value` is the LR variable's value read earlier (a
    float-LR optimizer), used instead of reading the variable now.
    """
    optimizer = getattr(optimizer, "inner_optimizer", optimizer)  # LossScaleOptimizer
    lr = getattr(optimizer, "_learning_rate", None)
    try:
        if step is None:
            step = max(int(keras.ops.convert_to_numpy(optimizer.iterations)) - 1, 0)
        # A plan-serving schedule (LODESchedule) says its LR without a backend op; it is
        # recognized by that interface, so recording need not import the schedules.
        if callable(getattr(lr, "lr_at", None)):
            return float(lr.lr_at(step))
        if isinstance(lr, keras.optimizers.schedules.LearningRateSchedule) or (
            callable(lr) and not isinstance(lr, keras.Variable)
        ):
            return float(keras.ops.convert_to_numpy(lr(step)))
        if value is not None:
            return float(np.asarray(value))
        return float(keras.ops.convert_to_numpy(optimizer.learning_rate))
    except Exception as e:  # a user schedule we cannot evaluate eagerly
        logger.warning(
            "Could not read the learning rate (%s: %s); recording NaN.", type(e).__name__, e
        )
        return math.nan


def _loss_tracker(model):
    for m in getattr(model, "metrics", []):
        if m.name == "loss" and hasattr(m, "total") and hasattr(m, "count"):
            return m
    return None


# ---------------------------------------------------------------------- observer
class LogPointObserver(keras.callbacks.Callback):
    """Base callback: observes training at P log points per epoch.

    Subclasses implement `on_log_point(point)`; `point` is a dict with `index`
    (0-based log point of the run), `step` (global step at its end), `epoch`
    (epoch fraction), `lr` (LR in effect on the interval's last step), `loss` (mean
    training loss over the interval, sample-weighted like Keras) and `metric`
    (validation metric measured at the point, NaN without validation data). Inside an
    epoch a point is delivered one training step after it (see the module docstring).

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
        self._queue: list = []

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

    def point_steps(self) -> np.ndarray:
        """Global step count at the end of each log point of the run."""
        within = np.asarray(self.boundaries)
        epochs = np.arange(self.epochs)[:, None] * self.steps_per_epoch
        return (epochs + within[None, :]).ravel()

    def open_point(self) -> int:
        """The first log point of the run whose interval still has steps to dispatch.

        LR changes made now reach the steps from `dispatched` on (steps dispatched
        already run on the LR they were given), i.e. this point's interval onwards.
        """
        return int(np.searchsorted(self.point_steps(), self.dispatched, side="right"))

    def loss_tracker_state(self, model) -> tuple[float, float] | None:
        """`(total, count)` of `model`'s loss tracker now, or None without one.

        The running sum and sample count behind Keras's epoch-mean loss; interval losses
        are differences of two such states. Reading it waits for the dispatched steps.
        """
        tracker = _loss_tracker(model)
        if tracker is None:
            return None
        total = float(keras.ops.convert_to_numpy(tracker.total))
        count = float(keras.ops.convert_to_numpy(tracker.count))
        return total, count

    # -- Keras hooks ----------------------------------------------------------------
    def on_train_begin(self, logs=None):
        t0 = time.perf_counter()
        self.seconds = 0.0
        self._queue = []
        self._setup_geometry()
        self.dispatched = 0  # global steps dispatched so far (set at each hook)
        self._fit_begin()
        self.seconds += time.perf_counter() - t0

    def on_epoch_begin(self, epoch, logs=None):
        t0 = time.perf_counter()
        self._epoch = int(epoch)
        self.dispatched = int(epoch) * self.steps_per_epoch
        self._next = 0  # index into self.boundaries
        self._base = (0.0, 0.0)  # loss tracker (total, count) at the previous point
        self._base_steps = 0  # steps completed in this epoch at the previous point
        self._started = 0  # steps of this epoch begun so far (all complete at epoch end)
        self._epoch_begin(int(epoch))
        self.seconds += time.perf_counter() - t0

    def on_train_batch_begin(self, batch, logs=None):
        done = int(batch)  # steps completed in this epoch
        self._started = min(done + self._per_call, self.steps_per_epoch)
        reached = self._next < len(self.boundaries) and done >= self.boundaries[self._next]
        if not (reached or self._queue):
            return
        t0 = time.perf_counter()
        waiting, self._queue = self._queue, []
        self.dispatched = self._epoch * self.steps_per_epoch + done
        # Taken before anything of this hook changes the LR; the points waiting (taken at an
        # earlier hook, a step has been dispatched since) are read and acted on before the
        # new point's own action, so a plan never goes back to an older point's LR.
        item = self._take(done, None) if reached else None
        for old in waiting:
            self._deliver(old)
        if item is not None:
            self._queue.append(item)
            self._point_taken(item["indices"][-1])
        self.seconds += time.perf_counter() - t0

    def on_epoch_end(self, epoch, logs=None):
        t0 = time.perf_counter()
        logs = logs if logs is not None else {}
        done = self._started
        self.dispatched = self._epoch * self.steps_per_epoch + done  # all of them ran
        if done >= self.steps_per_epoch:
            item = None
            if self._next < len(self.boundaries):  # taken before a waiting point's plan
                item = self._take(self.steps_per_epoch, logs)
            self._flush()
            if item is not None:
                self._point_taken(item["indices"][-1])
                self._deliver(item)
        else:
            # The epoch stopped early (`model.stop_training` set mid-epoch, e.g. by
            # TerminateOnNaN, or data that ran out): record the points its steps reached,
            # then the steps after the last of them as one partial point, never points for
            # steps that did not run.
            reached = self._next < len(self.boundaries) and done >= self.boundaries[self._next]
            last = max([self._base_steps] + [w["done"] for w in self._queue])
            item = None
            if reached:
                item = self._take(done, logs)
            elif done > last:
                item = self._take(done, logs, partial=True)
            self._flush()
            if item is not None:
                self._deliver(item)
        self.seconds += time.perf_counter() - t0

    def on_train_end(self, logs=None):
        self._flush()

    def _flush(self) -> None:
        waiting, self._queue = self._queue, []
        for item in waiting:
            self._deliver(item)

    # -- a log point: taken, then delivered -----------------------------------------------
    def _take(self, done: int, epoch_logs: dict | None, partial: bool = False) -> dict:
        """The device values of a point (not read yet) and where it lies in the run."""
        model = self.model  # syncs the JAX state once for everything below
        optimizer = getattr(model.optimizer, "inner_optimizer", model.optimizer)
        tracker = _loss_tracker(model)
        values = {"iterations": optimizer.iterations}
        if tracker is not None:
            values["total"], values["count"] = tracker.total, tracker.count
        if isinstance(getattr(optimizer, "_learning_rate", None), keras.Variable):
            values["lr"] = optimizer._learning_rate
        if self.probe is not None:
            values["outputs"] = self._start_probe(model)
        if partial:
            indices = [self._next]
        else:
            indices = []
            while self._next < len(self.boundaries) and done >= self.boundaries[self._next]:
                indices.append(self._next)
                self._next += 1
        return {
            "values": snapshot(values),
            "done": done,
            "indices": indices,
            "epoch_logs": epoch_logs,
            "partial": partial,
        }

    def _deliver(self, item: dict) -> None:
        """Reads a taken point and hands it to `on_log_point` (or `on_partial_point`)."""
        values = to_host(item["values"])
        done, epoch_logs = item["done"], item["epoch_logs"]
        loss = self._interval_loss(values, epoch_logs, done)
        metric = self._finish_probe(values.get("outputs"))
        step = max(int(values["iterations"]) - 1, 0)
        lr = current_learning_rate(self.model.optimizer, step, values.get("lr"))
        logs = epoch_logs if epoch_logs is not None else {}
        for k in item["indices"]:
            point = {
                "index": self._epoch * self.points_per_epoch + k,
                "step": self._epoch * self.steps_per_epoch + done,
                "epoch": self._epoch
                + (
                    done / self.steps_per_epoch
                    if item["partial"]
                    else (k + 1) / self.points_per_epoch
                ),
                "lr": lr,
                "loss": loss,
                "metric": metric,
            }
            if item["partial"]:
                self.on_partial_point(point, logs)
            else:
                self.on_log_point(point, logs)

    def _start_probe(self, model):
        try:
            return self.probe.start(model)
        except Exception as e:  # never kill the user's fit over a measurement
            logger.warning(
                "Validation metric failed at a log point (%s: %s); recording NaN.",
                type(e).__name__,
                e,
            )
            return None

    def _finish_probe(self, outputs) -> float:
        if outputs is None:
            return math.nan
        try:
            return self.probe.finish(outputs)
        except Exception as e:  # never kill the user's fit over a measurement
            logger.warning(
                "Validation metric failed at a log point (%s: %s); recording NaN.",
                type(e).__name__,
                e,
            )
            return math.nan

    def _interval_loss(self, values: dict, epoch_logs: dict | None, done: int) -> float:
        prev_total, prev_count = self._base
        prev_steps = self._base_steps
        self._base_steps = done
        evaluated = epoch_logs is not None and any(k.startswith("val_") for k in epoch_logs)
        if "total" in values and not evaluated:
            total, count = float(values["total"]), float(values["count"])
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
        if "total" not in values and not self._warned_no_tracker:
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

    def _point_taken(self, k: int) -> None:
        """Called when point `k` of the epoch is taken, before it is read (inside an epoch,
        a step later; at epoch end, at once): what does not need its values acts here."""

    def on_log_point(self, point: dict, logs: dict) -> None:
        """Called at every log point; see the class docstring."""

    def on_partial_point(self, point: dict, logs: dict) -> None:
        """Called once when an epoch stops early between two log points.

        `point` has the keys of `on_log_point`; its `step` and `epoch` are where the
        epoch stopped and its `loss` is the mean over the steps since the last log
        point. It is not one of the P points per epoch (ignored by default).
        """
