"""Parametric learning-rate schedules for sweeps: the baselines Keras lacks.

Each class is a serializable, registered `keras.optimizers.schedules.LearningRateSchedule`
that uses only `keras.ops`, so it runs inside the compiled train step of every backend
and also eagerly (`optimizer.learning_rate`). `make_schedule(family, peak_lr,
total_steps)` builds the schedule of one sweep family; `FAMILIES` names them.

Example:

```python
from keras_lode import schedules

lr = schedules.make_schedule("onecycle", peak_lr=3e-3, total_steps=4690)
optimizer = keras.optimizers.AdamW(learning_rate=lr)
```
"""

from __future__ import annotations

import inspect
import math

from keras_lode._backend import import_keras
from keras_lode._checks import check_int
from keras_lode.constants import FAMILIES

keras = import_keras("keras_lode.schedules")  # a clear error when no backend is installed
ops = keras.ops

_ANNEALS = ("cosine", "linear")


def _check_positive(name: str, value, *, allow_zero: bool = False) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"Argument `{name}` must be a number. Received: {name}={value!r}") from None
    ok = value >= 0 if allow_zero else value > 0
    if not ok or not math.isfinite(value):
        op = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"Argument `{name}` must be finite and {op}. Received: {name}={value}")
    return value


def _check_steps(name: str, value, *, allow_zero: bool = False) -> int:
    # A step count given as an integral float (e.g. from a config) is accepted.
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return check_int(name, value, minimum=0 if allow_zero else 1)


def _anneal(start, end, frac, how: str):
    """Interpolates from `start` (frac 0) to `end` (frac 1), cosine or linear."""
    if how == "cosine":
        return end + (start - end) * 0.5 * (1.0 + ops.cos(math.pi * frac))
    # Written as a weighted sum so both endpoints are exact in float32.
    return start * (1.0 - frac) + end * frac


@keras.saving.register_keras_serializable(package="keras_lode")
class Constant(keras.optimizers.schedules.LearningRateSchedule):
    """A constant learning rate, as a schedule (so a sweep treats all families alike).

    `lr(step) = learning_rate`

    Args:
        learning_rate: the learning rate, > 0.
        name: name of the schedule's ops scope.
    """

    def __init__(self, learning_rate: float, name: str = "Constant"):
        super().__init__()
        self.learning_rate = _check_positive("learning_rate", learning_rate)
        self.name = name

    def __call__(self, step):
        with keras.name_scope(self.name):
            step = ops.cast(step, "float32")
            return ops.zeros_like(step) + self.learning_rate

    def get_config(self):
        return {"learning_rate": self.learning_rate, "name": self.name}


