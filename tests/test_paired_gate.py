"""The paired calibration's gate: when it may switch, by the run's kind of start."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from keras_lode.model.io import read_model_file, save_model
from keras_lode.model.paired_gate import START_KINDS, gate_reason, start_kind

SECTION = {"sd_scale": 1.0, "sd_floor": 0.0, "kappa": 0.0, "margin": 0.0, "trusted": True,
           "level": 0.85, "coverage": 0.9, "switch": True}  # fmt: skip


def test_start_kind_reads_the_default_continuation():
    assert start_kind(np.full(7, 1e-3)) == "constant"
    assert start_kind([1e-3, 1.005e-3, 1e-3]) == "constant"  # within 1%
    assert start_kind(np.geomspace(1e-3, 1e-4, 7)) == "schedule"
    assert start_kind([1e-3, 2e-3]) == "schedule"  # a rise is a change too
    assert start_kind([]) == "constant"


@pytest.mark.parametrize(
    "change, start, blocked_by",
    [
        ({}, "constant", None),
        ({}, "schedule", None),  # an older file without `starts`: every start
        ({"starts": ["constant"]}, "constant", None),
        ({"starts": ["constant"]}, "schedule", "may switch from: constant"),
        ({"starts": []}, "constant", "may switch from: none"),
        ({"starts": ["constant"]}, None, None),  # start unknown: only the flags count
        ({"switch": False, "starts": list(START_KINDS)}, "constant", "switch is false"),
        # Untrusted: an older file never switches; one gated on realized gains may, when its
        # rule does not use the spread (kappa 0), and may not when it does.
        ({"trusted": False}, "constant", "did not reach its coverage"),
        ({"trusted": False, "starts": ["constant"]}, "constant", None),
        ({"trusted": False, "starts": ["constant"], "kappa": 0.5}, "constant", "coverage"),
        ({"trusted": False, "starts": ["constant"]}, "schedule", "may switch from"),
    ],
)
def test_gate_reason(change, start, blocked_by):
    reason = gate_reason({**SECTION, **change}, start)
    if blocked_by is None:
        assert reason is None
    else:
        assert blocked_by in reason and "following the default" in reason


def test_the_gate_judges_the_kappa_the_planner_uses():
    # An untrusted calibration gated on realized gains may switch while its rule ignores the
    # spread; a call that sets kappa > 0 makes the rule use it, and the gate says no (and a
    # section without kappa reads as 0, never a KeyError).
    untrusted = {**SECTION, "trusted": False, "starts": ["constant"]}
    assert gate_reason(untrusted, "constant") is None
    assert "coverage" in gate_reason(untrusted, "constant", kappa=2.0)
    assert gate_reason({**untrusted, "kappa": 1.0}, "constant", kappa=0.0) is None
    no_kappa = {k: v for k, v in untrusted.items() if k != "kappa"}
    assert gate_reason(no_kappa, "constant") is None


@pytest.mark.parametrize("bad", ["constant", ["constant", "warmup"], [1], [["constant"]], None])
def test_a_malformed_starts_is_refused_by_name(tmp_path, bad):
    from keras_lode.model.controlled import random_controlled

    path = tmp_path / "m.npz"
    random_controlled(0, members=2, window=3, horizon=12).save(path)
    config, weights = read_model_file(path)
    config["planner"]["paired"] = {**SECTION, "starts": bad}
    with pytest.raises(ValueError, match="planner.paired.starts"):
        save_model(tmp_path / "bad.npz", config, weights)
    config["planner"]["paired"]["starts"] = ["schedule", "constant"]
    save_model(tmp_path / "ok.npz", config, weights)
    paired = read_model_file(tmp_path / "ok.npz")[0]["planner"]["paired"]
    assert paired["starts"] == ["schedule", "constant"]


def test_allowed_starts_needs_a_gain_on_every_fold_of_two_or_more():
    from keras_lode.model.paired_gate import allowed_starts

    folds = [
        {"by_start": {"constant": 1.5, "schedule": 0.4}},
        {"by_start": {"constant": 0.2, "schedule": -0.1}},  # one loss rules schedules out
        {"by_start": {"constant": 3.0}},  # no schedule groups: no vote
    ]
    assert allowed_starts(folds) == ["constant"]
    assert allowed_starts(folds[:1]) == []  # a single fold cannot show it holds
    assert allowed_starts([{"by_start": {"constant": 0.0}}] * 3) == []  # no gain is no gain
    assert allowed_starts([{"by_start": {"schedule": 1.0}}, {"by_start": {"schedule": 2.0}}]) == [
        "schedule"
    ]
    assert allowed_starts([{}, {}]) == []


def test_a_task_free_plan_reads_the_start_on_the_runs_own_plan():
    # A constant plan below the current LR (a run stepped down to 1/10 and held there) is a
    # constant start. Resampled onto the model's 50-point grid of this 80-point run, its first
    # grid point lies between the current LR and the plan's: a step the run's plan does not
    # have. The gate must read the run's own plan, as the calibration does.
    import keras_lode
    from keras_lode.model.features import model_grid
    from keras_lode.pretrained import zoo_model_path

    model = keras_lode.load_model(zoo_model_path())
    root = Path(__file__).resolve().parent.parent
    [run] = keras_lode.load_runs(root / "models" / "fmnist_mlp.sample.run.csv")
    K, n = len(run), 32
    rows = run.channels()[: n + 1]
    plan_lrs = np.full(K - 1 - n, run.lr[n] / 10)
    grid = model_grid(model, rows, position=n, total_points=K, paths=plan_lrs[None])
    assert start_kind(plan_lrs) == "constant" and start_kind(grid.paths[0]) == "schedule"
    p = keras_lode.plan(model, rows, position=n, total_points=K, current_plan=plan_lrs)
    assert "changing schedule" not in p.reason
