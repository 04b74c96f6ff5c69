"""Run data model and the .run.csv file format (NumPy only, no Keras)."""

from __future__ import annotations

import json
import logging
import math

import numpy as np
import pytest

import keras_lode
from keras_lode.runs import COLUMNS, META_DEFAULTS, Run, load_runs, read_run, run_name, write_run


def make_run(k=6, **meta):
    p = 3
    step = np.arange(1, k + 1) * 5
    epoch = np.arange(1, k + 1) / p
    lr = np.linspace(1e-3, 1e-4, k)
    loss = np.linspace(2.0, 0.5, k) + 1e-9 / 3  # not exactly representable in short decimal
    metric = np.linspace(0.1, 0.9, k)
    metric[1] = np.nan  # not measured at that point
    base = {
        "task": "toy",
        "schedule": "cosine",
        "peak_lr": 1e-3,
        "seed": 4,
        "points_per_epoch": p,
        "steps_per_epoch": 15,
    }
    base.update(meta)
    return Run(step, epoch, lr, loss, metric, meta=base)


def test_public_names_and_contract_properties():
    run = make_run()
    assert keras_lode.Run is Run and keras_lode.load_runs is load_runs
    assert run.run_id == "cosine-lr0.001-seed4" == run_name("cosine", 1e-3, 4)
    assert run.points_per_epoch == 3 and run.status == "complete" and run.flags == []
    assert run.step.dtype == np.int64 and run.loss.dtype == np.float64
    ch = run.channels()
    assert ch.shape == (6, 3)
    np.testing.assert_array_equal(ch[:, 0], run.loss)
    np.testing.assert_allclose(np.exp(ch[:, 1]), run.lr, rtol=1e-15)
    np.testing.assert_array_equal(ch[:, 2], run.metric)
    assert set(META_DEFAULTS) <= set(run.meta)


def test_points_per_epoch_inferred_from_epoch_column():
    run = Run([1, 2, 3, 4], [0.25, 0.5, 0.75, 1.0], [1.0] * 4, [1.0] * 4, [0.5] * 4)
    assert run.meta["points_per_epoch"] is None
    assert run.points_per_epoch == 4


def test_file_round_trip_is_exact_and_human_readable(tmp_path):
    run = make_run(test_metric=0.875, schedule_args={"alpha": 0.001})
    path = write_run(run, tmp_path)
    assert path.name == "cosine-lr0.001-seed4.run.csv"
    text = path.read_text()
    lines = text.splitlines()
    assert lines[0] == "# keras_lode.run 1.0"
    assert json.loads(lines[1][len("# meta ") :])["test_metric"] == 0.875
    assert lines[2] == ",".join(COLUMNS)
    assert lines[-1] == "# end 6"
    assert lines[4].split(",")[4] == "nan"  # the unmeasured metric stays visible
    back = read_run(path)
    for name in COLUMNS:
        np.testing.assert_array_equal(getattr(back, name), getattr(run, name))  # bitwise
    assert back.meta == run.meta
    # no temp files left behind
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_to_dict_round_trip():
    run = make_run()
    clone = Run.from_dict(json.loads(json.dumps(run.to_dict())))
    np.testing.assert_array_equal(clone.metric, run.metric)
    assert clone.meta == run.meta


def test_load_runs_directory_recursive_sorted_and_status_filter(tmp_path):
    (tmp_path / "sub").mkdir()
    write_run(make_run(seed=1), tmp_path / "sub")
    write_run(make_run(seed=0, status="diverged"), tmp_path)
    (tmp_path / "notes.csv").write_text("not a run\n")  # other files are ignored
    runs = load_runs(tmp_path)
    assert [r.run_id for r in runs] == ["cosine-lr0.001-seed0", "cosine-lr0.001-seed1"]
    assert [r.run_id for r in load_runs(tmp_path, status="complete")] == ["cosine-lr0.001-seed1"]
    assert len(load_runs([tmp_path / "sub", tmp_path / "cosine-lr0.001-seed0.run.csv"])) == 2
    with pytest.raises(ValueError, match="status.*'done'"):
        load_runs(tmp_path, status="done")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_runs(tmp_path / "nowhere")


# ------------------------------------------------ Done-when 3: one test per bad input
def test_nonfinite_losses_are_kept_and_flagged(tmp_path):
    run = make_run()
    run2 = Run(
        run.step,
        run.epoch,
        run.lr,
        [1.0, np.nan, np.inf, -np.inf, 0.5, 0.4],
        run.metric,
        meta=dict(run.meta, status="diverged"),
    )
    assert run2.flags == ["nonfinite_loss"] and run2.status == "diverged"
    back = read_run(write_run(run2, tmp_path))
    assert np.isnan(back.loss[1]) and back.loss[2] == np.inf and back.loss[3] == -np.inf
    assert back.flags == ["nonfinite_loss"]


def test_empty_run_is_flagged_and_round_trips(tmp_path):
    run = Run([], [], [], [], [], meta={"status": "failed", "run_id": "broken"})
    assert len(run) == 0 and run.flags == ["empty"]
    assert run.channels().shape == (0, 3)
    back = read_run(write_run(run, tmp_path))
    assert len(back) == 0 and back.status == "failed" and back.flags == ["empty"]


def test_empty_file_is_a_clear_error(tmp_path):
    path = tmp_path / "x.run.csv"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match="empty \\(0 bytes\\)"):
        read_run(path)


