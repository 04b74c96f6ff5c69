"""Pieces the parametric schedules share: argument checks, annealing, the warm-up ramp."""

from __future__ import annotations

import math

from keras_lode._backend import import_keras
from keras_lode._checks import check_int

keras = import_keras("keras_lode.schedules")  # a clear error when no backend is installed
ops = keras.ops

__all__ = ["WarmupMixin", "anneal", "check_positive", "check_steps"]


def check_positive(name: str, value, *, allow_zero: bool = False) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"Argument `{name}` must be a number. Received: {name}={value!r}") from None
    ok = value >= 0 if allow_zero else value > 0
    if not ok or not math.isfinite(value):
        op = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"Argument `{name}` must be finite and {op}. Received: {name}={value}")
    return value


def check_steps(name: str, value, *, allow_zero: bool = False) -> int:
    # A step count given as an integral float (e.g. from a config) is accepted.
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return check_int(name, value, minimum=0 if allow_zero else 1)


def anneal(start, end, frac, how: str):
    """Interpolates from `start` (frac 0) to `end` (frac 1), cosine or linear."""
    if how == "cosine":
        return end + (start - end) * 0.5 * (1.0 + ops.cos(math.pi * frac))
    # Written as a weighted sum so both endpoints are exact in float32.
    return start * (1.0 - frac) + end * frac


class WarmupMixin:
    """The warm-up (and end-LR) checks and the warm-up ramp of `WarmupCosine`, `LinearDecay`
    and `WSD`."""

    def _check_warmup(self, warmup_steps, initial_learning_rate, total_steps):
        self.warmup_steps = check_steps("warmup_steps", warmup_steps, allow_zero=True)
        if self.warmup_steps >= total_steps:
            raise ValueError(
                "Argument `warmup_steps` must be < `total_steps`. Received: "
                f"warmup_steps={warmup_steps}, total_steps={total_steps}"
            )
        self.initial_learning_rate = check_positive(
            "initial_learning_rate", initial_learning_rate, allow_zero=True
        )

    def _check_end(self, end_learning_rate):
        self.end_learning_rate = check_positive(
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
