"""benchmarks/zoo_criterion.py: the design criterion, on hand-made validation files."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import zoo_criterion  # noqa: E402


def _write(path: Path, arms: dict, mode: str = "max") -> None:
    rows = [{"method": m, "seed": s, "best_val": v, "test_at_end": v}
            for m, values in arms.items() for s, v in enumerate(values)]  # fmt: skip
    path.write_text(json.dumps({"results": rows, "mode": mode}))


def _design(tmp_path: Path, name: str, lode_rescue, lode_best) -> Path:
    d = tmp_path / name
    d.mkdir()
    _write(d / "rescue_t.json", {
        "rescue/default:constant": [0.80, 0.81, 0.79, 0.80],
        "rescue/sweep_best": [0.84, 0.85, 0.83, 0.84],
        "rescue/default:lode": lode_rescue,
    })  # fmt: skip
    _write(d / "best_t.json", {"best/wsd@0.05": [0.84, 0.85, 0.83, 0.84],
                               "best/lode@wsd": lode_best})  # fmt: skip
    return d


def test_a_design_significantly_worse_anywhere_fails_and_the_best_passing_one_is_chosen(
    tmp_path,
):
    bold = _design(tmp_path, "bold", [0.84, 0.85, 0.83, 0.84], [0.80, 0.80, 0.79, 0.80])
    half = _design(tmp_path, "half", [0.82, 0.83, 0.81, 0.82], [0.84, 0.85, 0.83, 0.84])
    out = tmp_path / "c.json"
    zoo_criterion.main([str(bold), str(half), "--tasks", "t", "--out", str(out)])
    result = json.loads(out.read_text())
    b, h = result["designs"][str(bold)], result["designs"][str(half)]
    # The bold design captures the whole gap but loses 4.25 points from the best schedule.
    assert b["tasks"][0]["capture"] == pytest.approx(1.0)
    assert not b["passes"] and "best_vs_schedule" in b["failures"][0]
    assert h["passes"] and h["mean_capture"] == pytest.approx(0.5)
    assert h["tasks"][0]["vs_default"]["mean"] == pytest.approx(2.0)  # points
    assert result["chosen"] == str(half)


def test_a_design_missing_a_scenario_is_incomplete_not_passed(tmp_path):
    d = _design(tmp_path, "d", [0.82, 0.83, 0.81, 0.82], [0.84, 0.85, 0.83, 0.84])
    (d / "best_t.json").unlink()
    rows = [zoo_criterion.task_row(d, "t", "best_val")]
    verdict = zoo_criterion.judge(rows)
    assert verdict["complete"] is False and verdict["passes"] is False
    # A scenario with fewer seeds than the others (still running) is incomplete too.
    _write(d / "best_t.json", {"best/wsd@0.05": [0.84, 0.85], "best/lode@wsd": [0.84, 0.85]})
    verdict = zoo_criterion.judge([zoo_criterion.task_row(d, "t", "best_val")])
    assert verdict["complete"] is False and verdict["passes"] is False
