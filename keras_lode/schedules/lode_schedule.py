"""LODESchedule: a Keras learning-rate schedule that serves a (re)plannable LR table.

The schedule holds one learning rate per log point of the run (the *plan*) and
serves it per optimizer step, linearly interpolated between log points. The plan
can be replaced during `fit` (by `LODECallback`) and the very next training step
uses it on every backend, without retracing the compiled train step:

- TensorFlow and torch: the table lives in a `keras.Variable`; a variable read inside
  a `tf.function` is live (captured by reference) and torch runs eagerly.
- JAX: a `keras.Variable` is live inside the jitted train step only if it is part of
  the train state, and a schedule's variables are not. `LODECallback` therefore
  attaches the plan's two variables to the optimizer for the duration of a fit
  (`attach`): they travel in the optimizer state like its `iterations`, so a replan
  reaches the next step with no host call and no recompilation. While attached, the
  optimizer saves and loads its own variables without them (the plan is saved in the
  schedule's config), so a checkpoint written mid-fit loads into a fresh optimizer.
  Without the callback (or under a `keras.distribution`), the schedule reads the plan
  on the host through `jax.experimental.io_callback`: one scalar round trip per step,
  still live but slower (1-3% of the Fashion-MNIST CNN's step on CPU, 34-55% on an H200).

The plan is part of `get_config`, so `model.save` -> `keras.saving.load_model`
restores an optimizer that continues with the same learning rate.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from keras_lode._backend import import_keras
from keras_lode._checks import check_int

keras = import_keras("keras_lode.LODESchedule")  # a clear error when no backend is installed
ops = keras.ops

_PACKAGE = "keras_lode"
logger = logging.getLogger(__name__)


def _lr_table(name: str, values) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise TypeError(
            f"Argument `{name}` must be a sequence of floats. Received: {name}={values!r}"
        ) from e
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(
            f"Argument `{name}` must be a non-empty 1-D sequence of learning rates. "
            f"Received an array of shape {arr.shape}."
        )
    bad = ~np.isfinite(arr) | (arr <= 0)
    if np.any(bad):
        i = int(np.argmax(bad))
        raise ValueError(
            f"Argument `{name}` must hold finite, positive learning rates. "
            f"Received {name}[{i}]={float(arr[i])!r}."
        )
    return arr


def _same_key(a: tuple, b: tuple) -> bool:
    # Objects by identity (tracers and tensors do not compare as booleans), ints by value.
    if len(a) != len(b):
        return False
    pairs = zip(a, b, strict=True)
    return all(x is y or (type(x) is int and type(y) is int and x == y) for x, y in pairs)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class LODESchedule(keras.optimizers.schedules.LearningRateSchedule):
    """A learning-rate schedule that follows a plan given per log point.

    The run is divided into `points_per_epoch` (P) log points per epoch; log point
    `j` ends after `(j + 1) * steps_per_epoch / P` steps. `learning_rates[j]` is the
    LR of the last step of interval `j`; steps in between are linearly interpolated:

    ```
    u = (step + 1) * P / steps_per_epoch - 1          # fractional log point
    lr(step) = interp(clip(u, 0, K - 1), [0..K-1], learning_rates)
    ```

    Before the plan is known (`learning_rates=None`) the schedule serves
    `initial_learning_rate`. `LODECallback` fills in the warm-up values and then
    replaces the remaining part of the plan every few log points (`set_plan`). For runs
    up to 100,000 steps the callback configures one entry per *step*
    (`points_per_epoch = steps_per_epoch`), so that the warm-up is served exactly; `plan`
    and the saved config then hold one LR per step.

    Example:

    ```python
    schedule = keras_lode.LODESchedule(initial_learning_rate=1e-3)
    model.compile(optimizer=keras.optimizers.AdamW(schedule), loss=..., metrics=["accuracy"])
    model.fit(x, y, epochs=8, callbacks=[keras_lode.LODECallback("lode.npz",
                                                                  validation_data=(xv, yv))])
    ```

    Args:
        learning_rates: the plan, one positive LR per log point of the run (length
            K = epochs x P), or None to serve `initial_learning_rate` until a plan is set.
        steps_per_epoch: optimizer steps per epoch; required with `learning_rates`.
        points_per_epoch: log points per epoch P.
        initial_learning_rate: LR served while no plan is set.
        name: name of the schedule.

    Raises:
        ValueError: if a learning rate is not finite and positive, or a count is not
            a positive int.
    """

    def __init__(
        self,
        learning_rates=None,
        steps_per_epoch=None,
        points_per_epoch=10,
        initial_learning_rate=1e-3,
        name="LODESchedule",
    ):
        super().__init__()
        self.points_per_epoch = check_int("points_per_epoch", points_per_epoch)
        lr0 = initial_learning_rate
        if isinstance(lr0, bool) or not isinstance(lr0, int | float | np.floating):
            raise TypeError(
                "Argument `initial_learning_rate` must be a float. "
                f"Received: initial_learning_rate={lr0!r}"
            )
        if not math.isfinite(float(lr0)) or float(lr0) <= 0:
            raise ValueError(
                "Argument `initial_learning_rate` must be finite and > 0. "
                f"Received: initial_learning_rate={lr0!r}"
            )
        self.initial_learning_rate = float(lr0)
        self.name = name
        if learning_rates is None:
            if steps_per_epoch is not None:
                steps_per_epoch = check_int("steps_per_epoch", steps_per_epoch)
            table = np.array([self.initial_learning_rate])
            points_per_step = 0.0
        else:
            if steps_per_epoch is None:
                raise ValueError(
                    "Argument `steps_per_epoch` is required when `learning_rates` is given "
                    "(it maps optimizer steps to log points). Received: steps_per_epoch=None"
                )
            steps_per_epoch = check_int("steps_per_epoch", steps_per_epoch)
            table = _lr_table("learning_rates", learning_rates)
            points_per_step = self.points_per_epoch / steps_per_epoch
        self.steps_per_epoch = steps_per_epoch
        self._has_plan = learning_rates is not None
        self._set_table(table, points_per_step)

    # ------------------------------------------------------------------ state
    def _set_table(self, table: np.ndarray, points_per_step: float) -> None:
        # The host copy is what the JAX io_callback and the NumPy helpers read; the
        # variables are what the TF / torch graphs read. Both change together.
        self._table_np = np.asarray(table, dtype=np.float64).copy()
        self._points_per_step_np = float(points_per_step)
        self._step_cache = None  # an eager (torch) result is of the old plan
        table32 = self._table_np.astype("float32")
        variable = getattr(self, "_table", None)
        if variable is not None and tuple(variable.shape) == table32.shape:
            variable.assign(table32)
            self._points_per_step.assign(np.float32(points_per_step))
            return
        # A new shape needs new variables: only when a fit of another length begins.
        # A TF train function traced with the old variables must be rebuilt then
        # (`variables_replaced` tells the caller).
        self.variables_replaced = variable is not None
        attached = getattr(self, "_attached", None)
        self.detach()  # an attachment carries the variables being replaced
        self._table = keras.Variable(table32, dtype="float32", trainable=False, name="lode_plan")
        self._points_per_step = keras.Variable(
            np.float32(points_per_step), dtype="float32", trainable=False, name="lode_pps"
        )
        if attached is not None:
            self.attach(attached[2][0])

    def configure(self, learning_rates, steps_per_epoch, points_per_epoch=None) -> bool:
        """Sets the whole plan and the step-to-log-point mapping (at the start of a fit).

        Args:
            learning_rates: one positive LR per log point of the run.
            steps_per_epoch: optimizer steps per epoch of the run.
            points_per_epoch: log points per epoch (default: unchanged).

        Returns:
            True if the table changed shape, so a compiled TF train function that read
            the old variables must be rebuilt (`model.make_train_function(force=True)`).
        """
        if points_per_epoch is not None:
            self.points_per_epoch = check_int("points_per_epoch", points_per_epoch)
        self.steps_per_epoch = check_int("steps_per_epoch", steps_per_epoch)
        table = _lr_table("learning_rates", learning_rates)
        self.variables_replaced = False
        self._set_table(table, self.points_per_epoch / self.steps_per_epoch)
        self._has_plan = True
        return self.variables_replaced

    def set_plan(self, learning_rates, start: int = 0) -> None:
        """Replaces the plan from log point `start` on; the next step uses it.

        Args:
            learning_rates: positive LRs for log points `start .. K - 1`.
            start: first log point to replace.

        Raises:
            ValueError: if no plan is configured yet, `start` is out of range, or the
                LRs are not finite, positive, or of length `K - start`.
        """
        if not self._has_plan:
            raise ValueError(
                "LODESchedule.set_plan needs a configured plan (call `configure` first, or "
                "pass `learning_rates` and `steps_per_epoch`)."
            )
        k = len(self._table_np)
        if (
            isinstance(start, bool)
            or not isinstance(start, int | np.integer)
            or not (0 <= start < k)
        ):
            raise ValueError(f"Argument `start` must be an int in [0, {k}). Received: {start!r}")
        new = _lr_table("learning_rates", learning_rates)
        if len(new) != k - start:
            raise ValueError(
                f"Argument `learning_rates` must have length K - start = {k - start}. "
                f"Received length {len(new)}."
            )
        table = self._table_np.copy()
        table[start:] = new
        self._set_table(table, self._points_per_step_np)

    @property
    def plan(self) -> np.ndarray:
        """A copy of the current plan (one LR per log point), float64."""
        return self._table_np.copy()

    # ------------------------------------------------------------------ evaluation
    def lr_at(self, step) -> np.ndarray:
        """The LR served at optimizer step(s) `step`, computed in NumPy (float64)."""
        step = np.asarray(step, dtype=np.float64)
        table = self._table_np
        u = (step + 1.0) * self._points_per_step_np - 1.0
        u = np.clip(u, 0.0, len(table) - 1)
        return np.interp(u, np.arange(len(table)), table)

    def __call__(self, step):
        # Optimizers evaluate the schedule once per weight-decayed variable and once for
        # the update (10 times per step for a small CNN with AdamW). One step's calls get
        # the same `step`, so the first result is reused; on small models the repeated
        # evaluations cost 5-20% of a step (TensorFlow graph ops, torch eager kernels).
        key = self._step_key(step)
        cached = self._step_cache
        if key is not None and cached is not None and _same_key(cached[0], key):
            return cached[1]
        out = self._evaluate(step)
        self._step_cache = None if key is None else (key, out)
        return out

    def _step_key(self, step):
        """What identifies one step's evaluation, or None where results must not be reused.

        - JAX, traced: the `iterations` tracer (each trace has its own objects).
        - TensorFlow, traced: the graph being traced and the step object.
        - torch: the step tensor and its in-place version counter (`assign_add` bumps it).
          The result is a value computed eagerly: a new plan drops it (`_set_table`).
        - Eager TensorFlow / JAX: None (nothing tells two steps apart cheaply).
        """
        value = step.value if isinstance(step, keras.Variable) else step
        backend = keras.backend.backend()
        if backend == "jax":
            import jax

            return (value,) if isinstance(value, jax.core.Tracer) else None
        if backend == "tensorflow":
            import tensorflow as tf

            if tf.inside_function():
                return (tf.compat.v1.get_default_graph(), step)
            return None
        if backend == "torch":
            import torch

            # Not while torch.compile traces (jit_compile=True): there the graph is built once.
            if isinstance(value, torch.Tensor) and not torch.compiler.is_compiling():
                return (value, value._version)
        return None

    def _evaluate(self, step):
        if keras.backend.backend() == "jax":
            import jax

            # The optimizer passes its `iterations` variable; inside the jitted train
            # step its value is a tracer (the stateless scope's copy).
            value = step.value if isinstance(step, keras.Variable) else step
            if isinstance(value, jax.core.Tracer):
                table = self._table.value
                if isinstance(table, jax.core.Tracer):
                    # Attached: the plan is part of the traced optimizer state (live).
                    return self._interpolate(value, table, self._points_per_step.value)
                return self._jax_host_lookup(value)
        return self._interpolate(step, self._table, self._points_per_step)

    def _interpolate(self, step, table, pps):
        # Few ops on purpose: optimizers evaluate the schedule once per weight-decayed
        # variable, so on TensorFlow every op here is traced many times per train step.
        with keras.name_scope(self.name):
            last = int(self._table_np.shape[0]) - 1  # the variable's static length - 1
            # u = (step + 1) * pps - 1, the run's log-point coordinate of this step.
            u = ops.clip(ops.cast(step, "float32") * pps + (pps - 1.0), 0.0, float(last))
            i0 = ops.cast(u, "int32")  # floor, as u >= 0
            lo = ops.take(table, i0)
            hi = ops.take(table, ops.minimum(i0 + 1, last))
            return lo + (u - ops.cast(i0, "float32")) * (hi - lo)

    # ------------------------------------------------------------------ JAX state
    def attach(self, optimizer) -> bool:
        """Carries the plan in `optimizer`'s JAX train state until `detach`.

        The plan's variables are appended to the variables of the optimizer that holds
        this schedule (the inner one of a `LossScaleOptimizer`), so Keras's JAX trainer
        passes them into the jitted step like `iterations`: a replan assigned after a
        state sync reaches the next step. `save_own_variables` / `load_own_variables` of
        `optimizer` (and of its inner optimizer) are wrapped on these instances to leave
        them out, so the saved optimizer has the same variables as one built without
        the callback. Idempotent; replaces an earlier attachment.

        Args:
            optimizer: the model's optimizer.

        Returns:
            False (and attaches nothing) where the trainer could not carry them: a
            `keras.distribution` is set (its state shardings are fixed before the fit's
            callbacks run). The schedule then uses the host lookup.
        """
        self.detach()
        if keras.distribution.distribution() is not None:
            return False
        owner = getattr(optimizer, "inner_optimizer", optimizer)
        variables = (self._table, self._points_per_step)

        def track():
            tracker = owner._tracker
            locked = tracker.locked
            tracker.unlock()
            try:
                for v in variables:
                    owner._track_variable(v)
            finally:
                if locked:
                    tracker.lock()

        def without_plan(method):
            def call(store):
                for v in variables:
                    owner._untrack_variable(v)
                try:
                    return method(store)
                finally:
                    track()

            return call

        try:
            track()
        except Exception:
            for v in variables:  # leave the optimizer as it was
                if any(v is w for w in owner.variables):
                    owner._untrack_variable(v)
            raise
        wrapped = [optimizer] if owner is optimizer else [optimizer, owner]
        for obj in wrapped:
            for name in ("save_own_variables", "load_own_variables"):
                # object.__setattr__: the optimizer's __setattr__ tracks what it is given.
                object.__setattr__(obj, name, without_plan(getattr(obj, name)))
        self._attached = (owner, variables, wrapped)
        return True

    def detach(self) -> None:
        """Undoes `attach` (no-op if not attached)."""
        attached = getattr(self, "_attached", None)
        if attached is None:
            return
        owner, variables, wrapped = attached
        for v in variables:
            owner._untrack_variable(v)
        for obj in wrapped:
            for name in ("save_own_variables", "load_own_variables"):
                obj.__dict__.pop(name, None)
        self._attached = None

    def _jax_host_lookup(self, step):
        import jax
        import jax.numpy as jnp
        from jax.experimental import io_callback

        if not getattr(self, "_told_host_lookup", False):
            self._told_host_lookup = True
            logger.info(
                "LODESchedule on JAX without LODECallback: the plan is read on the host at "
                "every step (one host round trip per step; slow on accelerators). "
                "LODECallback carries it in the train state instead."
            )

        def lookup(s):
            # Reads the host table at run time, so a replan reaches the next step.
            return np.asarray(self.lr_at(np.asarray(s)), dtype=np.float32)

        # One host round trip per step (~0.6 ms on CPU, more on a GPU): `__call__` reuses
        # the result for the step's other evaluations.
        return io_callback(lookup, jax.ShapeDtypeStruct((), jnp.float32), step, ordered=False)

    def get_config(self):
        return {
            "learning_rates": self._table_np.tolist() if self._has_plan else None,
            "steps_per_epoch": self.steps_per_epoch,
            "points_per_epoch": self.points_per_epoch,
            "initial_learning_rate": self.initial_learning_rate,
            "name": self.name,
        }
