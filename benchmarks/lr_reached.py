"""How high the LODE arms of `scenarios.py` result files took the LR, and what followed.

For each file: per LODE arm, the LR it started from and the highest LR it reached over the
fit (from the callback's logged history), with the number of seeds that reached it; and,
after its first raise (a rise of ln LR by more than 0.1 from one log point to the next),
the training loss over the lowest of the three points up to the raise and the validation
metric's change from the best of them (signed so that positive is better), at each of the
next three points, over the seeds (min .. max). This tells whether a watch on the loss or
the metric after a raise could tell a raise that helps from one that diverges.

    python benchmarks/lr_reached.py benchmarks/results/zoo_loto_wide_*_cpu.json
"""

from __future__ import annotations

import argparse
import json
import math
from collections import Counter
from pathlib import Path

import numpy as np


def _after_raise(history, sign: float):
    """`(loss ratios, metric changes)` at the 3 points after the first raise, or None."""
    h = np.asarray(history, dtype=np.float64)
    rises = np.flatnonzero(np.diff(h[:, 1]) > 0.1)
    if rises.size == 0:
        return None
    j = int(rises[0])
    before = h[max(0, j - 2) : j + 1]
    after = h[j + 1 : j + 4]
    with np.errstate(invalid="ignore", over="ignore"):
        ratio = after[:, 0] / np.min(before[:, 0])
    change = sign * (after[:, 2] - sign * np.max(sign * before[:, 2]))
    return ratio, change


def reached(path) -> list[dict]:
    """Per LODE arm of the file: `{"method", "start", "highest": {lr: seeds}, "raises",
    "loss_ratio": [(min, max)] * 3, "metric_change": [(min, max)] * 3}`."""
    payload = json.loads(Path(path).read_text())
    sign = -1.0 if payload.get("mode") == "min" else 1.0
    arms: dict[str, dict] = {}
    for r in payload["results"]:
        history = (r.get("lode") or {}).get("history")
        if not history:
            continue
        arm = arms.setdefault(r["method"], {"method": r["method"], "start": set(),
                                            "highest": Counter(), "after": []})  # fmt: skip
        lrs = [math.exp(row[1]) for row in history]
        arm["start"].add(float(f"{lrs[0]:.3g}"))
        arm["highest"][float(f"{max(lrs):.3g}")] += 1
        after = _after_raise(history, sign)
        if after is not None:
            arm["after"].append(after)
    out = []
    for a in arms.values():
        row = {"method": a["method"], "start": sorted(a["start"]), "highest": dict(a["highest"]),
               "raises": len(a["after"])}  # fmt: skip
        if a["after"]:
            ratio = np.array([x[0] for x in a["after"] if len(x[0]) == 3])
            change = np.array([x[1] for x in a["after"] if len(x[1]) == 3])
            row["loss_ratio"] = [(float(np.nanmin(c)), float(np.nanmax(c))) for c in ratio.T]
            row["metric_change"] = [(float(np.nanmin(c)), float(np.nanmax(c))) for c in change.T]
        out.append(row)
    return out


def _span(pairs) -> str:
    return ", ".join(f"{lo:.3g}..{hi:.3g}" for lo, hi in pairs)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("files", nargs="+", help="scenarios.py results files")
    args = p.parse_args(argv)
    for f in args.files:
        task = json.loads(Path(f).read_text()).get("task")
        for arm in reached(f):
            line = (f"{Path(f).name} ({task}) {arm['method']}: from {arm['start']}, "
                    f"highest {arm['highest']} (LR: seeds)")  # fmt: skip
            if arm.get("loss_ratio"):
                line += (f"; after the raise, loss / before: {_span(arm['loss_ratio'])}; "
                         f"metric change: {_span(arm['metric_change'])}")  # fmt: skip
            print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
