"""Decisions on paired, counterfactually calibrated gains, and the trust region over a whole path.

Hand-made controlled models make every prediction known: each member predicts a final
metric `level_m + effect(path) + noise_m(path)`, where `level_m` is large and shared by
all of a member's candidates (the members disagree about where the run ends, not about
what a decision changes) and `effect` favours decaying paths.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from keras_lode.model.io import read_model_file, save_model
from keras_lode.model.paired_gate import START_KINDS
from keras_lode.planning import TrustRegion, candidate_library, plan
from keras_lode.train.counterfactual import (
    BranchGroup,
    fit_paired,
    member_gains,
    paired_section,
    with_paired_calibration,
)

K, N, W = 30, 8, 4
LR_RANGE = (1e-5, 5e-2)
LR_NOW = 3e-3


def decay_effect(lr):
    """+0.02 for a path ending at <= 1/20 of where it starts, else 0 (metric units)."""
    return 0.02 * (lr[:, -1] <= lr[:, 0] / 20)


class Members:
    """M members: final = level_m + effect(path) + small per-member, per-path noise."""

    kind = "controlled"
    window = W
    horizon = K
    points_per_epoch = 5

    def __init__(self, effect=decay_effect, levels=(-0.05, -0.02, 0.0, 0.02, 0.05), noise=0.001):
        self.effect, self.levels, self.noise = effect, np.asarray(levels), noise
        self.lr_range = LR_RANGE
        self.planner_defaults = {"lr_range": list(LR_RANGE)}

    def predict(self, t_window, window, t, log_lr):
        lr = np.exp(log_lr[:, 1:])
        c = lr.shape[0]
        # Deterministic per-(member, path) noise from the path itself.
        jitter = np.sin(np.arange(len(self.levels))[:, None] * 7.0 + lr.sum(axis=1)[None] * 1e3)
        final = 0.8 + self.levels[:, None] + self.effect(lr)[None] + self.noise * jitter
        out = np.zeros((len(self.levels), c, log_lr.shape[1], 2))
        out[..., 0] = 1.0
        out[:, :, -1, 1] = final
        return out

    def spread(self, values):
        v = np.asarray(values)
        return v.mean(axis=0), v.std(axis=0, ddof=1)


def window():
    rows = np.zeros((W, 3))
    rows[:, 0], rows[:, 1], rows[:, 2] = 0.5, math.log(LR_NOW), 0.8
    return rows


def groups(model, actual_of, seeds=range(6)):
    """Branch groups at point N: the default (constant) and library continuations; the
    actual final of each run is `actual_of(seed, predicted gains)` over the default's 0.8."""
    lib = candidate_library(LR_NOW, K - 1 - N, lr_range=LR_RANGE)
    keep = list(range(0, len(lib.names), 3))  # default and every third candidate
    names, paths = [lib.names[i] for i in keep], lib.lr[keep]
    out = []
    for seed in seeds:
        g = BranchGroup(seed, N, K, window(), names, paths, np.zeros(len(names)))
        gain = member_gains(model, g).mean(axis=0)
        g.actual = 0.8 + actual_of(seed, gain)
        out.append(g)
    return out


def calibrated(model, actual_of, seeds=range(6)):
    result = fit_paired(model, groups(model, actual_of, seeds))
    model.planner_defaults = {**model.planner_defaults, "paired": paired_section(result)}
    return result


def test_agreeing_members_with_a_calibrated_paired_sd_switch():
    model = Members()
    # The runs do what the members agree on, up to noise the size of their own spread.
    rng = np.random.default_rng(0)
    result = calibrated(model, lambda s, g: g + 0.001 * rng.standard_normal(g.size))
    assert result["trusted"]
    assert result["coverage"]["calibrated"] >= 0.8
    assert result["spearman"] > 0.6  # ties: most candidates do nothing, up to noise
    # Held out by seed, the rule realizes most of the oracle's gain.
    assert result["realized"]["rule"] > 0.8 * result["realized"]["oracle"] > 1.0
    p = plan(model, window(), position=N, total_points=K, current_plan=np.full(K - 1 - N, LR_NOW))
    assert p.rule == "paired" and p.switched
    assert p.lr[-1] <= p.lr[0] / 20  # a decaying candidate
    assert p.gain[p.chosen] == pytest.approx(0.02, abs=0.003)
    # The absolute rule, on the same members, cannot see past their disagreement on the level.
    a = plan(model, window(), position=N, total_points=K, current_plan=np.full(K - 1 - N, LR_NOW),
             rule="absolute")  # fmt: skip
    assert a.rule == "absolute" and not a.switched


