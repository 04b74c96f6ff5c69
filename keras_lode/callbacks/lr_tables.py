"""The LR tables a LODE-driven fit follows, and how they reach the optimizer.

`PlanTables` holds the run's LR per log point (the warm-up, then the applied plans) and,
for a `LODESchedule` on runs up to `MAX_STEP_TABLE` steps, one LR per optimizer step, so
that the warm-up is served exactly at every step and goes on exactly for as long as no
plan changes it. `apply` makes the optimizer follow the tables from a log point on:

- `LODESchedule`: the schedule's table is configured once per fit and replaced in place
  afterwards (`LODESchedule.set_plan`); the compiled train step reads it live. On JAX
  the table rides in the optimizer's train state during the fit (`LODESchedule.attach`).
- a float LR: the optimizer's LR variable is assigned at each log point (piecewise
  constant per interval).
"""

from __future__ import annotations

import logging

import keras
import numpy as np

from keras_lode._warnings import warn
from keras_lode.schedules.lode_schedule import LODESchedule

__all__ = ["MAX_STEP_TABLE", "PlanTables", "plan_schedule", "warmup_values"]

logger = logging.getLogger(__name__)

#: Above this many optimizer steps the schedule's table holds one LR per log point instead
#: of one per step (the warm-up is then interpolated between log points).
MAX_STEP_TABLE = 100_000
# A warm-up that cannot take an array of steps is called once per step up to this many steps.
_MAX_SCALAR_CALLS = 5_000
# A warm-up LR of exactly 0 (between log points) is served as this (the table must be > 0).
_TINY_LR = 1e-30


def plan_schedule(optimizer) -> LODESchedule | None:
    """The optimizer's `LODESchedule`, or None for a float LR.

    Raises:
        ValueError: a learning rate that is neither (the callback could not apply plans).
    """
    # A LossScaleOptimizer (mixed precision) holds the LR in its inner optimizer.
    lr = getattr(getattr(optimizer, "inner_optimizer", optimizer), "_learning_rate", None)
    if not isinstance(lr, LODESchedule | keras.Variable):
        raise ValueError(
            "LODECallback needs an optimizer whose learning_rate is a "
            "keras_lode.LODESchedule or a float. Received a learning_rate of type "
            f"{type(lr).__name__}."
        )
    return lr if isinstance(lr, LODESchedule) else None


def warmup_values(warmup, steps, strict: bool = True) -> np.ndarray | None:
    """The warm-up LR (a float, a Keras schedule or a callable) at each of `steps`.

    `strict=False` (the per-step table) returns None instead of calling a scalar-only
    schedule more than `_MAX_SCALAR_CALLS` times, and lifts LRs of 0 (a warm-up that
    starts at 0) to a tiny positive value; non-finite or negative values give None.

    Raises:
        ValueError: (strict) a non-finite or non-positive LR, naming the step.
    """
    if callable(warmup):
        values = None
        try:  # Keras schedules are elementwise: one call for every step
            values = np.asarray(
                keras.ops.convert_to_numpy(warmup(np.asarray(steps, "float32"))), np.float64
            ).reshape(-1)
            if values.shape != (len(steps),):
                values = None
        except Exception:  # a step -> lr function that takes a scalar only
            values = None
        if values is None:
            if not strict and len(steps) > _MAX_SCALAR_CALLS:
                return None
            values = np.array(
                [float(keras.ops.convert_to_numpy(warmup(int(s)))) for s in steps], np.float64
            )
    else:
        values = np.full(len(steps), float(warmup))
    if not strict:
        if not np.all(np.isfinite(values) & (values >= 0)):
            return None
        return np.maximum(values, _TINY_LR)
    bad = ~np.isfinite(values) | (values <= 0)
    if np.any(bad):
        i = int(np.argmax(bad))
        raise ValueError(
            f"Argument `warmup` must give finite, positive LRs; at step {int(steps[i])} "
            f"it gave {values[i]!r}."
        )
    return values


