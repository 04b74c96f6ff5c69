"""The design criterion of the leave-one-task-out check, applied to validation runs.

Each DESIGN is a `scripts/zoo_validate.sh` WORK_DIR (rescue_TASK.json and best_TASK.json per
held-out task, on the same seeds). A design passes when, on every task, its LODE is never
significantly worse than the constant default in `rescue` nor than the sweep's best schedule
in `best` (paired 95% intervals of `--key`, default the best validation metric); of the
designs that pass, the one with the highest mean rescue capture (LODE - default over
sweep best - default, averaged over tasks) is chosen. Gains in points for accuracy, in the
metric's own units (signed: positive is better) for a minimized one.

    python benchmarks/zoo_criterion.py benchmarks/results/zoo_val_gate0 \
        benchmarks/results/zoo_val_gate0_s4 --out benchmarks/results/zoo_criterion.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))


def _arm(payload: dict, method: str, key: str) -> dict:
    return {r["seed"]: r[key] for r in payload["results"] if r["method"] == method}


def _paired(payload: dict, a: str, b: str, key: str) -> dict | None:
    """`a - b` paired by seed, as a gain (None if fewer than 2 seeds hold both)."""
    from scenarios import gain_scale

    from keras_lode.experiments import paired_difference

    x, y = _arm(payload, a, key), _arm(payload, b, key)
    seeds = sorted(set(x) & set(y))
    if len(seeds) < 2:
        return None
    scale = gain_scale(payload.get("mode"))
    d = paired_difference([scale * x[s] for s in seeds], [scale * y[s] for s in seeds])
    return {"n": d["n"], "mean": d["mean"], "ci95": d["ci95"]}


def task_row(work: Path, task: str, key: str) -> dict:
    """One held-out task of a design: its rescue and best comparisons and capture."""
    row: dict = {"task": task}
    rescue, best = work / f"rescue_{task}.json", work / f"best_{task}.json"
    if rescue.exists():
        p = json.loads(rescue.read_text())
        row["vs_default"] = _paired(p, "rescue/default:lode", "rescue/default:constant", key)
        gap = _paired(p, "rescue/sweep_best", "rescue/default:constant", key)
        if row["vs_default"] and gap and gap["n"] == row["vs_default"]["n"] and gap["mean"]:
            row["gap"] = gap["mean"]
            row["capture"] = row["vs_default"]["mean"] / gap["mean"]
    if best.exists():
        p = json.loads(best.read_text())
        methods = sorted({r["method"] for r in p["results"]})
        lode = [m for m in methods if "lode" in m]
        other = [m for m in methods if "lode" not in m]
        if lode and other:
            row["best_vs_schedule"] = _paired(p, lode[0], other[0], key)
    return row


def _cell(row: dict, name: str) -> str:
    c = row.get(name)
    if c is None:
        return "-"
    return f"{c['mean']:+.3g} [{c['ci95'][0]:+.3g}, {c['ci95'][1]:+.3g}]"


def judge(rows: list[dict]) -> dict:
    """`{passes, complete, failures, mean_capture}` of one design's task rows (complete:
    every cell has as many seeds as the fullest one)."""
    cells = [(r["task"], name, r.get(name)) for r in rows
             for name in ("vs_default", "best_vs_schedule")]  # fmt: skip
    seeds = max((c["n"] for _, _, c in cells if c), default=0)
    # Complete: every cell has run, on as many seeds as the fullest (none still running).
    complete = all(c is not None and c["n"] >= seeds for _, _, c in cells)
    failures = [f"{task}: {name} {c['mean']:+.3g} {c['ci95']}"
                for task, name, c in cells if c is not None and c["ci95"][1] < 0]  # fmt: skip
    captures = [r["capture"] for r in rows if "capture" in r]
    return {
        "passes": complete and not failures,
        "complete": complete,
        "failures": failures,
        "mean_capture": float(np.mean(captures)) if captures else None,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("designs", nargs="+", help="zoo_validate.sh WORK_DIRs")
    p.add_argument("--tasks", default="digits_mlp,fmnist_mlp,fmnist_cnn,text_gpt,charlm")
    p.add_argument("--key", default="best_val", help="best_val (validation) or test_at_end")
    p.add_argument("--out", default=None, help="write the table as JSON")
    args = p.parse_args(argv)
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    out = {"benchmark": "zoo_criterion", "key": args.key, "designs": {},
           "command": "python benchmarks/zoo_criterion.py " + " ".join(sys.argv[1:])}  # fmt: skip
    for d in args.designs:
        rows = [task_row(Path(d), t, args.key) for t in tasks]
        verdict = judge(rows)
        out["designs"][d] = {"tasks": rows, **verdict}
        capture = verdict["mean_capture"]
        shown = "-" if capture is None else f"{100 * capture:.0f}%"
        state = ("PASSES" if verdict["passes"] else "fails") + (
            "" if verdict["complete"] else " (incomplete)"
        )
        print(f"{d}: {state}; mean rescue capture {shown}")
        for r in rows:
            cap = f"{100 * r['capture']:.0f}%" if "capture" in r else "-"
            print(f"  {r['task']:<11} rescue vs default {_cell(r, 'vs_default'):<28} "
                  f"capture {cap:>5}  best vs schedule {_cell(r, 'best_vs_schedule')}")  # fmt: skip
        for f in verdict["failures"]:
            print(f"  significantly worse: {f}")
    passing = {d: v for d, v in out["designs"].items() if v["passes"]}
    out["chosen"] = max(passing, key=lambda d: passing[d]["mean_capture"]) if passing else None
    print(f"chosen: {out['chosen']}")
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
