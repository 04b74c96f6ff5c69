"""Offline decision skill on branch groups: paired gains, calibrated coverage, realized gain.

Reads the branch runs that `benchmarks/scenarios.py --scenario headroom` writes (runs of one
seed that share their prefix up to the planner's first replan and differ only in the LR
continuation: the default and library candidates), builds one `BranchGroup` per seed and
start, and measures, cross-fitted by seed (`keras_lode.train.counterfactual.fit_paired`):
rank correlation and RMSE of the ensemble's predicted paired gains against the actual ones,
the coverage of the paired interval (raw and calibrated), and the realized gain of the rule
against always-default and the oracle. The actual outcome of a run is its final validation
metric (the callback's fixed validation subset at the last log point), never test.

    python benchmarks/counterfactual.py --task text_gpt \
        --branches benchmarks/results/branches_text_gpt_cpu.json
    # also write the model with its paired calibration:
    python benchmarks/counterfactual.py --task text_gpt \
        --branches benchmarks/results/branches_text_gpt_cpu.json --write-model models/text_gpt.npz
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", required=True)
    p.add_argument("--scale", default="cpu")
    p.add_argument("--branches", nargs="+", required=True,
                   help="scenarios.py headroom result files holding branch runs")  # fmt: skip
    p.add_argument("--model", default=None, help="the task's LODE (default models/<task>.npz)")
    p.add_argument("--level", type=float, default=0.85, help="coverage target of +/- 2 sd")
    p.add_argument("--out", default=None,
                   help="default benchmarks/results/counterfactual_<task>.json")  # fmt: skip
    p.add_argument("--write-model", default=None,
                   help="write the model with planner.paired here")  # fmt: skip
    return p.parse_args(argv)


def payload_mode(payload: dict) -> str:
    """The metric direction of a scenarios.py file's task (`Task.mode`; files hold none)."""
    if payload.get("mode"):
        return payload["mode"]
    from keras_lode.tasks import get_task

    return get_task(payload["task"], scale=payload.get("scale", "cpu")).mode


def branch_groups(payload: dict, window: int) -> list:
    """One `BranchGroup` per (start, seed) of a scenarios.py headroom file."""
    from keras_lode.train.counterfactual import BranchGroup

    mode = payload_mode(payload)

    by = {(r["method"], r["seed"]): r for r in payload["results"]}
    groups = []
    for start, setup in sorted((payload.get("headroom_setup") or {}).items()):
        prefix, n, K = f"headroom-{start}", setup["position"], setup["total_points"]
        seeds = sorted(s for (m, s) in by if m == f"{prefix}/default")
        for seed in seeds:
            names = ["default"] + [c for c in setup["candidates"] if (f"{prefix}/{c}", seed) in by]
            runs = [by[(f"{prefix}/{c}", seed)] for c in names]
            hist = [np.asarray(r["lode"]["history"], dtype=np.float64) for r in runs]
            if len(names) < 2 or any(h.shape != (K, 3) for h in hist):
                continue
            # What ran: the LR each continuation's points recorded after the branch point.
            paths = np.stack([np.exp(h[n + 1 :, 1]) for h in hist])
            actual = np.array([h[-1, 2] for h in hist])
            groups.append(
                BranchGroup(
                    int(seed),
                    n,
                    K,
                    hist[0][n - window + 1 : n + 1],
                    names,
                    paths,
                    actual,
                    points_per_epoch=runs[0].get("points_per_epoch"),
                    history=hist[0][: n + 1],
                    task=payload.get("task"),
                    mode=mode,
                )  # fmt: skip
            )
    return groups


def main(argv=None) -> int:
    args = parse_args(argv)
    from keras_lode._json import write_json
    from keras_lode.model import load_model
    from keras_lode.train.counterfactual import (
        fit_paired,
        paired_section,
        with_paired_calibration,
    )

    model_path = Path(args.model or ROOT / "models" / f"{args.task}.npz")
    model = load_model(model_path)
    groups = []
    for path in args.branches:
        groups += branch_groups(json.loads(Path(path).read_text()), int(model.window))
    if not groups:
        raise SystemExit(f"no complete branch groups in {args.branches}")
    result = fit_paired(model, groups, level=args.level)
    out = Path(args.out or ROOT / f"benchmarks/results/counterfactual_{args.task}.json")
    payload = {
        "task": args.task,
        "scale": args.scale,
        "model": os.path.relpath(model_path.resolve(), ROOT),
        "branches": [os.path.relpath(Path(p).resolve(), ROOT) for p in args.branches],
        "command": "python benchmarks/counterfactual.py " + " ".join(sys.argv[1:]),
        **result,
    }
    write_json(out, payload)
    r, c = result["realized"], result["coverage"]
    rho = "n/a" if result["spearman"] is None else f"{result['spearman']:.2f}"
    print(f"{result['groups']} groups ({result['candidates']} continuations), seeds "
          f"{result['seeds']}: Spearman {rho}, RMSE {result['rmse']:.2f} points; coverage "
          f"of +/- 2 sd raw {c['raw']:.2f}, calibrated {c['calibrated']:.2f} (target "
          f"{c['level']:.2f}); realized gain (points, held out by seed): rule "
          f"{r['rule']:+.3f}, default {r['default']:+.3f}, oracle {r['oracle']:+.3f}; "
          f"rule kappa {result['rule']['kappa']}, margin {result['rule']['margin']}; "
          f"trusted {result['trusted']}. -> {out}")  # fmt: skip
    if args.write_model:
        with_paired_calibration(model_path, paired_section(result), args.write_model)
        print(f"wrote {args.write_model} with planner.paired")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
