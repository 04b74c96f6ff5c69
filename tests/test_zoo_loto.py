"""benchmarks/zoo_loto.py's bookkeeping: groups found, gains scored in the held-out task."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import zoo_loto  # noqa: E402

from keras_lode.model.controlled import random_controlled  # noqa: E402
from keras_lode.runs.synthetic import synthetic_run, synthetic_switched_run  # noqa: E402


def _task_runs():
    runs = []
    for seed in (0, 1):
        runs.append(synthetic_run("constant", 1e-2, seed=seed, points=20, points_per_epoch=2))
        for fam, lr in (("cosine", 1e-2), ("wsd", 3e-2), ("constant", 3e-3)):
            runs.append(synthetic_switched_run("constant", 1e-2, fam, lr, 8, seed=seed,
                                               points=20, points_per_epoch=2))  # fmt: skip
    runs.append(synthetic_run("cosine", 1e-2, seed=0, points=20, points_per_epoch=2))
    return runs


def test_groups_are_a_base_and_its_switched_runs_at_one_point():
    groups = zoo_loto.switch_groups(_task_runs())
    assert [(b.run_id, n, len(rs)) for b, n, rs in groups] == [
        ("constant-lr0.01-seed0", 8, 3),
        ("constant-lr0.01-seed1", 8, 3),
    ]


def test_scores_are_gains_over_the_groups_default():
    runs = _task_runs()
    for features in ("absolute", "relative"):
        model = random_controlled(0, members=3, window=4, horizon=20, features=features)
        row = zoo_loto.score_task(model, runs)
        assert row["groups"] == 2
        # The oracle takes each group's best continuation (or keeps the default): no rule
        # can beat it, and it is the mean of the groups' best actual gains.
        best = []
        for base, _, switched in zoo_loto.switch_groups(runs):
            gains = np.array([r.metric[-1] for r in switched]) - base.metric[-1]
            best.append(max(0.0, gains.max()))
        assert row["oracle"] == pytest.approx(np.mean(best), abs=1e-12)
        assert row["realized"] <= row["oracle"] + 1e-12
        assert row["realized_rule"] <= row["oracle"] + 1e-12


def test_paired_rule_is_calibrated_on_the_other_tasks_only():
    runs = _task_runs()
    # The held-out task's outcomes differ from the others': its own groups must not reach
    # the calibration (its oracle is its own), nor its name the training tasks.
    held = [r for r in _task_runs()]
    for r in held:
        if r.meta.get("switch"):
            r.metric[-1] += 0.05
    zoo = {"a": held, "b": runs, "c": runs}
    model = random_controlled(0, members=3, window=4, horizon=20, features="relative")
    row = zoo_loto.score_paired(model, zoo, "a")
    assert row["groups"] == 2 and row["train_groups"] == {"b": 2, "c": 2}
    best = [max(0.0, (np.array([r.metric[-1] for r in s]) - b.metric[-1]).max())
            for b, _, s in zoo_loto.switch_groups(held)]  # fmt: skip
    assert row["realized"]["oracle"] == pytest.approx(100 * np.mean(best), abs=1e-9)
    other = [max(0.0, (np.array([r.metric[-1] for r in s]) - b.metric[-1]).max())
             for b, _, s in zoo_loto.switch_groups(runs)]  # fmt: skip
    assert row["realized_among_training_tasks"]["oracle"] == pytest.approx(100 * np.mean(other))
    assert row["realized"]["rule"] <= row["realized"]["oracle"] + 1e-9
    assert set(row["calibration"]) >= {"sd_scale", "kappa", "margin", "trusted"}
    # The groups start at LR 0.01, the held-out task's best grid config peaks at 0.01: none
    # is below half of it; with a best peak of 0.03 both are.
    assert row["below_best_peak"] == {"best_peak_lr": 0.01, "groups": 0}
    for r in held:
        if r.kind == "grid" and r.meta.get("schedule") == "cosine":
            r.meta["peak_lr"] = 0.03
    groups = zoo_loto.as_branch_groups(held, "a")
    low = zoo_loto.below_best_peak(model, held, groups, row["section"])["below_best_peak"]
    assert low["best_peak_lr"] == 0.03 and low["groups"] == 2
    # With one other task there is nothing to hold out while calibrating.
    assert "error" in zoo_loto.score_paired(model, {"a": runs, "b": runs}, "a")


def test_closed_loop_table_from_a_scenarios_file(tmp_path):
    import json

    finals = {"default:constant": 0.80, "default:plateau": 0.81, "default:cosine": 0.78,
              "default:lode": 0.82, "sweep_best": 0.84}  # fmt: skip
    results = [{"method": f"rescue/{m}", "seed": s, "test_at_end": v + 0.001 * s,
                "test_at_best_val": v, "lode": None}
               for m, v in finals.items() for s in range(4)]  # fmt: skip
    payload = {"results": results, "configs": {"family": "wsd", "peak_lr": 0.01},
               "backend": "jax"}  # fmt: skip
    path = tmp_path / "s.json"
    path.write_text(json.dumps(payload))
    out = zoo_loto.closed_loop([f"toy={path}"])
    (row,) = out["heldout"]
    assert row["task"] == "toy" and row["n"] == 4
    assert row["capture"] == pytest.approx(0.5)  # (0.82 - 0.80) / (0.84 - 0.80)
    assert row["vs_default"]["mean"] == pytest.approx(2.0)  # points
    assert row["vs_plateau"]["mean"] == pytest.approx(1.0)
    assert row["vs_cosine"]["mean"] == pytest.approx(4.0)
    assert out["average_vs_cosine"] == pytest.approx(4.0)
    # A minimized metric's row is in its own units and stays out of the points average.
    low = {m: 2.0 - v for m, v in finals.items()}  # bits/char: the LODE lowest but one
    results = [{"method": f"rescue/{m}", "seed": s, "test_at_end": v, "test_at_best_val": v,
                "lode": None} for m, v in low.items() for s in range(4)]  # fmt: skip
    path2 = tmp_path / "m.json"
    path2.write_text(json.dumps({**payload, "results": results, "mode": "min"}))
    both = zoo_loto.closed_loop([f"toy={path}", f"lm={path2}"])
    lm = both["heldout"][1]
    assert lm["units"].startswith("metric decrease") and lm["vs_default"]["mean"] == pytest.approx(
        0.02
    )
    assert lm["capture"] == pytest.approx(0.5)
    assert both["average_over"] == ["toy"] and both["average_vs_cosine"] == pytest.approx(4.0)
    with pytest.raises(SystemExit, match="TASK=FILE"):
        zoo_loto.closed_loop([str(path)])


def test_calibrate_writes_the_model_for_every_task(tmp_path):
    import json

    from keras_lode.model import load_model

    for task in ("a", "b", "c"):
        (tmp_path / "zoo" / task).mkdir(parents=True)
        for r in _task_runs():
            r.meta["task"] = task
            r.save(tmp_path / "zoo" / task / f"{r.run_id}.run.csv")
    model = random_controlled(0, members=3, window=4, horizon=20, features="relative")
    model.save(tmp_path / "zoo.npz")
    out, summary = tmp_path / "zoo_paired.npz", tmp_path / "zoo_model.json"
    zoo_loto.main(["--zoo", str(tmp_path / "zoo"), "--calibrate", str(tmp_path / "zoo.npz"),
                   str(out), "--out", str(summary)])  # fmt: skip
    result = json.loads(summary.read_text())
    assert result["tasks"] == {"a": 2, "b": 2, "c": 2}  # two switch groups per task
    assert [f["task"] for f in result["paired"]["folds"]] == ["a", "b", "c"]
    paired = load_model(out).planner_defaults["paired"]
    assert paired["by"] == "task" and paired["groups"] == 6
    assert paired["kappa"] == result["paired"]["rule"]["kappa"]
    # --starts / --no-trust: the library every written model file carries.
    wide = tmp_path / "zoo_wide.npz"
    zoo_loto.main(["--zoo", str(tmp_path / "zoo"), "--calibrate", str(tmp_path / "zoo.npz"),
                   str(wide), "--out", str(summary), "--starts", "0.5,1,2,4,8",
                   "--no-trust"])  # fmt: skip
    defaults = load_model(wide).planner_defaults
    assert defaults["starts"] == [0.5, 1.0, 2.0, 4.0, 8.0] and "trust" not in defaults
    assert "starts" not in load_model(out).planner_defaults
    with pytest.raises(SystemExit, match="--calibrate needs --zoo"):
        zoo_loto.main(["--synthetic", "--calibrate", "m.npz", "o.npz", "--out", "x.json"])


def test_a_written_ceiling_keeps_its_record_beside_it(tmp_path):
    # --ceiling-tolerance writes a held-out model's LR ceiling from the other tasks, and
    # where it came from into the training section (no stale record of training's own).
    import argparse

    from keras_lode.model.io import read_model_file
    from keras_lode.runs.run import Run

    def runs(task, optimizer, finals):
        out = []
        for peak, final in finals.items():
            for seed in (0, 1):
                t = np.arange(1, 11)
                meta = {"task": task, "optimizer": optimizer, "schedule": "cosine",
                        "peak_lr": peak, "seed": seed, "mode": "max"}  # fmt: skip
                metric = np.linspace(0.1, final, 10) + 1e-3 * seed
                out.append(Run(step=t, epoch=t / 5, lr=np.full(10, peak), loss=1 / t,
                               metric=metric, meta=meta))  # fmt: skip
        return out

    zoo = {"a": runs("a", "AdamW", {1e-3: 0.8, 3e-3: 0.9}), "b": runs("b", "SGD", {0.1: 0.9}),
           "held": runs("held", "AdamW", {1e-4: 0.9})}  # fmt: skip
    args = argparse.Namespace(starts="0.5,1,2", no_trust=True, ceiling_tolerance=0.0)
    library = zoo_loto.library_of(args, zoo, "held")
    assert library["lr_ceiling"] == {"adam": pytest.approx(3e-3), "sgd": pytest.approx(0.1)}
    path = tmp_path / "m.npz"
    random_controlled(0, members=2, window=3, horizon=12).save(path)
    zoo_loto.with_library(path, library)
    config, _ = read_model_file(path)
    assert config["planner"]["lr_ceiling"] == library["lr_ceiling"]
    assert config["planner"]["starts"] == [0.5, 1.0, 2.0] and "trust" not in config["planner"]
    record = config["training"]["lr_ceiling"]
    assert set(record["tasks"]) == {"a", "b"} and record["tolerance"] == 0.0
