"""LODECallback: observe a `model.fit`, replan the learning rate with a latent ODE, apply it.

The callback shares its log-point logic with `RunRecorder` (`LogPointObserver`): at P log
points per epoch it records `[interval loss, ln lr, validation metric]`. Until the first
replan it follows a warm-up schedule; then every `replan_every` points it asks
`keras_lode.plan` for the LR of every remaining log point and makes the optimizer follow
it (`PlanTables`: a `LODESchedule`'s table is replaced in place, nothing is retraced; a
float LR is assigned per log point). The planner follows the model's kind: a generative
(paper) LODE imagines futures, a controlled LODE scores candidate schedules against the
schedule the run follows (the warm-up, then the current plan), which it leaves only when
sure. For a controlled model the first replan and the cadence are fractions of the run
(20% and 10% by default). With `planning=False` it follows the warm-up only: the matched
baseline arm of a paired comparison (same LR mechanism, same measurements).

A failed replan (the planner raises, a non-finite loss or missing validation values in
the window, a non-finite plan) never stops training: the current plan is kept and a
warning names the cause. The state is saved as JSON (`callback_state`) so that a fit
resumed with `keras.callbacks.BackupAndRestore` continues the plan.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import keras
import numpy as np

from keras_lode._warnings import warn
from keras_lode.callbacks import lode_options
from keras_lode.callbacks.callback_state import resume, write_state
from keras_lode.callbacks.lr_tables import PlanTables, plan_schedule
from keras_lode.callbacks.observer import LogPointObserver, current_learning_rate
from keras_lode.model.features import run_window

__all__ = ["LODECallback"]

logger = logging.getLogger(__name__)


class LODECallback(LogPointObserver):
    """Replans the learning rate during `model.fit` with a latent ODE (LODE).

    Example:

    ```python
    schedule = keras_lode.LODESchedule(initial_learning_rate=1e-3)
    model.compile(optimizer=keras.optimizers.AdamW(schedule),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    lode = keras_lode.LODECallback("models/fmnist_cnn.npz", validation_data=(x_val, y_val),
                                   seed=0, state_path="ckpt/lode_state.json")
    model.fit(x, y, epochs=6, callbacks=[keras.callbacks.BackupAndRestore("ckpt"), lode])
    ```

    Args:
        model: path of a LODE model file, or a loaded model: a `LatentODE` (generative,
            with `encode`/`decode`) or a `ControlledODE` (`kind == "controlled"`). None
            (the default): the pretrained zoo model (`keras_lode.pretrained`), for a run
            without a sweep of its own.
        validation_data: `(x, y)` arrays; the metric is measured on a fixed subset.
        warmup: LR followed until the first plan: a float, a Keras
            `LearningRateSchedule` or a callable `step -> lr`; default the optimizer's
            (the `LODESchedule`'s `initial_learning_rate`, or the float LR). With a
            `LODESchedule` (runs up to 100,000 steps) it is served exactly at every step.
        seed: base seed; the replan at log point n uses `derive_seed(seed, n)`, so a rerun
            or a resumed fit replans identically. None draws one.
        state_path: JSON file for the callback's state (for `BackupAndRestore`).
        verbose: 1 prints one summary line per replan.
        **options: the callback's options, the fields of
            `keras_lode.callbacks.lode_options.CallbackOptions` (each documented there:
            `points_per_epoch`, `window`, `replan_every`, `first_replan`, `plot_dir`,
            `validation_samples`, `validation_batch_size`, `metric`, `planning`, `mode`,
            `task`, `anchor_strangers`),
            and the planner's options (`keras_lode.planning.planner_options(kind)`):
            `samples`, `sigma`, `tol`, `loss_floor`, `top_k`, `anchor`, `lr_range`,
            `reward_at` (generative) or `kappa`, `margin`, `starts`, `ends`, `shapes`,
            `lr_range`, `trust` (controlled).

    Raises:
        TypeError: an unknown option or a wrong argument type.
        ValueError: out-of-range arguments, or (at train begin) an optimizer whose
            learning rate is neither a `LODESchedule` nor a float.
    """

    def __init__(
        self,
        model=None,
        *,
        validation_data,
        warmup=None,
        seed: int | None = 0,
        state_path=None,
        verbose: int = 1,
        **options,
    ):
        self.lode, self.kind = lode_options.resolve_model(model)
        if validation_data is None:
            raise ValueError(
                "Argument `validation_data` is required: the LODE plans from the validation "
                "metric at each log point. Received: validation_data=None"
            )
        opts, self.planner_overrides = lode_options.resolve_options(self.lode, self.kind, options)
        super().__init__(
            opts.points_per_epoch,
            validation_data,
            opts.validation_samples,
            opts.metric,
            opts.validation_batch_size,
        )
        self.options = opts
        self.window = opts.window
        self.replan_every = opts.replan_every if isinstance(opts.replan_every, int) else None
        self.first_replan = None  # resolved against the run's length at train begin
        self.warmup = lode_options.check_warmup(warmup)
        self.seed = lode_options.check_seed(seed)
        self.state_path = None if state_path is None else Path(state_path)
        self.plot_dir = opts.plot_dir
        self.verbose = int(verbose)
        self.plans: dict[int, object] = {}  # log point -> plan of this fit
        self.switches: set[int] = set()  # log points whose plan left the one in effect
        self.last_plan = None
        self.plan_seconds = 0.0

    # ------------------------------------------------------------------ set-up
    def _fit_begin(self) -> None:
        from keras_lode.planning.replans import resolve_cadence

        optimizer = self.model.optimizer
        self.schedule = plan_schedule(optimizer)
        self.mode = "schedule" if self.schedule is not None else "variable"
        self.first_replan, self.replan_every = resolve_cadence(
            self.total_points, run_window(self.lode, self.window, self.total_points),
            self.options.first_replan, self.options.replan_every,
        )  # fmt: skip
        if self.options.planning and self.first_replan >= self.total_points - 1:
            warn(
                f"LODECallback: the first replan (log point {self.first_replan}, window "
                f"{self.window}) is not before the run's last point ({self.total_points} "
                "points); it will never replan."
            )
        warmup = self.warmup
        if warmup is None:
            warmup = (
                self.schedule.initial_learning_rate
                if self.schedule is not None
                else float(keras.ops.convert_to_numpy(optimizer.learning_rate))
            )
        self.tables = PlanTables(
            self.point_steps(), self.steps_per_epoch, self.points_per_epoch, warmup, self.schedule
        )
        self._history = np.full((self.total_points, 3), np.nan)
        self._replans: dict[int, np.ndarray] = {}
        self.plans, self.last_plan, self.plan_seconds = {}, None, 0.0
        self._first_epoch, self.checked_run, self.checked_prediction = True, False, False
        self.stranger, self.anchor_warned = None, False  # why the fit is unlike the model's runs
        self.ceiling_logged = False  # the LR ceiling is told once per fit
        self._last_lr = None
        self.tables.apply(self.model, 0)

    # ------------------------------------------------------------------ resume
    def _run_identity(self) -> dict:
        return {
            "total_points": self.total_points,
            "points_per_epoch": self.points_per_epoch,
            "steps_per_epoch": self.steps_per_epoch,
            "seed": self.seed,
        }

    def _epoch_begin(self, epoch: int) -> None:
        first, self._first_epoch = self._first_epoch, False
        if first and epoch > 0 and self.state_path is not None:
            cut = epoch * self.points_per_epoch  # Keras restarts the epoch from its start
            restored = resume(self.state_path, self._run_identity(), cut, self._history,
                              self.tables)  # fmt: skip
            if restored is not None:
                self._replans.update(restored[0])
                self.switches.update(restored[1])
                self.tables.apply(self.model, cut)

    def _save_state(self, finished: bool = False) -> None:
        if self.state_path is not None:
            run = {**self._run_identity(), "window": self.window, "replan_every": self.replan_every}
            write_state(
                self.state_path,
                run,
                self.tables.warmup_table,
                self._history,
                self._replans,
                finished,
                self.switches,
            )

    # ------------------------------------------------------------------ log points
    def on_log_point(self, point: dict, logs: dict) -> None:
        n, lr = point["index"], point["lr"]
        ln_lr = math.log(lr) if lr > 0 and math.isfinite(lr) else math.nan
        self._history[n] = (point["loss"], ln_lr, point["metric"])
        logs["learning_rate"] = lr
        self._last_lr = lr
        if self._due(n):
            self._replan(n)
        # The plan reaches the steps not dispatched yet: a float LR is set for the interval
        # they belong to (a later point's when this one was read late); a schedule's table
        # keeps the steps that ran (`PlanTables.replace(first_step=...)`).
        next_point = n + 1 if self.schedule is not None else max(n + 1, self.open_point())
        self.tables.apply(self.model, next_point)
        self._save_state()

    def _point_taken(self, k: int) -> None:
        # A float LR follows the table at once (the next interval's steps are dispatched
        # after this hook); a plan made from this point comes when it is read.
        if self.schedule is None:
            self.tables.apply(self.model, self._epoch * self.points_per_epoch + k + 1)

    def _due(self, n: int) -> bool:
        first = self.first_replan
        return (
            self.options.planning
            and n >= first
            and (n - first) % self.replan_every == 0
            and n < self.total_points - 1
            and n not in self._replans
        )

    def _replan(self, n: int) -> None:
        from keras_lode.callbacks.replanning import replan

        t0 = time.perf_counter()
        result, lrs = replan(self, n)
        self.plan_seconds += time.perf_counter() - t0
        if result is None:
            return
        self.tables.replace(n + 1, lrs, first_step=self.dispatched)
        self._replans[n] = lrs.copy()
        if getattr(result, "switched", False):
            self.switches.add(n)
        self.plans[n] = result
        self.last_plan = result
        if self.verbose:
            summary = result.summary() if hasattr(result, "summary") else f"lr {lrs[0]:.3g}"
            print(f"Epoch {(n + 1) / self.points_per_epoch:.2f}: {summary}")
        if self.plot_dir is not None:
            from keras_lode.callbacks.replanning import plot_replan

            plot_replan(result, self.plot_dir, n, self._history[: n + 1])

    def on_epoch_end(self, epoch, logs=None):
        # The epoch's last log point: read at once (Keras has synchronized here), so its
        # plan and a float LR for the next epoch's first interval are set before the next
        # epoch's first step. Callbacks after this one in the list see the new float LR.
        super().on_epoch_end(epoch, logs)
        if logs is not None:
            # The LR of the epoch's last step (a float-LR optimizer already holds the next).
            last = getattr(self, "_last_lr", None)
            logs["learning_rate"] = (
                last if last is not None else current_learning_rate(self.model.optimizer)
            )

    def on_train_end(self, logs=None):
        super().on_train_end(logs)
        if getattr(self, "schedule", None) is not None:
            self.schedule.detach()
        self._save_state(finished=True)

    # ------------------------------------------------------------------ results
    @property
    def plan_table(self) -> np.ndarray:
        """The LR per log point the run follows now (warm-up + applied replans)."""
        return self.tables.table.copy()

    @property
    def step_table(self) -> np.ndarray | None:
        """The LR per optimizer step a `LODESchedule` serves now (None: one per log point)."""
        tables = getattr(self, "tables", None)
        return None if tables is None or not tables.per_step else tables.step_table.copy()

    @property
    def history(self) -> np.ndarray:
        """(K, 3) observed `[loss, ln lr, metric]` per log point (NaN: not yet)."""
        return self._history.copy()

    def to_run(self, meta=None):
        """The observed log points as a `keras_lode.Run` (schedule family `"lode"`).

        Args:
            meta: extra metadata (task, seed, ...); the run geometry is filled in.
        """
        from keras_lode.callbacks.replanning import observed_run

        return observed_run(self, meta)
