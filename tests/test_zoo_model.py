"""The pretrained zoo model: `LODECallback()`'s model, shipped inside the package.

It plans on every task's sample run (`keras-lode plan`), loads and plans without torch, and
is what a callback without a model file gets.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
TASKS = ("digits_mlp", "fmnist_mlp", "fmnist_cnn", "charlm", "text_gpt", "fmnist_resnet")


def test_the_zoo_model_is_task_free_and_calibrated_with_a_prior():
    import keras_lode
    from keras_lode.model.features import is_task_free
    from keras_lode.pretrained import ZOO_MODEL, zoo_model_path

    assert zoo_model_path() == ZOO_MODEL
    model = keras_lode.load_model(ZOO_MODEL)
    assert model.kind == "controlled" and is_task_free(model)
    paired = model.planner_defaults["paired"]
    assert paired["by"] == "task" and paired["trusted"] and paired.get("switch", True)
    assert set(paired["folds"]) >= {"digits_mlp", "fmnist_mlp", "fmnist_cnn", "charlm", "text_gpt"}
    assert paired["prior"]["fractions"][0] < paired["prior"]["fractions"][1]
    # It switches only from a constant LR (its gate), and never raises above its ceilings.
    assert paired["starts"] == ["constant"]
    assert set(model.planner_defaults["lr_ceiling"]) == {"adam", "sgd"}


@pytest.mark.parametrize("task", TASKS)
def test_the_zoo_model_plans_on_every_tasks_sample_run(task, capsys):
    import argparse

    import keras_lode
    from keras_lode.commands import plan as plan_cmd
    from keras_lode.pretrained import ZOO_MODEL

    sample = ROOT / "models" / f"{task}.sample.run.csv"
    [run] = keras_lode.load_runs(sample)
    assert run.meta["task"] == task and run.status == "complete"
    parser = argparse.ArgumentParser()
    plan_cmd.add_arguments(parser)
    at = len(run) // 3
    rc = plan_cmd.run(parser.parse_args([str(ZOO_MODEL), str(sample), "--at", str(at)]))
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert f"LODE control plan at point {at}/{len(run)}" in captured.out


def test_the_zoo_model_loads_and_plans_without_torch():
    code = f"""
        import sys
        sys.modules["torch"] = None  # `import torch` now fails: torch "not installed"
        import numpy as np
        import keras_lode
        from keras_lode.pretrained import zoo_model_path
        model = keras_lode.load_model(zoo_model_path())
        [run] = keras_lode.load_runs({str(ROOT / "models" / "fmnist_mlp.sample.run.csv")!r})
        p = keras_lode.plan(model, run.channels()[:21], position=20, total_points=len(run))
        assert p.lr.shape == (len(run) - 21,) and np.all(p.lr > 0)
        print("PLANNED", p.chosen_name)
    """
    env = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "PLANNED" in result.stdout


def test_a_callback_without_a_model_file_plans_with_the_zoo_model():
    import keras_lode
    from keras_lode.pretrained import ZOO_MODEL

    x = np.zeros((8, 2), "float32")
    y = np.zeros((8,), "int32")
    cb = keras_lode.LODECallback(validation_data=(x, y))
    zoo = keras_lode.load_model(ZOO_MODEL)
    assert cb.kind == "controlled" and cb.lode.config == zoo.config


def test_the_zoo_models_card_quotes_its_results():
    import json

    card = (ROOT / "models" / "zoo.md").read_text()
    summary = json.loads((ROOT / "benchmarks/results/zoo_model.json").read_text())
    realized = summary["paired"]["realized"]
    assert f"{realized['rule']:+.2f}" in card and f"{realized['oracle']:+.2f}" in card
    for fold in summary["paired"]["folds"]:
        assert f"| {fold['task']} | {fold['realized']:+.2f} | {fold['oracle']:+.2f} |" in card
    for section in ("## Training", "## Leave one task out", "## Reproduce"):
        assert section in card


def test_planning_with_the_zoo_model_from_the_cli_imports_no_keras():
    code = f"""
        import sys
        from keras_lode import cli
        from keras_lode.pretrained import zoo_model_path
        rc = cli.main(["plan", str(zoo_model_path()),
                       {str(ROOT / "models" / "text_gpt.sample.run.csv")!r}, "--at", "5"])
        heavy = sorted(m for m in ("keras", "tensorflow", "torch", "jax") if m in sys.modules)
        print("RC", rc, "HEAVY", heavy)
    """
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "RC 0 HEAVY []" in result.stdout, result.stdout[-2000:]


def test_a_missing_zoo_model_is_named(monkeypatch, tmp_path):
    import keras_lode.pretrained as pretrained

    monkeypatch.setattr(pretrained, "ZOO_MODEL", tmp_path / "zoo.npz")
    with pytest.raises(FileNotFoundError, match="pretrained zoo model .* is missing"):
        pretrained.zoo_model_path()