def test_ragged_columns_raise_naming_lengths(tmp_path):
    with pytest.raises(ValueError, match="same length.*'lr': 2.*'loss': 3"):
        Run([1, 2, 3], [0.1, 0.2, 0.3], [1e-3, 1e-3], [1, 2, 3], [0.1, 0.2, 0.3])
    # and a ragged row in a file
    path = write_run(make_run(), tmp_path)
    lines = path.read_text().splitlines()
    lines[4] = "10,0.6,0.001,1.5"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match="line 5 has 4 fields, expected 5"):
        read_run(path)


def test_duplicate_steps_raise_naming_the_step():
    with pytest.raises(ValueError, match="duplicate step 20 at log point 2"):
        Run([10, 20, 20], [0.1, 0.2, 0.3], [1.0] * 3, [1.0] * 3, [0.0] * 3)
    with pytest.raises(ValueError, match="decreasing step 5"):
        Run([10, 20, 5], [0.1, 0.2, 0.3], [1.0] * 3, [1.0] * 3, [0.0] * 3)
    with pytest.raises(ValueError, match="column `loss` must hold numbers"):
        Run([1], [0.1], [1.0], ["high"], [0.0])
    with pytest.raises(ValueError, match="integers.*2.5"):
        Run([1, 2.5], [0.1, 0.2], [1.0] * 2, [1.0] * 2, [0.0] * 2)


def test_file_cut_off_mid_write_loads_as_truncated(tmp_path, caplog):
    run = make_run()
    path = write_run(run, tmp_path)
    data = path.read_bytes()
    # cut in the middle of the 5th data row: rows 1-4 are complete, row 5 is partial
    cut_at = data.index(b"\n", data.index(b"\n" + str(run.step[4]).encode()) + 1) - 3
    path.write_bytes(data[:cut_at])
    with caplog.at_level(logging.WARNING, logger="keras_lode.runs.run_file"):
        back = read_run(path)
    assert back.status == "truncated" and "truncated" in back.flags
    assert len(back) == 4
    np.testing.assert_array_equal(back.loss, run.loss[:4])
    assert "truncated" in caplog.text
    # cut right before the end marker: all rows, still not complete
    path.write_bytes(data[: data.index(b"# end")])
    back = read_run(path)
    assert len(back) == 6 and back.status == "truncated"
    # cut inside the metadata line: nothing trustworthy, a clear error
    path.write_bytes(data[:60])
    with pytest.raises(ValueError, match="truncated|not valid JSON"):
        read_run(path)


def test_end_marker_disagreeing_with_rows_is_an_error(tmp_path):
    path = write_run(make_run(), tmp_path)
    path.write_text(path.read_text().replace("# end 6", "# end 7"))
    with pytest.raises(ValueError, match="says 7 rows but the file holds 6"):
        read_run(path)


def test_not_a_run_file_and_bad_values(tmp_path):
    path = tmp_path / "a.run.csv"
    path.write_text("epoch,loss\n0,1.0\n")
    with pytest.raises(ValueError, match="not a keras_lode run file"):
        read_run(path)
    good = write_run(make_run(), tmp_path)
    good.write_text(good.read_text().replace("\n15,", "\n15x,", 1))
    with pytest.raises(ValueError, match="not a number"):
        read_run(good)


def test_load_runs_on_error_warn_skips_bad_files(tmp_path):
    write_run(make_run(seed=1), tmp_path)
    (tmp_path / "bad.run.csv").write_text("garbage\n")
    with pytest.raises(ValueError, match="bad.run.csv"):
        load_runs(tmp_path)
    with pytest.warns(UserWarning, match="Skipped unreadable run file .*bad.run.csv"):
        runs = load_runs(tmp_path, on_error="warn")
    assert [r.meta["seed"] for r in runs] == [1]


def test_bad_lr_and_metric_are_flagged():
    run = Run([1, 2], [0.5, 1.0], [1e-3, 0.0], [1.0, 0.9], [np.nan, np.nan])
    assert run.flags == ["nonpositive_lr", "no_metric"]
    assert run.channels()[1, 1] == -math.inf
    run = Run([1, 2], [0.5, 1.0], [np.nan, 1e-3], [1.0, 0.9], [0.2, 0.3])
    assert run.flags == ["nonfinite_lr"]


def test_bad_meta_raises():
    with pytest.raises(ValueError, match="status.*'done'"):
        make_run(status="done")
    with pytest.raises(TypeError, match="meta\\['model'\\].*object"):
        make_run(model=object())
    with pytest.raises(TypeError, match="flags.*list"):
        make_run(flags="oops")
    run = make_run(seed=np.int64(3), peak_lr=np.float32(0.5))
    assert type(run.meta["seed"]) is int and type(run.meta["peak_lr"]) is float


def test_failed_write_leaves_previous_file_intact(tmp_path, monkeypatch):
    path = write_run(make_run(), tmp_path / "r.run.csv")
    before = path.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr("keras_lode.runs.run_file.os.replace", boom)
    with pytest.raises(OSError, match="disk full"):
        write_run(make_run(seed=9), path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.run.csv"]


def test_write_run_to_a_new_directory_path(tmp_path):
    path = write_run(make_run(), tmp_path / "new" / "runs")
    assert path == tmp_path / "new" / "runs" / "cosine-lr0.001-seed4.run.csv"
    assert read_run(path).run_id == "cosine-lr0.001-seed4"
