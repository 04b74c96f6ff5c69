"""LODECallback: observe a `model.fit`, replan the learning rate with a latent ODE, apply it.

The callback shares its log-point logic with `RunRecorder` (`LogPointObserver`): at
P log points per epoch it records `[interval loss, ln lr, validation metric]`. Until
it has W points it follows a warm-up schedule; then every `replan_every` points it
asks `keras_lode.plan` for the LR of every remaining log point and applies it so the
very next training step uses it:

- optimizer built with a `LODESchedule`: the schedule's plan table is replaced
  (`LODESchedule.set_plan`); the compiled train step reads it live (see
  `keras_lode.lode_schedule` for how, per backend; on JAX the callback carries the
  plan in the optimizer's train state during the fit), so nothing is retraced.
- optimizer built with a float LR: the callback assigns the optimizer's LR variable
  through `self.model.optimizer` at every log point (piecewise constant per interval).

The planner follows the model's kind (`keras_lode.plan`): a generative (paper) LODE is
planned by imagining futures, a controlled LODE by scoring candidate schedules, with the
schedule the run follows (the warm-up, then the current plan) as the default it leaves
only when sure. For a controlled model the first replan and the cadence are fractions of
the run (20% and 10% by default), so a short run does not spend half of itself warming up.

A failed replan (the planner raises, a non-finite loss or missing validation values
in the window, a non-finite plan) never stops training: the current plan is kept and
a warning names the cause. The callback's state (history, warm-up, replans) is saved
as JSON so a fit resumed with `keras.callbacks.BackupAndRestore` continues the plan.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np

from keras_lode._json import write_json
from keras_lode._warnings import warn as _warn
from keras_lode.lode_schedule import LODESchedule
from keras_lode.runs.observer import LogPointObserver, current_learning_rate

logger = logging.getLogger(__name__)

STATE_FORMAT = "keras_lode.callback_state"
# Above this many optimizer steps a LODESchedule's table holds one LR per log point instead of
# one per step (the warm-up is then interpolated between log points).
_MAX_STEP_TABLE = 100_000
# A warm-up that cannot take an array of steps is called once per step up to this many steps.
_MAX_SCALAR_CALLS = 5_000
# A warm-up LR of exactly 0 (between log points) is served as this (the table must be > 0).
_TINY_LR = 1e-30
STATE_VERSION = 1


def _json_floats(a) -> list:
    return [None if not math.isfinite(v) else float(v) for v in np.ravel(a).tolist()]


def _from_json_floats(values, shape=None) -> np.ndarray:
    arr = np.array([math.nan if v is None else float(v) for v in values], dtype=np.float64)
    return arr.reshape(shape) if shape is not None else arr


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
            any object with `encode`/`decode`) or a `ControlledODE` (`kind ==
            "controlled"`, with `predict`/`spread`); optionally `planner_defaults`,
            `horizon`, `points_per_epoch`, `lr_range`.
        validation_data: `(x, y)` arrays; the metric is measured on a fixed subset.
        points_per_epoch: log points per epoch P; default the model's (else 10).
        window: context window W in log points; default the model's planner default
            (a controlled model reads its own encoder window, `model.window`).
        replan_every: replan every k log points (an int), or every fraction of the run
            (a float in (0, 1]); default the model's, else P (generative) or 0.1 of the
            run (controlled), at least one point.
        first_replan: log point of the first replan (an int), or a fraction of the run
            (a float in (0, 1)); never before W points exist. Default: as soon as W points
            exist (generative), 0.2 of the run (controlled).
        warmup: LR followed until the first plan: a float, a Keras
            `LearningRateSchedule` or a callable `step -> lr`; default the optimizer's
            (the `LODESchedule`'s `initial_learning_rate`, or the float LR). With a
            `LODESchedule` (runs up to 100,000 steps) it is served exactly at every step,
            and it goes on exactly for as long as no plan changes it; a float-LR optimizer
            gets its value at each log point, held for the interval.
        seed: base seed; replan at log point n uses `planner.derive_seed(seed, n)`,
            so a rerun or a resumed fit replans identically. None draws one.
        state_path: JSON file for the callback's state (for `BackupAndRestore`).
        plot_dir: directory for a figure of each replan (needs matplotlib).
        validation_samples: size of the fixed validation subset, measured at every log
            point. This measurement is nearly all of the callback's cost, linear in the
            size: 256 (the default) keeps it at 1-2% of a Fashion-MNIST CNN's training
            time on CPU (README, "Overhead"), where 1024 costs 4-6% on TensorFlow and
            PyTorch. On that task 256 moved the plans about twice as much as a change of
            planner seed and did not lower test accuracy (README, "Overhead", "Default
            subset").
        validation_batch_size: predict batch of that measurement; None picks the
            backend's cheapest (128 on PyTorch, else the whole subset up to 1024).
        metric: `"accuracy"` or a callable `metric(y_true, y_pred) -> float`; must be
            the metric the LODE was trained on.
        verbose: 1 prints one summary line per replan.
        **planner_overrides: options of the model's planner
            (`keras_lode.planning.planner_options(kind)`): for a generative model
            `samples`, `sigma`, `tol`, `loss_floor`, `top_k`, `anchor`, `lr_range`,
            `reward_at`; for a controlled one `kappa`, `margin`, `starts`, `ends`,
            `shapes`, `lr_range`, `trust`.

    Raises:
        TypeError: for an unknown planner option or a wrong argument type.
        ValueError: for out-of-range arguments, or (at train begin) an optimizer whose
            learning rate is neither a `LODESchedule` nor a float.
    """

    def __init__(
        self,
        model,
        *,
        validation_data,
        points_per_epoch: int | None = None,
        window: int | None = None,
        replan_every: int | float | None = None,
        first_replan: int | float | None = None,
        warmup=None,
        seed: int | None = 0,
        state_path=None,
        plot_dir=None,
        validation_samples: int = 256,
        validation_batch_size: int | None = None,
        metric: str | Callable = "accuracy",
        verbose: int = 1,
        **planner_overrides,
    ):
        if isinstance(model, str | os.PathLike):
            from keras_lode.model import load_model

            model = load_model(model)
        kind = getattr(model, "kind", "generative")
        needs = ("predict", "spread") if kind == "controlled" else ("encode", "decode")
        if not all(hasattr(model, a) for a in needs):
            raise TypeError(
                "Argument `model` must be a LODE model file path, a LatentODE (with "
                "encode/decode) or a ControlledODE (with predict/spread). Received: "
                f"{type(model).__name__} of kind {kind!r}"
            )
        self.lode = model
        self.kind = kind
        defaults = dict(getattr(model, "planner_defaults", None) or {})
        if points_per_epoch is None:
            points_per_epoch = getattr(model, "points_per_epoch", None) or 10
        if validation_data is None:
            raise ValueError(
                "Argument `validation_data` is required: the LODE plans from the validation "
                "metric at each log point. Received: validation_data=None"
            )
        super().__init__(
            points_per_epoch, validation_data, validation_samples, metric, validation_batch_size
        )
        from keras_lode.planning import CONTROL_DEFAULTS, DEFAULTS, planner_options

        if window is None:
            if kind == "controlled":
                window = int(model.window)
            else:
                window = defaults.get("window") or DEFAULTS["window"]
        self.window = self._int_arg("window", window)
        if kind == "controlled" and self.window < int(model.window):
            raise ValueError(
                f"Argument `window` ({self.window}) is shorter than the controlled model's "
                f"encoder window ({int(model.window)} log points): it could never plan. Leave "
                "it unset to use the model's."
            )
        if replan_every is None:
            replan_every = defaults.get("replan_every")
            if replan_every is None:
                replan_every = (
                    CONTROL_DEFAULTS["replan_every"]
                    if kind == "controlled"
                    else self.points_per_epoch
                )
        if first_replan is None and kind == "controlled":
            first_replan = defaults.get("first_replan")
            if first_replan is None:
                first_replan = CONTROL_DEFAULTS["first_replan"]
        self._replan_every_arg = self._cadence_arg("replan_every", replan_every, high=1.0)
        self._first_replan_arg = (
            None if first_replan is None else self._cadence_arg("first_replan", first_replan)
        )
        # Resolved against the run's length at train begin (fractions need K).
        self.replan_every = (
            self._replan_every_arg if isinstance(self._replan_every_arg, int) else None
        )
        self.first_replan = None
        allowed = planner_options(kind)
        unknown = sorted(set(planner_overrides) - set(allowed))
        if unknown:
            raise TypeError(
                f"Unknown planner option(s) {unknown} for LODECallback. "
                f"Expected some of {list(allowed)}."
            )
        self.planner_overrides = dict(planner_overrides)
        if warmup is not None and not (
            callable(warmup) or (isinstance(warmup, int | float) and not isinstance(warmup, bool))
        ):
            raise TypeError(
                "Argument `warmup` must be a float, a LearningRateSchedule or a callable "
                f"step -> lr. Received: warmup={warmup!r}"
            )
        if isinstance(warmup, int | float) and not (math.isfinite(warmup) and warmup > 0):
            raise ValueError(f"Argument `warmup` must be finite and > 0. Received: {warmup!r}")
        self.warmup = warmup
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1)[0])
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
            raise ValueError(f"Argument `seed` must be a non-negative int. Received: {seed!r}")
        self.seed = int(seed)
        self.state_path = Path(state_path) if state_path is not None else None
        self.plot_dir = Path(plot_dir) if plot_dir is not None else None
        self.verbose = int(verbose)
        self.plans: dict[int, object] = {}  # log point -> Plan of this fit
        self.last_plan = None
        self.plan_seconds = 0.0
        self._pending = None

    @staticmethod
    def _int_arg(name, value) -> int:
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value <= 0:
            raise ValueError(f"Argument `{name}` must be a positive int. Received: {value!r}")
        return int(value)

    @staticmethod
    def _cadence_arg(name, value, high: float = 1.0 - 1e-12):
        """A positive int (log points) or a float fraction of the run in (0, high]."""
        if isinstance(value, float | np.floating):
            if not (math.isfinite(value) and 0 < value <= high):
                raise ValueError(
                    f"Argument `{name}` as a fraction of the run must be in (0, {high:.3g}]. "
                    f"Received: {value!r}"
                )
            return float(value)
        if name == "first_replan":
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
                raise ValueError(
                    f"Argument `{name}` must be a log point (int >= 0) or a fraction of the "
                    f"run (float). Received: {value!r}"
                )
            return int(value)
        return LODECallback._int_arg(name, value)

    def _resolve_cadence(self) -> None:
        """Points of the first replan and between replans, for this run's K points."""
        from keras_lode.planning.plan import resolve_cadence

        self.first_replan, self.replan_every = resolve_cadence(
            self.total_points, self.window, self._first_replan_arg, self._replan_every_arg
        )

    # ------------------------------------------------------------------ set-up
    def _fit_begin(self) -> None:
        optimizer = self.model.optimizer
        # A LossScaleOptimizer (mixed precision) holds the LR in its inner optimizer.
        lr = getattr(getattr(optimizer, "inner_optimizer", optimizer), "_learning_rate", None)
        if isinstance(lr, LODESchedule):
            self.mode = "schedule"
            self.schedule = lr
        elif isinstance(lr, keras.Variable):
            self.mode = "variable"
            self.schedule = None
        else:
            raise ValueError(
                "LODECallback needs an optimizer whose learning_rate is a "
                "keras_lode.LODESchedule or a float. Received a learning_rate of type "
                f"{type(lr).__name__}."
            )
        self._resolve_cadence()
        if self.first_replan >= self.total_points - 1:
            _warn(
                f"LODECallback: the first replan (log point {self.first_replan}, window "
                f"{self.window}) is not before the run's last point ({self.total_points} "
                "points); it will never replan."
            )
        self._warmup_table = self._warmup_values(optimizer, self._point_steps() - 1)
        self._table = self._warmup_table.copy()
        # With a LODESchedule the warm-up is served exactly at every step (a table of one LR
        # per step; plans are interpolated between log points as before). Past
        # _MAX_STEP_TABLE steps, the table has one LR per log point (interpolated between).
        total_steps = self.epochs * self.steps_per_epoch
        self._per_step = self.mode == "schedule" and total_steps <= _MAX_STEP_TABLE
        if self._per_step:
            steps = self._warmup_values(optimizer, np.arange(total_steps), strict=False)
            if steps is None:
                self._per_step = False
                logger.info(
                    "LODECallback: the warm-up is served per log point (interpolated between): "
                    "evaluating it at each of %d steps was not possible or too slow.",
                    total_steps,
                )
            else:
                # The last step of each interval is exactly the point table's value.
                steps[self._point_steps() - 1] = self._warmup_table
                self._step_table = steps
        self._history = np.full((self.total_points, 3), np.nan)
        self._replans: dict[int, np.ndarray] = {}
        self.plans = {}
        self.last_plan = None
        self.plan_seconds = 0.0
        self._first_epoch = True
        self._checked = False
        self._applied = None
        self._dirty = False
        self._last_lr = None
        self._pending = None
        self._apply_table(0)

    def _point_steps(self) -> np.ndarray:
        """Global step count at the end of each log point of the run."""
        within = np.asarray(self.boundaries)
        epochs = np.arange(self.epochs)[:, None] * self.steps_per_epoch
        return (epochs + within[None, :]).ravel()

    def _interpolate_steps(self, next_point: int) -> int:
        """Per-step table from log point `next_point` on: the plan, interpolated as
        `LODESchedule` does between log points; returns the first step it covers."""
        s0 = int(self._point_steps()[next_point - 1]) if next_point > 0 else 0
        steps = np.arange(s0, len(self._step_table), dtype=np.float64)
        u = np.clip((steps + 1) * self.points_per_epoch / self.steps_per_epoch - 1, 0,
                    self.total_points - 1)  # fmt: skip
        self._step_table[s0:] = np.interp(u, np.arange(self.total_points), self._table)
        return s0

    def _warmup_values(self, optimizer, steps, strict: bool = True) -> np.ndarray | None:
        """The warm-up LR at each of `steps` (0-based optimizer steps).

        `strict=False` (the per-step table) returns None instead of calling a scalar-only
        schedule more than `_MAX_SCALAR_CALLS` times, and lifts LRs of 0 (a warm-up that
        starts at 0) to a tiny positive value; non-finite or negative values give None.
        """
        warm = self.warmup
        if warm is None:
            if self.mode == "schedule":
                warm = self.schedule.initial_learning_rate
            else:
                warm = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
        if callable(warm):
            values = None
            try:  # Keras schedules are elementwise: one call for every step
                values = np.asarray(
                    keras.ops.convert_to_numpy(warm(np.asarray(steps, "float32"))), np.float64
                ).reshape(-1)
                if values.shape != (len(steps),):
                    values = None
            except Exception:  # a step -> lr function that takes a scalar only
                values = None
            if values is None:
                if not strict and len(steps) > _MAX_SCALAR_CALLS:
                    return None
                values = np.array(
                    [float(keras.ops.convert_to_numpy(warm(int(s)))) for s in steps], np.float64
                )
        else:
            values = np.full(len(steps), float(warm))
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

    def _apply_table(self, next_point: int, now: bool = True) -> None:
        """Makes the optimizer follow `self._table` from log point `next_point` on."""
        if self.mode == "schedule":
            if self._applied is None:
                if self._per_step:
                    replaced = self.schedule.configure(
                        self._step_table, self.steps_per_epoch, self.steps_per_epoch
                    )
                else:
                    replaced = self.schedule.configure(
                        self._table, self.steps_per_epoch, self.points_per_epoch
                    )
                if replaced and keras.backend.backend() == "tensorflow":
                    # A train function traced in an earlier fit read the old variables.
                    self.model.make_train_function(force=True)
                if keras.backend.backend() == "jax":
                    # The plan rides in the optimizer's train state for this fit (see
                    # keras_lode.lode_schedule); detached at the end of the fit.
                    try:
                        self.schedule._attach(self.model.optimizer)
                    except Exception as e:  # an optimizer unlike Keras's own
                        _warn(
                            "LODECallback: could not carry the plan in the optimizer's state "
                            f"({type(e).__name__}: {e}); the schedule reads it on the host at "
                            "every step instead (slower, same learning rates)."
                        )
            elif self._dirty and next_point < self.total_points:
                if keras.backend.backend() == "jax":
                    # Sync the train state to the variables first (the `model` property
                    # does): the assignment below then reaches the next step, and no
                    # later sync overwrites it with the state's old plan.
                    self.model  # noqa: B018
                if self._per_step:
                    s0 = self._interpolate_steps(next_point)
                    self.schedule.set_plan(self._step_table[s0:], start=s0)
                else:
                    self.schedule.set_plan(self._table[next_point:], start=next_point)
            self._applied = True
            self._dirty = False
            return
        if next_point >= self.total_points:
            return
        value = float(self._table[next_point])
        if self._applied != value:
            if now:
                self._assign_lr(value)
            else:
                # Assigned at the next batch begin, so that every callback's batch end
                # (e.g. a RunRecorder after this one) still sees the LR that was in effect.
                self._pending = value

    def _assign_lr(self, value: float) -> None:
        # Through self.model: on JAX this syncs the state, and fit re-reads it before the
        # next step.
        self.model.optimizer.learning_rate = value
        self._applied = value
        self._pending = None

    def on_train_batch_begin(self, batch, logs=None):
        super().on_train_batch_begin(batch, logs)  # may reach a log point and replan
        if self._pending is not None:
            t0 = time.perf_counter()
            self._assign_lr(self._pending)
            self.seconds += time.perf_counter() - t0

    # ------------------------------------------------------------------ resume
    def _epoch_begin(self, epoch: int) -> None:
        if not self._first_epoch:
            return
        self._first_epoch = False
        if epoch > 0 and self.state_path is not None:
            self._resume(epoch)

    def _resume(self, epoch: int) -> None:
        path = self.state_path
        if not path.exists():
            _warn(
                f"LODECallback: the fit resumes at epoch {epoch} but there is no state file "
                f"{str(path)!r}; following the warm-up until {self.window} new points exist."
            )
            return
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
            if state.get("format") != STATE_FORMAT:
                raise ValueError(f"format {state.get('format')!r}, expected {STATE_FORMAT!r}")
            expect = {
                "total_points": self.total_points,
                "points_per_epoch": self.points_per_epoch,
                "steps_per_epoch": self.steps_per_epoch,
                "seed": self.seed,
            }
            found = {k: state.get(k) for k in expect}
            if found != expect:
                raise ValueError(f"state is for another run: {found}, expected {expect}")
            history = _from_json_floats(state["history"], (self.total_points, 3))
            replans = {int(k): _from_json_floats(v) for k, v in state["replans"].items()}
        except (OSError, ValueError, KeyError, TypeError) as e:
            _warn(
                f"LODECallback: could not resume from {str(path)!r} ({e}); starting a new "
                "plan from the warm-up."
            )
            return
        # Keras restarts the epoch from its first batch: keep what happened before it.
        cut = epoch * self.points_per_epoch
        self._history[:cut] = history[:cut]
        self._table = self._warmup_table.copy()
        for n in sorted(replans):
            if n < cut and len(replans[n]) == self.total_points - n - 1:
                self._replans[n] = replans[n]
                if not np.array_equal(self._table[n + 1 :], replans[n]):
                    self._table[n + 1 :] = replans[n]
                    if self._per_step:  # replayed as the fit applied it
                        self._interpolate_steps(n + 1)
        self._applied = None if self.mode == "schedule" else self._applied
        self._apply_table(cut)
        logger.info("LODECallback resumed from %s at log point %d.", path, cut)

    def _save_state(self, finished: bool = False) -> None:
        if self.state_path is None:
            return
        state = {
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            "total_points": self.total_points,
            "points_per_epoch": self.points_per_epoch,
            "steps_per_epoch": self.steps_per_epoch,
            "seed": self.seed,
            "window": self.window,
            "replan_every": self.replan_every,
            "warmup": _json_floats(self._warmup_table),
            "history": _json_floats(self._history),
            "replans": {str(n): _json_floats(v) for n, v in sorted(self._replans.items())},
            "finished": finished,
        }
        try:
            # Strict JSON, written to a temporary file and renamed, with the usual file mode.
            write_json(self.state_path, state, indent=None)
        except (OSError, ValueError) as e:
            path = self.state_path
            logger.warning("LODECallback could not write its state to %s: %s", path, e)

    # ------------------------------------------------------------------ log points
    def on_log_point(self, point: dict, logs: dict) -> None:
        n = point["index"]
        lr = point["lr"]
        self._history[n] = (
            point["loss"],
            math.log(lr) if lr > 0 and math.isfinite(lr) else math.nan,
            point["metric"],
        )
        logs["learning_rate"] = lr
        self._last_lr = lr
        first = self.first_replan
        if (
            n >= first
            and (n - first) % self.replan_every == 0
            and n < self.total_points - 1
            and n not in self._replans
        ):
            self._replan(n)
        self._apply_table(n + 1, now=False)
        self._save_state()

    def _replan(self, n: int) -> None:
        from keras_lode.planning import derive_seed, plan

        window = self._history[n - self.window + 1 : n + 1]
        cause = None
        if not np.all(np.isfinite(window[:, 0])):
            cause = "the window has a non-finite training loss"
        elif not np.all(np.isfinite(window[:, 2])):
            cause = "the window has missing (NaN) validation values"
        elif not np.all(np.isfinite(window[:, 1])):
            cause = "the window has a non-finite learning rate"
        result = None
        if cause is None and not self._checked:
            # Once per fit: say so if this run is unlike the model's training runs.
            self._checked = True
            try:
                from keras_lode.planning.plausibility import warn_implausible

                warn_implausible(self.lode, self._history[: n + 1], run_name="this fit")
            except Exception as e:  # a check must never stop the fit
                logger.warning("LODECallback could not check the run: %s", e)
        if cause is None:
            t0 = time.perf_counter()
            try:
                result = plan(
                    self.lode,
                    window,
                    position=n,
                    total_points=self.total_points,
                    current_plan=self._table[n + 1 :],
                    seed=derive_seed(self.seed, n),
                    points_per_epoch=self.points_per_epoch,
                    **self.planner_overrides,
                )
                lrs = np.asarray(result.lr, dtype=np.float64)
                if lrs.shape != (self.total_points - n - 1,):
                    raise ValueError(
                        f"plan returned {lrs.shape[0] if lrs.ndim else 0} LRs, "
                        f"expected {self.total_points - n - 1}"
                    )
                if not np.all(np.isfinite(lrs) & (lrs > 0)):
                    raise ValueError("plan returned a non-finite or non-positive LR")
            except Exception as e:  # planning must never kill the user's fit
                cause = f"planning raised {type(e).__name__}: {e}"
                result = None
            self.plan_seconds += time.perf_counter() - t0
        if result is None:
            _warn(
                f"LODECallback: replan at log point {n} skipped ({cause}); training continues "
                "on the current plan."
            )
            return
        if not np.array_equal(self._table[n + 1 :], lrs):
            # A plan that keeps the current one changes nothing (a warm-up stays exact).
            self._table[n + 1 :] = lrs
            self._dirty = True
        self._replans[n] = lrs.copy()
        self.plans[n] = result
        self.last_plan = result
        if self.verbose:
            epoch = (n + 1) / self.points_per_epoch
            summary = result.summary() if hasattr(result, "summary") else f"lr {lrs[0]:.3g}"
            print(f"Epoch {epoch:.2f}: {summary}")
        if self.plot_dir is not None:
            self._plot(result, n)

    def _plot(self, result, n: int) -> None:
        try:
            from keras_lode.planning.plot import plot_plan

            self.plot_dir.mkdir(parents=True, exist_ok=True)
            observed = self._history[: n + 1]
            plot_plan(result, self.plot_dir / f"plan_{n:05d}.png", observed=observed)
        except Exception as e:  # a figure is optional; training is not
            logger.warning("LODECallback could not plot the plan at point %d: %s", n, e)

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)  # the epoch's last log point
        if logs is not None:
            # The LR of the epoch's last step (a float-LR optimizer already holds the next).
            last = getattr(self, "_last_lr", None)
            logs["learning_rate"] = (
                last if last is not None else current_learning_rate(self.model.optimizer)
            )

    def on_train_end(self, logs=None):
        if getattr(self, "schedule", None) is not None:
            self.schedule._detach()
        self._save_state(finished=True)

    @property
    def plan_table(self) -> np.ndarray:
        """The LR per log point the run follows now (warm-up + applied replans)."""
        return self._table.copy()

    @property
    def step_table(self) -> np.ndarray | None:
        """The LR per optimizer step a `LODESchedule` serves now (None: one per log point)."""
        return self._step_table.copy() if getattr(self, "_per_step", False) else None

    def to_run(self, meta=None):
        """The observed log points as a `keras_lode.Run` (only the points seen so far).

        Args:
            meta: extra metadata (task, seed, ...); the run geometry is filled in.

        Returns:
            A `keras_lode.Run` with schedule family `"lode"`.
        """
        from keras_lode.runs import Run

        seen = np.flatnonzero(np.isfinite(self._history[:, 1]))
        steps = self._point_steps()[seen]
        loss = self._history[seen, 0]
        info = {"schedule": "lode", "seed": self.seed, "metric_name": self.metric_name}
        info.update(meta or {})
        info.update(
            {
                "steps_per_epoch": self.steps_per_epoch,
                "points_per_epoch": self.points_per_epoch,
                "epochs": self.epochs,
                "total_steps": self.steps_per_epoch * self.epochs,
                "status": "complete" if np.all(np.isfinite(loss)) else "diverged",
            }
        )
        return Run(
            steps,
            (seen + 1) / self.points_per_epoch,
            np.exp(self._history[seen, 1]),
            loss,
            self._history[seen, 2],
            meta=info,
        )

    @property
    def history(self) -> np.ndarray:
        """(K, 3) observed `[loss, ln lr, metric]` per log point (NaN: not yet)."""
        return self._history.copy()
