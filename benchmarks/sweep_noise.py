"""How much is there to win on a task, and how much is seed noise? A sweep's own numbers.

For each sweep directory (one task's `keras-lode sweep` runs), from the complete grid runs
(switched and branch runs are left out):

- `seed_sd`: the seed-to-seed sd of the final validation metric, pooled over the grid's
  configs (the root of the mean within-config variance; each config's runs differ only in
  the seed), and `seed_sd_median`, the median config's sd (one unstable config, e.g. a peak
  LR at the edge of divergence, inflates the pooled figure but not the median);
- per family, the best peak LR by the mean final metric over seeds, its mean and sd;
- `family_spread`: best minus worst of those family bests (in the metric's direction), the
  room a schedule family choice leaves at tuned LRs, and `spread_in_seed_sd` (spread / the
  sd of a seed-mean: how many noise units separate the families).

Metric units are the run's own (accuracy; bits per character or a loss for a minimized
metric, `meta["mode"] == "min"`).

    python benchmarks/sweep_noise.py ZOO/charlm ZOO/digits_mlp \
        --out benchmarks/results/sweep_noise_zoo.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("sweeps", nargs="+", help="sweep directories, one per task")
    p.add_argument("--out", default=None, help="results JSON")
    return p.parse_args(argv)


def sweep_noise(runs) -> dict:
    """The figures of the module docstring for one task's runs."""
    finals = defaultdict(list)
    modes = set()
    for r in runs:
        if r.kind != "grid" or r.status != "complete" or not np.isfinite(r.metric[-1]):
            continue
        finals[(r.meta.get("schedule"), float(r.meta.get("peak_lr")))].append(float(r.metric[-1]))
        modes.add(r.meta.get("mode") or "max")
    if len(modes) > 1:
        raise ValueError(f"runs mix metric directions {sorted(modes)}")
    if not finals:
        raise ValueError("no complete grid runs")
    mode = modes.pop()
    sign = 1.0 if mode == "max" else -1.0
    within = [np.var(v, ddof=1) for v in finals.values() if len(v) >= 2]
    seed_sd = float(np.sqrt(np.mean(within))) if within else None
    seed_sd_median = float(np.sqrt(np.median(within))) if within else None
    families = {}
    for (fam, lr), v in finals.items():
        m = float(np.mean(v))
        if fam not in families or sign * m > sign * families[fam]["mean"]:
            sd = float(np.std(v, ddof=1)) if len(v) >= 2 else None
            families[fam] = {"peak_lr": lr, "mean": m, "sd": sd, "seeds": len(v)}
    means = [f["mean"] for f in families.values()]
    spread = float(max(means) - min(means))
    n_seeds = int(np.median([len(v) for v in finals.values()]))
    return {
        "mode": mode,
        "grid_runs": int(sum(len(v) for v in finals.values())),
        "configs": len(finals),
        "seed_sd": seed_sd,
        "seed_sd_median": seed_sd_median,
        "families": dict(sorted(families.items(), key=lambda kv: -sign * kv[1]["mean"])),
        "family_spread": spread,
        "spread_in_seed_sd": (spread / (seed_sd / np.sqrt(n_seeds))) if seed_sd else None,
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    from keras_lode.runs import load_runs

    out = {"benchmark": "sweep_noise", "command": "python benchmarks/sweep_noise.py "
           + " ".join(sys.argv[1:] if argv is None else argv), "tasks": {}}  # fmt: skip
    for d in args.sweeps:
        name = Path(d).name
        try:
            row = sweep_noise(load_runs(d, on_error="warn"))
        except ValueError as e:
            print(f"{name}: {e}")
            continue
        out["tasks"][name] = row
        best = next(iter(row["families"].items()))
        sd = (
            "n/a"
            if row["seed_sd"] is None
            else (f"{row['seed_sd']:.4f} (median config {row['seed_sd_median']:.4f})")
        )
        print(f"{name} ({row['mode']}, {row['grid_runs']} grid runs, {row['configs']} configs): "
              f"seed sd {sd}; best {best[0]} @ {best[1]['peak_lr']:g} {best[1]['mean']:.4f}; "
              f"family spread {row['family_spread']:.4f}")  # fmt: skip
        for fam, f in row["families"].items():
            sd = "" if f["sd"] is None else f" +/- {f['sd']:.4f}"
            print(f"    {fam:<9} @ {f['peak_lr']:<7g} {f['mean']:.4f}{sd} ({f['seeds']} seeds)")
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