def test_members_miscalibrated_on_held_out_groups_do_not_switch():
    model = Members()

    # The members' paired gains hold on three seeds; on the fourth the runs went the other
    # way, by far more than the others' residuals: a calibration fitted without it (its
    # held-out fold) cannot cover it, so a quarter of the held-out cases are missed.
    def actual(seed, gain):
        return gain if seed < 3 else -10 * gain - 0.05

    result = calibrated(model, actual, seeds=range(4))
    assert result["coverage"]["calibrated"] < 0.8
    assert not result["trusted"]
    p = plan(model, window(), position=N, total_points=K, current_plan=np.full(K - 1 - N, LR_NOW))
    assert p.rule == "paired" and not p.switched
    assert "did not reach its coverage" in p.reason


def test_a_calibration_applied_to_groups_it_never_saw():
    from keras_lode.train.counterfactual import evaluate_rule

    model = Members()
    rng = np.random.default_rng(1)
    section = paired_section(
        calibrated(model, lambda s, g: g + 0.001 * rng.standard_normal(g.size))
    )
    # New groups where the decision pays what the members agree on: the rule takes it.
    new = groups(model, lambda s, g: g, seeds=range(10, 14))
    r = evaluate_rule(model, new, section)
    assert r["groups"] == 4 and r["switched"] == 1.0
    assert r["realized"]["rule"] == pytest.approx(2.0, abs=0.3)  # points: the +0.02 effect
    assert r["realized"]["oracle"] == pytest.approx(2.0, abs=0.3)
    # Where the same decisions lose, the rule loses with them, and an untrusted one holds.
    worse = groups(model, lambda s, g: -g, seeds=range(10, 14))
    assert evaluate_rule(model, worse, section)["realized"]["rule"] < -1.5
    held = evaluate_rule(model, worse, {**section, "trusted": False})
    assert held["switched"] == 0.0 and held["realized"]["rule"] == 0.0


def test_paired_section_round_trips_through_a_model_file(tmp_path):
    from keras_lode.model import load_model
    from keras_lode.model.controlled import random_controlled

    src = tmp_path / "m.npz"
    random_controlled(0, members=3).save(src)
    section = {"sd_scale": 1.5, "sd_floor": 0.002, "kappa": 1.0, "margin": 0.0025,
               "trusted": True, "level": 0.85, "coverage": 0.9, "groups": 12}  # fmt: skip
    with_paired_calibration(src, section, tmp_path / "p.npz")
    assert load_model(tmp_path / "p.npz").planner_defaults["paired"]["sd_scale"] == 1.5
    config, weights = read_model_file(tmp_path / "p.npz")
    config["planner"]["paired"]["trusted"] = "yes"
    with pytest.raises(ValueError, match="planner.paired.trusted"):
        save_model(tmp_path / "bad.npz", config, weights)
    del config["planner"]["paired"]["kappa"]
    with pytest.raises(ValueError, match="planner.paired"):
        save_model(tmp_path / "bad.npz", config, weights)


def test_rule_paired_without_a_calibration_is_refused():
    with pytest.raises(ValueError, match="paired calibration"):
        plan(Members(), window(), position=N, total_points=K, rule="paired")


def test_candidate_whose_later_steps_leave_the_trust_region_is_rejected():
    # The training runs only ever changed the LR by at most 10% per point (smooth decays).
    class Run:
        def __init__(self, lr):
            self.lr = lr

    runs = [Run(np.geomspace(hi, hi * 0.9 ** (K - 1), K)) for hi in np.geomspace(1e-4, 5e-2, 12)]
    runs += [Run(np.full(K, lr)) for lr in np.geomspace(1e-5, 5e-2, 12)]
    trust = TrustRegion.from_runs(runs)
    lib = candidate_library(LR_NOW, K - 1 - N, lr_range=LR_RANGE, trust=trust, fraction=N / K)
    # WSD holds first (its first step is a 0 jump, which the runs made), then drops by far
    # more than 10% per point: rejected at a later step.
    name = "wsd75 1x->0.01x"
    assert name not in lib.names
    assert "at its step" in lib.rejected[name]
    # The first step alone would have passed: the old check admitted it.
    low, high = trust.allowed(LR_NOW, N / K)
    assert low <= 0.0 <= high
    # Constants and slow decays stay.
    assert "constant 1x" in lib.names
    assert any(n.startswith("exp 1x") for n in lib.names) or "exp 1x->0.1x" in lib.rejected


