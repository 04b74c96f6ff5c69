"""The grid of a sweep: `Trial` (one grid point), `TrialResult` (what became of it), `make_grid`,
the switched trials that re-run a grid point and change schedule mid-run
(`make_switched_trials`) and the branch trials that re-run one and follow a planner-library
continuation from a replan point on (`make_branch_trials`)."""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Iterable

import numpy as np

from keras_lode.constants import FAMILIES
from keras_lode.runs import run_name


@dataclasses.dataclass(frozen=True)
class Switch:
    """Where a switched trial leaves its schedule and which one it follows from there."""

    to_family: str
    to_peak_lr: float
    at_point: int


@dataclasses.dataclass(frozen=True)
class Branch:
    """Where a branch trial leaves its base schedule, and which continuation it follows.

    The continuation is drawn when the trial runs, from the library a control planner
    would score at log point `at_point` of the base run (`candidate_library` around the
    base schedule's own continuation, inside `lr_range`): the `pick`-th of `of` distinct
    non-default candidates, drawn with `draw_seed`, so the branches of one group are
    different continuations of the same shared prefix.
    """

    at_point: int
    pick: int
    of: int
    lr_range: tuple[float, float]
    draw_seed: int = 0


@dataclasses.dataclass(frozen=True)
class Trial:
    """One grid point of a sweep; with `switch`, that point re-run and switched mid-run.

    A switched trial has the seed of its base grid point, so up to and including log
    point `switch.at_point` it is that run (same initialization, same data order); from
    the next step on it follows `switch.to_family` at `switch.to_peak_lr`, as that
    schedule would go on at that point of training.
    """

    family: str
    peak_lr: float
    seed: int
    switch: Switch | None = None
    branch: Branch | None = None

    @property
    def run_id(self) -> str:
        base = run_name(self.family, self.peak_lr, self.seed)
        if self.branch is not None:
            return f"{base}-branch{int(self.branch.pick)}-at{int(self.branch.at_point)}"
        if self.switch is None:
            return base
        s = self.switch
        return f"{base}-to-{s.to_family}-lr{float(s.to_peak_lr):.4g}-at{int(s.at_point)}"

    def to_dict(self) -> dict:
        """Plain JSON data (for worker processes)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d) -> Trial:
        sw = d.get("switch")
        switch = None
        if sw:
            switch = Switch(str(sw["to_family"]), float(sw["to_peak_lr"]), int(sw["at_point"]))
        br = d.get("branch")
        branch = None
        if br:
            lo, hi = (float(v) for v in br["lr_range"])
            branch = Branch(int(br["at_point"]), int(br["pick"]), int(br["of"]), (lo, hi),
                            int(br.get("draw_seed", 0)))  # fmt: skip
        return cls(str(d["family"]), float(d["peak_lr"]), int(d["seed"]), switch, branch)


@dataclasses.dataclass
class TrialResult:
    """What a sweep did with one trial."""

    run_id: str
    family: str
    peak_lr: float
    seed: int
    path: str
    status: str
    skipped: bool = False
    test_metric: float | None = None
    seconds: float = 0.0
    error: str | None = None


def make_grid(
    families: Iterable[str] = FAMILIES,
    peak_lrs: Iterable[float] = (1e-3,),
    seeds: Iterable[int] = (0,),
) -> list[Trial]:
    """The trials of a grid, families x peak LRs x seeds, in that nesting order.

    Raises:
        ValueError: unknown family, non-positive LR, or an empty axis.
    """
    families, peak_lrs, seeds = list(families), list(peak_lrs), list(seeds)
    for arg, values in (("families", families), ("peak_lrs", peak_lrs), ("seeds", seeds)):
        if not values:
            raise ValueError(f"Argument `{arg}` must not be empty.")
    bad = [f for f in families if f not in FAMILIES]
    if bad:
        raise ValueError(f"Argument `families` has unknown families {bad}. Expected {FAMILIES}.")
    for lr in peak_lrs:
        if not (isinstance(lr, int | float) and math.isfinite(lr) and lr > 0):
            raise ValueError(f"Argument `peak_lrs` must hold positive numbers. Received: {lr!r}")
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, int | np.integer):
            raise ValueError(f"Argument `seeds` must hold ints. Received: {s!r}")
    trials = [
        Trial(f, float(lr), int(s)) for f, lr, s in itertools.product(families, peak_lrs, seeds)
    ]
    ids = [t.run_id for t in trials]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})
        raise ValueError(f"The grid has repeated trials {dup}; check `peak_lrs` and `seeds`.")
    return trials


def make_switched_trials(
    families: Iterable[str],
    peak_lrs: Iterable[float],
    seeds: Iterable[int],
    *,
    runs: int,
    points: int,
    targets: int = 3,
    fractions: Iterable[float] = (0.25, 0.5, 0.75),
    seed: int = 0,
) -> list[Trial]:
    """`runs` switched trials, in groups of `targets` continuations of one (base, cut).

    Each group re-runs a random grid point (family, peak LR, seed) and switches at a log
    point `round(f * (points - 1))`, f drawn from `fractions`, to `targets` different
    configs of the grid (random family and peak LR, never the base config). Groups are
    spread over the seeds in turn, so every seed — and so a held-out seed — has some.
    The draw is reproducible from `seed`.

    Args:
        families, peak_lrs, seeds: the grid the bases and targets come from.
        runs: number of switched trials (rounded up to whole groups).
        points: log points K of a run (epochs x P).
        targets: continuations per group.
        fractions: where in the run the switch may happen.
        seed: seed of the draw.

    Raises:
        ValueError: bad grid, fewer than 2 configs, or a switch point outside the run.
    """
    families, peak_lrs, seeds = list(families), list(peak_lrs), list(seeds)
    make_grid(families, peak_lrs, seeds)  # the same checks as the grid itself
    configs = [(f, float(lr)) for f in families for lr in peak_lrs]
    if len(configs) < 2:
        raise ValueError("Switched trials need a grid of at least 2 configs to switch between.")
    if isinstance(runs, bool) or not isinstance(runs, int) or runs < 0:
        raise ValueError(f"Argument `runs` must be an int >= 0. Received: runs={runs!r}")
    targets = min(int(targets), len(configs) - 1)
    if targets < 1:
        raise ValueError(f"Argument `targets` must be >= 1. Received: targets={targets}")
    rng = np.random.default_rng(seed)
    fractions = [float(f) for f in fractions]
    out, seen = [], set()
    groups = -(-runs // targets)
    for g in range(groups):
        s = seeds[g % len(seeds)]
        for _ in range(100):  # a new (base, cut) for this group
            base = configs[int(rng.integers(len(configs)))]
            at = int(round(fractions[int(rng.integers(len(fractions)))] * (points - 1)))
            if (base, s, at) not in seen:
                break
        seen.add((base, s, at))
        if not 1 <= at <= points - 2:
            raise ValueError(f"A switch at log point {at} is outside [1, {points - 2}].")
        others = [c for c in configs if c != base]
        for i in rng.choice(len(others), size=targets, replace=False):
            to = others[int(i)]
            out.append(Trial(base[0], base[1], int(s), Switch(to[0], to[1], at)))
    return out


#: The control planner's cadence by default: first replan at 20% of the run, then every 10%.
FIRST_REPLAN, REPLAN_EVERY = 0.2, 0.1


def branch_points(points: int, window: int = 10, every_other: int = 2) -> list[int]:
    """Where branch trials leave their base: replan points of a controlled LODE with this
    `window` under the default cadence (`resolve_cadence(points, window, 0.2, 0.1)`),
    the first and then every `every_other`-th, three at most, all before the last point."""
    from keras_lode.planning.replans import resolve_cadence

    first, every = resolve_cadence(int(points), int(window), FIRST_REPLAN, REPLAN_EVERY)
    at = [first + i * every_other * every for i in range(3)]
    return [n for n in at if 1 <= n <= points - 2]


def make_branch_trials(
    bases: Iterable[tuple[str, float]],
    seeds: Iterable[int],
    *,
    runs: int,
    points: int,
    lr_range: tuple[float, float],
    candidates: int = 4,
    window: int = 10,
    seed: int = 0,
) -> list[Trial]:
    """`runs` branch trials, in groups of `candidates` continuations of one (base, point).

    Groups go to every base on every seed at the first branch point of
    `branch_points(points, window)` (the first replan, where a planner rescues a poor
    start), then at the next point, and so on, each (base, seed, point) once. The
    continuations themselves are drawn when the trials run (`Branch`).

    Args:
        bases: (family, peak LR) configs to branch from, e.g. the sweep's best config and
            its constant LRs (the warm-ups users start from).
        seeds: the seeds of the base runs.
        runs: number of branch trials (rounded up to whole groups; fewer when there are
            fewer distinct (base, seed, point) groups).
        points: log points K of a run.
        lr_range: (low, high): the LRs a continuation may take (the planner's range).
        candidates: continuations per group.
        window: the window of the LODE the runs are for (no replan before `window - 1`).
        seed: seed of the draw of the continuations.

    Raises:
        ValueError: no bases or seeds, a bad count, or a run too short to branch.
    """
    bases = [(str(f), float(lr)) for f, lr in bases]
    seeds = [int(s) for s in seeds]
    if not bases or not seeds:
        raise ValueError("Branch trials need at least one base config and one seed.")
    if isinstance(runs, bool) or not isinstance(runs, int) or runs < 0:
        raise ValueError(f"Argument `runs` must be an int >= 0. Received: runs={runs!r}")
    if isinstance(candidates, bool) or not isinstance(candidates, int) or candidates < 1:
        raise ValueError(f"Argument `candidates` must be an int >= 1. Received: {candidates!r}")
    lo, hi = (float(v) for v in lr_range)
    if not (0 < lo < hi and math.isfinite(hi)):
        raise ValueError(f"Argument `lr_range` must be (low, high), 0 < low < high. Received: "
                         f"{lr_range!r}")  # fmt: skip
    at_points = branch_points(points, window)
    if not at_points:
        raise ValueError(f"A run of {points} log points has no replan point for a window of "
                         f"{window}: nothing to branch from.")  # fmt: skip
    combos = [(b, s, n) for n in at_points for s in seeds for b in bases]
    out = []
    for base, s, at in list(dict.fromkeys(combos))[: -(-runs // candidates)]:
        for pick in range(candidates):
            branch = Branch(at, pick, candidates, (lo, hi), int(seed))
            out.append(Trial(base[0], base[1], s, branch=branch))
    return out


def branch_trials_of(grid_runs, seeds, points: int, **options) -> list[Trial]:
    """A sweep's branch trials from its grid runs: from its best config and its constant
    LRs (`keras_lode.experiments.best.branch_bases`), inside the LR range they visited.

    Args:
        grid_runs: the sweep's grid runs (incomplete ones are left out).
        seeds, points: as `make_branch_trials` takes them.
        **options: `runs`, `candidates`, `window`, `seed` of `make_branch_trials`.

    Returns:
        The trials; none without a complete grid run.
    """
    from keras_lode.experiments.best import branch_bases

    bases, lr_range = branch_bases([r for r in grid_runs if r.status == "complete"])
    if not bases:
        return []
    return make_branch_trials(bases, seeds, points=points, lr_range=lr_range, **options)
