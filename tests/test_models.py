"""Every shipped LODE in models/ loads, matches its task and its card, and plans."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
MODELS = ("fmnist_cnn", "fmnist_resnet", "text_gpt")


def _window(model, n):
    """A plausible observed window: loss falling, LR near the middle of the training range
    (geometric), accuracy rising — built from the model's own normalization statistics."""
    mean = np.asarray(model.config["channels"]["mean"], dtype=float)
    std = np.asarray(model.config["channels"]["std"], dtype=float)
    ramp = np.linspace(0.5, 0.0, n)
    lo, hi = model.lr_range
    return np.stack(
        [
            mean[0] + std[0] * ramp,
            np.full(n, 0.5 * (np.log(lo) + np.log(hi))),
            mean[2] - std[2] * ramp,
        ],
        axis=1,
    )


@pytest.mark.parametrize("name", MODELS)
def test_shipped_model_loads_matches_task_and_plans(name):
    import keras_lode
    from keras_lode.tasks import get_task

    path = ROOT / "models" / f"{name}.npz"
    assert path.is_file(), f"shipped model {path} is missing"
    model = keras_lode.load_model(path)
    spec = get_task(name, scale="cpu")
    # The model was trained on this task's CPU-scale sweep: same P and horizon K.
    assert model.config["metadata"]["task"] == name
    assert model.points_per_epoch == spec.points_per_epoch
    assert model.horizon == spec.epochs * spec.points_per_epoch
    training = model.config["training"]
    assert training["n_runs"] >= 8 and set(training["families"]) >= {"cosine", "onecycle"}

    w = model.window if model.kind == "controlled" else model.planner_defaults["window"]
    k = model.horizon
    n = min(k - 2, w + 5)
    window = _window(model, w)
    p1 = keras_lode.plan(model, window, position=n, total_points=k, seed=1)
    p2 = keras_lode.plan(model, window, position=n, total_points=k, seed=1)
    assert p1.lr.shape == (k - n - 1,)
    assert np.all(np.isfinite(p1.lr)) and np.all(p1.lr > 0)
    lo, hi = model.planner_defaults.get("lr_range") or model.lr_range
    assert np.all(p1.lr >= lo * (1 - 1e-9)) and np.all(p1.lr <= hi * (1 + 1e-9))
    np.testing.assert_array_equal(p1.lr, p2.lr)  # same seed, same plan


@pytest.mark.parametrize("name", MODELS)
def test_model_card_quotes_the_file(name):
    import keras_lode

    card = ROOT / "models" / f"{name}.md"
    assert card.is_file(), f"model card {card} is missing"
    text = card.read_text()
    model = keras_lode.load_model(ROOT / "models" / f"{name}.npz")
    training = model.config["training"]
    # The card's numbers come from the file: its run count and validation errors appear.
    assert f"{training['n_runs']} runs" in text
    if model.kind == "controlled":
        err = training["decision"]["final_metric_error"]
        assert f"| lode | {100 * err['lode']:.2f} |" in text
        assert f"| config_mean | {100 * err['config_mean']:.2f} |" in text
        cal = training["calibration"]["coverage_2sd_calibrated"]
        assert f"{cal:.2f} calibrated" in text
    else:
        assert f"{training['val_mse']:.4f}" in text
    for section in ("## Sweep", "## Hardware", "## Errors", "## Reproduce"):
        assert section in text


@pytest.mark.parametrize("name", MODELS)
def test_each_shipped_model_has_a_sample_run_it_plans(name, capsys):
    """`keras-lode plan` works on a fresh clone without a sweep (the user's path, item 4)."""
    import argparse
    import warnings

    import keras_lode
    from keras_lode.commands import plan as plan_cmd

    sample = ROOT / "models" / f"{name}.sample.run.csv"
    assert sample.is_file(), f"{sample} is missing"
    [run] = keras_lode.load_runs(sample)
    model = keras_lode.load_model(ROOT / "models" / f"{name}.npz")
    assert run.meta["task"] == name and run.status == "complete"
    assert len(run) == model.horizon and run.points_per_epoch == model.points_per_epoch
    parser = argparse.ArgumentParser()
    plan_cmd.add_arguments(parser)
    at = model.horizon // 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rc = plan_cmd.run(parser.parse_args([str(ROOT / "models" / f"{name}.npz"), str(sample),
                                             "--at", str(at)]))  # fmt: skip
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "does not look like" not in captured.err  # the sample is like the training runs
    kind = "LODE control plan" if model.kind == "controlled" else "LODE plan"
    assert f"{kind} at point {at}/{model.horizon}" in captured.out