class PlanTables:
    """The LR per log point (`table`) and per optimizer step (`step_table`) of one fit.

    Args:
        point_steps: (K,) global step count at the end of each log point.
        steps_per_epoch: optimizer steps per epoch.
        points_per_epoch: log points per epoch P.
        warmup: the LR followed until the first plan (float, schedule or callable).
        schedule: the optimizer's `LODESchedule`, or None for a float-LR optimizer.
        per_step: keep a per-step table (default: with a `LODESchedule`); True also
            without one, to compute what a `LODESchedule` would serve.
    """

    def __init__(
        self,
        point_steps,
        steps_per_epoch: int,
        points_per_epoch: int,
        warmup,
        schedule,
        per_step: bool | None = None,
    ):
        self.point_steps = np.asarray(point_steps)
        self.steps_per_epoch = steps_per_epoch
        self.points_per_epoch = points_per_epoch
        self.total_points = len(self.point_steps)
        self.schedule = schedule
        self.warmup_table = warmup_values(warmup, self.point_steps - 1)
        self.table = self.warmup_table.copy()
        self.step_table = None
        total_steps = int(self.point_steps[-1])
        if per_step is None:
            per_step = schedule is not None
        if per_step and total_steps <= MAX_STEP_TABLE:
            steps = warmup_values(warmup, np.arange(total_steps), strict=False)
            if steps is None:
                logger.info(
                    "LODECallback: the warm-up is served per log point (interpolated between): "
                    "evaluating it at each of %d steps was not possible or too slow.",
                    total_steps,
                )
            else:
                # The last step of each interval is exactly the point table's value.
                steps[self.point_steps - 1] = self.warmup_table
                self.step_table = steps
                self.warmup_steps = steps.copy()
        self.applied = None  # what the optimizer holds: True (schedule) or the float LR
        self.dirty = False  # the table changed since it was last applied

    @property
    def per_step(self) -> bool:
        return self.step_table is not None

    def replace(self, start: int, lrs: np.ndarray, first_step: int = 0) -> None:
        """Sets the plan from log point `start` on (the per-step table follows).

        `first_step`: the first step the change can still reach (steps before it were
        dispatched with the LR they had); the per-step table keeps those steps as they ran,
        so it stays the record of what was served.
        """
        if not np.array_equal(self.table[start:], lrs):
            # A plan that keeps the current one changes nothing (a warm-up stays exact).
            self.table[start:] = lrs
            self.dirty = True
            if self.per_step:
                self.interpolate_steps(start, first_step)

    def restart(self) -> None:
        """Back to the warm-up (a resumed fit replays its plans on top)."""
        self.table = self.warmup_table.copy()
        if self.per_step:
            self.step_table = self.warmup_steps.copy()
        self.applied = None if self.schedule is not None else self.applied

    def interpolate_steps(self, next_point: int, first_step: int = 0) -> int:
        """Per-step table from log point `next_point` on (not before `first_step`): the
        plan, interpolated as `LODESchedule` does between log points; returns the first
        step it covers."""
        s0 = int(self.point_steps[next_point - 1]) if next_point > 0 else 0
        if next_point == 0:
            return s0  # the warm-up itself, exact at every step
        s0 = max(s0, int(first_step))
        steps = np.arange(s0, len(self.step_table), dtype=np.float64)
        u = np.clip((steps + 1) * self.points_per_epoch / self.steps_per_epoch - 1, 0,
                    self.total_points - 1)  # fmt: skip
        self.step_table[s0:] = np.interp(u, np.arange(self.total_points), self.table)
        return s0

    def apply(self, model, next_point: int) -> None:
        """Makes `model`'s optimizer follow the tables from log point `next_point` on."""
        if self.schedule is None:
            if next_point < self.total_points and self.applied != float(self.table[next_point]):
                # Through `model`: on JAX this syncs the state, and fit re-reads it.
                value = float(self.table[next_point])
                model.optimizer.learning_rate = value
                self.applied = value
            return
        if self.applied is None:
            self._configure(model)
        elif self.dirty and next_point < self.total_points:
            if keras.backend.backend() == "jax":
                # Sync the train state to the variables first (the `model` property does):
                # the assignment below then reaches the next step, and no later sync
                # overwrites it with the state's old plan.
                model  # noqa: B018
            if self.per_step:
                s0 = int(self.point_steps[next_point - 1]) if next_point > 0 else 0
                self.schedule.set_plan(self.step_table[s0:], start=s0)
            else:
                self.schedule.set_plan(self.table[next_point:], start=next_point)
        self.applied = True
        self.dirty = False

    def _configure(self, model) -> None:
        if self.per_step:
            spe = self.steps_per_epoch
            replaced = self.schedule.configure(self.step_table, spe, spe)
        else:
            replaced = self.schedule.configure(
                self.table, self.steps_per_epoch, self.points_per_epoch
            )
        if replaced and keras.backend.backend() == "tensorflow":
            # A train function traced in an earlier fit read the old variables.
            model.make_train_function(force=True)
        if keras.backend.backend() == "jax":
            # The plan rides in the optimizer's train state for this fit; detached at its end.
            try:
                self.schedule.attach(model.optimizer)
            except Exception as e:  # an optimizer unlike Keras's own
                warn(
                    "LODECallback: could not carry the plan in the optimizer's state "
                    f"({type(e).__name__}: {e}); the schedule reads it on the host at "
                    "every step instead (slower, same learning rates)."
                )