@keras.saving.register_keras_serializable(package="keras_lode")
class StepDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Step decay: the learning rate drops by `decay_rate` every `decay_steps` steps.

    `lr(step) = initial_learning_rate * decay_rate ** floor(step / decay_steps)`

    Example:

    ```python
    # 0.1 -> 0.01 at step 1000 -> 0.001 at step 2000
    lr = StepDecay(0.1, decay_steps=1000, decay_rate=0.1)
    ```

    Args:
        initial_learning_rate: the learning rate before the first drop, > 0.
        decay_steps: steps between drops, > 0.
        decay_rate: factor applied at each drop, in (0, 1].
        name: name of the schedule's ops scope.
    """

    def __init__(
        self,
        initial_learning_rate: float,
        decay_steps: int,
        decay_rate: float = 0.1,
        name: str = "StepDecay",
    ):
        super().__init__()
        self.initial_learning_rate = _check_positive("initial_learning_rate", initial_learning_rate)
        self.decay_steps = _check_steps("decay_steps", decay_steps)
        self.decay_rate = _check_positive("decay_rate", decay_rate)
        if self.decay_rate > 1:
            raise ValueError(
                f"Argument `decay_rate` must be in (0, 1]. Received: decay_rate={decay_rate}"
            )
        self.name = name

    def __call__(self, step):
        with keras.name_scope(self.name):
            step = ops.maximum(ops.cast(step, "float32"), 0.0)
            drops = ops.floor(step / float(self.decay_steps))
            return self.initial_learning_rate * ops.power(self.decay_rate, drops)

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "decay_rate": self.decay_rate,
            "name": self.name,
        }


class _WarmupMixin:
    """The warm-up (and end-LR) checks and the warm-up ramp of `WarmupCosine`, `LinearDecay`
    and `WSD`."""

    def _check_warmup(self, warmup_steps, initial_learning_rate, total_steps):
        self.warmup_steps = _check_steps("warmup_steps", warmup_steps, allow_zero=True)
        if self.warmup_steps >= total_steps:
            raise ValueError(
                "Argument `warmup_steps` must be < `total_steps`. Received: "
                f"warmup_steps={warmup_steps}, total_steps={total_steps}"
            )
        self.initial_learning_rate = _check_positive(
            "initial_learning_rate", initial_learning_rate, allow_zero=True
        )

    def _check_end(self, end_learning_rate):
        self.end_learning_rate = _check_positive(
            "end_learning_rate", end_learning_rate, allow_zero=True
        )
        if self.end_learning_rate > self.peak_learning_rate:
            raise ValueError(
                "Argument `end_learning_rate` must be <= `peak_learning_rate`. Received: "
                f"end_learning_rate={end_learning_rate}, "
                f"peak_learning_rate={self.peak_learning_rate}"
            )

    def _warm(self, step):
        w = float(self.warmup_steps)
        a, p = self.initial_learning_rate, self.peak_learning_rate
        return a + (p - a) * (step / max(w, 1.0))


@keras.saving.register_keras_serializable(package="keras_lode")
class WarmupCosine(_WarmupMixin, keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to a peak, then cosine decay to `alpha * peak` at `total_steps`.

    With `w = warmup_steps`, `T = total_steps`, `p = peak_learning_rate`,
    `a = initial_learning_rate`:

    - `step < w`:  `lr = a + (p - a) * step / w`
    - otherwise:   `lr = p * (alpha + (1 - alpha) * (1 + cos(pi * f)) / 2)` with
      `f = min((step - w) / (T - w), 1)`

    Example:

    ```python
    lr = WarmupCosine(1e-3, total_steps=10_000, warmup_steps=500)
    ```

    Args:
        peak_learning_rate: the learning rate at the end of warm-up, > 0.
        total_steps: steps of the whole schedule; after it the LR stays at
            `alpha * peak_learning_rate`.
        warmup_steps: steps of linear warm-up (0: start at the peak).
        initial_learning_rate: the learning rate at step 0 when warming up.
        alpha: final learning rate as a fraction of the peak, in [0, 1].
        name: name of the schedule's ops scope.
    """

    def __init__(
        self,
        peak_learning_rate: float,
        total_steps: int,
        warmup_steps: int = 0,
        initial_learning_rate: float = 0.0,
        alpha: float = 0.0,
        name: str = "WarmupCosine",
    ):
        super().__init__()
        self.peak_learning_rate = _check_positive("peak_learning_rate", peak_learning_rate)
        self.total_steps = _check_steps("total_steps", total_steps)
        self._check_warmup(warmup_steps, initial_learning_rate, self.total_steps)
        self.alpha = _check_positive("alpha", alpha, allow_zero=True)
        if self.alpha > 1:
            raise ValueError(f"Argument `alpha` must be in [0, 1]. Received: alpha={alpha}")
        self.name = name

    def __call__(self, step):
        with keras.name_scope(self.name):
            step = ops.maximum(ops.cast(step, "float32"), 0.0)
            peak = self.peak_learning_rate
            w = float(self.warmup_steps)
            warm = self._warm(step)
            frac = ops.minimum((step - w) / float(self.total_steps - self.warmup_steps), 1.0)
            frac = ops.maximum(frac, 0.0)
            decayed = peak * (
                self.alpha + (1.0 - self.alpha) * 0.5 * (1.0 + ops.cos(math.pi * frac))
            )
            return ops.where(step < w, warm, decayed)

    def get_config(self):
        return {
            "peak_learning_rate": self.peak_learning_rate,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "initial_learning_rate": self.initial_learning_rate,
            "alpha": self.alpha,
            "name": self.name,
        }


