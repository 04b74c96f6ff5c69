"""When a run replans (`resolve_cadence`) and the seed each replan draws (`derive_seed`)."""

from __future__ import annotations

import numpy as np

from keras_lode._checks import check_int

__all__ = ["derive_seed", "resolve_cadence"]


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
