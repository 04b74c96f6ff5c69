"""The metric's direction, `mode="max"` (accuracy) or `"min"` (a loss, perplexity, bits per
character), end to end: model file, both planners, the paired calibration, the recorder,
the trainer's summary and the callback."""

from __future__ import annotations

import numpy as np
import pytest
from test_control_planner import FakeControlled, default_path, window_at
from test_control_planner import K as CK
from test_planner import HandModel, by_row, window

from keras_lode.model.config import controlled_config, default_config
from keras_lode.model.controlled import random_controlled
from keras_lode.planning import plan
from keras_lode.runs import Run, runs_mode


def test_model_file_stores_a_minimized_metric_and_refuses_others(tmp_path):
    from keras_lode.model import load_model

    assert "mode" not in controlled_config()["channels"]  # "max": files stay as they were
    assert controlled_config(mode="min")["channels"]["mode"] == "min"
    assert default_config(mode="min")["channels"]["mode"] == "min"
    m = random_controlled(0, members=2, mode="min")
    m.save(tmp_path / "m.npz")
    assert load_model(tmp_path / "m.npz").mode == "min"
    assert random_controlled(0, members=2).mode == "max"
    with pytest.raises(ValueError, match="mode"):
        controlled_config(mode="lower")
    from keras_lode.model.io import read_model_file, save_model

    config, weights = read_model_file(tmp_path / "m.npz")
    config["channels"]["mode"] = "down"
    with pytest.raises(ValueError, match="channels.mode"):
        save_model(tmp_path / "bad.npz", config, weights)


def test_control_planner_minimizes_a_minimized_metric():
    # Final metric = mean LR of the path: maximized, the highest-LR constant wins; minimized,
    # the path that ends lowest in mean LR wins, and bounds are upper bounds.
    model = FakeControlled(lambda lr: lr.mean(axis=1), spread_of=lambda lr: np.full(len(lr), 1e-5))
    n = 20
    up = plan(model, window_at(n), position=n, total_points=CK, current_plan=default_path(n))
    assert up.chosen_name == "constant 2x"
    model.mode = "min"
    down = plan(model, window_at(n), position=n, total_points=CK, current_plan=default_path(n),
                margin=0.0)  # fmt: skip
    assert down.switched
    assert down.chosen == int(np.argmin(down.bound))
    assert down.mean[down.chosen] == pytest.approx(np.min(down.mean), rel=1e-6)
    assert np.all(down.bound[np.isfinite(down.bound)] >= down.mean[np.isfinite(down.bound)])


def test_generative_planner_rewards_a_low_minimized_metric():
    # Row r's metric is r / 100: maximized, the top-3 are rows 9, 8, 7; minimized, 0, 1, 2.
    def spec(r, t):
        return (
            np.full(t.size, 0.5),
            np.log(1e-3 * (1 + r)) * np.ones(t.size),
            np.full(t.size, r / 100),
        )

    m = HandModel(by_row(spec))
    p = plan(m, window(), position=10, total_points=100, seed=0, samples=9, top_k=3)
    assert p.chosen.tolist() == [9, 8, 7]
    m.mode = "min"
    p = plan(m, window(), position=10, total_points=100, seed=0, samples=9, top_k=3)
    assert p.chosen.tolist() == [0, 1, 2]


def test_paired_calibration_counts_a_decrease_as_a_gain():
    from test_counterfactual import Members, calibrated

    def lower_is_better(lr):  # decays end 0.02 lower (a loss)
        return -0.02 * (lr[:, -1] <= lr[:, 0] / 20)

    model = Members(effect=lower_is_better)
    model.mode = "min"
    rng = np.random.default_rng(1)
    # The runs do what the members predict: decays end 0.02 lower, an improvement.
    result = calibrated(model, lambda s, g: g + 0.001 * rng.standard_normal(g.size))
    assert result["spearman"] > 0.6 and result["realized"]["oracle"] > 1.0
    assert result["realized"]["rule"] > 0.8 * result["realized"]["oracle"]


def _run(mode, seed=0):
    meta = {"task": "t", "schedule": "constant", "peak_lr": 1e-3, "seed": seed, "mode": mode}
    return Run([1, 2], [0.5, 1.0], [1e-3, 1e-3], [1.0, 0.9], [0.5, 0.4], meta=meta)


