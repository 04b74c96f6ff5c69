"""The sweep engine and `keras-lode sweep`: local and Ray engines, failures, resume."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from keras_lode.runs import load_runs, read_run
from keras_lode.schedules import make_schedule
from keras_lode.sweep import Task, load_task, make_grid, split_data, sweep

HERE = Path(__file__).resolve().parent
SPEC = f"{HERE / 'sweep_tasks.py'}"


def tasks():
    return load_task(f"{SPEC}:TINY"), load_task(f"{SPEC}:REGRESSION"), load_task(f"{SPEC}:FLAKY")


def cli_sweep(argv, capsys):
    """Runs `keras-lode sweep ARGV` through the command line's entry point."""
    from keras_lode.cli import main

    code = main(["sweep", *argv])
    return code, capsys.readouterr().out


def _np(x):
    import keras

    return float(keras.ops.convert_to_numpy(x))


@pytest.mark.backend
def test_local_sweep_records_each_trial_and_rerun_skips(tmp_path):
    tiny, _, _ = tasks()
    results = sweep(
        tiny, tmp_path, families=["cosine"], peak_lrs=[3e-2], seeds=[0, 1], progress=False
    )
    assert [(r.run_id, r.status, r.skipped) for r in results] == [
        ("cosine-lr0.03-seed0", "complete", False),
        ("cosine-lr0.03-seed1", "complete", False),
    ]
    runs = load_runs(tmp_path)
    assert [r.run_id for r in runs] == ["cosine-lr0.03-seed0", "cosine-lr0.03-seed1"]
    schedule = make_schedule("cosine", 3e-2, total_steps=16)  # 256 / 32 = 8 steps x 2 epochs
    for run in runs:
        # P=2 points per epoch of 8 steps, 2 epochs
        np.testing.assert_array_equal(run.step, [4, 8, 12, 16])
        np.testing.assert_allclose(run.epoch, [0.5, 1.0, 1.5, 2.0])
        assert run.points_per_epoch == 2 and run.status == "complete" and run.flags == []
        m = run.meta
        assert (m["task"], m["schedule"], m["peak_lr"], m["optimizer"]) == (
            "tiny",
            "cosine",
            3e-2,
            "AdamW",
        )
        assert m["total_steps"] == 16 and m["steps_per_epoch"] == 8
        expected = schedule.get_config()
        expected.pop("name")
        assert m["schedule_args"] == expected
        # The recorded LR is the schedule's, within the interval it covers.
        for i, step in enumerate(run.step):
            lo = _np(schedule(int(step)))
            hi = _np(schedule(int(step) - 4))
            assert lo * (1 - 1e-5) <= run.lr[i] <= hi * (1 + 1e-5)
        assert np.all(np.isfinite(run.loss)) and np.all(np.isfinite(run.metric))
        assert run.loss[-1] < run.loss[0]  # it trained
        assert 0.6 <= m["test_metric"] <= 1.0
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    again = sweep(
        tiny, tmp_path, families=["cosine"], peak_lrs=[3e-2], seeds=[0, 1], progress=False
    )
    assert all(r.skipped and r.status == "complete" for r in again)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_diverged_and_failed_trials_are_recorded_and_the_sweep_goes_on(tmp_path):
    _, regression, flaky = tasks()
    results = sweep(regression, tmp_path / "reg", progress=False)
    status = {r.run_id: r.status for r in results}
    assert status == {"constant-lr0.01-seed0": "complete", "constant-lr1000-seed0": "diverged"}
    bad = read_run(tmp_path / "reg" / "constant-lr1000-seed0.run.csv")
    assert bad.status == "diverged" and "terminated_on_nan" in bad.flags
    assert 0 < bad.meta["diverged_at_step"] < 16  # stopped early, not after 4 epochs
    assert len(bad) < 8
    # Seen at a log point: the first recorded point with a non-finite interval loss.
    first_bad = int(np.argmax(~np.isfinite(bad.loss)))
    assert bad.meta["diverged_at_step"] == bad.step[first_bad]
    good = read_run(tmp_path / "reg" / "constant-lr0.01-seed0.run.csv")
    assert np.all(good.metric <= 0)  # the callable metric (negative MSE) was measured

    results = sweep(flaky, tmp_path / "flaky", progress=False)
    assert [r.status for r in results] == ["complete", "failed"]
    failed = read_run(tmp_path / "flaky" / "constant-lr0.01-seed1.run.csv")
    assert failed.status == "failed" and "boom: seed 1" in failed.meta["error"]
    assert "RuntimeError" in failed.meta["traceback"]
    # a rerun skips the complete trial, retries the failed one (unless told not to)
    again = sweep(flaky, tmp_path / "flaky", progress=False)
    assert [(r.status, r.skipped) for r in again] == [("complete", True), ("failed", False)]
    again = sweep(flaky, tmp_path / "flaky", retry_failed=False, progress=False)
    assert [(r.status, r.skipped) for r in again] == [("complete", True), ("failed", True)]


