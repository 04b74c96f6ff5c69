"""Parametric learning-rate schedules for sweeps: the baselines Keras lacks.

Each class is a serializable, registered `keras.optimizers.schedules.LearningRateSchedule`
that uses only `keras.ops`, so it runs inside the compiled train step of every backend
and also eagerly (`optimizer.learning_rate`). `make_schedule(family, peak_lr,
total_steps)` (`keras_lode.schedules.families`) builds the schedule of one sweep family.

Example:

```python
from keras_lode import schedules

lr = schedules.make_schedule("onecycle", peak_lr=3e-3, total_steps=4690)
optimizer = keras.optimizers.AdamW(learning_rate=lr)
```
"""

from __future__ import annotations

import math

from keras_lode._backend import import_keras
from keras_lode.schedules.pieces import WarmupMixin, anneal, check_positive, check_steps

keras = import_keras("keras_lode.schedules")  # a clear error when no backend is installed
ops = keras.ops

_ANNEALS = ("cosine", "linear")


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
        self.learning_rate = check_positive("learning_rate", learning_rate)
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
        self.initial_learning_rate = check_positive("initial_learning_rate", initial_learning_rate)
        self.decay_steps = check_steps("decay_steps", decay_steps)
        self.decay_rate = check_positive("decay_rate", decay_rate)
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


@keras.saving.register_keras_serializable(package="keras_lode")
class WarmupCosine(WarmupMixin, keras.optimizers.schedules.LearningRateSchedule):
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
        self.peak_learning_rate = check_positive("peak_learning_rate", peak_learning_rate)
        self.total_steps = check_steps("total_steps", total_steps)
        self._check_warmup(warmup_steps, initial_learning_rate, self.total_steps)
        self.alpha = check_positive("alpha", alpha, allow_zero=True)
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
        self.max_learning_rate = check_positive("max_learning_rate", max_learning_rate)
        self.total_steps = check_steps("total_steps", total_steps)
        self.pct_start = check_positive("pct_start", pct_start, allow_zero=True)
        if self.pct_start >= 1:
            raise ValueError(
                f"Argument `pct_start` must be in [0, 1). Received: pct_start={pct_start}"
            )
        self.div_factor = check_positive("div_factor", div_factor)
        self.final_div_factor = check_positive("final_div_factor", final_div_factor)
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
            up = anneal(
                self.initial_learning_rate,
                self.max_learning_rate,
                step / max(rise, 1e-12),
                self.anneal,
            )
            frac = ops.minimum((step - rise) / (self.total_steps - rise), 1.0)
            down = anneal(
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
class LinearDecay(WarmupMixin, keras.optimizers.schedules.LearningRateSchedule):
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
        self.peak_learning_rate = check_positive("peak_learning_rate", peak_learning_rate)
        self.total_steps = check_steps("total_steps", total_steps)
        self._check_warmup(warmup_steps, initial_learning_rate, self.total_steps)
        self._check_end(end_learning_rate)
        self.name = name

    def __call__(self, step):
        with keras.name_scope(self.name):
            step = ops.maximum(ops.cast(step, "float32"), 0.0)
            w = float(self.warmup_steps)
            frac = ops.clip((step - w) / float(self.total_steps - self.warmup_steps), 0.0, 1.0)
            decayed = anneal(self.peak_learning_rate, self.end_learning_rate, frac, "linear")
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
class WSD(WarmupMixin, keras.optimizers.schedules.LearningRateSchedule):
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
        self.peak_learning_rate = check_positive("peak_learning_rate", peak_learning_rate)
        self.total_steps = check_steps("total_steps", total_steps)
        self._check_warmup(warmup_steps, initial_learning_rate, self.total_steps)
        self.decay_fraction = check_positive("decay_fraction", decay_fraction)
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
                cooled = anneal(p, e, frac, "linear")
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
