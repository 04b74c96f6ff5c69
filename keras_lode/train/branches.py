"""Branch groups: runs of one seed that share everything up to a point and differ only after.

A sweep's `--branches` runs re-run a grid run from the same seed and follow, from a replan
point on, a continuation of the planner's library. With the grid run as the default
continuation, each (base run, branch point) is a `BranchGroup`: the actual paired gains of
the very decision a planner faces there, free of seed noise in the prefix
(`keras_lode.train.counterfactual` calibrates decisions on them).
"""

from __future__ import annotations

import dataclasses

import numpy as np

__all__ = ["BranchGroup", "branch_groups"]


@dataclasses.dataclass
class BranchGroup:
    """The runs of one seed that differ only in the continuation after log point `position`.

    Attributes:
        seed: the runs' seed (groups are held out by seed).
        position: the branch point `n`.
        total_points: the runs' number of log points `K`.
        window: (W, 3) `[loss, ln lr, metric]` of the shared prefix up to `n`.
        names: (C,) continuation names; entry 0 is the default.
        paths: (C, K - 1 - n) LR per remaining point of each continuation.
        actual: (C,) final validation metric each run reached.
        points_per_epoch: the runs' P (for the horizon mapping).
        history: (n + 1, 3) the whole shared prefix from point 0 (a task-free model reads
            the run relative to its early state); None when only `window` is known.
        task: the runs' task (a zoo's groups are held out by task: `fit_paired(by="task")`).
        mode: the metric's direction, `"max"` or `"min"`.
    """

    seed: int
    position: int
    total_points: int
    window: np.ndarray
    names: list[str]
    paths: np.ndarray
    actual: np.ndarray
    points_per_epoch: int | None = None
    history: np.ndarray | None = None
    task: str | None = None
    mode: str = "max"

    def __post_init__(self):
        self.window = np.asarray(self.window, dtype=np.float64)
        if self.history is not None:
            self.history = np.asarray(self.history, dtype=np.float64)
            if self.history.shape != (self.position + 1, 3):
                raise ValueError(
                    f"BranchGroup(seed={self.seed}): `history` must hold the prefix's "
                    f"{self.position + 1} rows of 3 channels. Received {self.history.shape}"
                )
        if self.mode not in ("max", "min"):
            raise ValueError(f"BranchGroup: `mode` must be 'max' or 'min'. Received {self.mode!r}")
        self.paths = np.asarray(self.paths, dtype=np.float64)
        self.actual = np.asarray(self.actual, dtype=np.float64)
        c = len(self.names)
        r = self.total_points - 1 - self.position
        if c < 2 or self.paths.shape != (c, r) or self.actual.shape != (c,):
            raise ValueError(
                f"BranchGroup(seed={self.seed}): expected >= 2 names, paths of shape ({c}, {r}) "
                f"and {c} actual finals. Received paths {self.paths.shape}, actual "
                f"{self.actual.shape}"
            )


def branch_groups(runs, window: int) -> list[BranchGroup]:
    """The branch groups among recorded runs: each (base run, branch point) of a sweep's
    `--branches` runs (`Run.kind == "branch"`, `meta["branch"]` naming its `base` grid run,
    `at_point` and `candidate`), with the base run itself as the default continuation.

    Incomplete runs, runs of another length than their base and groups whose base is not
    among `runs` are left out. The actual outcome of a run is its last validation metric.

    Args:
        runs: `Run`s (e.g. `keras_lode.load_runs(sweep_dir)`: grid and branch runs).
        window: the model's window W (the group's window is the base's last W points).
    """
    # Runs of several tasks (a zoo) may share run ids: a base is found within its task.
    by_id = {(r.meta.get("task"), r.run_id): r for r in runs}
    members: dict = {}
    for r in runs:
        b = r.meta.get("branch")
        if r.kind != "branch" or not isinstance(b, dict) or r.status != "complete":
            continue
        key = (r.meta.get("task"), str(b["base"]), int(b["at_point"]))
        members.setdefault(key, []).append(r)
    groups = []
    order = sorted(members, key=lambda k: (str(k[0]), k[1], k[2]))
    for (task, base_id, n), branch_runs in ((k, members[k]) for k in order):
        base = by_id.get((task, base_id))
        if base is None or base.status != "complete" or not window - 1 <= n < len(base) - 1:
            continue
        K = len(base)
        kept = sorted((r for r in branch_runs if len(r) == K), key=lambda r: r.run_id)
        if not kept:
            continue
        names = ["default"] + [str(r.meta["branch"].get("candidate", r.run_id)) for r in kept]
        paths = np.stack([np.asarray(x.lr[n + 1 :], dtype=np.float64) for x in [base, *kept]])
        actual = np.array([float(x.metric[-1]) for x in [base, *kept]])
        seed, rows = int(base.meta.get("seed") or 0), base.channels()[: n + 1]
        groups.append(
            BranchGroup(
                seed,
                n,
                K,
                rows[n - window + 1 :],
                names,
                paths,
                actual,
                base.points_per_epoch,
                history=rows,
                task=base.meta.get("task"),
                mode=base.meta.get("mode") or "max",
            )  # fmt: skip
        )
    return groups