# ---------------------------------------------------------------------- keras-lode calibrate
def _write_branch_sweep(path, K=12, n=4, seeds=(0, 1, 2), window=3, task="toy"):
    """Base grid runs (constant LR) and branch runs that decay after point n, by hand: the
    decays end 0.01 higher than their base on seeds 0 and 1 and 0.005 lower on seed 2."""
    from keras_lode.runs import Run

    for seed in seeds:
        base_id = f"constant-lr0.003-seed{seed}"
        step, epoch = np.arange(1, K + 1) * 10, np.arange(1, K + 1) / 4
        metric = 0.5 + 0.02 * np.arange(K) + 0.001 * seed
        loss = 2.0 - 0.05 * np.arange(K)
        meta = {"task": task, "schedule": "constant", "peak_lr": 3e-3, "seed": seed}
        meta.update(points_per_epoch=4, run_id=base_id, kind="grid", status="complete")
        Run(step, epoch, np.full(K, 3e-3), loss, metric, meta=meta).save(path)
        for j, end in enumerate((0.1, 0.01)):
            lr = np.full(K, 3e-3)
            lr[n + 1 :] = np.geomspace(3e-3, 3e-3 * end, K - 1 - n)
            m = metric.copy()
            m[-1] += 0.01 if seed < 2 else -0.005
            name = f"exp 1x->{end:g}x"
            meta_b = dict(meta, kind="branch", run_id=f"{base_id}-branch-{j}-at{n}",
                          branch={"base": base_id, "at_point": n, "candidate": name})  # fmt: skip
            Run(step, epoch, lr, loss, m, meta=meta_b).save(path)
    return window


