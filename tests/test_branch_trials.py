"""Branch trials (`keras-lode sweep --branches`): on-policy counterfactual runs for calibration.

A branch trial re-runs a grid run from its seed and, from a replan point of the control
planner on, follows a continuation of the planner's own library; the trials of a group share
everything before that point, so their final metrics are the paired gains of the decision.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from keras_lode.experiments.grid import Trial, branch_points, make_branch_trials

HERE = Path(__file__).resolve().parent
SPEC = f"{HERE / 'sweep_tasks.py'}:TINY"


def test_branch_points_are_the_planners_replan_points():
    from keras_lode.planning.replans import resolve_cadence

    # K = 15, window 5: the planner replans at 4, 6, 8, ...; branches at 4, 8, 12.
    assert branch_points(15, 5) == [4, 8, 12]
    first, every = resolve_cadence(50, 10, 0.2, 0.1)
    assert branch_points(50, 10) == [first, first + 2 * every, first + 4 * every] == [10, 20, 30]
    assert branch_points(4, 2) == [1]  # later points are past the run's second-to-last


def test_branch_groups_cover_bases_and_seeds_first_with_distinct_picks():
    bases = [("wsd", 8e-3), ("constant", 1e-3)]
    trials = make_branch_trials(bases, [0, 1], runs=18, points=15, lr_range=(1e-5, 1e-2),
                                candidates=3, window=5)  # fmt: skip
    assert len(trials) == 18 and len({t.run_id for t in trials}) == 18
    groups = {}
    for t in trials:
        groups.setdefault((t.family, t.peak_lr, t.seed, t.branch.at_point), []).append(t)
    # 6 groups: both bases on both seeds at the first replan (4), then two at the next (8).
    assert sorted({k[3] for k in groups}) == [4, 8]
    assert sum(k[3] == 4 for k in groups) == 4
    assert all(sorted(t.branch.pick for t in g) == [0, 1, 2] for g in groups.values())
    t = trials[0]
    assert t.run_id == "wsd-lr0.008-seed0-branch0-at4"
    assert Trial.from_dict(t.to_dict()) == t
    with pytest.raises(ValueError, match="lr_range"):
        make_branch_trials(bases, [0], runs=1, points=15, lr_range=(1e-2, 1e-3))
    with pytest.raises(ValueError, match="no replan point"):
        make_branch_trials(bases, [0], runs=1, points=15, lr_range=(1e-5, 1e-2), window=15)


def test_point_path_serves_a_plan_as_the_callbacks_step_table_does():
    from keras_lode.callbacks.lr_tables import PlanTables
    from keras_lode.schedules import PointPath, make_schedule

    spe, P, E = 7, 3, 2  # uneven: the log points fall between steps
    steps = np.array([e * spe + round((k + 1) * spe / P) for e in range(E) for k in range(P)])
    warm = make_schedule("cosine", 1e-2, int(steps[-1]))
    tables = PlanTables(steps, spe, P, warm, schedule=None, per_step=True)
    n = 2
    rest = np.array([3e-3, 2e-3, 1e-4])
    tables.replace(n + 1, rest, first_step=int(steps[n]))
    path = PointPath(np.concatenate([tables.table[: n + 1], rest]), spe, P)
    import keras

    served = keras.ops.convert_to_numpy(path(np.arange(steps[n], steps[-1])))
    np.testing.assert_allclose(served, tables.step_table[steps[n] :], rtol=1e-5)
    again = PointPath.from_config(path.get_config())
    assert again.learning_rates == path.learning_rates
    with pytest.raises(ValueError, match="finite positive"):
        PointPath([1e-3, 0.0], 4, 2)


@pytest.mark.backend
def test_sweep_branches_share_the_prefix_and_follow_library_continuations(tmp_path):
    from keras_lode.cli import main
    from keras_lode.runs import load_runs
    from keras_lode.train.counterfactual import branch_groups

    argv = ["sweep", "--task", SPEC, "--out", str(tmp_path), "--schedules", "cosine,constant",
            "--lrs", "1e-3,3e-2", "--seeds", "0", "--branches", "4", "--branch-candidates", "2",
            "--branch-window", "2", "-q"]  # fmt: skip
    assert main(argv) == 0
    grid, branch = load_runs(tmp_path, kind="grid"), load_runs(tmp_path, kind="branch")
    assert len(grid) == 4 and len(branch) == 4
    by_id = {r.run_id: r for r in grid}
    candidates = {}
    for run in branch:
        b = run.meta["branch"]
        base = by_id[b["base"]]
        n = b["at_point"]
        assert n == 1 and run.status == "complete"
        # Up to and including the branch point it is its base run ...
        np.testing.assert_allclose(run.channels()[: n + 1], base.channels()[: n + 1], rtol=1e-6)
        # ... then it follows the drawn library continuation from the base's LR there.
        np.testing.assert_allclose(run.lr[n + 1 :], b["path"], rtol=1e-5)
        assert b["lr_now"] == pytest.approx(base.lr[n], rel=1e-5)
        assert not np.allclose(run.lr[n + 1 :], base.lr[n + 1 :])
        candidates.setdefault((b["base"], n), set()).add(b["candidate"])
    # Two groups (the first two bases: the best config, then the best constant not yet
    # taken), each of two different continuations.
    assert len(candidates) == 2 and all(len(c) == 2 for c in candidates.values())
    groups = branch_groups(load_runs(tmp_path), window=2)
    assert len(groups) == 2 and all(g.names[0] == "default" and len(g.names) == 3 for g in groups)
    # A rerun finds every trial done.
    assert main(argv) == 0
    assert len(load_runs(tmp_path, kind="branch")) == 4
