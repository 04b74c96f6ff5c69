"""Task-free features: runs read relative to themselves, one model for runs of any task.

The transforms are checked by value; the planner's invariances (an LR scale or a metric
offset changes nothing but the LRs' scale) hold only if every input and output goes through
them; a model trained on runs of different lengths and LR scales plans a run of a third
length; the callback plans a fit with a task-free model.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import keras_lode
from keras_lode.model.controlled import random_controlled
from keras_lode.model.features import Reference, relative_run, resample_rows
from keras_lode.runs.run import Run


def _run(K=20, lr=1e-3, mode="max", seed=0, decay=False):
    rng = np.random.default_rng(seed)
    t = np.arange(1, K + 1)
    lrs = np.full(K, lr) if not decay else lr * np.linspace(1.0, 0.05, K)
    loss = 2.0 * np.exp(-t / K) + 0.01 * rng.random(K)
    metric = 0.5 + 0.4 * (1 - np.exp(-2 * t / K)) if mode == "max" else 3.0 * np.exp(-t / K)
    return Run(step=t * 10, epoch=t / 5, lr=lrs, loss=loss, metric=metric,
               meta={"task": "toy", "seed": seed, "mode": mode})  # fmt: skip


def test_reference_features_by_value_and_inverse():
    rows = np.array([[2.0, math.log(1e-3), 0.6], [1.0, math.log(5e-4), 0.75]])
    f = Reference.from_rows(rows, "max").to_features(rows)
    np.testing.assert_allclose(f, [[1.0, 0.0, 0.0], [0.5, math.log(0.5), 0.15]], atol=1e-12)
    mins = np.array([[2.0, math.log(0.1), 4.0], [1.0, math.log(0.1), 2.0]])
    ref = Reference.from_rows(mins, "min")
    np.testing.assert_allclose(ref.to_features(mins)[:, 2], [0.0, math.log(2.0)])
    pred = np.array([[0.5, math.log(2.0)], [0.25, 0.0]])
    np.testing.assert_allclose(ref.predictions_from(pred), [[1.0, 2.0], [0.5, 4.0]])
    with pytest.raises(ValueError, match="minimized metric as a ratio"):
        Reference(1.0, 0.0, -1.0, "min")
    with pytest.raises(ValueError, match="reference point must have a finite"):
        Reference.from_rows([[np.nan, 0.0, 0.5]])


def test_resample_keeps_the_ends_and_is_linear_in_the_fraction():
    y = np.arange(10.0)[:, None] * [1.0, 2.0]
    r = resample_rows(y, 5)  # points at fractions 0.2 .. 1.0 = run points 1, 3, 5, 7, 9
    np.testing.assert_allclose(r[:, 0], [1, 3, 5, 7, 9])
    np.testing.assert_allclose(r[-1], y[-1])
    up = resample_rows(y[:4], 8)  # upsampling holds the first point before its fraction
    assert up[0, 0] == 0.0 and up[-1, 0] == 3.0


def test_relative_run_reads_the_same_at_every_lr_and_metric_scale():
    a = relative_run(_run(K=30, lr=1e-3, decay=True), 10)
    b = relative_run(_run(K=30, lr=0.1, decay=True), 10)
    np.testing.assert_allclose(a.lr, b.lr)
    # The reference is the state at fraction 1/10 (run point 2 of 30: 1 - 0.95 * 2 / 29 of
    # the first LR), so point 0 reads 1 and the end 0.05 of the first LR over that.
    assert a.lr[0] == pytest.approx(1.0)
    assert a.lr[-1] == pytest.approx(0.05 / (1 - 0.95 * 2 / 29))
    assert a.meta["features"] == "relative" and a.meta["source_points"] == 30
    m = relative_run(_run(K=30, mode="min"), 10)
    assert m.meta["mode"] == "max" and m.meta["source_mode"] == "min"
    assert np.all(np.diff(m.metric) > 0)  # a shrinking bits-per-char is a growing improvement


def _history(K, n, lr=1e-3, offset=0.0, mode="max"):
    run = _run(K=K, lr=lr, mode=mode)
    return run.channels()[: n + 1] + [0.0, 0.0, offset]


@pytest.fixture(scope="module")
def model():
    # A random task-free model that does switch (no trust region, no margin): its choice is
    # some candidate, which the invariances below must carry exactly.
    return random_controlled(3, members=3, window=5, horizon=20, features="relative",
                             lr_range=(1e-3, 10.0), field_scale=3.0)  # fmt: skip


def test_plan_is_invariant_to_the_runs_lr_scale_and_metric_offset(model):
    K, n = 40, 15
    base = keras_lode.plan(
        model, _history(K, n), position=n, total_points=K, kappa=0.0, margin=-1.0
    )
    assert base.switched and base.lr.shape == (K - 1 - n,)
    scaled = keras_lode.plan(model, _history(K, n, lr=0.3), position=n, total_points=K,
                             kappa=0.0, margin=-1.0)  # fmt: skip
    np.testing.assert_allclose(scaled.lr, base.lr * 300.0, rtol=1e-9)
    assert scaled.chosen == base.chosen
    shifted = keras_lode.plan(model, _history(K, n, offset=0.2), position=n, total_points=K,
                              kappa=0.0, margin=-1.0)  # fmt: skip
    assert shifted.chosen == base.chosen
    np.testing.assert_allclose(shifted.mean, base.mean + 0.2)


def test_a_kept_default_is_the_plan_in_effect_exactly(model):
    K, n = 33, 12
    held = np.geomspace(1e-3, 1e-5, K - 1 - n)
    p = keras_lode.plan(model, _history(K, n), position=n, total_points=K,
                        current_plan=held, margin=1e9)  # fmt: skip
    assert not p.switched
    np.testing.assert_array_equal(p.lr, held)


def test_task_free_planning_needs_the_whole_history_and_enough_of_it(model):
    with pytest.raises(ValueError, match="whole history"):
        keras_lode.plan(model, _history(40, 15)[-5:], position=15, total_points=40)
    with pytest.raises(ValueError, match="too early"):
        keras_lode.plan(model, _history(40, 3), position=3, total_points=40)


def test_minimized_metric_is_planned_as_an_improvement(model):
    K, n = 40, 15
    p = keras_lode.plan(model, _history(K, n, mode="min"), position=n, total_points=K,
                        mode="min", kappa=0.0, margin=-1.0)  # fmt: skip
    assert p.switched
    # Back in the run's units: positive, and the plan is the lowest predicted metric.
    assert np.all(p.predictions[..., 1] > 0) and np.all(p.mean > 0)
    assert p.chosen == int(np.argmin(p.mean))
    up = keras_lode.plan(model, _history(K, n, mode="min"), position=n, total_points=K,
                         kappa=0.0, margin=-1.0)  # the same run read as maximized  # fmt: skip
    assert up.chosen == int(np.argmax(up.mean))


def test_the_planners_grid_matches_the_training_runs_resampling():
    from keras_lode.model.features import model_grid

    for K, H, W in ((37, 20, 5), (13, 20, 5), (100, 50, 10)):
        run = _run(K=K, decay=True)
        f = relative_run(run, H)
        for n in range(K - 1):
            try:
                g = model_grid(_Shape(H, W), run.channels()[: n + 1], position=n,
                               total_points=K, paths=run.lr[None, n + 1 :])  # fmt: skip
            except ValueError:
                continue
            want = f.channels()[g.position - W + 1 : g.position + 1]
            np.testing.assert_allclose(g.window, want, atol=1e-12)
            np.testing.assert_allclose(np.log(g.paths[0]), f.channels()[g.position + 1 :, 1],
                                       atol=1e-12)  # fmt: skip


class _Shape:
    def __init__(self, horizon, window):
        self.horizon, self.window = horizon, window


def test_the_reference_does_not_depend_on_how_densely_the_run_is_logged():
    fine = _run(K=40, decay=True)
    coarse_rows = fine.channels()[1::2]  # the same fit logged half as often (K = 20)
    a = Reference.at_fraction(fine.channels(), 40, 10)
    b = Reference.at_fraction(coarse_rows, 20, 10)
    assert a.log_lr == pytest.approx(b.log_lr) and a.metric == pytest.approx(b.metric, abs=1e-3)


def test_an_early_stopped_run_is_not_stretched_to_a_whole_run():
    run = _run(K=20)
    run.meta.update(epochs=8, points_per_epoch=5)  # planned 40 points, stopped at 20
    with pytest.raises(ValueError, match="stopped at log point 20 of its planned 40"):
        relative_run(run, 10)


def test_a_task_free_file_reads_improvements_only():
    from keras_lode.model.config import controlled_config

    with pytest.raises(ValueError, match="channels.mode"):
        controlled_config(features="relative", mode="min")


def test_task_free_model_file_round_trip(model, tmp_path):
    path = tmp_path / "zoo.npz"
    model.save(path)
    loaded = keras_lode.load_model(path)
    assert loaded.features == "relative"
    assert random_controlled(0).features == "absolute"


def test_plausibility_reads_a_task_free_model_in_relative_features(model):
    from keras_lode.planning.plausibility import implausible

    # Two runs of different LR scales look the same to a task-free model.
    a = implausible(model, _history(40, 20), task="anything")
    b = implausible(model, _history(40, 20, lr=5.0), task="anything")
    assert a == b
    assert not any("task" in p for p in a)


torch = pytest.importorskip("torch")
pytest.importorskip("torchdiffeq")


def test_one_model_trains_on_runs_of_several_lengths_and_scales():
    from keras_lode.runs.synthetic import synthetic_runs
    from keras_lode.train.ensemble import fit_controlled

    fams = ("cosine", "constant", "linear", "wsd")
    short = synthetic_runs(16, points=20, points_per_epoch=5, seed=0, families=fams,
                           peak_lrs=(3e-3, 1e-2))  # fmt: skip
    long = synthetic_runs(16, points=40, points_per_epoch=10, seed=1, families=fams,
                          peak_lrs=(3e-3, 1e-2))  # fmt: skip
    for r in long:
        r.meta["task"] = "long"
    with pytest.raises(ValueError, match="share one time unit"):
        fit_controlled(short + long, members=2, window=4, steps=5, workers=1, verbose=False)
    fit = fit_controlled(short + long, members=2, window=4, steps=60, workers=1, verbose=False,
                         features="relative", horizon=20)  # fmt: skip
    assert fit.model.features == "relative" and fit.model.horizon == 20
    assert sum(fit.training["runs_per_task"].values()) == 32
    lo, hi = fit.model.lr_range
    assert hi <= 1.5 and lo >= 1e-3  # relative LRs: a decay to ~1% of the first LR
    p = keras_lode.plan(fit.model, long[0].channels()[:25], position=24, total_points=60)
    assert p.lr.shape == (35,)


def test_cli_trains_a_task_free_model_on_two_tasks_and_plans_a_third(tmp_path, capsys):
    from keras_lode.cli import main
    from keras_lode.runs.synthetic import synthetic_runs, synthetic_switched_run

    fams = ("cosine", "constant", "wsd")
    for task, K, P, scale in (("a", 20, 5, 1.0), ("b", 30, 10, 0.1)):
        d = tmp_path / task
        runs = synthetic_runs(12, points=K, points_per_epoch=P, seed=0, families=fams,
                              peak_lrs=(3e-3, 1e-2))  # fmt: skip
        for s in range(2):
            runs.append(synthetic_switched_run("constant", 3e-3, "cosine", 1e-2, K // 2,
                                               seed=s, points=K, points_per_epoch=P))  # fmt: skip
        for r in runs:
            r.meta["task"] = task
            Run(r.step, r.epoch, r.lr * scale, r.loss, r.metric, meta=r.meta).save(d)
    out = tmp_path / "zoo.npz"
    argv = ["train", str(tmp_path / "a"), str(tmp_path / "b"), "-o", str(out), "--members", "2",
            "--window", "4", "--max-steps", "40", "--workers", "1", "--features", "relative",
            "--horizon", "20", "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    model = keras_lode.load_model(out)
    assert model.features == "relative"
    third = _run(K=45, lr=0.5)
    third.save(tmp_path / "c")
    capsys.readouterr()
    run_file = next((tmp_path / "c").glob("*.run.csv"))
    assert main(["plan", str(out), str(run_file), "--at", "20"]) == 0
    printed = capsys.readouterr().out
    assert "Traceback" not in printed and "at point 20/45" in printed


def test_a_run_unlike_every_training_run_is_flagged_in_relative_features():
    from keras_lode.planning.plausibility import implausible

    # Training runs' relative channels: loss falling to ~half its first value, ln LR within
    # 0 +/- 1 of the first, accuracy gains of ~0.2.
    model = random_controlled(1, members=2, window=5, horizon=20, features="relative",
                              mean=[0.5, 0.0, 0.2], std=[0.2, 1.0, 0.1],
                              lr_range=(0.01, 2.0))  # fmt: skip
    # At 1e-5 the raw LRs lie far below the (relative) training range; read relative to the
    # run's first LR they do not.
    assert implausible(model, _history(40, 20, lr=1e-5)) == []
    rows = _history(40, 20, lr=1e-5)
    rows[5:, 0] *= 1e3  # the loss blows up a thousandfold after its first points
    problems = implausible(model, rows)
    assert any("channel 'loss'" in p for p in problems)


def test_a_user_lr_range_is_in_the_runs_own_lrs(model):
    K, n = 40, 15
    p = keras_lode.plan(model, _history(K, n, lr=1e-3), position=n, total_points=K,
                        kappa=0.0, margin=-1.0, lr_range=(5e-4, 1.5e-3))  # fmt: skip
    assert p.lr.min() >= 5e-4 * (1 - 1e-9) and p.lr.max() <= 1.5e-3 * (1 + 1e-9)
    assert p.lr_range == pytest.approx((5e-4, 1.5e-3))


def test_a_fit_takes_its_own_log_points_and_first_replan_from_a_task_free_model(model):
    from keras_lode.callbacks.lode_options import resolve_options
    from keras_lode.model.features import run_window

    # The model's P is its grid's (horizon points over the run), never a fit's default.
    wide = random_controlled(0, window=5, horizon=20, points_per_epoch=20, features="relative")
    opts, _ = resolve_options(wide, "controlled", {})
    assert opts.points_per_epoch == 10
    # Its window of 5 of 20 grid points spans 25% of a run: 10 of 40 points, 25 of 100.
    assert run_window(model, 5, 40) == 10 and run_window(model, 5, 100) == 25


def _group(task, mode, actual, lr_scale=1.0, K=20, n=8, seed=0):
    from keras_lode.train.counterfactual import BranchGroup

    rows = _run(K=K, lr=1e-3 * lr_scale, mode=mode, seed=seed).channels()[: n + 1]
    lr = 1e-3 * lr_scale
    paths = np.stack([np.full(K - 1 - n, lr), np.full(K - 1 - n, 3 * lr),
                      np.geomspace(lr, lr / 30, K - 1 - n)])  # fmt: skip
    return BranchGroup(seed, n, K, rows[-5:], ["default", "up", "decay"], paths, actual,
                       history=rows, task=task, mode=mode)  # fmt: skip


def test_task_free_paired_gains_ignore_the_runs_lr_scale(model):
    from keras_lode.train.counterfactual import BranchGroup, member_gains

    g = member_gains(model, _group("a", "max", [0.8, 0.82, 0.79]))
    assert g.shape == (3, 3) and np.all(g[:, 0] == 0.0) and np.ptp(g[:, 1:]) > 0
    np.testing.assert_allclose(
        member_gains(model, _group("a", "max", [0.8, 0.82, 0.79], lr_scale=50.0)), g, atol=1e-9
    )
    bare = _group("a", "max", [0.8, 0.82, 0.79])
    bare = BranchGroup(0, 8, 20, bare.window, bare.names, bare.paths, bare.actual)
    with pytest.raises(ValueError, match="whole prefix"):
        member_gains(model, bare)


def test_task_free_paired_calibration_holds_out_tasks_in_improvement_units(model):
    from keras_lode.train.counterfactual import fit_paired

    groups = [_group("a", "max", [0.80, 0.82, 0.79]), _group("b", "min", [2.0, 1.0, 4.0])]
    r = fit_paired(model, groups, by="task")
    assert r["by"] == "task" and [f["task"] for f in r["folds"]] == ["a", "b"]
    # Gains are improvements of each group's own metric: +0.02 accuracy; for the minimized
    # one -ln(1.0 / 2.0), whatever its scale (a raw difference would read +1.0).
    np.testing.assert_allclose(r["realized"]["oracle"], 100 * (0.02 + math.log(2.0)) / 2)
    with pytest.raises(ValueError, match=">= 2 tasks"):
        fit_paired(model, groups[:1], by="task")
    with pytest.raises(ValueError, match="`by` must be"):
        fit_paired(model, groups, by="run")


def test_the_calibration_and_the_planner_read_a_prior_alike(tmp_path):
    # A candidate's gain with a continuation prior is one number on both sides: the
    # calibration's (train side, on the model's grid) and the planner's.
    from keras_lode.model.prior import SHAPE_FEATURES
    from keras_lode.train.counterfactual import (
        BranchGroup,
        _cases,
        _with_prior,
        with_paired_calibration,
    )

    K, n = 20, 8  # the model's horizon: its grid is the run's points
    history = _history(K, n)
    prior = {"features": list(SHAPE_FEATURES), "alpha": 0.7, "fractions": [0.0, 1.0],
             "weights": list(np.linspace(-0.01, 0.02, len(SHAPE_FEATURES)))}  # fmt: skip
    paired = {"sd_scale": 1.0, "sd_floor": 0.0, "kappa": 0.0, "margin": -1.0,
              "trusted": True, "level": 0.85, "coverage": 0.9, "prior": prior}  # fmt: skip
    random_controlled(3, members=3, window=5, horizon=20, features="relative",
                      lr_range=(1e-3, 10.0), field_scale=3.0).save(tmp_path / "m.npz")  # fmt: skip
    with_paired_calibration(tmp_path / "m.npz", paired, tmp_path / "p.npz")
    model = keras_lode.load_model(tmp_path / "p.npz")
    p = keras_lode.plan(model, history, position=n, total_points=K,
                        current_plan=np.full(K - 1 - n, 1e-3))  # fmt: skip
    group = BranchGroup(0, n, K, history[-5:], list(p.names), p.paths,
                        np.zeros(len(p.names)), history=history, task="t")  # fmt: skip
    [case] = _with_prior(_cases(model, [group]), prior)
    assert p.rule == "paired" and len(case["mean"]) == len(p.names) - 1
    np.testing.assert_allclose(case["mean"], p.gain[1:], atol=1e-9)
    assert np.ptp(case["mean"]) > 1e-3  # the candidates differ: the check has teeth