@keras.saving.register_keras_serializable(package="keras_lode")
class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """One-cycle policy: anneal up to the peak, then down far below the start.

    As in PyTorch's `OneCycleLR` and optax's `cosine_onecycle_schedule`: the LR starts
    at `max_learning_rate / div_factor`, anneals to `max_learning_rate` over the first
    `pct_start * total_steps` steps, then anneals to
    `max_learning_rate / (div_factor * final_div_factor)` at `total_steps` and stays
    there. With `s = pct_start * total_steps`:

    - `step < s`: `lr = anneal(initial, max, step / s)`
    - otherwise:  `lr = anneal(max, final, min((step - s) / (total_steps - s), 1))`

    where `anneal(a, b, f) = b + (a - b) * (1 + cos(pi * f)) / 2` (`anneal="cosine"`)
    or `a * (1 - f) + b * f` (`anneal="linear"`).

    Example:

    ```python
    lr = OneCycle(3e-3, total_steps=4690, pct_start=0.25, anneal="linear")
    ```

    Args:
        max_learning_rate: the peak learning rate, > 0.
        total_steps: steps of the whole cycle, > 0.
        pct_start: fraction of the steps spent rising to the peak, in [0, 1).
        div_factor: `initial = max_learning_rate / div_factor`, >= 1.
        final_div_factor: `final = initial / final_div_factor`, >= 1.
        anneal: `"cosine"` or `"linear"`.
        name: name of the schedule's ops scope.
    """

    def __init__(
        self,
        max_learning_rate: float,
        total_steps: int,
        pct_start: float = 0.3,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        anneal: str = "cosine",
        name: str = "OneCycle",
    ):
        super().__init__()
        self.max_learning_rate = _check_positive("max_learning_rate", max_learning_rate)
        self.total_steps = _check_steps("total_steps", total_steps)
        self.pct_start = _check_positive("pct_start", pct_start, allow_zero=True)
        if self.pct_start >= 1:
            raise ValueError(
                f"Argument `pct_start` must be in [0, 1). Received: pct_start={pct_start}"
            )
        self.div_factor = _check_positive("div_factor", div_factor)
        self.final_div_factor = _check_positive("final_div_factor", final_div_factor)
        for key, val in (("div_factor", div_factor), ("final_div_factor", final_div_factor)):
            if float(val) < 1:
                raise ValueError(f"Argument `{key}` must be >= 1. Received: {key}={val}")
        if anneal not in _ANNEALS:
            raise ValueError(f"Argument `anneal` must be one of {_ANNEALS}. Received: {anneal!r}")
        self.anneal = anneal
        self.name = name

    @property
    def initial_learning_rate(self) -> float:
        return self.max_learning_rate / self.div_factor

    @property
    def final_learning_rate(self) -> float:
        return self.initial_learning_rate / self.final_div_factor

    def __call__(self, step):
        with keras.name_scope(self.name):
            step = ops.maximum(ops.cast(step, "float32"), 0.0)
            rise = self.pct_start * self.total_steps
            up = _anneal(
                self.initial_learning_rate,
                self.max_learning_rate,
                step / max(rise, 1e-12),
                self.anneal,
            )
            frac = ops.minimum((step - rise) / (self.total_steps - rise), 1.0)
            down = _anneal(
                self.max_learning_rate,
                self.final_learning_rate,
                ops.maximum(frac, 0.0),
                self.anneal,
            )
            return ops.where(step < rise, up, down)

    def get_config(self):
        return {
            "max_learning_rate": self.max_learning_rate,
            "total_steps": self.total_steps,
            "pct_start": self.pct_start,
            "div_factor": self.div_factor,
            "final_div_factor": self.final_div_factor,
            "anneal": self.anneal,
            "name": self.name,
        }


@keras.saving.register_keras_serializable(package="keras_lode")
class LinearDecay(_WarmupMixin, keras.optimizers.schedules.LearningRateSchedule):
    """Optional linear warm-up, then linear decay to `end_learning_rate` at `total_steps`.

    With `w = warmup_steps`, `T = total_steps`, `p = peak_learning_rate`,
    `e = end_learning_rate`, `a = initial_learning_rate`:

    - `step < w`:  `lr = a + (p - a) * step / w`
    - otherwise:   `lr = p + (e - p) * f` with `f = min((step - w) / (T - w), 1)`

    `end_learning_rate=0` is linear decay to zero; sweeps use a small floor instead
    (`make_schedule`), since a zero LR has no logarithm for the LODE.

    Example:

    ```python
    lr = LinearDecay(1e-3, total_steps=10_000, warmup_steps=500, end_learning_rate=1e-6)
    ```

    Args:
        peak_learning_rate: the learning rate at the end of warm-up, > 0.
        total_steps: steps of the whole schedule; after it the LR stays at the end value.
        warmup_steps: steps of linear warm-up (0: start at the peak).
        initial_learning_rate: the learning rate at step 0 when warming up.
        end_learning_rate: the learning rate at `total_steps`, in [0, peak].
        name: name of the schedule's ops scope.
    """

    def __init__(
        self,
        peak_learning_rate: float,
        total_steps: int,
        warmup_steps: int = 0,
        initial_learning_rate: float = 0.0,
        end_learning_rate: float = 0.0,
        name: str = "LinearDecay",
    ):
        super().__init__()
        self.peak_learning_rate = _check_positive("peak_learning_rate", peak_learning_rate)
        self.total_steps = _check_steps("total_steps", total_steps)
        self._check_warmup(warmup_steps, initial_learning_rate, self.total_steps)
        self._check_end(end_learning_rate)
        self.name = name

    def __call__(self, step):
        with keras.name_scope(self.name):
            step = ops.maximum(ops.cast(step, "float32"), 0.0)
            w = float(self.warmup_steps)
            frac = ops.clip((step - w) / float(self.total_steps - self.warmup_steps), 0.0, 1.0)
            decayed = _anneal(self.peak_learning_rate, self.end_learning_rate, frac, "linear")
            return ops.where(step < w, self._warm(step), decayed)

    def get_config(self):
        return {
            "peak_learning_rate": self.peak_learning_rate,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "initial_learning_rate": self.initial_learning_rate,
            "end_learning_rate": self.end_learning_rate,
            "name": self.name,
        }


