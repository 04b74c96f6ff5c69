"""How high the LODE arms of `scenarios.py` result files took the LR.

For each file: the task, and per LODE arm the LR it started from and the highest LR it
reached over the fit (from the callback's logged history), with the seeds that reached it.

    python benchmarks/lr_reached.py benchmarks/results/zoo_loto_wide_*_cpu.json
"""

from __future__ import annotations

import argparse
import json
import math
from collections import Counter
from pathlib import Path


def reached(path) -> list[dict]:
    """Per LODE arm of the file: `{"method", "start", "highest": {lr: seeds}}`."""
    payload = json.loads(Path(path).read_text())
    arms: dict[str, dict] = {}
    for r in payload["results"]:
        history = (r.get("lode") or {}).get("history")
        if not history:
            continue
        arm = arms.setdefault(
            r["method"], {"method": r["method"], "start": set(), "highest": Counter()}
        )
        lrs = [math.exp(row[1]) for row in history]
        arm["start"].add(float(f"{lrs[0]:.3g}"))
        arm["highest"][float(f"{max(lrs):.3g}")] += 1
    return [
        {**a, "start": sorted(a["start"]), "highest": dict(a["highest"])} for a in arms.values()
    ]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("files", nargs="+", help="scenarios.py results files")
    args = p.parse_args(argv)
    for f in args.files:
        task = json.loads(Path(f).read_text()).get("task")
        for arm in reached(f):
            print(f"{Path(f).name} ({task}) {arm['method']}: from {arm['start']}, "
                  f"highest {arm['highest']} (LR: seeds)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