@pytest.mark.backend
def test_divergence_watch_stops_at_the_next_log_point_and_keeps_async_dispatch():
    # The watch reads the interval loss the recorder measured at each log point (found at
    # batch begin / epoch end), so it does not override on_train_batch_end, which would turn
    # off Keras's asynchronous callback dispatch for the whole fit (JAX).
    import keras
    from keras.callbacks import CallbackList

    from keras_lode.callbacks import RunRecorder
    from keras_lode.experiments.trial import make_divergence_watch

    def fit(nan_rows, epochs=4):
        x = np.ones((256, 8), "float32")
        x[nan_rows] = np.nan
        y = np.zeros((256, 1), "float32")
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1)])
        model.compile(optimizer=keras.optimizers.SGD(1e-3), loss="mse")
        # 8 steps of 32 samples per epoch, no shuffle; P = 2: points at steps 4 and 8.
        model.fit(
            x,
            y,
            batch_size=32,
            epochs=epochs,
            shuffle=False,
            verbose=0,
            callbacks=[recorder, watch],
        )
        return model

    recorder = RunRecorder(points_per_epoch=2)
    watch = make_divergence_watch(keras, recorder)
    assert type(watch).on_train_batch_end is keras.callbacks.Callback.on_train_batch_end
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1)])
    plain = CallbackList([], model=model)
    assert CallbackList([recorder, watch], model=model)._async_train == plain._async_train

    # A NaN in step 1: in the point after step 4, which is taken at the begin of step 5 and
    # read at the begin of step 6 (mid-epoch points are read a step later, never blocking);
    # that batch still runs, then fit stops after 6 steps: the recorder's last row is those
    # two steps, a partial point at step 6 (no rows for steps that never ran).
    model = fit(slice(0, 4))
    assert watch.stopped_at == 4
    np.testing.assert_array_equal(recorder.run.step, [4, 6])
    assert "partial_last_point" in recorder.run.flags
    assert np.isnan(recorder.run.loss).all() and recorder.run.status == "diverged"
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 6
    # A NaN in step 8, the epoch's last: seen at the epoch end point; epoch 2 never starts.
    model = fit(slice(224, 228))
    assert watch.stopped_at == 8
    np.testing.assert_array_equal(recorder.run.step, [4, 8])
    assert np.isfinite(recorder.run.loss[0]) and np.isnan(recorder.run.loss[1])
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 8

    # A finite run is never stopped; a rerun of the same callbacks starts afresh.
    fit([], epochs=2)
    assert watch.stopped_at is None and recorder.run.status == "complete"


def test_truncated_or_unreadable_run_file_is_rerun(tmp_path):
    tiny, _, _ = tasks()
    small = dataclasses.replace(tiny, epochs=1)
    sweep(small, tmp_path, families=["constant"], peak_lrs=[1e-2], seeds=[0], progress=False)
    path = tmp_path / "constant-lr0.01-seed0.run.csv"
    text = path.read_text()
    path.write_text(text[: text.index("# end")])  # cut off: loads as truncated
    (result,) = sweep(
        small, tmp_path, families=["constant"], peak_lrs=[1e-2], seeds=[0], progress=False
    )
    assert not result.skipped and read_run(path).status == "complete"


