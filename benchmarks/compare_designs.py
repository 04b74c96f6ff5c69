"""Two designs of the LODE on the same rescue seeds: the paired difference of their LODE arms.

Each file is a `scenarios.py --scenario rescue` results file of one task, one per design (a
model file variant), on the same seeds; the first also holds the `default:constant` and
`sweep_best` arms, whose gap each design's capture is a share of. Used to choose a design on
validation seeds before it meets the test seeds:

    python benchmarks/compare_designs.py A.json B.json --key best_val
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def compare(first: dict, second: dict, key: str) -> dict:
    """`{n, second_minus_first: {mean, ci95}, capture: [first, second], gap}` in points
    (a minimized metric: its decrease, in its own units; `scenarios.gain_scale`)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from scenarios import gain_scale

    from keras_lode.experiments import paired_difference

    def arm(payload, method):
        return {r["seed"]: r[key] for r in payload["results"] if r["method"] == method}

    a, b = arm(first, "rescue/default:lode"), arm(second, "rescue/default:lode")
    base, best = arm(first, "rescue/default:constant"), arm(first, "rescue/sweep_best")
    seeds = sorted(set(a) & set(b) & set(base) & set(best))
    if len(seeds) < 2:
        raise SystemExit(f"need >= 2 seeds with all four arms; found {seeds}")
    scale = gain_scale(first.get("mode"))
    d = paired_difference([scale * b[s] for s in seeds], [scale * a[s] for s in seeds])
    gap = scale * float(np.mean([best[s] - base[s] for s in seeds]))
    capture = [scale * float(np.mean([x[s] - base[s] for s in seeds])) / gap for x in (a, b)]
    return {"n": len(seeds), "second_minus_first": {"mean": d["mean"], "ci95": d["ci95"]},
            "capture": capture, "gap": gap, "key": key}  # fmt: skip


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("first", help="results file of the first design (with the peers' arms)")
    p.add_argument("second", help="results file of the second design")
    p.add_argument("--key", default="best_val", help="best_val (validation) or test_at_end")
    args = p.parse_args(argv)
    load = [json.loads(Path(f).read_text()) for f in (args.first, args.second)]
    print(json.dumps(compare(*load, args.key)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
