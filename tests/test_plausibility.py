"""Implausible runs get one warning naming the run and the channel (issue: the user's path).

The model is the shipped Fashion-MNIST CNN LODE; the runs are synthetic stand-ins with its
training runs' channel statistics, so that a well-formed run raises nothing.
"""

from __future__ import annotations

import math
import os
import warnings

import numpy as np
import pytest

import keras_lode
from keras_lode.planning.plausibility import implausible, warn_implausible

MODELS = os.path.join(os.path.dirname(__file__), "..", "models")


@pytest.fixture(scope="module")
def model():
    return keras_lode.load_model(os.path.join(MODELS, "fmnist_cnn.npz"))


def good_run(points=50):
    f = np.arange(points) / points
    lr = 3e-3 * 0.5 * (1 + np.cos(np.pi * f)) + 1e-5
    loss = 0.3 + 0.6 * np.exp(-3 * f)
    metric = 0.89 - 0.1 * np.exp(-3 * f)
    return np.column_stack([loss, np.log(lr), metric])


def test_a_run_like_the_training_runs_raises_nothing(model):
    assert implausible(model, good_run(), task="fmnist_cnn") == []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert warn_implausible(model, good_run(), run_name="ok") == []


def test_lr_and_loss_swapped_under_a_correct_header(model):
    y = good_run()
    swapped = np.column_stack([np.exp(y[:, 1]), np.log(y[:, 0]), y[:, 2]])
    problems = implausible(model, swapped)
    assert any("'loss' and 'lr' look swapped" in p for p in problems)
    with pytest.warns(UserWarning, match=r"Run 'cosine-x' .*'loss' and 'lr' look swapped") as rec:
        warn_implausible(model, swapped, run_name="cosine-x")
    assert len(rec) == 1  # one warning, every problem in it


def test_lrs_far_outside_the_models_range(model):
    y = good_run()
    y[:, 1] = math.log(0.41)
    problems = implausible(model, y)
    assert len(problems) == 1 and "channel 'lr'" in problems[0] and "0.41" in problems[0]
    # Within the factor: no complaint (the range's top is 1e-2).
    y[:, 1] = math.log(0.05)
    assert implausible(model, y) == []
    assert implausible(model, y, lr_factor=2.0) != []


def test_a_metric_on_another_scale_and_another_task(model):
    y = good_run()
    y[:, 2] = y[:, 2] * 100  # accuracy in percent
    problems = implausible(model, y, task="text_gpt")
    assert any("channel 'metric'" in p for p in problems)
    assert any("task 'text_gpt' is not the model's task 'fmnist_cnn'" in p for p in problems)


def test_shape_is_checked(model):
    with pytest.raises(ValueError, match=r"\(T, 3\)"):
        implausible(model, np.zeros((5, 2)))


def test_plan_command_warns_about_a_swapped_run_file(tmp_path, capsys):
    import argparse

    from keras_lode.commands import plan as plan_cmd
    from keras_lode.runs import Run

    y = good_run()
    step = (np.arange(50) + 1) * 30
    meta = {"schedule": "cosine", "points_per_epoch": 10, "epochs": 5, "steps_per_epoch": 300,
            "task": "fmnist_cnn"}  # fmt: skip
    # lr and loss exchanged under a correct header.
    run = Run(step, step / 300, y[:, 0], np.exp(y[:, 1]), y[:, 2], meta=meta)
    path = run.save(tmp_path)
    parser = argparse.ArgumentParser()
    plan_cmd.add_arguments(parser)
    args = parser.parse_args([os.path.join(MODELS, "fmnist_cnn.npz"), str(path), "--at", "20"])
    assert plan_cmd.run(args) == 0
    err = capsys.readouterr().err
    assert f"run {run.run_id!r} does not look like" in err and "look swapped" in err
