"""Every shipped LODE in models/ loads, matches its task and its card, and plans."""

from __future__ import annotations

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

    w = model.planner_defaults["window"]
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
    # The card's numbers come from the file: its run count and validation error appear.
    assert f"{training['n_runs']} runs" in text
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
    assert f"LODE plan at point {at}/{model.horizon}" in captured.out


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
    assert "LODE plan at point" in capsys.readouterr().out