def test_calibrate_cli_writes_the_paired_section(tmp_path):
    import json
    import subprocess
    import sys

    from keras_lode.model import load_model
    from keras_lode.model.controlled import random_controlled
    from keras_lode.runs import load_runs
    from keras_lode.train.counterfactual import branch_groups

    runs_dir = tmp_path / "runs"
    window = _write_branch_sweep(runs_dir)
    model_path = tmp_path / "m.npz"
    random_controlled(0, members=3, window=window, horizon=12, points_per_epoch=4).save(model_path)
    # The groups: one per seed, the base as default, two decays, outcomes as written.
    groups = branch_groups(load_runs(runs_dir), window)
    assert [g.seed for g in groups] == [0, 1, 2]
    assert groups[0].names == ["default", "exp 1x->0.1x", "exp 1x->0.01x"]  # by run id
    np.testing.assert_allclose(groups[2].actual - groups[2].actual[0], [0, -0.005, -0.005])
    out, report = tmp_path / "paired.npz", tmp_path / "report.json"
    cmd = [sys.executable, "-m", "keras_lode", "calibrate", str(runs_dir), "--model",
           str(model_path), "-o", str(out), "--report", str(report)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 branch groups (6 continuations)" in done.stdout
    paired = load_model(out).planner_defaults["paired"]
    result = json.loads(report.read_text())
    assert paired["coverage"] == result["coverage"]["calibrated"]
    assert paired["trusted"] == result["trusted"]
    # Oracle: +1 point on seeds 0 and 1, 0 on seed 2 (keeping the default is best there).
    assert result["realized"]["oracle"] == pytest.approx(2 / 3)
    # No branch runs: a one-line answer naming what to run.
    empty = tmp_path / "empty"
    empty.mkdir()
    cmd[4] = str(empty)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "keras-lode sweep --branches" in done.stdout
    assert "Traceback" not in done.stderr


def test_calibrate_cli_holds_out_tasks_for_a_task_free_model(tmp_path):
    import json
    import subprocess
    import sys

    from keras_lode.model import load_model
    from keras_lode.model.controlled import random_controlled

    for task in ("toy_a", "toy_b"):
        window = _write_branch_sweep(tmp_path / task, task=task)
    model_path = tmp_path / "zoo.npz"
    random_controlled(0, members=3, window=window, horizon=12, features="relative").save(model_path)
    out, report = tmp_path / "paired.npz", tmp_path / "report.json"
    cmd = [sys.executable, "-m", "keras_lode", "calibrate", str(tmp_path / "toy_a"),
           str(tmp_path / "toy_b"), "--model", str(model_path), "-o", str(out), "--report",
           str(report)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "6 branch groups (12 continuations) of tasks toy_a, toy_b, each task held out" in (
        done.stdout
    )
    result = json.loads(report.read_text())
    assert result["by"] == "task" and [f["task"] for f in result["folds"]] == ["toy_a", "toy_b"]
    assert result["realized"]["oracle"] == pytest.approx(2 / 3)
    assert load_model(out).planner_defaults["paired"]["groups"] == 6
    # A continuation prior needs more continuations than it has weights: a clear refusal.
    done = subprocess.run(cmd + ["--prior"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "more than 8 continuations" in done.stdout
    assert "Traceback" not in done.stderr


def test_realized_gain_is_reported_per_kind_of_start():
    from keras_lode.train.counterfactual import start_kind

    model = Members()
    flat = groups(model, lambda s, g: g)
    assert {start_kind(g) for g in flat} == {"constant"}  # the default holds LR_NOW
    # Groups whose default decays: there the decisions lose what the members promise.
    lib = candidate_library(LR_NOW, K - 1 - N, lr_range=LR_RANGE)
    decay = np.geomspace(LR_NOW, LR_NOW / 10, K - 1 - N)
    decaying = []
    for seed in range(6):
        paths = np.vstack([decay[None], lib.lr[1::3]])
        g = BranchGroup(seed, N, K, window(), ["default"] + lib.names[1::3], paths,
                        np.zeros(len(paths)))  # fmt: skip
        g.actual = 0.8 - member_gains(model, g).mean(axis=0)
        decaying.append(g)
    assert {start_kind(g) for g in decaying} == {"schedule"}
    r = fit_paired(model, flat + decaying)
    by = r["realized"]["by_start"]
    assert by["constant"]["groups"] == by["schedule"]["groups"] == 6
    # One rule for both hides it: +2 points from the constants, -2 from the decays.
    assert by["constant"]["rule"] == pytest.approx(2.0, abs=0.1)
    assert by["schedule"]["rule"] == pytest.approx(-2.0, abs=0.1)
    # The kinds add up to the whole.
    total = (by["constant"]["rule"] + by["schedule"]["rule"]) / 2
    assert r["realized"]["rule"] == pytest.approx(total)
    # The gate keeps the kind that gained on every held-out seed; behind it, held out (each
    # fold's gate set on the other seeds), the rule keeps the +2 on the constants' half.
    assert r["rule"]["starts"] == ["constant"] and r["rule"]["switch"] is True
    assert all(f["starts"] == ["constant"] for f in r["folds"])
    assert r["realized"]["gated"] == pytest.approx(by["constant"]["rule"] / 2)
    # The planner, with this calibration, switches from a constant LR and leaves a decay be.
    model.planner_defaults = {**model.planner_defaults, "paired": paired_section(r)}
    flat_plan = plan(model, window(), position=N, total_points=K,
                     current_plan=np.full(K - 1 - N, LR_NOW))  # fmt: skip
    assert flat_plan.switched
    decay_plan = plan(model, window(), position=N, total_points=K, current_plan=decay)
    assert not decay_plan.switched and np.array_equal(decay_plan.lr, decay)
    assert "the run follows a changing schedule" in decay_plan.reason
    assert "may switch from: constant" in decay_plan.reason
    # Its decision is the rule's: without the gate the planner would have switched there.
    ungated = {**paired_section(r), "starts": list(START_KINDS)}
    model.planner_defaults = {**model.planner_defaults, "paired": ungated}
    assert plan(model, window(), position=N, total_points=K, current_plan=decay).switched


def test_a_gate_set_on_one_fold_alone_never_lets_the_rule_switch():
    model = Members()
    # Two seeds only: each fold's gate would be set on a single other seed, which cannot be
    # held out in turn; the procedure realizes nothing held out and never switches.
    r = fit_paired(model, groups(model, lambda s, g: g, seeds=range(2)))
    assert r["realized"]["rule"] > 1.0  # the ungated rule gains on the held-out seed
    assert r["realized"]["gated"] == 0.0 and all(f["starts"] == [] for f in r["folds"])
    assert r["rule"]["switch"] is False


def test_when_no_rule_gains_on_held_out_groups_the_rule_is_never_to_switch():
    from keras_lode.train.counterfactual import evaluate_rule

    model = Members()
    # Every continuation ends 0.3 points below the default, whatever the members predict:
    # every rule of the grid that switches loses on the held-out seeds.
    result = calibrated(model, lambda s, g: np.full(g.size, -0.003) * (np.arange(g.size) > 0))
    assert result["rule"]["switch"] is False
    assert result["realized"]["rule"] == 0.0
    assert all(f["switch"] is False for f in result["folds"])
    section = model.planner_defaults["paired"]
    assert section["switch"] is False
    p = plan(model, window(), position=N, total_points=K, current_plan=np.full(K - 1 - N, LR_NOW))
    assert not p.switched
    assert result["trusted"]  # covered: it is the rule, not the spread, that says no
    assert "no switching rule gained" in p.reason and "switch is false" in p.reason
    r = evaluate_rule(model, groups(model, lambda s, g: g, seeds=range(10, 12)), section)
    assert r["switched"] == 0.0 and r["realized"]["rule"] == 0.0


def test_a_rule_that_only_gains_in_sample_does_not_switch():
    from keras_lode.train import counterfactual as cf

    model = Members()

    # The decays the members favour pay +10 points on seed 0 and lose 1 on every other
    # seed: over all groups they gain (+0.83), but held out by seed the rule takes them
    # exactly where they lose (and leaves them on seed 0, where the others say no).
    def actual(seed, gain):
        return np.where(gain > 0.01, 0.1 if seed == 0 else -0.01, 0.0)

    gs = groups(model, actual)
    cases = cf._cases(model, gs)
    res = np.concatenate([c["actual"] - c["mean"] for c in cases])
    cal = cf.fit_spread_calibration(res, np.concatenate([c["sd"] for c in cases]), 0.85)
    assert cf._choose_rule(cases, cal, cf.KAPPAS, cf.MARGINS)[2] is True  # in sample
    result = calibrated(model, actual)
    assert result["realized"]["rule"] < 0.0
    assert result["rule"]["switch"] is False
    p = plan(model, window(), position=N, total_points=K, current_plan=np.full(K - 1 - N, LR_NOW))
    assert not p.switched


def test_each_fold_declines_when_every_rule_it_may_pick_loses():
    from keras_lode.train.counterfactual import evaluate_rule

    model = Members()
    # margin -1: the one rule of this grid always switches, to the decays the members
    # favour, which lose on every seed; each fold must keep the default instead.
    gs = groups(model, lambda s, g: -g)
    result = fit_paired(model, gs, kappas=(0.0,), margins=(-1.0,))
    assert all(f["switch"] is False for f in result["folds"])
    assert result["realized"]["rule"] == 0.0
    assert result["rule"]["starts"] == []  # it lost from every kind of start held out
    # A section that would switch, but says not to, does not.
    section = {**paired_section(result), "switch": False, "starts": list(START_KINDS)}
    assert evaluate_rule(model, groups(model, lambda s, g: g), section)["switched"] == 0.0
    assert (
        evaluate_rule(model, groups(model, lambda s, g: g), {**section, "switch": True})["switched"]
        == 1.0
    )


def test_a_model_file_with_a_malformed_switch_is_refused(tmp_path):
    from keras_lode.model.controlled import random_controlled

    path = tmp_path / "m.npz"
    random_controlled(0, members=2, window=3, horizon=12).save(path)
    config, weights = read_model_file(path)
    config["planner"]["paired"] = {"sd_scale": 1.0, "sd_floor": 0.0, "kappa": 0.0,
                                   "margin": 0.0, "trusted": True, "level": 0.85,
                                   "coverage": 0.9, "switch": "no"}  # fmt: skip
    with pytest.raises(ValueError, match="planner.paired.switch"):
        save_model(tmp_path / "bad.npz", config, weights)
    config["planner"]["paired"]["switch"] = False
    save_model(tmp_path / "ok.npz", config, weights)
    assert read_model_file(tmp_path / "ok.npz")[0]["planner"]["paired"]["switch"] is False
