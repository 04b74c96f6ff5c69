"""Training the controlled ensemble (torch) and its offline decision skill, in the synthetic
world where the effect of the LR is known."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("torchdiffeq")

from keras_lode.model import ControlledODE, load_model  # noqa: E402
from keras_lode.runs.synthetic import synthetic_runs, synthetic_switched_run  # noqa: E402
from keras_lode.train import decision  # noqa: E402
from keras_lode.train.ensemble import fit_controlled, split_by_seed  # noqa: E402

FAMS = ("cosine", "onecycle", "constant", "step", "linear", "wsd")
LRS = (3e-3, 1e-2, 3e-2)
K = 20


@pytest.fixture(scope="module")
def runs():
    base = synthetic_runs(72, points=K, points_per_epoch=5, seed=0, families=FAMS, peak_lrs=LRS)
    switched = [
        synthetic_switched_run(f, lr, tf, tl, 9, seed=s, points=K, points_per_epoch=5)
        for s in range(4)
        for f, lr, tf, tl in [
            ("constant", 3e-3, "cosine", 3e-2),
            ("constant", 3e-3, "step", 1e-2),
            ("constant", 3e-3, "onecycle", 3e-3),
        ]
    ]
    return base + switched


@pytest.fixture(scope="module")
def fitted(runs):
    return fit_controlled(
        runs, members=2, window=5, steps=400, batch_size=32, lr=1e-2, workers=1, verbose=False
    )


def test_switched_synthetic_run_shares_the_prefix():
    a = synthetic_switched_run("cosine", 1e-2, "constant", 1e-3, 7, seed=4, points=20)
    b = synthetic_runs(1, points=20, seed=4, families=("cosine",), peak_lrs=(1e-2,))[0]
    np.testing.assert_array_equal(a.channels()[:8], b.channels()[:8])
    np.testing.assert_allclose(a.lr[8:], 1e-3)
    assert a.meta["switch"] == {
        "base": "cosine-lr0.01-seed4",
        "at_point": 7,
        "to_schedule": "constant",
        "to_peak_lr": 1e-3,
    }
    assert a.run_id == "cosine-lr0.01-seed4-to-constant-lr0.001-at7"


def test_split_by_seed_holds_out_the_largest_seed(runs):
    train, held = split_by_seed(runs)
    assert {runs[i].meta["seed"] for i in held} == {3}
    assert 3 not in {runs[i].meta["seed"] for i in train}
    with pytest.raises(ValueError, match="at least 2 seeds"):
        split_by_seed([r for r in runs if r.meta["seed"] == 0])


def test_ensemble_beats_naive_predictors_and_calibrates(fitted, tmp_path):
    t = fitted.training
    err = t["decision"]["final_metric_error"]
    # A tiny, briefly trained ensemble: better than both naive predictors, far from the
    # per-config lookup (the real benchmark reports all four).
    assert err["lode"] < err["family_mean"] and err["lode"] < err["hold_last"]
    assert t["decision"]["rank_spearman"]["lode"]["mean"] > 0.5
    cal = t["calibration"]
    assert cal["coverage_2sd_calibrated"] >= 0.8
    assert cal["sd_scale"] > 0 and t["switched_runs"] == 12 and t["heldout_seeds"] == [3]
    path = fitted.export(tmp_path / "c.npz", task="synthetic")
    model = load_model(path)
    assert isinstance(model, ControlledODE) and model.members == 2
    # The file's planner reads the window the encoder was trained on (5 here, not 10).
    assert model.window == fitted.model.window == t["hyperparameters"]["window"] == 5
    assert model.calibration == {"sd_scale": cal["sd_scale"], "sd_floor": cal["sd_floor"]}
    assert model.config["metadata"]["task"] == "synthetic"
    json.dumps(model.config, allow_nan=False)  # strict JSON


def test_the_lr_path_is_a_decision(fitted):
    # From a constant-LR window, annealing the rest of the run must be predicted to end
    # better than holding the LR: in the synthetic world the noise floor follows the LR.
    run = synthetic_runs(
        1, points=K, points_per_epoch=5, seed=7, families=("constant",), peak_lrs=(1e-2,)
    )[0]
    y = run.channels()
    n = 10
    t = np.arange(n, K, dtype=float)
    paths = np.log(np.stack([np.full(t.size, 1e-2), np.geomspace(1e-2, 1e-4, t.size)]))
    final = fitted.model.predict(np.arange(n - 4, n + 1.0), y[n - 4 : n + 1], t, paths)
    final = final[:, :, -1, 1]  # (members, 2)
    assert np.all(final[:, 1] > final[:, 0] + 0.005)


def test_counterfactual_regret_is_no_worse_than_random(fitted, runs):
    held = [r for r in runs if r.meta["seed"] == 3]
    train = [r for r in runs if r.meta["seed"] != 3]
    cf = decision.counterfactual_skill(fitted.model, held, train)
    assert cf["groups"] == 1 and cf["details"][0]["continuations"] == 4
    assert cf["regret_lode_mean"] <= cf["regret_random"]
    assert all(math.isfinite(cf[k]) for k in ("regret_sweep_best", "regret_random"))


def test_spearman_handles_ties_and_degenerate_input():
    assert decision.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert decision.spearman([1, 2, 2, 3], [3, 2, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(decision.spearman([1, 1, 1], [1, 2, 3]))
    assert math.isnan(decision.spearman([1, 2], [1, 2]))


def test_fit_kind_dispatch_and_errors(runs):
    from keras_lode import train

    with pytest.raises(ValueError, match="`kind` must be one of"):
        train.fit(runs, kind="autonomous")
    with pytest.raises(ValueError, match="holdout_seeds=\\[9\\] leaves"):
        fit_controlled(runs, holdout_seeds=[9], members=1, steps=1, verbose=False)


def test_cli_trains_a_controlled_model(tmp_path, capsys):
    from keras_lode.cli import main

    out = tmp_path / "c.npz"
    report = tmp_path / "r.json"
    argv = ["train", "--kind", "controlled", "--synthetic", "48", "--synthetic-points", "20"]
    argv += ["--synthetic-switched", "6", "--members", "2", "--max-steps", "20", "--window", "5"]
    argv += ["--workers", "1", "--no-progress", "-o", str(out), "--report", str(report)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "final-metric RMSE: lode" in text and "coverage of mean +/- 2 sd" in text
    assert load_model(out).kind == "controlled"
    assert json.loads(report.read_text())["switched_runs"] == 6


def test_member_runs_resamples():
    from keras_lode.train.windows import member_runs

    train = np.array([0, 1, 2, 3, 4, 5])
    seeds = [0, 0, 1, 1, 2, 2, 3]  # run 6 (seed 3) is held out: not in `train`
    rng = np.random.default_rng(0)
    boot = member_runs(train, seeds, "bootstrap", 0, rng)
    assert boot.size == 6 and set(boot) <= set(train) and len(set(boot)) < 6
    np.testing.assert_array_equal(member_runs(train, seeds, "none", 3, rng), train)
    # Member i leaves out the i-th training seed, cyclically.
    np.testing.assert_array_equal(member_runs(train, seeds, "seeds", 0, rng), [2, 3, 4, 5])
    np.testing.assert_array_equal(member_runs(train, seeds, "seeds", 1, rng), [0, 1, 4, 5])
    np.testing.assert_array_equal(member_runs(train, seeds, "seeds", 5, rng), [0, 1, 2, 3])
    # One training seed: nothing to leave out, every member sees all runs.
    np.testing.assert_array_equal(member_runs(train, [0] * 7, "seeds", 1, rng), train)


def test_resample_option_is_checked_and_recorded(runs):
    with pytest.raises(ValueError, match="`resample` must be one of"):
        fit_controlled(runs, resample="jackknife", members=1, steps=1, verbose=False)
    kw = dict(members=1, window=5, steps=5, workers=1, verbose=False)
    fits = {r: fit_controlled(runs, resample=r, **kw) for r in ("bootstrap", "none", "seeds")}
    assert fits["seeds"].training["hyperparameters"]["resample"] == "seeds"
    # Same seed, same initialization: the members differ only by the runs they trained on.
    states = {r: f.members[0].state_dict() for r, f in fits.items()}
    for a, b in (("bootstrap", "none"), ("none", "seeds"), ("bootstrap", "seeds")):
        assert any(not np.allclose(states[a][k].numpy(), states[b][k].numpy()) for k in states[a])
