"""Issue 16, item 1 (and item 9's compare defaults): `keras-lode compare --task my_task.py:TASK`
takes an own task exactly as `keras-lode sweep --task` does, and compare's default methods are
the baselines the README names."""

from __future__ import annotations

import json
import math

import pytest

# An own task as a user writes it for `keras-lode sweep`: a loader without `seed` that returns
# a dict of (x, y) splits, no model file. Tiny: 2 epochs of 4 steps, 3 classes.
TINY_TASK = """
import numpy as np

from keras_lode.experiments import Task


def build(seed=0):
    import keras

    keras.utils.set_random_seed(int(seed))
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])


def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int64") + (x[:, 1] > 0)
    return {"train": (x[:64], y[:64]), "val": (x[64:80], y[64:80]), "test": (x[80:], y[80:])}


TASK = Task(
    "tiny_own", build, data, epochs=2, batch_size=16, points_per_epoch=2,
    validation_samples=16, peak_lrs=(1e-2,), seeds=(0,), families=("constant",),
)
"""


@pytest.fixture
def task_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my_task.py").write_text(TINY_TASK)
    return "my_task.py:TASK"


def test_compare_runs_an_own_task_given_as_to_sweep(task_file, tmp_path, capsys):
    from keras_lode.cli import main

    rc = main(
        ["compare", "--task", task_file, "--methods", "constant@1e-2,cosine@1e-2"]
        + ["--seeds", "0,1", "--epochs", "3", "--out", str(tmp_path / "out")]
    )
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert "constant@1e-02" in out.out and "cosine@1e-02" in out.out
    payload = json.loads((tmp_path / "out" / "results.json").read_text())
    assert payload["task"] == "tiny_own"
    assert payload["epochs"] == 3
    assert len(payload["results"]) == 4
    for r in payload["results"]:
        assert len(r["epochs"]) == 3
        assert 0.0 <= r["test_at_best_val"] <= 1.0 and math.isfinite(r["test_at_end"])
    assert (tmp_path / "out" / "compare.png").is_file()


def test_compare_own_task_without_a_model_says_what_to_do(task_file, tmp_path, capsys):
    from keras_lode.cli import main

    argv = ["compare", "--task", task_file, "--methods", "lode@1e-2,constant@1e-2"]
    rc = main(argv + ["--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("keras-lode compare: error: no LODE model file for task 'tiny_own'")
    assert "--model PATH" in err


def test_compare_bad_own_task_spec_is_a_one_line_error(tmp_path, capsys, monkeypatch):
    from keras_lode.cli import main

    monkeypatch.chdir(tmp_path)
    rc = main(["compare", "--task", "missing.py:TASK", "--methods", "constant@1e-2"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("keras-lode compare: error: Task spec 'missing.py:TASK'"), err


def test_load_task_data_accepts_what_a_sweep_accepts(task_file):
    from keras_lode.experiments import TaskData, load_task, load_task_data

    data = load_task_data(load_task(task_file), seed=3)
    assert isinstance(data, TaskData)
    assert (len(data.x_train), len(data.x_val), len(data.x_test)) == (64, 16, 16)


def test_compare_defaults_are_the_readme_baselines():
    import argparse

    from keras_lode.cli import build_parser
    from keras_lode.commands.compare import DEFAULT_METHODS

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    parser = sub.choices["compare"]
    from keras_lode.commands.compare import DEFAULT_LODE_WARMUP, choose_methods

    # The defaults (fmnist_cnn only, without --runs): the README's baselines.
    args = parser.parse_args([])
    methods, warmup, _ = choose_methods(args, argparse.Namespace(name="fmnist_cnn"))
    # README "Results at a glance": WSD @ 0.006 is the best schedule of the shipped LODE's
    # sweep (demo's baseline, which the LODE warms up on), one-cycle @ 0.012 the second best.
    from keras_lode.commands.demo import BEST_BASELINE

    assert methods == DEFAULT_METHODS
    assert set(methods.split(",")) == {"lode@0.006", "wsd@0.006", "onecycle@0.012"}
    assert BEST_BASELINE in methods.split(",")
    assert warmup == DEFAULT_LODE_WARMUP == BEST_BASELINE.split("@")[0] == "wsd"
    text = " ".join(parser.format_help().split())
    assert "WSD @ 0.006, the best schedule" in text
    assert "--task" in text and "file.py:attr" in text
