"""Member diversity: do members that differ in more than a bootstrap decide better?

Trains the controlled ensemble on one sweep's runs several times, changing only how the
members' training runs differ (`ControlledFitConfig.resample`: a bootstrap resample each,
all runs with only the initialization differing, or all but one training seed each), and
measures each on the same held-out branch groups with `fit_paired` (cross-fitted by seed):
rank correlation and RMSE of predicted vs actual paired gains, raw and calibrated coverage,
and the realized gain of the calibrated rule, overall and per kind of start (the default
continuation constant or a decaying schedule): `realized.by_start` is the rule fitted on all
groups, `constant` / `schedule` a rule fitted on that kind's groups alone. The branch groups
are never training data.

    python benchmarks/member_diversity.py --runs ZOO/fmnist_cnn \
        --branches benchmarks/results/branches_fmnist_cnn_cpu.json \
        --out benchmarks/results/member_diversity_fmnist_cnn.json --save-dir bench_work/diversity
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", default=None, help="the sweep directory the ensembles train on")
    p.add_argument("--score", nargs="*", default=(), metavar="NAME=MODEL",
                   help="also score existing model files (e.g. a shipped one)")  # fmt: skip
    p.add_argument("--branches", nargs="+", required=True,
                   help="scenarios.py headroom files holding the branch groups")  # fmt: skip
    p.add_argument("--resamples", default="bootstrap,none,seeds")
    p.add_argument("--members", type=int, default=5)
    p.add_argument("--steps", type=int, default=800)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", required=True)
    p.add_argument("--save-dir", default=None,
                   help="also write each ensemble here as <resample>.npz (re-scoring)")  # fmt: skip
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from counterfactual import branch_groups

    import keras_lode
    from keras_lode._json import write_json
    from keras_lode.model import load_model
    from keras_lode.train import fit_controlled
    from keras_lode.train.counterfactual import fit_paired, start_kind

    out = Path(args.out)
    payload = json.loads(out.read_text()) if out.exists() else {"results": {}}
    payload["benchmark"] = "member_diversity"
    payload.setdefault("commands", [])
    command = "python benchmarks/member_diversity.py " + " ".join(sys.argv[1:])
    if command not in payload["commands"]:
        payload["commands"].append(command)
    payloads = [json.loads(Path(p).read_text()) for p in args.branches]
    for spec in args.score:
        name, _, path = spec.partition("=")
        model = load_model(path)
        groups = [g for p in payloads for g in branch_groups(p, int(model.window))]
        payload["results"][name] = {"model": path, **_rows(model, groups, fit_paired, start_kind)}
        write_json(out, payload)
        print(f"{name}: scored", flush=True)
    resamples = [r for r in args.resamples.split(",") if r]
    if resamples and not args.runs:
        raise SystemExit("--runs is needed to train the --resamples ensembles")
    runs = keras_lode.load_runs(args.runs) if resamples else []
    for resample in resamples:
        if resample in payload["results"]:
            print(f"{resample}: done, skipped")
            continue
        saved = Path(args.save_dir) / f"{resample}.npz" if args.save_dir else None
        t0 = time.perf_counter()
        if saved is not None and saved.exists():
            model, seconds = load_model(saved), None
        else:
            fit = fit_controlled(
                runs,
                members=args.members,
                steps=args.steps,
                window=10,
                workers=args.workers,
                resample=resample,
                verbose=False,
            )
            model, seconds = fit.model, round(time.perf_counter() - t0, 1)
            if saved is not None:
                saved.parent.mkdir(parents=True, exist_ok=True)
                fit.export(saved)
        groups = [g for p in payloads for g in branch_groups(p, int(model.window))]
        row = {"trained": {"runs": str(args.runs), "members": args.members, "steps": args.steps,
                           "fit_s": seconds},
               **_rows(model, groups, fit_paired, start_kind)}  # fmt: skip
        payload["results"][resample] = row
        write_json(out, payload)
        print(f"{resample}: " + json.dumps({k: v for k, v in row.items() if k not in
                                            ("constant", "schedule")}), flush=True)  # fmt: skip
    return 0


def _rows(model, groups, fit_paired, start_kind) -> dict:
    """All groups (one rule for every start), then each kind of start with its own rule."""
    row = _skill(model, groups, fit_paired)
    for kind in ("constant", "schedule"):
        sub = [g for g in groups if start_kind(g) == kind]
        if len({g.seed for g in sub}) >= 2:
            row[kind] = _skill(model, sub, fit_paired)
    return row


def _skill(model, groups, fit_paired) -> dict:
    r = fit_paired(model, groups)
    return {
        "groups": r["groups"],
        "spearman": r["spearman"],
        "rmse": r["rmse"],
        "coverage": {k: r["coverage"][k] for k in ("raw", "calibrated")},
        "realized": {k: r["realized"][k] for k in ("rule", "oracle", "by_start")},
        "members_sd": _members_sd(model, groups),
        "trusted": r["trusted"],
        "rule": r["rule"],
    }


def _members_sd(model, groups) -> float:
    """Mean spread (points) of the members' predicted paired gains: their diversity."""
    from keras_lode.train.counterfactual import member_gains

    return 100 * float(np.mean([member_gains(model, g)[:, 1:].std(axis=0, ddof=1).mean()
                                for g in groups]))  # fmt: skip


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    raise SystemExit(main())
