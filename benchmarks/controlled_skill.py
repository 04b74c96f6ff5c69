"""Offline decision skill of the controlled LODE on a recorded sweep, and its training time.

Trains the controlled ensemble on a directory of recorded runs (grid runs plus the switched
runs of `keras-lode sweep --switched N`), holding out the largest seed, and reports on the
held-out runs:

* the final-metric error from windows cut at 25/50/75% given each run's actual future LR
  path: the ensemble vs the family-mean, hold-last and per-config-mean predictors, with
  the rank correlation of predicted and actual finals (`training.decision` of the file);
* the coverage of mean +/- 2 sd before and after calibration (cross-fitted);
* on the switched held-out runs (true counterfactuals: one window, several continuations
  that really ran): the within-window Spearman of the ensemble vs the per-config means,
  and the regret of its pick (by mean, and by mean - 1 sd) against following the
  sweep-best config and a random pick;
* the wall time of training (members in parallel processes) and the machine's load.

    python benchmarks/controlled_skill.py --runs bench_work/fmnist_v2/runs \\
        --out benchmarks/results/controlled_skill_fmnist_cnn_cpu.json --model models/x.npz
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", required=True, help="directory of recorded runs")
    ap.add_argument("--members", type=int, default=5)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True, help="results JSON")
    ap.add_argument("--model", default=None, help="also write the trained ensemble here")
    args = ap.parse_args(argv)

    import keras_lode
    from keras_lode._json import dumps
    from keras_lode.train import fit
    from keras_lode.train.decision import counterfactual_skill
    from keras_lode.train.ensemble import split_by_seed

    runs = keras_lode.load_runs(args.runs)
    load_before = list(os.getloadavg())
    t0 = time.perf_counter()
    ens = fit(
        runs,
        kind="controlled",
        members=args.members,
        steps=args.steps,
        workers=args.workers,
        seed=args.seed,
        verbose=True,
    )
    wall = time.perf_counter() - t0
    load_after = list(os.getloadavg())
    usable = [r for r in runs if r.meta.get("status") == "complete"]
    train_idx, held_idx = split_by_seed(usable)
    held = [usable[i] for i in held_idx]
    train = [usable[i] for i in train_idx]
    cf = {k: counterfactual_skill(ens.model, held, train, kappa=k) for k in (1.0,)}[1.0]
    if args.model:
        ens.export(args.model, task=usable[0].meta.get("task"))
    t = ens.training
    out = {
        "benchmark": "controlled_skill",
        "command": "python benchmarks/controlled_skill.py " + " ".join(argv or sys.argv[1:]),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_before": load_before,
            "load_average_after": load_after,
        },
        "data": {
            "runs": len(runs),
            "switched_runs": t["switched_runs"],
            "n_train": t["n_train"],
            "n_heldout": t["n_heldout"],
            "heldout_seeds": t["heldout_seeds"],
            "horizon": t["horizon"],
            "families": t["families"],
            "tasks": t["tasks"],
        },
        "hyperparameters": t["hyperparameters"],
        "wall_time_s": round(wall, 1),
        "train_wall_time_s": t["wall_time_s"],
        "member_seconds": t["member_seconds"],
        "workers": t["workers"],
        "calibration": t["calibration"],
        "decision": t["decision"],
        "counterfactual": cf,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(dumps(out, indent=1) + "\n")
    print(
        f"Counterfactuals ({cf['groups']} held-out windows): Spearman lode "
        f"{cf['spearman_lode']:.2f} vs config-mean {cf['spearman_config_mean']:.2f}; regret "
        f"lode mean {cf['regret_lode_mean']:.4f}, lode mean-1sd {cf['regret_lode_lcb']:.4f}, "
        f"sweep-best {cf['regret_sweep_best']:.4f}, random {cf['regret_random']:.4f}"
    )
    print(f"trained in {t['wall_time_s']:.0f} s ({t['workers']} workers); wrote {args.out}")


if __name__ == "__main__":
    main()
