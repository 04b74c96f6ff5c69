"""A planning call's result (`Plan`), its per-call seeds (`derive_seed`), the replan cadence."""

from __future__ import annotations

import dataclasses

import numpy as np

from keras_lode._checks import check_int

__all__ = ["Plan", "derive_seed", "resolve_cadence"]


@dataclasses.dataclass
class Plan:
    """The result of one planning call.

    Attributes:
        lr: LR for each remaining log point `position + 1 .. total_points - 1`; finite,
            positive and inside `lr_range`.
        accepted: number of samples with at least one anchor (and finite futures).
        fallback: True when nothing was accepted and `lr` is the current plan (or, without
            one, the current LR held).
        rewards: (S + 1,) predicted metric of each sample at its anchor's reward point;
            NaN for rejected samples.
        anchors: (S + 1,) anchor index `j` (run log points) of each sample; -1 if rejected.
        candidates: (S + 1, M, C) decoded trajectories in raw units; `candidates[s, m]` is
            sample `s` at run log point `m` (model time `m * time_scale`).
        chosen: indices of the top-k accepted samples by reward, best first.
        seed: the seed of this call's noise; `plan(..., seed=plan.seed)` reproduces it.
        position: log point `n` at which the plan was made.
        total_points: number of log points `K` of the run.
        reward_at: run log point at which rewards are read (default `total_points`).
        lr_range: (low, high) clipping range that was applied.
        anchor_rule: `"max_lr"` or `"nearest"`.
        loss_band: (low, high) predicted-loss interval that anchors had to fall in.
        time_scale: model time per run log point (1.0 unless the run was mapped).
        window: the observed (W, 3) window the plan was made from.
        reason: why the plan fell back (empty when it did not).
        timings: seconds spent in `encode`, `decode` and `selection`.
    """

    lr: np.ndarray
    accepted: int
    fallback: bool
    rewards: np.ndarray
    anchors: np.ndarray
    candidates: np.ndarray
    chosen: np.ndarray
    seed: int
    position: int
    total_points: int
    reward_at: int
    lr_range: tuple[float, float]
    anchor_rule: str
    loss_band: tuple[float, float]
    time_scale: float
    window: np.ndarray
    reason: str = ""
    timings: dict[str, float] = dataclasses.field(default_factory=dict)

    @property
    def points(self) -> np.ndarray:
        """Run log points that `lr` covers: `position + 1 .. total_points - 1`."""
        return np.arange(self.position + 1, self.total_points)

    @property
    def accepted_mask(self) -> np.ndarray:
        """(S + 1,) bool: which samples were accepted."""
        return self.anchors >= 0

    def summary(self) -> str:
        """One line for verbose output, e.g. in the callback's replan log."""
        head = (
            f"LODE plan at point {self.position}/{self.total_points}: "
            f"{self.accepted}/{len(self.anchors)} futures accepted"
        )
        if self.fallback:
            return f"{head}; fallback ({self.reason})"
        if len(self.lr) == 0:
            return f"{head}; no points left"
        top = self.rewards[self.chosen]
        return (
            f"{head}; top-{len(self.chosen)} reward {np.mean(top):.4g} "
            f"(best {top[0]:.4g}); lr {self.lr[0]:.3g} -> {self.lr[-1]:.3g} "
            f"[{self.anchor_rule}, seed {self.seed}]"
        )


def derive_seed(seed: int | None, position: int) -> int:
    """A per-call seed, reproducible from one base seed and the log point.

    The reference used one fixed noise seed on every call; a callback should instead call
    `plan(..., seed=derive_seed(base_seed, position))` so that each replan draws fresh
    noise, yet a rerun (or a resumed run) with the same base seed replans identically.

    Args:
        seed: base seed (non-negative int), or None for fresh entropy.
        position: log point of the planning call.

    Returns:
        A non-negative int below 2**63.
    """
    if seed is None:
        return int(np.random.SeedSequence().generate_state(1, np.uint64)[0] >> np.uint64(1))
    check_int("seed", seed, minimum=0)
    check_int("position", position, minimum=0)
    state = np.random.SeedSequence([int(seed), int(position)]).generate_state(1, np.uint64)
    return int(state[0] >> np.uint64(1))


def resolve_cadence(total_points: int, window: int, first_replan, replan_every) -> tuple[int, int]:
    """The log point of the first replan and the points between replans, for a K-point run.

    Args:
        total_points: the run's number of log points K.
        window: points the planner reads; no replan before `window - 1`.
        first_replan: a log point (int), a fraction of the run (float), or None (as soon
            as the window is full).
        replan_every: points (int) or a fraction of the run (float); at least 1 point.

    Returns:
        `(first, every)`: replans happen at `first, first + every, ...` below `K - 1`.
    """
    if isinstance(replan_every, float):
        every = max(1, round(replan_every * total_points))
    else:
        every = int(replan_every)
    if first_replan is None:
        first = window - 1
    elif isinstance(first_replan, float):
        first = round(first_replan * total_points)
    else:
        first = int(first_replan)
    return max(first, window - 1), every
