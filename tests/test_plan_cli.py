"""`keras-lode plan MODEL RUN --at N`: output checked against `keras_lode.plan` itself."""

from __future__ import annotations

import argparse
import json
import math
import sys

import numpy as np
import pytest

from keras_lode.commands import plan as plan_cmd
from keras_lode.planning import plan

ode = pytest.importorskip("keras_lode.model")


def make_run(schedule="cosine", peak_lr=0.01, points=60, seed=0, P=10):
    """A small recorded run (a `keras_lode.Run`) with a known LR schedule."""
    from keras_lode.runs import Run

    x = np.arange(points) / points
    lr = (
        peak_lr * (0.5 + 0.5 * np.cos(np.pi * x))
        if schedule == "cosine"
        else np.full(points, peak_lr)
    )
    noise = np.random.default_rng(seed).normal(0, 0.01, points)
    loss = 0.3 + 2.0 * np.exp(-4 * x) + noise
    step = (np.arange(points) + 1) * 50
    meta = {"schedule": schedule, "peak_lr": peak_lr, "seed": seed, "points_per_epoch": P,
            "epochs": points // P, "steps_per_epoch": 50 * P}  # fmt: skip
    return Run(step, step / (50 * P), lr, loss, 1 - loss / 3, meta=meta)


def cli(*argv) -> int:
    parser = argparse.ArgumentParser(prog="keras-lode plan")
    plan_cmd.add_arguments(parser)
    return plan_cmd.run(parser.parse_args([str(a) for a in argv]))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("plan_cli")
    # Channel statistics near the test runs' and a slow field keep the imagined LRs
    # inside the training range, so the printed plans are not all clipped to one value.
    model = ode.random_model(
        seed=0,
        horizon=60,
        points_per_epoch=10,
        mean=[1.0, math.log(1e-2), 0.5],
        std=[0.5, 1.0, 0.2],
        field_scale=0.3,
    )
    model.save(d / "model.npz")
    run = make_run()
    run_path = run.save(d)
    long_dir = d / "long"
    long_dir.mkdir()
    long_path = make_run("constant", 0.01, points=120, seed=1).save(long_dir)
    return {"model": d / "model.npz", "run": run_path, "long": long_path, "dir": d}


# The random model's futures are far from the test run's losses; a wide band lets them
# be accepted so that the printed plan is a real, non-fallback one.
WIDE = ("--loss-floor", "10")


def _printed_lr(out: str) -> dict[int, float]:
    rows = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[0].isdigit():
            rows[int(parts[0])] = float(parts[2])
    return rows


def test_prints_the_plan_of_the_planner(files, capsys):
    assert cli(files["model"], files["run"], "--at", 35, "--seed", 3, *WIDE) == 0
    out = capsys.readouterr().out
    model = ode.load_model(files["model"])
    run = make_run()
    expected = plan(model, run.channels()[6:36], position=35, total_points=60, seed=3,
                    loss_floor=10.0)  # fmt: skip
    assert not expected.fallback
    assert expected.summary() in out
    rows = _printed_lr(out)
    assert sorted(rows) == [39, 49, 59]  # one row per epoch end (P = 10)
    for pt, lr in rows.items():
        assert lr == pytest.approx(expected.lr[pt - 36], rel=1e-3)
    assert "recorded lr" in out and "horizon 60" in out


def test_seed_changes_the_plan_and_repeats(files, capsys):
    cli(files["model"], files["run"], "--at", 35, "--seed", 1, "--json", files["dir"] / "a.json",
        *WIDE)  # fmt: skip
    cli(files["model"], files["run"], "--at", 35, "--seed", 1, "--json", files["dir"] / "b.json",
        *WIDE)  # fmt: skip
    cli(files["model"], files["run"], "--at", 35, "--seed", 2, "--json", files["dir"] / "c.json",
        *WIDE)  # fmt: skip
    capsys.readouterr()
    a, b, c = (json.loads((files["dir"] / f"{k}.json").read_text()) for k in "abc")
    assert a["lr"] == b["lr"] and a["seed"] == 1
    assert a["lr"] != c["lr"] and a["chosen"] != c["chosen"]
    assert len(set(a["lr"])) > 10  # a real schedule, not one clipped value
    assert a["points"] == list(range(36, 60)) and len(a["lr"]) == 24
    assert a["accepted"] == 31 and len(a["chosen"]) == 3


def test_plot_writes_an_image(files, capsys):
    pytest.importorskip("matplotlib")
    out = files["dir"] / "plan.png"
    assert cli(files["model"], files["run"], "--at", 40, "--plot", out, *WIDE) == 0
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    assert f"wrote {out}" in capsys.readouterr().out


def test_fallback_is_reported(files, capsys):
    # A band of width ~0 rejects every future.
    assert cli(files["model"], files["run"], "--at", 35, "--tol", 1e-9, "--loss-floor", 1e-9) == 0
    out = capsys.readouterr().out
    assert "0/31 futures accepted; fallback" in out
    rows = _printed_lr(out)
    run = make_run()
    assert all(v == pytest.approx(run.lr[35], rel=1e-3) for v in rows.values())


def test_longer_run_is_mapped_with_a_warning(files, capsys):
    assert cli(files["model"], files["long"], "--at", 50, *WIDE) == 0
    captured = capsys.readouterr()
    assert "fraction of training" in captured.err
    assert max(_printed_lr(captured.out)) == 119


@pytest.mark.parametrize(
    "argv, message",
    [
        (("--at", 10), "--at must be a log point from 29 to 58"),
        (("--at", 60), "--at must be a log point from 29 to 58"),
        (("--at", 35, "--window", 0), "--window must be >= 1"),
        (("--at", 35, "--samples", -1), "`samples` must be >= 0"),
        (("--at", 35, "--run-id", "nope"), "no run with --run-id 'nope'"),
    ],
)
def test_bad_arguments_fail_with_a_clear_message(files, capsys, argv, message):
    assert cli(files["model"], files["run"], *argv) == 2
    assert message in capsys.readouterr().err


def test_bad_files_fail_with_a_clear_message(files, tmp_path, capsys):
    assert cli(tmp_path / "missing.npz", files["run"], "--at", 35) == 2
    assert "cannot load MODEL" in capsys.readouterr().err
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    assert cli(bad, files["run"], "--at", 35) == 2
    assert "cannot load MODEL" in capsys.readouterr().err
    assert cli(files["model"], tmp_path, "--at", 35) == 2
    assert "no run files" in capsys.readouterr().err
    # A directory with two runs needs --run-id.
    assert cli(files["model"], files["dir"], "--at", 35) == 2
    assert "choose one with --run-id" in capsys.readouterr().err
    assert cli(files["model"], files["dir"], "--at", 35, "--run-id", "cosine-lr0.01-seed0",
               *WIDE) == 0  # fmt: skip


def test_window_with_missing_metric_is_an_error_not_a_crash(files, tmp_path, capsys):
    run = make_run()
    run.metric[30] = np.nan
    path = run.save(tmp_path)
    assert cli(files["model"], path, "--at", 35) == 2
    assert "non-finite metric" in capsys.readouterr().err


def test_command_module_imports_nothing_heavy():
    import subprocess

    code = (
        "import sys, keras_lode.commands.plan; "
        "print(sorted(m for m in ('numpy', 'keras', 'torch', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------ plot_plan


def _a_plan(files, **kw):
    model = ode.load_model(files["model"])
    run = make_run()
    return plan(model, run.channels()[6:36], position=35, total_points=60, seed=0, **kw), run


def test_plot_of_a_fallback_plan(files, tmp_path):
    pytest.importorskip("matplotlib")
    from keras_lode.planning.plot import plot_plan

    p, run = _a_plan(files, tol=1e-9, loss_floor=1e-9)
    assert p.fallback
    out = plot_plan(p, tmp_path / "fallback.svg", observed=run.channels(), title="t")
    assert out.endswith("fallback.svg")
    text = (tmp_path / "fallback.svg").read_text()
    assert text.lstrip().startswith("<?xml") and "plan (fallback)" in text


def test_plot_rejects_a_bad_observed_array(files, tmp_path):
    pytest.importorskip("matplotlib")
    from keras_lode.planning.plot import plot_plan

    p, _ = _a_plan(files, loss_floor=10.0)
    with pytest.raises(ValueError, match=r"`observed` must have shape \(K, 3\)"):
        plot_plan(p, tmp_path / "x.png", observed=np.zeros((60, 2)))
    assert not (tmp_path / "x.png").exists()


def test_plot_without_matplotlib_names_the_extra(files, tmp_path, monkeypatch):
    from keras_lode.planning.plot import plot_plan

    p, _ = _a_plan(files, loss_floor=10.0)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # import now fails
    with pytest.raises(ImportError, match=r"pip install 'keras-lode\[plot\]'"):
        plot_plan(p, tmp_path / "x.png")


def test_through_the_keras_lode_entry_point(files, capsys):
    from keras_lode import cli as cli_main

    argv = ["plan", str(files["model"]), str(files["run"]), "--at", "35", "--seed", "3", *WIDE]
    assert cli_main.main(argv) == 0
    out = capsys.readouterr().out
    assert "31/31 futures accepted" in out and "seed 3" in out


def test_plan_with_a_controlled_model_lists_candidates(tmp_path, capsys):
    from keras_lode.model.controlled import random_controlled
    from keras_lode.planning import TrustRegion

    run = make_run(points=60)
    model = random_controlled(
        0, members=3, horizon=60, window=8, mean=[1.0, math.log(1e-2), 0.5],
        std=[0.5, 1.0, 0.2], lr_range=(1e-5, 2e-2), field_scale=0.3,
    )  # fmt: skip
    cfg = model.config
    cfg["planner"]["trust"] = TrustRegion.from_runs([run]).to_json()
    from keras_lode.model import ControlledODE

    weights = {f"member{i}.{k}": v[i] for k, v in model.weights.items() for i in range(3)}
    ControlledODE(cfg, weights).save(tmp_path / "c.npz")
    run_path = run.save(tmp_path)
    out_json = tmp_path / "plan.json"
    assert cli(tmp_path / "c.npz", run_path, "--at", 20, "--json", out_json, "--top", 5) == 0
    text = capsys.readouterr().out
    assert "LODE control plan at point 20/60" in text and "<- plan" in text or "default" in text
    data = json.loads(out_json.read_text(), parse_constant=lambda c: pytest.fail(c))
    assert data["kind"] == "controlled" and len(data["lr"]) == 60 - 21
    bounds = [c["bound"] for c in data["candidates"]]
    assert bounds == sorted(bounds, reverse=True)
    # The same call through the API, with the recorded LR as the default candidate.
    from keras_lode.model import load_model

    p = plan(load_model(tmp_path / "c.npz"), run.channels()[13:21], position=20,
             total_points=60, current_plan=run.lr[21:])  # fmt: skip
    assert data["chosen"] == p.chosen_name
    np.testing.assert_allclose(data["lr"], p.lr)
    if not p.switched:
        np.testing.assert_allclose(data["lr"], run.lr[21:])
    # Generative-only options are refused for a controlled model.
    assert cli(tmp_path / "c.npz", run_path, "--at", 20, "--samples", 3) == 2
    assert "apply to a generative model" in capsys.readouterr().err