def test_runs_carry_their_direction_to_the_trainer():
    assert runs_mode([_run("min"), _run("min", 1)]) == "min"
    assert runs_mode([Run([1], [1.0], [1e-3], [1.0], [0.5])]) == "max"  # older run files
    with pytest.raises(ValueError, match="mix"):
        runs_mode([_run("min"), _run("max", 1)])


def test_recorder_and_callback_take_mode_as_keras_callbacks_do():
    from keras_lode.callbacks import LODECallback, RunRecorder

    assert RunRecorder(mode="min").meta["mode"] == "min"
    assert RunRecorder().meta["mode"] == "max"
    with pytest.raises(ValueError, match="mode"):
        RunRecorder(mode="auto-ish")
    x, y = np.zeros((4, 2), "float32"), np.zeros(4, "int64")
    model = random_controlled(0, members=2, mode="min")
    cb = LODECallback(model, validation_data=(x, y), verbose=0)
    assert cb.options.mode == "min"
    with pytest.raises(ValueError, match="minimized"):
        LODECallback(model, validation_data=(x, y), mode="max")


def test_best_config_of_a_minimized_metric_is_the_lowest():
    from keras_lode.experiments.best import best_per_family

    def run(peak, final, seed=0):
        meta = {"task": "t", "schedule": "cosine", "peak_lr": peak, "seed": seed, "mode": "min"}
        return Run([1, 2], [0.5, 1.0], [peak, peak], [1.0, 0.9], [2.0, final], meta=meta)

    rows = best_per_family([run(1e-3, 1.5), run(3e-3, 1.2), run(1e-2, 1.8)])
    assert rows[0]["label"] == "cosine@0.003" and rows[0]["val"] == pytest.approx(1.2)


def _mse(y_true, y_pred):
    return float(np.mean((np.asarray(y_true).reshape(-1) - np.asarray(y_pred).reshape(-1)) ** 2))


@pytest.mark.backend
def test_a_minimized_task_metric_runs_through_sweeps_and_comparisons(tmp_path):
    import dataclasses

    from sweep_tasks import REGRESSION

    from keras_lode.experiments import Method, sweep
    from keras_lode.experiments.methods import plateau_callback
    from keras_lode.experiments.running import load_task_data, train_one
    from keras_lode.experiments.stats import format_table
    from keras_lode.runs import load_runs
    from keras_lode.tasks import Task

    with pytest.raises(ValueError, match="`mode` must be 'max' or 'min'"):
        dataclasses.replace(REGRESSION, mode="lower")
    # The validation MSE, minimized (the same data as the test split).
    task = dataclasses.replace(REGRESSION, name="regression_min", metric=_mse, mode="min")
    assert isinstance(task, Task) and not task.accuracy_metric
    sweep(task, tmp_path, peak_lrs=[1e-2], progress=False)
    [run] = load_runs(tmp_path)
    assert run.meta["mode"] == "min" and runs_mode([run]) == "min"
    assert run.metric[-1] < run.metric[0]  # the recorded metric is the MSE, and it falls
    data = load_task_data(dataclasses.replace(task, load_data=lambda: {
        **REGRESSION.load_data(), "x_test": REGRESSION.load_data()["x_val"],
        "y_test": REGRESSION.load_data()["y_val"]}))  # fmt: skip
    r = train_one(task, Method("constant", peak_lr=1e-2), seed=0, data=data)
    vals = [e["val_metric"] for e in r["epochs"]]
    assert r["mode"] == "min" and r["accuracy"] is False
    assert r["best_val"] == min(vals) and r["best_epoch"] == int(np.argmin(vals)) + 1
    assert vals[-1] < vals[0] and vals[0] < 50  # an MSE, not an accuracy in [0, 1]
    peer = plateau_callback(Method("plateau", peak_lr=1e-2), task)
    assert (peer.monitor, peer.mode) == ("val_metric", "min")
    runs = [r, train_one(task, Method("constant", peak_lr=1e-2), seed=1, data=data)]
    runs += [train_one(task, Method("plateau", peak_lr=1e-2), seed=s, data=data) for s in (0, 1)]
    table = format_table(runs, reference=runs[2]["method"], baseline=r["method"])
    assert "(%)" not in table and "lower is better" in table, table
