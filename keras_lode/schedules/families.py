"""The sweep's schedule families: `make_schedule(family, peak_lr, total_steps)`, `Switched`
(one schedule, then another from a step on: a switched run of a sweep) and `PointPath` (LRs
given per log point, as a plan gives them: a branch run's continuation)."""

from __future__ import annotations

import inspect
import math

from keras_lode._backend import import_keras
from keras_lode.constants import FAMILIES
from keras_lode.schedules.parametric import (
    WSD,
    Constant,
    LinearDecay,
    OneCycle,
    StepDecay,
    WarmupCosine,
)
from keras_lode.schedules.pieces import check_steps

keras = import_keras("keras_lode.schedules")  # a clear error when no backend is installed
ops = keras.ops

__all__ = ["FAMILIES", "PointPath", "Switched", "make_schedule"]


@keras.saving.register_keras_serializable(package="keras_lode")
class Switched(keras.optimizers.schedules.LearningRateSchedule):
    """One schedule up to a step, another from it on: a run that changes course mid-run.

    `lr(step) = first(step)` for `step < switch_step`, else `second(step)` — the second
    schedule goes on as it would at that point of training (it is not restarted). A sweep
    records such *switched* runs (same seed as the run of `first`, so everything before
    the switch is that run) to show a controlled LODE what a mid-run LR change does.

    Example:

    ```python
    # cosine at 3e-3, switched to the one-cycle at 1e-2 after step 500
    lr = Switched(make_schedule("cosine", 3e-3, 1000), make_schedule("onecycle", 1e-2, 1000), 500)
    ```

    Args:
        first: the schedule before the switch (a `LearningRateSchedule` or its config).
        second: the schedule from the switch on.
        switch_step: the first step of `second`, > 0.
        name: name of the schedule's ops scope.
    """

    def __init__(self, first, second, switch_step: int, name: str = "Switched"):
        super().__init__()
        self.first = _as_schedule("first", first)
        self.second = _as_schedule("second", second)
        self.switch_step = check_steps("switch_step", switch_step)
        self.name = name

    def __call__(self, step):
        with keras.name_scope(self.name):
            before = ops.cast(step, "float32") < float(self.switch_step)
            return ops.where(before, self.first(step), self.second(step))

    def get_config(self):
        return {
            "first": keras.saving.serialize_keras_object(self.first),
            "second": keras.saving.serialize_keras_object(self.second),
            "switch_step": self.switch_step,
            "name": self.name,
        }


@keras.saving.register_keras_serializable(package="keras_lode")
class PointPath(keras.optimizers.schedules.LearningRateSchedule):
    """LRs given per log point, interpolated linearly between points per step.

    This is how a `LODESchedule` serves a plan: log point k ends after
    `(k + 1) * steps_per_epoch / points_per_epoch` steps, the LR of the step that ends it
    is `learning_rates[k]`, and steps between two points are interpolated (before the
    first point: the first LR; after the last: the last). A sweep's branch runs follow a
    planner-library continuation this way (`Switched(base, PointPath(...), step)`).

    Example:

    ```python
    # 4 log points, 2 per epoch of 8 steps: 1e-2 at step 3, 5e-3 at step 7, ...
    lr = PointPath([1e-2, 5e-3, 1e-3, 1e-4], steps_per_epoch=8, points_per_epoch=2)
    ```

    Args:
        learning_rates: the LR at each log point of the run (>= 2 positive values).
        steps_per_epoch: optimizer steps per epoch.
        points_per_epoch: log points per epoch P.
        name: name of the schedule's ops scope.
    """

    def __init__(self, learning_rates, steps_per_epoch: int, points_per_epoch: int,
                 name: str = "PointPath"):  # fmt: skip
        super().__init__()
        values = [float(v) for v in learning_rates]
        if len(values) < 2 or not all(math.isfinite(v) and v > 0 for v in values):
            raise ValueError(
                "Argument `learning_rates` must hold >= 2 finite positive LRs, one per log "
                f"point. Received: {values[:8]}{' ...' if len(values) > 8 else ''}"
            )
        self.learning_rates = values
        self.steps_per_epoch = check_steps("steps_per_epoch", steps_per_epoch)
        self.points_per_epoch = check_steps("points_per_epoch", points_per_epoch)
        self.name = name

    def __call__(self, step):
        with keras.name_scope(self.name):
            table = ops.convert_to_tensor(self.learning_rates, dtype="float32")
            last = len(self.learning_rates) - 1
            rate = self.points_per_epoch / self.steps_per_epoch
            u = ops.clip((ops.cast(step, "float32") + 1.0) * rate - 1.0, 0.0, float(last))
            i = ops.minimum(ops.cast(ops.floor(u), "int32"), last - 1)
            f = u - ops.cast(i, "float32")
            return ops.take(table, i) * (1.0 - f) + ops.take(table, i + 1) * f

    def get_config(self):
        return {
            "learning_rates": list(self.learning_rates),
            "steps_per_epoch": self.steps_per_epoch,
            "points_per_epoch": self.points_per_epoch,
            "name": self.name,
        }


