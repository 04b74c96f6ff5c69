"""benchmarks/quality.py's bookkeeping: which model ships, reruns, merges, the README tables."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def quality():
    spec = importlib.util.spec_from_file_location("quality", ROOT / "benchmarks" / "quality.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _results(method, values, seeds=range(100, 104)):
    return [
        {"method": method, "seed": s, "test_at_best_val": v, "test_at_end": v, "wall_s": 10.0}
        for s, v in zip(seeds, values, strict=True)
    ]


def _payload(**results):
    res = [r for m, v in results.items() for r in _results(m, v)]
    return {
        "protocol": 2,
        "results": res,
        "best_baseline": "wsd",
        "lode_warmup": "wsd@0.006",
        "best_peak_lr": {"wsd": {"peak_lr": 0.006, "val": 0.9, "n": 4}},
    }


def _finish(quality, tmp_path, payload):
    quality._finish(payload, tmp_path / "r.json")
    return json.loads((tmp_path / "r.json").read_text())


def test_the_winner_is_the_planner_with_the_larger_paired_mean(quality, tmp_path):
    base = [0.880, 0.882, 0.879, 0.881]
    p = _finish(quality, tmp_path, _payload(
        wsd=base,
        lode_control=[b + 0.001 for b in base],
        lode_generative=[b - 0.004 for b in base],
    ))  # fmt: skip
    keys = {(d["reference"], d["baseline"], d["key"]) for d in p["summary"]["paired"]}
    assert ("lode_control", "lode_generative", "test_at_best_val") in keys  # planners paired
    assert quality.winner(p) == "lode_control"
    assert quality.shipped_kind(p) == "controlled"
    assert quality.shipped_kind(p, "generative") == "generative"
    assert quality.shipped_kind(p, "controlled") == "controlled"
    # The planner-vs-planner entry never decides (the generative planner "wins" it here).
    p2 = _finish(quality, tmp_path, _payload(
        wsd=base,
        lode_control=[b - 0.003 for b in base],
        lode_generative=[b - 0.001 for b in base],
    ))  # fmt: skip
    assert quality.shipped_kind(p2) == "generative"
    with pytest.raises(ValueError, match="--ship"):
        quality.shipped_kind(p2, "lode_control")


def test_a_summary_never_outlives_its_results(quality, tmp_path):
    p = _finish(quality, tmp_path, _payload(wsd=[0.9] * 4, lode_control=[0.91] * 4))
    assert p["summary"]["paired"]
    p["results"] = []
    assert "summary" not in _finish(quality, tmp_path, p)
    assert quality.shipped_kind(p) == "generative"  # no benchmark: nothing won


def test_rerun_moves_results_once_and_merge_refuses_another_baseline(quality, tmp_path):
    main = tmp_path / "main.json"
    main.write_text(json.dumps(_payload(wsd=[0.88] * 4, lode_control=[0.87] * 4)))
    fresh = tmp_path / "fresh.json"
    fresh.write_text(json.dumps(_payload(lode_control=[0.89] * 4)))
    argv = ["--task", "fmnist_cnn", "--stage", "report", "--out", str(main),
            "--work", str(tmp_path / "work")]  # fmt: skip
    rerun = ["--rerun", "lode_control", "--rerun-reason", "float LR"]
    assert quality.main(argv + rerun + ["--merge", str(fresh)]) == 0
    p = json.loads(main.read_text())
    assert [e["reason"] for e in p["superseded"]] == ["float LR"]
    assert {r["test_at_best_val"] for r in p["superseded"][0]["results"]} == {0.87}
    ctrl = [r for r in p["results"] if r["method"] == "lode_control"]
    assert {r["test_at_best_val"] for r in ctrl} == {0.89}  # the fresh results, merged
    [d] = [d for d in p["summary"]["paired"] if d["key"] == "test_at_best_val"]
    assert d["mean"] == pytest.approx(0.01)
    # The same command again (a resumed report) moves nothing more.
    assert quality.main(argv + rerun + ["--merge", str(fresh)]) == 0
    p = json.loads(main.read_text())
    assert len(p["superseded"]) == 1
    assert {r["test_at_best_val"] for r in p["results"] if r["method"] == "lode_control"} == {0.89}
    with pytest.raises(ValueError, match="no results of \\['typo'\\]"):
        quality.main(argv + ["--rerun", "typo", "--rerun-reason", "x"])
    with pytest.raises(ValueError, match="--rerun needs --rerun-reason"):
        quality.main(argv + ["--rerun", "wsd"])
    other = _payload(lode_generative=[0.8] * 4)
    other["best_baseline"] = "cosine"
    (tmp_path / "other.json").write_text(json.dumps(other))
    with pytest.raises(ValueError, match="best_baseline is 'cosine'"):
        quality.main(argv + ["--merge", str(tmp_path / "other.json")])


def test_markdown_tables_quote_the_results(quality, tmp_path):
    p = _finish(quality, tmp_path, _payload(
        wsd=[0.880, 0.882, 0.879, 0.881], lode_control=[0.881, 0.884, 0.880, 0.881],
    ))  # fmt: skip
    text = quality.markdown_tables(p)
    assert "| wsd @ 0.006 (best baseline) | 4 | 88.05 +/- 0.13 | 88.05 +/- 0.13 |" in text
    assert "| controlled LODE, control planner | 4 | 88.15 +/- 0.17 |" in text
    assert "| control planner - wsd @ 0.006 | test_at_best_val | +0.10 | [" in text


def test_best_baseline_by_sweep_validation_is_the_lode_s_matched_warmup_arm(quality):
    # cosine has the best sweep validation; WSD would win on anything else. The LODE warms
    # up on cosine and its baseline arm is cosine served through the LODE's mechanism.
    best = {"cosine": (3e-3, 0.91, 4), "wsd": (6e-3, 0.90, 4), "constant": (1e-3, 0.85, 4)}
    models = {"lode_control": "c.npz", "lode_generative": "g.npz"}
    full, few = quality.evaluation_methods(best, models, ordered=["r0", "r1"], extra={})
    arm, *lodes = full
    assert (arm.kind, arm.peak_lr, arm.label, arm.model) == ("cosine", 3e-3, "cosine", "c.npz")
    assert [m.options["warmup_family"] for m in lodes] == ["cosine", "cosine"]
    assert all(m.peak_lr == 3e-3 for m in lodes)
    assert {m.kind for m in few} == {"wsd", "constant", "replay", "retrieval"}
    assert [m.model for m in few if m.kind in ("wsd", "constant")] == ["c.npz", "c.npz"]