def test_isolated_trial_runs_in_a_subprocess(tmp_path):
    (result,) = sweep(
        f"{SPEC}:TINY",
        tmp_path,
        families=["constant"],
        peak_lrs=[1e-2],
        seeds=[0],
        isolate=True,
        progress=False,
    )
    assert result.status == "complete"
    run = read_run(result.path)
    assert len(run) == 4 and run.meta["test_metric"] > 0
    with pytest.raises(ValueError, match="spec string"):
        sweep(tasks()[0], tmp_path, isolate=True, progress=False)


def test_cli_dry_run_lists_the_grid(tmp_path, capsys):
    code, out = cli_sweep(
        [
            "--task",
            f"{SPEC}:TINY",
            "--out",
            str(tmp_path),
            "--dry-run",
            "--schedules",
            "cosine,step",
            "--lrs",
            "0.1",
            "--seeds",
            "0,1",
        ],
        capsys,
    )
    assert code == 0
    assert "cosine-lr0.1-seed0\ttodo" in out and "step-lr0.1-seed1\ttodo" in out
    assert "4 trials for task 'tiny'" in out
    code, out = cli_sweep(["--task", f"{SPEC}:TINY", "--out", str(tmp_path), "--lrs", "x"], capsys)
    assert code == 2 and "--lrs must be comma-separated numbers" in out


def test_ray_engine_cli_completes_a_4_trial_grid_and_rerun_skips(tmp_path, capsys):
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.tune")
    import keras

    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"KERAS_BACKEND": keras.backend.backend()}},
    )
    try:
        argv = [
            "--task",
            f"{SPEC}:TINY",
            "--out",
            str(tmp_path),
            "--engine",
            "ray",
            "--schedules",
            "constant",
            "--lrs",
            "0.001,0.03",
            "--seeds",
            "0,1",
            "--quiet",
        ]
        code, out = cli_sweep(argv, capsys)
        assert code == 0, out
        assert "4 trials (4 complete); 0 skipped" in out
        runs = load_runs(tmp_path)
        assert sorted(r.run_id for r in runs) == [
            "constant-lr0.001-seed0",
            "constant-lr0.001-seed1",
            "constant-lr0.03-seed0",
            "constant-lr0.03-seed1",
        ]
        for run in runs:
            assert run.status == "complete" and len(run) == 4
            np.testing.assert_allclose(run.lr, run.meta["peak_lr"], rtol=1e-6)
        stamps = {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("*.run.csv")}
        code, out = cli_sweep(argv, capsys)
        assert code == 0 and "4 skipped as already done" in out
        assert {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("*.run.csv")} == stamps
    finally:
        ray.shutdown()


# ------------------------------------------------------------------ pieces, no training
def test_make_grid_order_and_errors():
    grid = make_grid(["cosine", "step"], [1e-3, 1e-2], [0, 1])
    assert [t.run_id for t in grid][:3] == [
        "cosine-lr0.001-seed0",
        "cosine-lr0.001-seed1",
        "cosine-lr0.01-seed0",
    ]
    assert len(grid) == 8
    with pytest.raises(ValueError, match="unknown families \\['cos'\\]"):
        make_grid(["cos"], [1e-3], [0])
    with pytest.raises(ValueError, match="peak_lrs.*-1"):
        make_grid(["cosine"], [-1], [0])
    with pytest.raises(ValueError, match="`seeds` must not be empty"):
        make_grid(["cosine"], [1e-3], [])
    with pytest.raises(ValueError, match="repeated trials"):
        make_grid(["cosine"], [1e-3, 1e-3], [0])


