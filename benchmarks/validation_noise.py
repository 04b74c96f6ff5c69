"""How much do the plans move if the validation subset is smaller?

The callback's cost is almost all the validation measurement, linear in
`validation_samples` (`benchmarks/validation_cost.py`). A smaller subset is cheaper and
noisier. This script asks what that noise does to the plans, on recorded runs:

For every run (measured on `--measured` validation samples, 1024 for `keras-lode sweep`)
and every replan point of the model (window W, replan every k), it plans from the recorded
window with `--seeds` planner seeds, then again from the same window with extra binomial
noise on the metric channel, sized so that the window looks as if it had been measured on
m samples instead (variance p(1-p)(1/m - 1/measured), per point, independent). It reports
the mean absolute difference in ln LR over the remaining points:

- `seed`: between two planner seeds on the same window (the planner's own randomness);
- `m=512`, `m=256`, ...: between the plan from the noisy window and the plan from the
  recorded one, with the same seed.

If a subset size moves the plans about as much as a change of seed, its noise is lost in
the planner's own; if it moves them far more, it matters. This asserts nothing.

    python benchmarks/validation_noise.py models/fmnist_cnn.npz RUNS_DIR --sizes 512,256
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "validation_noise.json"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model", help="LODE model file (.npz)")
    ap.add_argument("runs", help="run file or directory of runs recorded by RunRecorder")
    ap.add_argument("--sizes", default="512,256", help="subset sizes to simulate")
    ap.add_argument("--measured", type=int, default=1024, help="subset size the runs used")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--output", default=str(RESULTS))
    args = ap.parse_args(argv)

    from keras_lode import load_model, load_runs, plan

    model = load_model(args.model)
    runs = load_runs(args.runs, status="complete")
    if not runs:
        print(f"no complete runs in {args.runs}", file=sys.stderr)
        return 2
    defaults = model.planner_defaults
    window = int(defaults["window"])
    every = int(defaults.get("replan_every") or window)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    rng = np.random.default_rng(0)
    diffs: dict[str, list[float]] = {"seed": [], **{f"m={m}": [] for m in sizes}}
    calls = 0
    for run in runs:
        channels = run.channels()
        total = len(channels)
        for n in range(window - 1, total - 1, every):
            obs = channels[n - window + 1 : n + 1]
            if not np.all(np.isfinite(obs)):
                continue
            base = [
                plan(model, obs, position=n, total_points=total, seed=s).lr
                for s in range(args.seeds)
            ]
            for s in range(args.seeds):
                other = base[(s + 1) % args.seeds]
                diffs["seed"].append(float(np.mean(np.abs(np.log(base[s]) - np.log(other)))))
            p = np.clip(obs[:, 2], 0.0, 1.0)
            for m in sizes:
                sd = np.sqrt(p * (1 - p) * max(1.0 / m - 1.0 / args.measured, 0.0))
                for s in range(args.seeds):
                    noisy = obs.copy()
                    noisy[:, 2] = p + sd * rng.standard_normal(len(p))
                    lr = plan(model, noisy, position=n, total_points=total, seed=s).lr
                    diffs[f"m={m}"].append(float(np.mean(np.abs(np.log(lr) - np.log(base[s])))))
            calls += 1
    report = {
        "command": "python benchmarks/validation_noise.py " + " ".join(argv or sys.argv[1:]),
        "model": args.model,
        "runs": len(runs),
        "replan_points": calls,
        "seeds": args.seeds,
        "mean_abs_dln_lr": {k: statistics.fmean(v) for k, v in diffs.items() if v},
        "median_abs_dln_lr": {k: statistics.median(v) for k, v in diffs.items() if v},
    }
    print(f"{len(runs)} runs, {calls} replan points, {args.seeds} seeds each")
    print("mean |d ln LR| over the remaining points (ratio to the seed-to-seed change):")
    seed = report["mean_abs_dln_lr"]["seed"]
    for key, value in report["mean_abs_dln_lr"].items():
        print(f"  {key:>7}: {value:.3f}  ({value / seed:.2f}x)")
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
