"""benchmarks/compare_designs.py: the paired difference of two designs' LODE arms, by hand."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _module():
    path = ROOT / "benchmarks" / "compare_designs.py"
    spec = importlib.util.spec_from_file_location("compare_designs", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _payload(lode, with_peers=True, mode=None):
    rows = []
    for s, v in enumerate(lode):
        rows.append({"method": "rescue/default:lode", "seed": s, "best_val": v})
        if with_peers:
            rows += [{"method": "rescue/default:constant", "seed": s, "best_val": 0.80},
                     {"method": "rescue/sweep_best", "seed": s, "best_val": 0.84}]  # fmt: skip
    return {"results": rows, **({"mode": mode} if mode else {})}


def test_paired_difference_and_capture():
    m = _module()
    out = m.compare(_payload([0.81, 0.81, 0.81]), _payload([0.83, 0.82, 0.84], False), "best_val")
    assert out["n"] == 3 and out["second_minus_first"]["mean"] == pytest.approx(2.0)
    assert out["gap"] == pytest.approx(4.0)
    assert out["capture"] == pytest.approx([0.25, 0.75])
    # A minimized metric: a decrease is the gain, in its own units.
    low = m.compare(_payload([0.79, 0.79], mode="min"), _payload([0.78, 0.78], False), "best_val")
    assert low["second_minus_first"]["mean"] == pytest.approx(0.01)
    with pytest.raises(SystemExit, match="need >= 2 seeds"):
        m.compare(_payload([0.81]), _payload([0.82], False), "best_val")
