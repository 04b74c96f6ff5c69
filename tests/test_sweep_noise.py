"""benchmarks/sweep_noise.py: a sweep's seed noise and the spread between its families."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import sweep_noise  # noqa: E402

from keras_lode.runs.run import Run  # noqa: E402


def _run(family, lr, seed, final, mode="max", kind="grid"):
    K = 5
    metric = np.linspace(final / 2, final, K)
    meta = {"schedule": family, "peak_lr": lr, "seed": seed, "mode": mode, "kind": kind,
            "status": "complete", "run_id": f"{family}-{lr}-{seed}-{kind}"}  # fmt: skip
    return Run(np.arange(1, K + 1), np.arange(1, K + 1) / 5, np.full(K, lr), np.ones(K), metric,
               meta=meta)  # fmt: skip


def test_seed_sd_family_bests_and_spread_by_value():
    finals = {("cosine", 0.1): [0.80, 0.82], ("cosine", 0.01): [0.70, 0.72],
              ("constant", 0.1): [0.74, 0.78]}  # fmt: skip
    runs = [_run(f, lr, s, v) for (f, lr), vs in finals.items() for s, v in enumerate(vs)]
    runs.append(_run("cosine", 0.1, 0, 0.99, kind="switched"))  # not a grid run: left out
    row = sweep_noise.sweep_noise(runs)
    # Within-config variances 0.0002, 0.0002, 0.0008: pooled sd sqrt(0.0004) = 0.02.
    assert row["seed_sd"] == pytest.approx(0.02)
    assert row["seed_sd_median"] == pytest.approx(np.sqrt(0.0002))
    assert row["families"]["cosine"]["peak_lr"] == 0.1
    assert row["families"]["cosine"]["mean"] == pytest.approx(0.81)
    assert list(row["families"]) == ["cosine", "constant"]  # best first
    assert row["family_spread"] == pytest.approx(0.05)
    assert row["spread_in_seed_sd"] == pytest.approx(0.05 / (0.02 / np.sqrt(2)))


def test_a_minimized_metric_takes_the_lowest_as_best():
    finals = ((0.1, [2.0, 2.2]), (0.01, [1.5, 1.7]))
    runs = [_run("cosine", lr, s, v, mode="min") for lr, vs in finals for s, v in enumerate(vs)]
    row = sweep_noise.sweep_noise(runs)
    assert row["mode"] == "min" and row["families"]["cosine"]["peak_lr"] == 0.01
    with pytest.raises(ValueError, match="mix metric directions"):
        sweep_noise.sweep_noise(runs + [_run("wsd", 0.1, 0, 0.5)])
