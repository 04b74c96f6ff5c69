"""The closed loop in the synthetic world: sweep -> train -> follow the plan, vs the sweep's best.

The fast loop for choosing the control planner's defaults (seconds per evaluation seed;
real tasks decide, `benchmarks/quality.py`). Per *world* (an independent sweep and
training):

1. sweep: every family x peak LR x 4 seeds of `keras_lode.runs.synthetic`, plus switched
   runs (groups of 3 continuations of one base and cut, as `keras-lode sweep --switched`);
2. train the controlled ensemble (`fit_controlled`, the largest sweep seed held out for
   calibration) and the paper's generative LODE (base runs only: it has no use for
   switched runs) on the same runs;
3. choose every family's best peak LR on the sweep (mean final metric over sweep seeds),
   and the *best baseline*: the best of those;
4. on evaluation seeds the sweep never used, run every family at its best LR and the
   planners, each warm-started on the best baseline's schedule (also the control planner's
   default) and replanning at the callback's cadence (first at 20% of the run, then every
   10%): `control` (defaults), `control_kappa0` (no pessimism), `control_single` (member 0
   only) and `generative` (the paper's planner).

The simulator is causal and its noise depends only on the seed, so every method of a seed
sees the same "initialization" and noise: the comparisons are paired. Reported: per method
mean +/- sd of the final metric; per planner the paired difference vs the best baseline
with a 95% interval and the minimum detectable effect at 80% power.

    python benchmarks/closed_loop.py                                   # 2 worlds x 10 seeds
    python benchmarks/closed_loop.py --worlds 1 --eval-seeds 5 --steps 300   # a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import keras_lode  # noqa: E402
from keras_lode.constants import FAMILIES  # noqa: E402
from keras_lode.experiments.grid import make_switched_trials  # noqa: E402
from keras_lode.experiments.stats import paired_difference  # noqa: E402
from keras_lode.planning import plan  # noqa: E402
from keras_lode.planning.replans import resolve_cadence  # noqa: E402
from keras_lode.runs.synthetic import (  # noqa: E402
    DEFAULT_PEAK_LRS,
    schedule_lr,
    simulate,
    synthetic_run,
    synthetic_switched_runs,
)

PLANNERS = ("control", "control_kappa0", "control_single", "generative")


def sweep(world: int, points: int, switched: int):
    seeds = [world * 100 + s for s in range(4)]
    runs = [
        synthetic_run(f, lr, seed=s, points=points, points_per_epoch=10)
        for s in seeds
        for f in FAMILIES
        for lr in DEFAULT_PEAK_LRS
    ]
    trials = make_switched_trials(
        FAMILIES, DEFAULT_PEAK_LRS, seeds, runs=switched, points=points, seed=world
    )
    return runs + synthetic_switched_runs(trials, points=points, points_per_epoch=10)


def best_configs(runs):
    """Per family the best peak LR by mean final metric over the sweep seeds."""
    scores = {}
    for r in runs:
        if r.meta.get("switch") or r.meta["status"] != "complete":
            continue
        scores.setdefault((r.meta["schedule"], r.meta["peak_lr"]), []).append(float(r.metric[-1]))
    best = {}
    for (fam, lr), v in scores.items():
        if fam not in best or np.mean(v) > best[fam][1]:
            best[fam] = (lr, float(np.mean(v)))
    return best


def single_member(model):
    from keras_lode.model import ControlledODE

    cfg = model.config
    cfg["members"] = 1
    weights = {f"member0.{k}": v[0] for k, v in model.weights.items()}
    return ControlledODE(cfg, weights)


def follow(planner, warmup, seed, first, every):
    """Runs the simulator closed-loop: replan at the cadence, apply the plan from n + 1."""
    table = warmup.copy()
    K = table.size
    switches, names = 0, []
    for n in range(first, K - 1, every):
        loss, metric, _ = simulate(table, seed=seed)  # points <= n depend on table[: n + 1]
        window = np.stack([loss[: n + 1], np.log(table[: n + 1]), metric[: n + 1]], axis=1)
        if not np.all(np.isfinite(window)):
            break
        p = planner(window, n, table[n + 1 :])
        table[n + 1 :] = p.lr
        if getattr(p, "switched", False):
            switches += 1
            names.append(p.chosen_name)
    loss, metric, diverged = simulate(table, seed=seed)
    return float(metric[-1]), table, switches, names


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worlds", type=int, default=2, help="independent sweeps + trainings")
    ap.add_argument("--eval-seeds", type=int, default=10, help="paired seeds per world")
    ap.add_argument("--points", type=int, default=50, help="log points per run K")
    ap.add_argument("--switched", type=int, default=48, help="switched runs per sweep")
    ap.add_argument("--members", type=int, default=5)
    ap.add_argument("--steps", type=int, default=1500, help="Adam steps per member")
    ap.add_argument("--gen-steps", type=int, default=1500, help="steps of the generative LODE")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--work", default=str(ROOT / "bench_work/closed_loop"),
                    help="trained models are kept here and reused by a rerun")  # fmt: skip
    ap.add_argument("--kappas", type=lambda t: [float(v) for v in t.split(",")], default=[],
                    help="extra control variants: kappa values (with --margins)")  # fmt: skip
    ap.add_argument("--margins", type=lambda t: [float(v) for v in t.split(",")], default=[],
                    help="extra control variants: margin values (with --kappas)")  # fmt: skip
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/closed_loop_synthetic.json"))
    args = ap.parse_args(argv)

    from keras_lode.train import fit
    from keras_lode.train.trainer import export

    K = args.points
    worlds, results = [], []
    t_start = time.perf_counter()
    for w in range(args.worlds):
        runs = sweep(w, K, args.switched)
        base_runs = [r for r in runs if not r.meta.get("switch")]
        work = Path(args.work)
        work.mkdir(parents=True, exist_ok=True)
        ctrl_path = work / f"world{w}_controlled.npz"
        gen_path = work / f"world{w}_generative.npz"
        key = json.dumps([K, args.switched, args.members, args.steps, args.gen_steps])
        stamp = work / f"world{w}.settings"
        if not (stamp.exists() and stamp.read_text() == key):
            ctrl_path.unlink(missing_ok=True)
            gen_path.unlink(missing_ok=True)
        t_ctrl = t_gen = 0.0
        if not ctrl_path.exists():
            t0 = time.perf_counter()
            ens = fit(runs, kind="controlled", members=args.members, steps=args.steps,
                      seed=1000 * w, workers=args.workers, verbose=False)  # fmt: skip
            ens.export(ctrl_path, task="synthetic")
            t_ctrl = time.perf_counter() - t0
        if not gen_path.exists():
            t0 = time.perf_counter()
            gen_torch, report = fit(
                base_runs, window=10, max_steps=args.gen_steps, seed=w, progress=False
            )
            export(gen_torch, report, gen_path)
            t_gen = time.perf_counter() - t0
        stamp.write_text(key)
        model = keras_lode.load_model(ctrl_path)
        gen = keras_lode.load_model(gen_path)
        training = model.config["training"]
        single = single_member(model)
        best = best_configs(runs)
        best_family = max(best, key=lambda f: best[f][1])
        warm_lr = schedule_lr(best_family, best[best_family][0], K)
        first_c, every_c = resolve_cadence(K, model.window, 0.2, 0.1)
        first_g, every_g = resolve_cadence(K, 10, 0.2, 0.1)
        dec = training["decision"]
        worlds.append(
            {
                "world": w,
                "sweep_runs": len(base_runs),
                "switched_runs": len(runs) - len(base_runs),
                "train_seconds": {"controlled": round(t_ctrl, 1), "generative": round(t_gen, 1)},
                "best_by_family": {
                    f: {"peak_lr": v[0], "sweep_mean": v[1]} for f, v in best.items()
                },
                "best_baseline": best_family,
                "calibration": training["calibration"],
                "decision": {
                    "final_metric_error": dec["final_metric_error"],
                    "rank_spearman_mean": {k: v["mean"] for k, v in dec["rank_spearman"].items()},
                    "coverage_2sd": dec.get("coverage_2sd"),
                },
            }
        )
        print(f"world {w}: trained in {t_ctrl:.0f} s (controlled) + {t_gen:.0f} s (generative); "
              f"best baseline {best_family} at {best[best_family][0]:.3g}", flush=True)  # fmt: skip

        def control(m, **opts):
            return lambda win, n, cur: plan(m, win, position=n, total_points=K, current_plan=cur,
                                            **opts)  # fmt: skip

        planners = {
            "control": (control(model), first_c, every_c),
            "control_kappa0": (control(model, kappa=0.0), first_c, every_c),
            "control_single": (control(single), first_c, every_c),
            **{
                f"control_k{k:g}_m{m:g}": (control(model, kappa=k, margin=m), first_c, every_c)
                for k in args.kappas
                for m in args.margins
            },
            "generative": (
                lambda win, n, cur, gen=gen: plan(
                    gen, win[-10:], position=n, total_points=K, current_plan=cur, seed=n
                ),
                first_g,
                every_g,
            ),
        }
        for e in range(args.eval_seeds):
            seed = w * 100 + 50 + e
            for fam, (lr, _) in best.items():
                _, metric, _ = simulate(schedule_lr(fam, lr, K), seed=seed)
                results.append(
                    {
                        "world": w,
                        "seed": seed,
                        "method": f"{fam}@{lr:.3g}",
                        "final": float(metric[-1]),
                    }
                )
            for name, (fn, first, every) in planners.items():
                final, table, switches, names = follow(fn, warm_lr, seed, first, every)
                results.append(
                    {
                        "world": w,
                        "seed": seed,
                        "method": name,
                        "final": final,
                        "switches": switches,
                        "chosen": names,
                        "end_lr": float(table[-1]),
                    }
                )
        worlds[-1]["best_baseline_method"] = f"{best_family}@{best[best_family][0]:.3g}"

    # Summary: per method (baselines pooled by family), paired vs the best baseline.
    def method_key(r):
        return r["method"].split("@")[0] if "@" in r["method"] else r["method"]

    by = {}
    for r in results:
        by.setdefault(method_key(r), {})[(r["world"], r["seed"])] = r["final"]
    best_key = {w["world"]: w["best_baseline_method"] for w in worlds}
    ref = {
        (r["world"], r["seed"]): r["final"] for r in results if r["method"] == best_key[r["world"]]
    }
    rows = []
    for m, d in by.items():
        v = np.array(list(d.values()))
        rows.append({"method": m, "n": len(v), "mean": float(v.mean()), "sd": float(v.std(ddof=1))})
    rows.append(
        {
            "method": "best_baseline",
            "n": len(ref),
            "mean": float(np.mean(list(ref.values()))),
            "sd": float(np.std(list(ref.values()), ddof=1)),
        }
    )
    rows.sort(key=lambda r: -r["mean"])
    paired = []
    variants = [m for m in by if m.startswith("control_k")]
    for m in [*PLANNERS, *variants, *(f for f in FAMILIES if f in by)]:
        keys = sorted(set(by[m]) & set(ref))
        d = paired_difference([by[m][k] for k in keys], [ref[k] for k in keys])
        paired.append({"reference": m, "baseline": "best_baseline", "key": "final", **d})
    switch_rate = {
        m: float(np.mean([r["switches"] for r in results if r["method"] == m]))
        for m in [*PLANNERS, *variants]
    }
    out = {
        "benchmark": "closed_loop_synthetic",
        "command": "python benchmarks/closed_loop.py " + " ".join(argv or sys.argv[1:]),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
        },
        "settings": vars(args),
        "sweep_runs": worlds[0]["sweep_runs"] if worlds else 0,
        "families": list(FAMILIES),
        "eval_seeds": args.eval_seeds * args.worlds,
        "wall_seconds": round(time.perf_counter() - t_start, 1),
        "worlds": worlds,
        "summary": {"rows": rows, "paired": paired, "switches_per_run": switch_rate},
        "results": results,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1, allow_nan=False) + "\n")
    print(f"{'method':<16}{'n':>4}{'mean':>9}{'sd':>8}")
    for r in rows:
        print(f"{r['method']:<16}{r['n']:>4}{r['mean']:>9.4f}{r['sd']:>8.4f}")
    print("paired vs the best baseline (final metric, points = x100):")
    for p in paired:
        lo, hi = p["ci95"]
        print(f"  {p['reference']:<16}{100 * p['mean']:+7.2f}  95% [{100 * lo:+.2f}, "
              f"{100 * hi:+.2f}]  mde80 {100 * p['mde80']:.2f}  n={p['n']}")  # fmt: skip
    print("switches per run:", {k: round(v, 2) for k, v in switch_rate.items()})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