def test_load_task_forms_and_errors(monkeypatch):
    tiny = load_task(f"{SPEC}:TINY")
    assert isinstance(tiny, Task) and tiny.name == "tiny"
    assert load_task(f"{SPEC}:make_tiny") is tiny  # zero-argument factory
    assert load_task(tiny) is tiny
    monkeypatch.syspath_prepend(str(HERE))
    assert load_task("sweep_tasks:FLAKY").name == "flaky"  # module:attr
    with pytest.raises(ValueError, match="has no attribute 'NOPE'.*'TINY'"):
        load_task(f"{SPEC}:NOPE")
    with pytest.raises(ValueError, match="no Python file"):
        load_task("missing_dir/tasks.py:T")
    with pytest.raises(ValueError, match="cannot import module 'no_such_module_x'"):
        load_task("no_such_module_x:T")
    with pytest.raises(ValueError, match="resolved to a int"):
        load_task(3)


def test_task_validation():
    with pytest.raises(ValueError, match="`epochs` must be a positive int.*0"):
        Task("t", lambda s: None, dict, epochs=0)
    with pytest.raises(TypeError, match="`build_model` must be callable"):
        Task("t", None, dict, epochs=1)
    with pytest.raises(ValueError, match="schedule_args.*\\['warm'\\]"):
        Task("t", lambda s: None, dict, epochs=1, schedule_args={"warm": {}})


def test_split_data_accepts_the_documented_shapes():
    x, y = np.zeros((4, 2)), np.zeros(4)
    a = split_data({"train": (x, y), "val": (x, y)})
    assert a["test"] is None and a["train"][0] is x
    b = split_data(
        {"x_train": x, "y_train": y, "x_validation": x, "y_validation": y, "x_test": x, "y_test": y}
    )
    assert b["val"][1] is y and b["test"][0] is x

    class Data:
        x_train, y_train, x_val, y_val, x_test, y_test = x, y, x, y, x, y

    assert split_data(Data())["test"][1] is y
    with pytest.raises(ValueError, match="no 'val' split.*\\['train'\\]"):
        split_data({"train": (x, y)})
    with pytest.raises(ValueError, match="'train' must be an \\(x, y\\) pair"):
        split_data({"train": x, "val": (x, y)})


@pytest.mark.backend
def test_switched_trials_share_the_base_prefix_then_follow_the_target(tmp_path):
    from keras_lode.experiments import Switch, Trial, make_switched_trials
    from keras_lode.experiments.trial import run_trial, switch_step

    tiny = tasks()[0]
    trials = make_switched_trials(
        ["cosine", "constant"], [1e-3, 3e-2], [0, 1], runs=2, points=4, targets=2
    )
    assert len(trials) == 2 and len({t.run_id for t in trials}) == 2
    base_cfg = {(t.family, t.peak_lr, t.seed, t.switch.at_point) for t in trials}
    assert len(base_cfg) == 1  # one group: same base, same cut, two targets
    assert all((t.family, t.peak_lr) != (t.switch.to_family, t.switch.to_peak_lr) for t in trials)
    sweep(tiny, tmp_path, families=["cosine"], peak_lrs=[1e-3], seeds=[0], progress=False)
    sw = Trial("cosine", 1e-3, 0, Switch("constant", 3e-2, 1))
    assert sw.run_id == "cosine-lr0.001-seed0-to-constant-lr0.03-at1"
    result = run_trial(tiny, sw, tmp_path)
    assert result.status == "complete"
    base = read_run(tmp_path / "cosine-lr0.001-seed0.run.csv")
    run = read_run(tmp_path / f"{sw.run_id}.run.csv")
    assert run.meta["switch"]["base"] == base.run_id and run.meta["switch"]["at_point"] == 1
    assert run.meta["switch"]["at_step"] == switch_step(tiny, 256, 1) == 8  # 256/32 = 8 steps
    # Up to and including the switch point the two runs are the same run.
    np.testing.assert_allclose(run.channels()[:2], base.channels()[:2], rtol=1e-6)
    # After it the LR is the target's: constant 3e-2.
    np.testing.assert_allclose(run.lr[2:], 3e-2, rtol=1e-6)
    assert base.lr[2] < 1e-3
    with pytest.raises(ValueError, match="at least 2 configs"):
        make_switched_trials(["cosine"], [1e-3], [0], runs=1, points=4)
