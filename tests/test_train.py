"""Tests of the LODE trainer (keras_lode.train.trainer/windows/evaluate), the synthetic runs and
`keras-lode train`.

The extrapolation test trains a small model on synthetic runs (about a minute on
one CPU core) and checks that it predicts the rest of unseen runs better than both
naive predictors. Everything else uses tiny data or stops before training.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from keras_lode.constants import PAPER_FAMILIES
from keras_lode.runs.synthetic import schedule_lr, simulate, synthetic_run, synthetic_runs
from keras_lode.train.evaluate import family_means, hold_last
from keras_lode.train.windows import (
    WindowSampler,
    fit_normalization,
    prepare_runs,
    split_runs,
)

torch = pytest.importorskip("torch")
pytest.importorskip("torchdiffeq")

from keras_lode.train.evaluate import extrapolation_errors, format_table  # noqa: E402
from keras_lode.train.trainer import fit  # noqa: E402

# ---------------------------------------------------------------------------------------
# Synthetic runs: the known model behaves as documented
# ---------------------------------------------------------------------------------------


def test_synthetic_sweep_grid_and_fields():
    runs = synthetic_runs(10, points=40, points_per_epoch=10, seed=3, peak_lrs=(1e-3, 1e-2))
    assert len(runs) == 10
    # seed-major: 4 families x 2 LRs for seed 3, then the first 2 of seed 4
    assert [r.meta["seed"] for r in runs] == [3] * 8 + [4] * 2
    assert [r.meta["schedule"] for r in runs[:8:2]] == list(PAPER_FAMILIES)
    r = runs[1]
    assert r.channels().shape == (40, 3)
    assert r.points_per_epoch == 10 and r.meta["epochs"] == 4
    assert r.meta["peak_lr"] == 1e-2 and r.status == "complete"
    assert np.all(np.diff(r.step) > 0)
    np.testing.assert_allclose(r.epoch[-1], 4.0)
    assert np.all(np.isfinite(r.channels()))


def test_synthetic_loss_responds_to_lr():
    # Higher LR: faster progress early; annealing: a drop that constant LR lacks.
    k = 200
    lo, _, _ = simulate(schedule_lr("constant", 1e-3, k), seed=0)
    hi, _, _ = simulate(schedule_lr("constant", 1e-2, k), seed=0)
    assert hi[k // 4] < lo[k // 4] - 0.2
    const, _, _ = simulate(schedule_lr("constant", 3.2e-2, k), seed=0)
    step, acc, _ = simulate(schedule_lr("step", 3.2e-2, k), seed=0)
    # identical before the first decay (same seed, same LR), lower after it
    np.testing.assert_allclose(step[: k // 2], const[: k // 2])
    assert step[-1] < const[-1] - 0.2
    assert acc[-1] > 0.75


def test_synthetic_divergence_is_kept_and_flagged():
    run = synthetic_run("constant", 0.5, points=30, points_per_epoch=10)
    assert run.status == "diverged"
    assert "nonfinite_loss" in run.flags
    assert np.isinf(run.loss[-1]) and np.isfinite(run.loss[0])


def test_synthetic_bad_arguments():
    with pytest.raises(ValueError, match="family"):
        schedule_lr("exponential", 1e-3, 10)
    with pytest.raises(ValueError, match="peak_lr"):
        schedule_lr("cosine", -1.0, 10)
    with pytest.raises(ValueError, match="points_per_epoch"):
        synthetic_run("cosine", 1e-3, points=25, points_per_epoch=10)
    with pytest.raises(ValueError, match="n_runs"):
        synthetic_runs(0)


# ---------------------------------------------------------------------------------------
# Data: windows, normalization, split, naive predictors
# ---------------------------------------------------------------------------------------


def _tiny(n=8, points=20, **kw):
    kw.setdefault("peak_lrs", (1e-3, 1e-2))  # 4 families x 2 LRs per seed
    return synthetic_runs(n, points=points, points_per_epoch=10, **kw)


def test_windows_cut_from_the_run():
    y = np.arange(2 * 12 * 3, dtype=float).reshape(2, 12, 3)
    sampler = WindowSampler(y, window=4, seed=0)
    for _ in range(20):
        start, ctx, target = sampler.sample(2)
        assert 0 <= start <= 8
        assert ctx.shape == (2, 4, 3) and target.shape == (2, 12, 3)
        np.testing.assert_array_equal(ctx, target[:, start : start + 4])


def test_normalization_and_naive_predictors():
    y = np.stack([np.full((5, 3), 1.0), np.full((5, 3), 3.0)])
    y[..., 1] = 7.0  # a constant channel gets std 1, not a division by zero
    mean, std = fit_normalization(y)
    np.testing.assert_allclose(mean, [2.0, 7.0, 2.0])
    np.testing.assert_allclose(std, [1.0, 1.0, 1.0])
    seq = np.arange(15.0).reshape(5, 3)
    np.testing.assert_array_equal(hold_last(seq, 2), np.tile(seq[1], (3, 1)))
    means = family_means(y, ["a", "b"])
    np.testing.assert_array_equal(means["b"], y[1])
    np.testing.assert_array_equal(means["*"], y.mean(axis=0))


def test_split_holds_out_whole_runs_per_family():
    runs = _tiny(16)
    train, val = split_runs(runs, val_fraction=0.25, seed=0)
    assert sorted(train + val) == list(range(16)) and not set(train) & set(val)
    assert len(val) == 4
    # every family keeps training runs (the family-mean predictor needs them)
    assert {runs[i].meta["schedule"] for i in train} == set(PAPER_FAMILIES)
    assert split_runs(runs, val_fraction=0.25, seed=0) == (train, val)


# ---------------------------------------------------------------------------------------
# Bad training data (done-when 3): one test each
# ---------------------------------------------------------------------------------------


def test_too_few_runs_for_a_held_out_split():
    with pytest.raises(ValueError, match="at least 3 usable runs.*Received: 2"):
        fit(_tiny(2), window=5, max_steps=1, progress=False)


def test_runs_shorter_than_window_are_skipped_and_counted(capsys):
    runs = _tiny(6, points=20) + _tiny(2, points=10, seed=50)
    data = prepare_runs(runs, window=15)
    assert len(data.runs) == 6
    assert data.skipped == {"shorter than the window (15 log points)": 2}
    model, report = fit(runs, window=15, max_steps=2, batch_size=4, evaluate=False)
    assert report.training["n_used"] == 6 and report.training["n_runs"] == 8
    assert "Skipped 2 of 8 runs: 2 shorter than the window" in capsys.readouterr().err
    with pytest.raises(ValueError, match="No usable training run among 2: 2 shorter"):
        prepare_runs(_tiny(2, points=10), window=15)


def test_nonfinite_runs_are_skipped_and_counted(capsys):
    runs = _tiny(6)
    diverged = synthetic_run("constant", 1.0, points=20, points_per_epoch=10)
    nan_metric = _tiny(1, seed=9)[0]
    nan_metric.metric[5] = np.nan
    data = prepare_runs([*runs, diverged, nan_metric], window=5)
    assert data.skipped == {"with NaN/inf values": 2}
    assert len(data.runs) == 6 and np.all(np.isfinite(data.y))
    fit([*runs, diverged, nan_metric], window=5, max_steps=1, batch_size=2, evaluate=False)
    assert "Skipped 2 of 8 runs: 2 with NaN/inf values." in capsys.readouterr().err


def test_mixed_points_per_epoch_is_an_error():
    runs = _tiny(4) + synthetic_runs(2, points=20, points_per_epoch=5, seed=7)
    with pytest.raises(ValueError, match=r"points_per_epoch values \{10: 4, 5: 2\}"):
        fit(runs, window=5, max_steps=1, progress=False)


def test_mixed_horizons_is_an_error():
    runs = _tiny(4, points=20) + _tiny(2, points=30, seed=7)
    with pytest.raises(ValueError, match=r"run lengths \{20: 4, 30: 2\}"):
        fit(runs, window=5, max_steps=1, progress=False)


def test_bad_arguments_name_the_argument():
    with pytest.raises(ValueError, match="batch_size.*Received: batch_size=1"):
        fit(_tiny(4), window=5, batch_size=1, progress=False)
    with pytest.raises(ValueError, match="val_fraction"):
        fit(_tiny(4), window=5, val_fraction=1.5, max_steps=1, progress=False)
    with pytest.raises(TypeError, match="runs"):
        fit("runs/", window=5, progress=False)
    with pytest.raises(TypeError, match=r"runs\[1\]"):
        fit([_tiny(1)[0], 3], window=5, progress=False)


# ---------------------------------------------------------------------------------------
# Training: determinism, export parity, extrapolation
# ---------------------------------------------------------------------------------------


def test_fit_is_deterministic_for_a_seed():
    runs = _tiny(8)
    kw = dict(window=5, max_steps=6, batch_size=4, eval_every=3, progress=False, evaluate=False)
    m1, r1 = fit(runs, seed=1, **kw)
    m2, r2 = fit(runs, seed=1, **kw)
    m3, _ = fit(runs, seed=2, **kw)
    for (k, a), b in zip(m1.state_dict().items(), m2.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    assert r1.history == r2.history
    assert not torch.equal(m1.to_latent.weight, m3.to_latent.weight)
    assert m1.to_latent.weight.dtype == torch.float64


def test_cli_train_exports_a_model_that_numpy_decodes_like_torch(tmp_path, capsys):
    import keras_lode
    from keras_lode.cli import main
    from keras_lode.train import LatentODE

    run_dir = tmp_path / "runs"
    run_dir.mkdir()
    runs = _tiny(12, points=30)
    for r in runs:
        r.save(run_dir)
    runs.append(synthetic_run("constant", 1.0, seed=99, points=30, points_per_epoch=10))
    runs[-1].save(run_dir)
    out = tmp_path / "model.npz"
    rc = main(
        [
            "train",
            str(run_dir),
            "--kind",
            "generative",
            "-o",
            str(out),
            "--window",
            "6",
            "--max-steps",
            "20",
            "--batch-size",
            "4",
            "--eval-every",
            "10",
            "--task",
            "unit-test",
            "--no-progress",
        ]
    )
    assert rc == 0
    text = capsys.readouterr().out
    assert "Skipped 1 of 13 runs: 1 with NaN/inf values." in text
    assert "hold_last" in text and "family_mean" in text

    np_model = keras_lode.load_model(out)
    cfg = np_model.config
    tr = cfg["training"]
    assert tr["n_train"] + tr["n_val"] == 12 and tr["horizon"] == 30
    assert tr["points_per_epoch"] == 10 and tr["families"] == sorted(PAPER_FAMILIES)
    assert tr["peak_lr_range"] == [1e-3, 1e-2] and tr["seeds"] == [0, 1]
    assert set(tr["extrapolation"]["overall"]) == {"lode", "hold_last", "family_mean"}
    assert cfg["metadata"]["task"] == "unit-test"
    assert cfg["planner"]["window"] == 6
    # K = 30, W = 6, P = 10: once per epoch would be only 2 replans after the window.
    assert cfg["planner"]["replan_every"] == 8
    lo, hi = cfg["planner"]["lr_range"]
    train_ids = set(r.run_id for r in runs[:12]) - set(tr["val_run_ids"])
    train_lrs = np.concatenate([r.lr for r in runs[:12] if r.run_id in train_ids])
    assert [lo, hi] == [train_lrs.min(), train_lrs.max()]

    # NumPy decode vs the torch model it came from, float64
    torch_model = LatentODE.load(out)
    y = runs[0].channels()
    t = np.arange(30, dtype=np.float64)
    z_np = np_model.encode(t[:6], y[:6])
    with torch.no_grad():
        z_t = torch_model.encode(torch.as_tensor(t[:6]), torch.as_tensor(y[:6]))
        dec_t = torch_model.decode(torch.as_tensor(t), z_t).numpy()
    np.testing.assert_allclose(z_np, z_t.numpy(), rtol=0, atol=1e-9)
    assert np.max(np.abs(np_model.decode(t, z_np) - dec_t)) <= 1e-6

    # Anyone can rerun the stored evaluation on the model file (NumPy model).
    val = [r for r in runs[:12] if r.run_id in tr["val_run_ids"]]
    train = [r for r in runs[:12] if r.run_id not in tr["val_run_ids"]]
    again = extrapolation_errors(np_model, val, train)
    assert again["window"] == 6 and again["n_runs"] == tr["n_val"]
    for cut, table in tr["extrapolation"]["by_fraction"].items():
        for name, errs in table.items():
            for ch, v in errs.items():
                assert math.isclose(again["by_fraction"][cut][name][ch], v, rel_tol=1e-6), (
                    cut,
                    name,
                    ch,
                )


def test_cli_train_errors_are_clear(tmp_path, capsys):
    from keras_lode.cli import main

    run_dir = tmp_path / "runs"
    run_dir.mkdir()
    for r in _tiny(2):
        r.save(run_dir)
    rc = main(["train", str(run_dir), "--kind", "generative", "-o", str(tmp_path / "m.npz")]
              + ["--window", "5"])  # fmt: skip
    assert rc == 2
    err = capsys.readouterr().err
    assert "keras-lode train: error:" in err and "at least 3 usable runs" in err
    assert not (tmp_path / "m.npz").exists()
    assert main(["train", "-o", str(tmp_path / "m.npz")]) == 2
    assert "no RUNS given" in capsys.readouterr().err
    assert main(["train", str(tmp_path / "nowhere"), "-o", str(tmp_path / "m.npz")]) == 2
    assert "nowhere" in capsys.readouterr().err


def test_lode_extrapolates_better_than_naive_predictors():
    """Done-when 1: on unseen synthetic runs the LODE beats hold-last and family-mean.

    40 training runs (4 families x 5 peak LRs x 2 seeds, 50 log points), 300 steps
    with a coarse RK4 step (about a minute on one busy core); 8 held-out runs with
    unseen seeds and peak LRs between the trained ones.
    """
    points, window = 50, 10
    train = synthetic_runs(40, points=points, points_per_epoch=10, seed=0)
    held = synthetic_runs(8, points=points, points_per_epoch=10, seed=100, peak_lrs=(1.8e-3, 8e-3))
    model, report = fit(
        train,
        window=window,
        step_size=0.5,
        max_steps=300,
        batch_size=16,
        lr=5e-3,
        eval_every=50,
        patience=20,
        progress=False,
        evaluate=False,
    )
    res = extrapolation_errors(model, held, report.train_runs, window=window, std=report.std)
    print(format_table(res))
    # Averaged over the 25/50/75% cuts: a clear margin on the channel mean and on the
    # loss, the channel whose future depends on the LR.
    overall = res["overall"]
    for channel, margin in (("mean", 0.8), ("loss", 0.5)):
        naive = min(overall["hold_last"][channel], overall["family_mean"][channel])
        assert overall["lode"][channel] < margin * naive, (channel, overall)
    for cut, table in res["by_fraction"].items():
        naive = min(table["hold_last"]["mean"], table["family_mean"]["mean"])
        # Late in training hold-last is strong (curves flatten): better, with less margin.
        margin = 0.8 if float(cut) <= 0.5 else 1.0
        assert table["lode"]["mean"] < margin * naive, (cut, table)


def test_replan_every_is_once_per_epoch_but_at_least_three_replans():
    from keras_lode.train.trainer import replan_every

    assert replan_every(10, 600, 30) == 10  # long run: once per epoch
    assert replan_every(10, 50, 10) == 10
    assert replan_every(5, 15, 5) == 3  # short run: (15 - 5) // 3
    assert replan_every(10, 12, 11) == 1  # never 0
