"""benchmarks/scenarios.py: paired differences, capture and the headroom stage, by hand.

The payloads are hand-made results files whose figures are known, so the summaries the
README quotes are checked against arithmetic, not against themselves.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def scenarios():
    spec = importlib.util.spec_from_file_location("scenarios", ROOT / "benchmarks/scenarios.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CONFIGS = {"family": "wsd", "peak_lr": 0.008, "constant": 0.004}


def run(method, seed, test, history=None, switches=0):
    lode = None if history is None else {"history": history, "switches": switches}
    return {"method": method, "seed": seed, "test_at_end": test, "test_at_best_val": test,
            "lode": lode}  # fmt: skip


def test_rescue_pairs_and_capture(scenarios):
    results = []
    for i, seed in enumerate(range(100, 104)):
        base = 0.40 + 0.01 * i  # seed noise, shared by every method of the seed
        results += [
            run("rescue/default:constant", seed, base),
            run("rescue/default:lode", seed, base + 0.006, [[0, 0, 0]], switches=1),
            run("rescue/sweep_best", seed, base + 0.012),
            run("rescue/default:plateau", seed, base + 0.003),
        ]
    payload = {"results": results, "configs": CONFIGS, "backend": "jax"}
    s = scenarios.summarize(payload)
    rows = {(r["method"], r["reference"], r["key"]): r for r in s["scenarios"]}
    lode = rows[("default:lode", "default:constant", "test_at_end")]
    assert lode["mean"] == pytest.approx(0.6) and lode["n"] == 4  # points
    assert rows[("default:lode", "sweep_best", "test_at_end")]["mean"] == pytest.approx(-0.6)
    cap = [c for c in s["capture"] if c["start"] == "default" and c["key"] == "test_at_end"][0]
    assert cap["capture"] == pytest.approx(0.5) and cap["gap"] == pytest.approx(1.2)
    assert s["lode_switched_seeds"] == {"rescue/default:lode": 4}
    # TensorFlow leaves ScheduleFreeAdamW out and says why.
    assert "schedulefree" in scenarios.summarize({**payload, "backend": "tensorflow"})["excluded"]


def test_headroom_split_half_and_skill(scenarios):
    # 4 seeds, 3 candidates with actual gains +1.0, 0.0, -1.0 points on every seed (up to a
    # seed-specific wobble), and predictions that rank them right.
    K, n = 10, 2
    seeds = [100, 101, 102, 103]
    results, predicted = [], {}
    gains = {"a": 0.010, "b": 0.0, "c": -0.010}
    for j, seed in enumerate(seeds):
        base = 0.5 + 0.001 * j
        results.append(run("headroom-default/default", seed, base, np.zeros((K, 3)).tolist()))
        for c, g in gains.items():
            results.append(run(f"headroom-default/{c}", seed, base + g + 0.001 * (j % 2)))
        predicted[str(seed)] = {"a": 2.0, "b": 0.5, "c": -3.0}
        results += [run("rescue/default:lode", seed, base + 0.005),
                    run("rescue/default:constant", seed, base)]  # fmt: skip
    payload = {
        "results": results,
        "configs": CONFIGS,
        "backend": "jax",
        "headroom_setup": {"default": {"position": n, "total_points": K, "start": "constant@0.001",
                                       "candidates": ["a", "b", "c"], "model_top": ["a"],
                                       "predicted_gain": predicted}},
    }  # fmt: skip
    (h,) = scenarios.headroom_summary(payload)
    # Split half: 'a' is picked on either half and scores +1.0 plus the wobble's half mean.
    assert h["headroom"] == pytest.approx(1.05)
    assert h["best_in_hindsight"] == pytest.approx(1.05)
    assert h["realized"] == pytest.approx(0.5) and h["capture"] == pytest.approx(0.5 / 1.05)
    assert h["spearman"] == pytest.approx(1.0)
    # Ties in the predictions share their rank (a flat prediction has no correlation).
    assert np.isnan(scenarios._spearman([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))
    assert scenarios._spearman([1.0, 1.0, 2.0], [1.0, 2.0, 3.0]) == pytest.approx(0.8660254)


def test_a_minimized_metric_counts_a_decrease_as_the_gain(scenarios):
    # Bits/char: lower is better. The LODE ends 0.02 below its constant arm, the sweep best
    # 0.04 below: a gain of +0.02 in the metric's own units, half the gap.
    results = []
    for i, seed in enumerate(range(100, 104)):
        base = 2.10 + 0.01 * i
        results += [run("rescue/default:constant", seed, base),
                    run("rescue/default:lode", seed, base - 0.02, [[0, 0, 0]], switches=1),
                    run("rescue/sweep_best", seed, base - 0.04)]  # fmt: skip
    s = scenarios.summarize({"results": results, "configs": CONFIGS, "mode": "min"})
    rows = {(r["method"], r["reference"], r["key"]): r for r in s["scenarios"]}
    assert rows[("default:lode", "default:constant", "test_at_end")]["mean"] == pytest.approx(0.02)
    cap = [c for c in s["capture"] if c["start"] == "default" and c["key"] == "test_at_end"][0]
    assert cap["gap"] == pytest.approx(0.04) and cap["capture"] == pytest.approx(0.5)
    assert scenarios.gain_units({"mode": "min", "metric_name": "bits_per_char"}).startswith(
        "bits_per_char decrease"
    )


def test_resume_refuses_another_backends_file(scenarios, tmp_path):
    import json

    import keras

    other = "jax" if keras.backend.backend() != "jax" else "torch"
    out = tmp_path / "s.json"
    out.write_text(json.dumps({"results": [], "commands": [], "backend": other}))
    with pytest.raises(SystemExit, match="not matched"):
        scenarios.main(["--task", "text_gpt", "--scenario", "best", "--seeds", "1",
                        "--out", str(out)])  # fmt: skip
