"""Issue 16, item 3: `keras-lode demo --quick` replans (or says plainly that the LODE did not)
and claims no LODE - baseline difference; every JSON file the package writes is strict JSON
(no bare NaN / Infinity)."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "models" / "fmnist_cnn.npz"
FMNIST = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")


def strict_loads(text: str):
    def refuse(name):
        raise ValueError(f"not strict JSON: bare {name}")

    return json.loads(text, parse_constant=refuse)


def test_json_safe_writes_null_for_non_finite_values(tmp_path):
    from keras_lode._json import dumps, write_json
    from keras_lode.experiments import write_json as experiments_write_json

    payload = {
        "nan": float("nan"),
        "inf": [1.0, float("inf"), -float("inf")],
        "np": np.array([np.nan, 2.0], dtype=np.float32),
        "scalar": np.float64(np.nan),
        "int": np.int64(3),
        "nested": {"t": (float("nan"), "x")},
    }
    expected = {
        "nan": None,
        "inf": [1.0, None, None],
        "np": [None, 2.0],
        "scalar": None,
        "int": 3,
        "nested": {"t": [None, "x"]},
    }
    assert strict_loads(dumps(payload)) == expected
    for writer in (write_json, experiments_write_json):
        path = writer(tmp_path / f"{writer.__module__}.json", payload)
        assert strict_loads(path.read_text()) == expected


def test_trial_result_json_is_strict():
    from keras_lode._json import dumps
    from keras_lode.experiments import TrialResult

    result = TrialResult("r", "cosine", 1e-3, 0, "r.run.csv", "diverged", test_metric=math.nan)
    assert strict_loads(dumps(dataclasses.asdict(result)))["test_metric"] is None


def test_plan_json_is_strict(tmp_path, capsys):
    from keras_lode.cli import main
    from keras_lode.runs import write_run
    from keras_lode.runs.synthetic import synthetic_runs

    run = synthetic_runs(1, points=50, points_per_epoch=10, seed=0)[0]
    run.meta["epochs"] = 5
    path = write_run(run, tmp_path / "r.run.csv")
    out = tmp_path / "plan.json"
    assert main(["plan", str(MODEL), str(path), "--at", "20", "--json", str(out)]) == 0
    capsys.readouterr()
    payload = strict_loads(out.read_text())
    assert len(payload["lr"]) == 50 - 21


# Files owned by another line of work, whose JSON is not made strict here (issue 16 report):
# the run file's metadata line (NaN meta values written bare), TrainReport.to_json (no longer
# used by `keras-lode train --report`) and the callback's state file (its arrays are made
# finite first, but the dump does not enforce it).
# The run file's metadata line keeps NaN as NaN (bare, as Python's json reads it back), so a
# run's metadata round-trips exactly; it is a line of a CSV file, not a JSON document.
NOT_YET_STRICT = {"runs/run.py", "runs/run_file.py"}


def test_no_json_writer_in_the_package_allows_nan():
    """Every json.dump(s) in keras_lode writes strict JSON: through keras_lode._json, or
    with allow_nan=False."""
    offenders = []
    for path in sorted((ROOT / "keras_lode").rglob("*.py")):
        rel = path.relative_to(ROOT / "keras_lode").as_posix()
        if rel == "_json.py" or rel in NOT_YET_STRICT:
            continue
        text = path.read_text()
        for m in re.finditer(r"json\.dumps?\((?:[^()]|\([^()]*\))*\)", text):
            if "allow_nan=False" not in m.group(0):
                line = text[: m.start()].count("\n") + 1
                offenders.append(f"keras_lode/{rel}:{line}: {m.group(0)[:80]}")
    assert not offenders, "JSON written without allow_nan=False:\n" + "\n".join(offenders)


def test_demo_without_a_replan_reports_no_difference(tmp_path, monkeypatch, capsys):
    """A LODE that never planned followed the baseline's schedule: no difference claimed."""
    import keras_lode.experiments as experiments
    from keras_lode.cli import main

    def fake_comparison(task, methods, seeds, verbose=0):
        results = []
        for seed in seeds:
            for m, acc in zip(methods, (0.5742, 0.5195), strict=True):
                lode = m.kind == "lode"
                results.append(
                    {
                        "method": m.label,
                        "kind": m.kind,
                        "seed": seed,
                        "steps_per_epoch": 20,
                        "epochs": [{"epoch": 1, "val_metric": acc, "test_metric": acc}],
                        "points": {"step": [2, 4], "lr": [1e-2, 1e-2]},
                        "test_at_best_val": acc,
                        "test_at_end": acc,
                        "train_loss": math.nan,
                        "wall_s": 1.0,
                        "lode": (
                            {"plans": 0, "fallbacks": 0, "window": 10, "total_points": 10}
                            if lode
                            else None
                        ),
                    }
                )
        return results

    monkeypatch.setattr(experiments, "run_comparison", fake_comparison)
    rc = main(["demo", "--quick", "--epochs", "1", "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert rc == 0
    assert "points" not in out.split("method", 1)[1].replace("log points", ""), out
    assert "+5.47" not in out and "paired" not in out
    assert "No difference reported: the LODE did not replan" in out
    payload = strict_loads((tmp_path / "out" / "demo.json").read_text())
    assert payload["difference_reported"] is False
    assert payload["summary"]["paired"] is None
    assert payload["results"][0]["train_loss"] is None


@pytest.mark.skipif(not FMNIST.is_file(), reason="dataset-fashion-mnist not installed")
def test_demo_quick_replans_and_claims_no_difference(tmp_path, capsys):
    from keras_lode.cli import main

    rc = main(["demo", "--quick", "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert rc == 0
    assert "paired" not in out and " points, 95% CI" not in out, out
    assert "No difference reported: --quick checks the plumbing" in out
    payload = strict_loads((tmp_path / "out" / "demo.json").read_text())
    assert payload["quick"] is True and payload["difference_reported"] is False
    assert payload["lode_plans"][0] > 0
    lode, base = payload["results"]
    from keras_lode.commands.demo import BEST_BASELINE

    assert lode["kind"] == "lode" and base["kind"] == BEST_BASELINE.split("@")[0]
    # The control planner's plans reach the optimizer: its LR curve leaves the baseline's
    # where a plan switched, and is the baseline's own (to float32 rounding) until then.
    switches = lode["lode"]["switches"]
    lr, base_lr = np.asarray(lode["points"]["lr"]), np.asarray(base["points"]["lr"])
    first = min((int(n) for n in switches), default=len(lr) - 1)
    np.testing.assert_allclose(lr[: first + 1], base_lr[: first + 1], rtol=1e-6)
    if switches:
        assert not np.allclose(lr[first + 1 :], base_lr[first + 1 :], rtol=1e-3)
    assert (tmp_path / "out" / "demo.png").stat().st_size > 10_000  # the figure is written


@pytest.mark.skipif(not FMNIST.is_file(), reason="dataset-fashion-mnist not installed")
def test_demo_without_a_sweep_runs_the_zoo_model_against_the_default_and_plateau(tmp_path, capsys):
    # What a user without a sweep meets: AdamW's default LR held, the same with
    # ReduceLROnPlateau, the same with LODECallback() (no model file: the zoo model).
    from keras_lode.cli import main
    from keras_lode.pretrained import zoo_model_path

    rc = main(["demo", "--quick", "--no-sweep", "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert rc == 0, out
    payload = strict_loads((tmp_path / "out" / "demo.json").read_text())
    assert payload["no_sweep"] is True and payload["model"] == str(zoo_model_path())
    assert [r["method"] for r in payload["results"]] == ["lode", "constant@1e-03", "plateau@1e-03"]
    assert payload["lode_plans"][0] > 0 and len(payload["lode_plans"]) == 1
    lode, constant, _ = payload["results"]
    # Until its first switch the LODE follows the constant default, exactly (matched arms).
    switches = lode["lode"]["switches"]
    lr, held = np.asarray(lode["points"]["lr"]), np.asarray(constant["points"]["lr"])
    first = min((int(n) for n in switches), default=len(lr) - 1)
    np.testing.assert_allclose(lr[: first + 1], 1e-3, rtol=1e-6)
    np.testing.assert_allclose(held, 1e-3, rtol=1e-6)
    # What the LODE did names its runs only, not the matched constant arm.
    assert out.count("seed 100:") == 1 + 3  # the per-run progress lines and one LODE line
    assert main(["demo", "--no-sweep", "--baseline", "cosine@0.01", "--quick"]) == 2
