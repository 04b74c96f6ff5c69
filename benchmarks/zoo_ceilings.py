"""The LR ceiling each held-out task of a zoo would meet, beside the LR its own sweep found best.

For every task directory of `ZOO_DIR`: its sweep-best config and peak LR, its optimizer kind
and Keras' default LR for it, and the ceiling a model trained on the *other* tasks carries
for that kind (`keras_lode.train.lr_ceiling.fit_lr_ceiling`): how far that model may raise a
run that starts at the default (ceiling / default) against how far the task's best lies
(best peak / default), and whether the ceiling lies below the task's best peak (a rescue
held short) or above it (a run at its best could still be raised past it).

    python benchmarks/zoo_ceilings.py ZOO_DIR --out benchmarks/results/zoo_ceilings.json
    python benchmarks/zoo_ceilings.py ZOO_DIR --tolerance 1 --out ...   # near-best peaks
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from scenarios import DEFAULT_LRS  # noqa: E402  (Keras' default LR per example optimizer)

#: The example optimizer whose Keras default LR stands for each optimizer kind.
KIND_OPTIMIZER = {"adam": "adamw", "sgd": "sgd"}


def ceilings(zoo: dict, tolerance: float = 0.0) -> list[dict]:
    """One row per task of `zoo` (task -> runs); `tolerance` as `fit_lr_ceiling`'s."""
    from keras_lode.train.lr_ceiling import fit_lr_ceiling

    own = fit_lr_ceiling([r for runs in zoo.values() for r in runs])[1]["tasks"]
    rows = []
    for task in sorted(zoo):
        mine = own.get(task)
        if mine is None:
            rows.append({"task": task, "left_out": "no known optimizer or no best config"})
            continue
        others = [r for t, runs in zoo.items() if t != task for r in runs]
        section = fit_lr_ceiling(others, tolerance=tolerance)[0]
        kind, best = mine["kind"], mine["peak_lr"]
        default = DEFAULT_LRS[KIND_OPTIMIZER[kind]]
        ceiling = section.get(kind)
        rows.append({
            "task": task, "optimizer": mine["optimizer"], "kind": kind, "best": mine["best"],
            "best_peak_lr": best, "default_lr": default, "ceiling": ceiling,
            "best_over_default": best / default,
            "ceiling_over_default": None if ceiling is None else ceiling / default,
            "ceiling_over_best": None if ceiling is None else ceiling / best,
        })  # fmt: skip
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("zoo", help="directory with one sub-directory of runs per task")
    p.add_argument("--out", default=None, help="results JSON")
    p.add_argument("--tolerance", type=float, default=0.0,
                   help="near-best peaks within this many seed sd of the best count")  # fmt: skip
    args = p.parse_args(argv)
    from keras_lode.runs import load_runs

    zoo = {d.name: load_runs(d) for d in sorted(Path(args.zoo).iterdir()) if d.is_dir()}
    rows = ceilings({t: r for t, r in zoo.items() if r}, args.tolerance)
    print(f"{'held-out task':<14} {'kind':<5} {'best':<16} {'best/default':>12} "
          f"{'ceiling':>9} {'ceiling/default':>15} {'ceiling/best':>12}")  # fmt: skip
    for r in rows:
        if "left_out" in r:
            print(f"{r['task']:<14} left out: {r['left_out']}")
            continue
        ceiling = "none" if r["ceiling"] is None else f"{r['ceiling']:.3g}"
        cd = "-" if r["ceiling"] is None else f"{r['ceiling_over_default']:.3g}x"
        cb = "-" if r["ceiling"] is None else f"{r['ceiling_over_best']:.3g}x"
        print(f"{r['task']:<14} {r['kind']:<5} {r['best']:<16} {r['best_over_default']:>11.3g}x "
              f"{ceiling:>9} {cd:>15} {cb:>12}")  # fmt: skip
    if args.out:
        command = "python benchmarks/zoo_ceilings.py " + " ".join(
            sys.argv[1:] if argv is None else argv
        )
        payload = {"benchmark": "zoo_ceilings", "command": command,
                   "tolerance": args.tolerance, "tasks": rows}  # fmt: skip
        Path(args.out).write_text(json.dumps(payload, indent=1) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