_COOLDOWNS = ("linear", "1-sqrt")


@keras.saving.register_keras_serializable(package="keras_lode")
class WSD(_WarmupMixin, keras.optimizers.schedules.LearningRateSchedule):
    """Warmup-stable-decay: warm up, hold the peak, then cool down over the last part.

    With `w = warmup_steps`, `T = total_steps`, `D = round(decay_fraction * T)` cool-down
    steps starting at `s = T - D`, `p = peak_learning_rate`, `e = end_learning_rate`:

    - `step < w`:       linear warm-up from `initial_learning_rate` to `p`
    - `w <= step < s`:  `lr = p`
    - `step >= s`:      `f = min((step - s) / D, 1)`; `"linear"`: `lr = p + (e - p) * f`;
      `"1-sqrt"`: `lr = e + (p - e) * (1 - sqrt(f))`

    Example:

    ```python
    lr = WSD(1e-3, total_steps=10_000, warmup_steps=500, decay_fraction=0.2)
    ```

    Args:
        peak_learning_rate: the stable learning rate, > 0.
        total_steps: steps of the whole schedule.
        warmup_steps: steps of linear warm-up (0: start at the peak).
        decay_fraction: share of `total_steps` spent cooling down, in (0, 1].
        cooldown: `"linear"` or `"1-sqrt"`.
        initial_learning_rate: the learning rate at step 0 when warming up.
        end_learning_rate: the learning rate at `total_steps`, in [0, peak].
        name: name of the schedule's ops scope.
    """

    def __init__(
        self,
        peak_learning_rate: float,
        total_steps: int,
        warmup_steps: int = 0,
        decay_fraction: float = 0.2,
        cooldown: str = "linear",
        initial_learning_rate: float = 0.0,
        end_learning_rate: float = 0.0,
        name: str = "WSD",
    ):
        super().__init__()
        self.peak_learning_rate = _check_positive("peak_learning_rate", peak_learning_rate)
        self.total_steps = _check_steps("total_steps", total_steps)
        self._check_warmup(warmup_steps, initial_learning_rate, self.total_steps)
        self.decay_fraction = _check_positive("decay_fraction", decay_fraction)
        if self.decay_fraction > 1:
            raise ValueError(
                "Argument `decay_fraction` must be in (0, 1]. "
                f"Received: decay_fraction={decay_fraction}"
            )
        if cooldown not in _COOLDOWNS:
            raise ValueError(
                f"Argument `cooldown` must be one of {_COOLDOWNS}. Received: cooldown={cooldown!r}"
            )
        self.cooldown = cooldown
        self._check_end(end_learning_rate)
        self.name = name

    @property
    def decay_start(self) -> int:
        """The step where the cool-down begins."""
        decay = max(1, round(self.decay_fraction * self.total_steps))
        return max(self.total_steps - decay, self.warmup_steps)

    def __call__(self, step):
        with keras.name_scope(self.name):
            step = ops.maximum(ops.cast(step, "float32"), 0.0)
            start = float(self.decay_start)
            frac = ops.clip((step - start) / float(self.total_steps - start), 0.0, 1.0)
            p, e = self.peak_learning_rate, self.end_learning_rate
            if self.cooldown == "linear":
                cooled = _anneal(p, e, frac, "linear")
            else:
                cooled = e + (p - e) * (1.0 - ops.sqrt(frac))
            w = float(self.warmup_steps)
            return ops.where(step < w, self._warm(step), ops.where(step < start, p, cooled))

    def get_config(self):
        return {
            "peak_learning_rate": self.peak_learning_rate,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "decay_fraction": self.decay_fraction,
            "cooldown": self.cooldown,
            "initial_learning_rate": self.initial_learning_rate,
            "end_learning_rate": self.end_learning_rate,
            "name": self.name,
        }


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
        self.switch_step = _check_steps("switch_step", switch_step)
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
    total_steps = _check_steps("total_steps", total_steps)
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