def test_readme_plan_example_runs_as_written(capsys):
    import shlex

    from keras_lode import cli

    readme = (ROOT / "README.md").read_text()
    lines = [
        ln.strip() for ln in readme.splitlines() if ln.strip().startswith("keras-lode plan models/")
    ]
    assert lines, "the README has no `keras-lode plan models/...` example"
    for line in lines:
        argv = shlex.split(line.split("#")[0])[1:]
        argv = [a for a in argv if a not in ("\\\\",)]
        assert cli.main(argv) == 0, line
    assert re.search(r"LODE (control )?plan at point", capsys.readouterr().out)


@pytest.mark.parametrize("name", MODELS)
def test_model_card_quotes_its_benchmark(name):
    """A card of a protocol-2 benchmark quotes the paired differences of the results file."""
    import json

    results = ROOT / "benchmarks" / "results" / f"quality_{name}_cpu.json"
    payload = json.loads(results.read_text()) if results.is_file() else {}
    if payload.get("protocol") != 2:
        pytest.skip(f"{results.name} is not a protocol-2 benchmark")
    text = (ROOT / "models" / f"{name}.md").read_text()
    paired = payload["summary"]["paired"]
    assert paired, "a protocol-2 results file without paired differences"
    for d in paired:
        lo, hi = d["ci95"]
        line = (
            f"- {d['reference']} - {d['baseline']} ({d['key']}, n = {d['n']}): "
            f"**{100 * d['mean']:+.2f}** points, 95% CI [{100 * lo:+.2f}, {100 * hi:+.2f}]"
        )
        assert line in text, line
    # The shipped kind is the benchmark's better planner (larger paired mean vs the best
    # baseline at the best-validation epoch).
    import keras_lode

    best = max(
        (d for d in paired if d["key"] == "test_at_best_val"
         and d["baseline"] == payload["best_baseline"]),
        key=lambda d: d["mean"],
    )  # fmt: skip
    kind = keras_lode.load_model(ROOT / "models" / f"{name}.npz").kind
    assert (
        kind == {"lode_control": "controlled", "lode_generative": "generative"}[best["reference"]]
    )


@pytest.mark.parametrize(
    "task, example", [("fmnist_cnn", "fashion_mnist_cnn"), ("text_gpt", "text_gpt")]
)
def test_examples_warm_up_on_the_shipped_sweeps_best_baseline(task, example, monkeypatch):
    """The example's LODE warms up on the best baseline of the sweep behind its shipped model,
    as that model's benchmark chose it (on sweep validation); so do demo and compare (CNN)."""
    import importlib.util
    import json

    payload = json.loads((ROOT / "benchmarks" / "results" / f"quality_{task}_cpu.json").read_text())
    best = payload["best_peak_lr"][payload["best_baseline"]]["peak_lr"]
    assert payload["lode_warmup"] == f"{payload['best_baseline']}@{best:g}"
    if task == "fmnist_cnn":
        from keras_lode.commands.compare import DEFAULT_LODE_WARMUP
        from keras_lode.commands.demo import BEST_BASELINE

        assert BEST_BASELINE == payload["lode_warmup"]
        assert DEFAULT_LODE_WARMUP == payload["best_baseline"]
    spec = importlib.util.spec_from_file_location(example, ROOT / "examples" / f"{example}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    import _common  # on sys.path once the example is loaded

    args = _common.parser("x", "models/x.npz").parse_args([])
    assert (args.warmup, args.peak_lr) == ("constant", 3e-3)  # the generic defaults
    captured = {}
    monkeypatch.setattr(_common, "run", lambda task, a, verbose=2: captured.update(args=a))
    module.main([])
    assert (captured["args"].warmup, captured["args"].peak_lr) == (payload["best_baseline"], best)