def _as_schedule(name, value):
    if isinstance(value, dict):
        value = keras.saving.deserialize_keras_object(value)
    if not isinstance(value, keras.optimizers.schedules.LearningRateSchedule):
        raise TypeError(
            f"Argument `{name}` must be a LearningRateSchedule (or its serialized config). "
            f"Received: {type(value).__name__}"
        )
    return value


def make_schedule(family: str, peak_lr: float, total_steps: int, **kwargs):
    """Builds the schedule of one sweep family with peak learning rate `peak_lr`.

    Defaults (each overridable through `kwargs`, which go to the class):

    - `"cosine"`: `WarmupCosine(peak_lr, total_steps, alpha=1e-3)` — cosine from the
      peak to `peak_lr / 1000` (not to 0: a zero LR has no logarithm, and the LODE
      models `ln(lr)`).
    - `"onecycle"`: `OneCycle(peak_lr, total_steps)` — 30% rise, cosine anneal.
    - `"constant"`: `Constant(peak_lr)`.
    - `"step"`: `StepDecay(peak_lr, decay_steps=ceil(total_steps / 3), decay_rate=0.1)`
      — two drops, at 1/3 and 2/3 of training.
    - `"linear"`: `LinearDecay(peak_lr, total_steps, end_learning_rate=peak_lr / 1000)`.
    - `"wsd"`: `WSD(peak_lr, total_steps, decay_fraction=0.2, end_learning_rate=peak_lr / 1000)`
      — hold the peak for 80% of training, then cool down linearly.

    Example:

    ```python
    make_schedule("cosine", 1e-3, total_steps=4690, warmup_steps=200)
    ```

    Args:
        family: one of `FAMILIES`.
        peak_lr: the highest learning rate of the schedule.
        total_steps: optimizer steps of the whole run.
        **kwargs: extra arguments of the family's class.

    Returns:
        A `keras.optimizers.schedules.LearningRateSchedule`.

    Raises:
        ValueError: for an unknown family or bad values.
        TypeError: for arguments the family's class does not take.
    """
    if family not in FAMILIES:
        raise ValueError(f"Argument `family` must be one of {FAMILIES}. Received: {family!r}")
    total_steps = check_steps("total_steps", total_steps)
    cls, fixed, defaults = {
        "cosine": (
            WarmupCosine,
            {"peak_learning_rate": peak_lr, "total_steps": total_steps},
            {"alpha": 1e-3},
        ),
        "onecycle": (OneCycle, {"max_learning_rate": peak_lr, "total_steps": total_steps}, {}),
        "constant": (Constant, {"learning_rate": peak_lr}, {}),
        "step": (
            StepDecay,
            {"initial_learning_rate": peak_lr},
            {"decay_steps": max(1, math.ceil(total_steps / 3)), "decay_rate": 0.1},
        ),
        "linear": (
            LinearDecay,
            {"peak_learning_rate": peak_lr, "total_steps": total_steps},
            {"end_learning_rate": peak_lr * 1e-3},
        ),
        "wsd": (
            WSD,
            {"peak_learning_rate": peak_lr, "total_steps": total_steps},
            {"decay_fraction": 0.2, "end_learning_rate": peak_lr * 1e-3},
        ),
    }[family]
    accepted = [p for p in inspect.signature(cls).parameters if p not in fixed]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise TypeError(
            f"make_schedule({family!r}) got unexpected arguments {unknown}; "
            f"{cls.__name__} accepts {accepted}."
        )
    args = {**fixed, **defaults}
    args.update(kwargs)
    return cls(**args)
