"""The trust region: the LR changes the training runs made from each kind of state.

It is part of a controlled model file's contract (the `planner.trust` section): the
trainer tabulates it from the training runs, the control planner drops every candidate
that leaves it.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from keras_lode._checks import check_int, check_number

__all__ = ["TrustRegion"]


@dataclasses.dataclass
class TrustRegion:
    """The LR jumps the training runs made from each kind of state.

    A state is a (stretch of training, LR level) cell: `fraction_edges` cut the run into
    bins of `t / K`, `ln_lr_edges` the ln LR. Cell `(i, j)` holds the largest fall
    (`down`, <= 0) and rise (`up`, >= 0) of ln LR from one log point to the next that any
    training run made from a state in that cell (switched runs make the large ones); NaN
    where no run was. `allowed(lr, fraction)` takes the extremes over the cells of the
    current stretch whose LR lies within `radius` (ln units) of the current LR, so that a
    planner only proposes changes the model has seen the effect of.
    """

    fraction_edges: np.ndarray
    ln_lr_edges: np.ndarray
    down: np.ndarray
    up: np.ndarray
    radius: float = math.log(2.0)

    @classmethod
    def from_runs(cls, runs, *, fraction_bins: int = 5, ln_lr_bin: float = math.log(2.0)):
        """Tabulates the one-point LR changes of `runs` (any objects with an `lr` array)."""
        check_int("fraction_bins", fraction_bins, minimum=1)
        ln_lr_bin = check_number("ln_lr_bin", ln_lr_bin, minimum=0.0, strict=True)
        samples = []
        for r in runs:
            ln = np.log(np.asarray(r.lr, dtype=np.float64))
            k = ln.size
            if k < 2 or not np.all(np.isfinite(ln)):
                continue
            frac = np.arange(k - 1) / k
            samples.append(np.stack([frac, ln[:-1], np.diff(ln)], axis=1))
        if not samples:
            raise ValueError("TrustRegion.from_runs needs at least one run with >= 2 finite LRs")
        s = np.concatenate(samples)
        lo, hi = float(s[:, 1].min()), float(s[:, 1].max())
        n_lr = max(1, math.ceil((hi - lo) / ln_lr_bin + 1e-9))
        ln_edges = lo + ln_lr_bin * np.arange(n_lr + 1)
        f_edges = np.linspace(0.0, 1.0, fraction_bins + 1)
        fi = np.clip(np.searchsorted(f_edges, s[:, 0], side="right") - 1, 0, fraction_bins - 1)
        li = np.clip(np.searchsorted(ln_edges, s[:, 1], side="right") - 1, 0, n_lr - 1)
        down = np.full((fraction_bins, n_lr), np.nan)
        up = np.full((fraction_bins, n_lr), np.nan)
        for i, j, d in zip(fi, li, s[:, 2], strict=True):
            down[i, j] = min(d, 0.0) if np.isnan(down[i, j]) else min(down[i, j], d)
            up[i, j] = max(d, 0.0) if np.isnan(up[i, j]) else max(up[i, j], d)
        return cls(f_edges, ln_edges, down, up)

    def allowed(self, lr: float, fraction: float) -> tuple[float, float]:
        """(lowest, highest) allowed ln-LR change from `lr` at `fraction` of the run.

        A state no training run visited allows no change: (0.0, 0.0).
        """
        ln = math.log(lr)
        nf = len(self.fraction_edges) - 1
        i = min(
            max(int(np.searchsorted(self.fraction_edges, fraction, side="right")) - 1, 0), nf - 1
        )
        centers = 0.5 * (self.ln_lr_edges[:-1] + self.ln_lr_edges[1:])
        half = 0.5 * float(np.min(np.diff(self.ln_lr_edges)))
        near = np.abs(centers - ln) <= self.radius + half
        down, up = self.down[i, near], self.up[i, near]
        down, up = down[np.isfinite(down)], up[np.isfinite(up)]
        return (float(down.min()) if down.size else 0.0, float(up.max()) if up.size else 0.0)

    def allowed_many(self, ln_lr, fraction) -> tuple[np.ndarray, np.ndarray]:
        """`allowed` for arrays of states (ln LR, fraction of the run), vectorized."""
        ln = np.asarray(ln_lr, dtype=np.float64)
        frac = np.broadcast_to(np.asarray(fraction, dtype=np.float64), ln.shape)
        nf = len(self.fraction_edges) - 1
        i = np.clip(np.searchsorted(self.fraction_edges, frac, side="right") - 1, 0, nf - 1)
        centers = 0.5 * (self.ln_lr_edges[:-1] + self.ln_lr_edges[1:])
        half = 0.5 * float(np.min(np.diff(self.ln_lr_edges)))
        near = np.abs(centers - ln[..., None]) <= self.radius + half  # (..., L)
        down, up = self.down[i], self.up[i]
        low = np.where(near & np.isfinite(down), down, np.inf).min(axis=-1)
        high = np.where(near & np.isfinite(up), up, -np.inf).max(axis=-1)
        return np.where(np.isfinite(low), low, 0.0), np.where(np.isfinite(high), high, 0.0)

    def path_violation(self, lr_now: float, path, fraction: float, step: float):
        """The first step of an LR path that leaves the region, or None.

        Step i goes from `path[i - 1]` (`lr_now` for i = 0) to `path[i]`, from a state at
        `fraction + i * step` of the run; its ln-LR change must lie in what the training
        runs did from that state (`allowed`).

        Returns:
            None, or `(i, ratio, (low, high))`: the step, its LR ratio and the allowed
            ln-LR changes there.
        """
        path = np.asarray(path, dtype=np.float64)
        ln = np.log(np.concatenate([[lr_now], path]))
        jumps = np.diff(ln)
        low, high = self.allowed_many(ln[:-1], fraction + step * np.arange(path.size))
        bad = (jumps < low - 1e-9) | (jumps > high + 1e-9)
        if not bad.any():
            return None
        i = int(np.argmax(bad))
        return i, float(np.exp(jumps[i])), (float(low[i]), float(high[i]))

    def to_json(self) -> dict:
        """A JSON-ready dict (NaN as None) for the model file's planner section."""

        def clean(a):
            return [
                [None if not math.isfinite(v) else round(float(v), 6) for v in row] for row in a
            ]

        return {
            "fraction_edges": [float(v) for v in self.fraction_edges],
            "ln_lr_edges": [round(float(v), 6) for v in self.ln_lr_edges],
            "down": clean(self.down),
            "up": clean(self.up),
            "radius": float(self.radius),
        }

    @classmethod
    def from_json(cls, d: dict) -> TrustRegion:
        """The inverse of `to_json`; raises ValueError naming a malformed field."""
        try:
            f = np.asarray(d["fraction_edges"], dtype=np.float64)
            ln = np.asarray(d["ln_lr_edges"], dtype=np.float64)

            def table(key):
                return np.asarray(
                    [[np.nan if v is None else float(v) for v in row] for row in d[key]],
                    dtype=np.float64,
                )

            down, up = table("down"), table("up")
            radius = float(d.get("radius", math.log(2.0)))
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"Malformed trust region in the model file: {e!r}") from e
        shape = (len(f) - 1, len(ln) - 1)
        if (
            f.ndim != 1
            or ln.ndim != 1
            or min(shape) < 1
            or down.shape != shape
            or up.shape != shape
            or not (np.all(np.isfinite(f)) and np.all(np.isfinite(ln)))
            or not (np.all(np.diff(f) > 0) and np.all(np.diff(ln) > 0))
            or not (math.isfinite(radius) and radius >= 0)
        ):
            raise ValueError(
                "Malformed trust region in the model file: expected increasing finite edges and "
                f"(fractions, ln LRs) = {shape} tables. Received down {down.shape}, up {up.shape}"
            )
        return cls(f, ln, down, up, radius)
