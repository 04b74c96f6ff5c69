"""Q1 of docs/benchmarks.md: does the LODE schedule train better models than the sweep's best?

The protocol, per task:

1. **Sweep** (training data): families {cosine, onecycle, constant, step} x peak LRs x sweep
   seeds, every run recorded at P log points per epoch (`keras-lode sweep`).
2. **Train** the LODE on the sweep (`keras-lode train`), which reports reconstruction and
   extrapolation errors on held-out runs.
3. **Evaluate** on seeds the sweep never used: every family at its best peak LR (chosen on the
   sweep's validation metric: mean over sweep seeds of each run's best validation value), the
   LODE, *replay* (the LR curve of the single best sweep run) and *retrieval* (follow the LR
   curve of the sweep run whose recent window is nearest to the current one).
4. Report test accuracy at the epoch of best validation and at the end, mean +/- std, and the
   paired difference LODE - best baseline with a 95% interval.

Every stage writes to `--work` and is skipped when its output exists, so an interrupted run
resumes; evaluation results are saved after every run. Raw numbers go to
`benchmarks/results/quality_<task>_<scale>.json`.

    python benchmarks/quality.py --task fmnist_cnn --scale cpu          # < 1 h on 2 CPU cores
    python benchmarks/quality.py --task fmnist_cnn --scale full         # GPU
    python benchmarks/quality.py --task fmnist_cnn --scale cpu --stage evaluate --model M.npz
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from keras_lode.constants import PAPER_FAMILIES

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parent.parent

# Sweep grid per scale: peak LRs are log-spaced around each family's usual optimum.
GRIDS = {
    "cpu": {"lrs": (1e-3, 3e-3, 1e-2), "sweep_seeds": (0, 1), "eval_seeds": tuple(range(100, 105))},
    "full": {
        "lrs": (1e-4, 3e-4, 1e-3, 3e-3, 1e-2),
        "sweep_seeds": (0, 1, 2, 3, 4),
        "eval_seeds": tuple(range(100, 110)),
    },
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", default="fmnist_cnn")
    p.add_argument("--scale", choices=("cpu", "full"), default="cpu")
    p.add_argument(
        "--work",
        default=None,
        help="working directory for runs and models (default bench_work/<task>_<scale>)",
    )
    p.add_argument(
        "--stage",
        choices=("all", "sweep", "train", "evaluate", "report", "card"),
        default="all",
        help="report: only merge --merge files into --out and summarize; card: "
        "copy the model to models/<task>.npz and write its card models/<task>.md",
    )
    p.add_argument(
        "--card-note", default="", help="extra paragraph for the model card (card stage)"
    )
    p.add_argument(
        "--merge",
        nargs="*",
        default=(),
        help="result JSONs of other evaluation processes to merge into --out "
        "(e.g. methods evaluated in parallel with --methods and --out)",
    )
    p.add_argument("--model", default=None, help="use this LODE file instead of training one")
    p.add_argument("--lrs", default=None, help="override the sweep's peak LRs (comma-separated)")
    p.add_argument("--sweep-seeds", default=None, help="override the sweep seeds")
    p.add_argument("--eval-seeds", default=None, help="override the evaluation seeds")
    p.add_argument(
        "--methods",
        default=None,
        help="evaluate only these (labels: cosine, onecycle, constant, step, lode, "
        "replay, retrieval)",
    )
    p.add_argument(
        "--sweep-engine",
        choices=("builtin", "cli"),
        default="builtin",
        help="builtin: train the grid in this process; cli: `keras-lode sweep`",
    )
    p.add_argument("--train-args", default="", help="extra arguments for `keras-lode train`")
    p.add_argument(
        "--lode-validation-samples",
        type=int,
        default=None,
        help="the LODE callback's validation subset (default: the callback's, 1024)",
    )
    p.add_argument("--out", default=None, help="JSON output (default benchmarks/results/...)")
    return p.parse_args(argv)


def _floats(text, default):
    return tuple(float(x) for x in text.split(",")) if text else default


def _ints(text, default):
    return tuple(int(x) for x in text.split(",")) if text else default


def _cli(*args):
    cmd = [sys.executable, "-m", "keras_lode", *map(str, args)]
    print("$ keras-lode " + " ".join(map(str, args)), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)


def stage_sweep(spec, runs_dir, lrs, seeds, engine):
    """Runs (or resumes: finished runs are skipped) the sweep; returns the wall time.

    `engine="builtin"` trains each grid point here with `keras_lode.experiments.train_one`
    recording it with `keras_lode.RunRecorder`; `engine="cli"` calls `keras-lode sweep`.
    """
    t0 = time.perf_counter()
    if engine == "cli":
        _cli(
            "sweep",
            "--task",
            f"keras_lode.tasks:{spec.name}:{spec.scale}",
            "--out",
            runs_dir,
            "--schedules",
            ",".join(PAPER_FAMILIES),
            "--lrs",
            ",".join(map(str, lrs)),
            "--seeds",
            ",".join(map(str, seeds)),
        )
        return time.perf_counter() - t0
    from keras_lode.experiments import Method, train_one
    from keras_lode.runs import run_name

    runs_dir = Path(runs_dir)
    data = spec.load_data(seed=0)
    grid = [(f, lr, s) for s in seeds for f in PAPER_FAMILIES for lr in lrs]
    for i, (fam, lr, seed) in enumerate(grid, 1):
        if (runs_dir / f"{run_name(fam, lr, seed)}.run.csv").is_file():
            continue
        r = train_one(spec, Method(fam, peak_lr=lr), seed=seed, data=data, record_to=runs_dir)
        print(
            f"  sweep {i}/{len(grid)} {fam}@{lr:g} seed {seed}: best val "
            f"{100 * r['best_val']:.2f} ({r['wall_s']:.0f} s)",
            flush=True,
        )
    return time.perf_counter() - t0


def stage_train(task, runs_dir, model_path, extra):
    t0 = time.perf_counter()
    report = Path(model_path).with_suffix(".train.json")
    _cli(
        "train",
        runs_dir,
        "-o",
        model_path,
        "--task",
        task,
        "--report",
        report,
        "--no-progress",
        *extra.split(),
    )
    return time.perf_counter() - t0


def best_peak_lrs(runs):
    """Best peak LR per family by the mean (over seeds) of each run's best validation metric."""
    import numpy as np

    table = {}
    for r in runs:
        if r.status != "complete":
            continue
        m = np.asarray(r.metric, dtype=float)
        m = m[np.isfinite(m)]
        if not len(m):
            continue
        key = (r.meta["schedule"], float(r.meta["peak_lr"]))
        table.setdefault(key, []).append(float(m.max()))
    best = {}
    for (fam, lr), vals in table.items():
        score = float(np.mean(vals))
        if fam not in best or score > best[fam][1]:
            best[fam] = (lr, score, len(vals))
    return best, {f"{f}@{lr:g}": float(np.mean(v)) for (f, lr), v in sorted(table.items())}


def stage_evaluate(spec, runs, model_path, seeds, methods_filter, out_path, payload):
    from keras_lode.experiments import Method, best_first, train_one

    best, grid = best_peak_lrs(runs)
    payload["sweep_validation"] = grid
    payload["best_peak_lr"] = {
        f: {"peak_lr": v[0], "val": v[1], "n": v[2]} for f, v in best.items()
    }
    ordered = best_first(payload["runs_dir"])
    top = max(best, key=lambda f: best[f][1])
    payload["lode_warmup"] = f"{top}@{best[top][0]:g}"
    methods = [Method(f, peak_lr=best[f][0], label=f) for f in PAPER_FAMILIES if f in best]
    methods += [
        # Until its first plan (W log points) the LODE follows the best family at its best
        # peak LR, so its windows look like the sweep runs it learned from.
        Method(
            "lode",
            model=model_path,
            peak_lr=best[top][0],
            label="lode",
            options={"warmup_family": top}
            | (
                {"validation_samples": payload["lode_validation_samples"]}
                if payload.get("lode_validation_samples")
                else {}
            ),
        ),
        Method("replay", runs=ordered[:1], label="replay"),
        Method("retrieval", runs=ordered, label="retrieval"),
    ]
    if methods_filter:
        keep = set(methods_filter.split(","))
        methods = [m for m in methods if m.label in keep]
    payload["replay_run"] = ordered[0].run_id
    done = {(r["method"], r["seed"]) for r in payload["results"]}
    data = spec.load_data(seed=0)
    for seed in seeds:
        for m in methods:
            if (m.label, seed) in done:
                continue
            r = train_one(spec, m, seed=seed, data=data)
            r.pop("points", None) if m.kind in PAPER_FAMILIES and seed != seeds[0] else None
            payload["results"].append(r)
            print(
                f"  {m.label:<10} seed {seed}: test@best-val {100 * r['test_at_best_val']:.2f}"
                f"  test@end {100 * r['test_at_end']:.2f}  ({r['wall_s']:.0f} s)",
                flush=True,
            )
            _finish(payload, out_path)


def _finish(payload, out_path):
    from keras_lode.experiments import summarize, write_json

    res = payload["results"]
    if res:
        payload["summary"] = summarize(res, "lode", "test_at_best_val")
        payload["summary_end"] = summarize(res, "lode", "test_at_end")
        baselines = [r for r in res if r["kind"] in PAPER_FAMILIES or r["method"] == "lode"]
        payload["summary_vs_families"] = summarize(baselines, "lode")
    write_json(out_path, payload)


def _minutes(seconds):
    return f"{seconds / 60:.0f} min" if seconds else "(time not recorded)"


def _fmt_lr(x):
    return f"{x:g}"


def write_card(task, spec, payload, model_path, runs, note=""):
    """Copies the model into models/ and writes its card from the file and the results."""
    import shutil

    from keras_lode import load_model

    dest = ROOT / "models" / f"{task}.npz"
    if Path(model_path).resolve() != dest.resolve():
        shutil.copyfile(model_path, dest)
    m = load_model(dest)
    c = m.config
    tr = c["training"]
    hp = tr.get("hyperparameters", {})
    opt = spec.make_optimizer  # the example task's OptimizerFactory
    ex = tr.get("extrapolation") or {}
    lines = [
        f"# LODE model card: `{task}`",
        "",
        f"A latent-ODE learning-rate scheduler for the `{task}` example task "
        f"(`keras_lode.tasks.get_task({task!r}, scale={spec.scale!r})`), trained by this "
        "project's own sweep and trainer. File: "
        f"`models/{task}.npz` ({dest.stat().st_size // 1024} KB, pickle-free).",
        "",
    ]
    if note:
        lines += [note, ""]
    fams = sorted({r.meta["schedule"] for r in runs})
    lrs = sorted({float(r.meta["peak_lr"]) for r in runs})
    seeds = sorted({int(r.meta["seed"]) for r in runs})
    lines += [
        "## Sweep",
        "",
        f"- {tr['n_runs']} runs: families {', '.join(fams)} x peak LRs "
        f"{', '.join(_fmt_lr(x) for x in lrs)} x seeds {', '.join(map(str, seeds))}"
        f" ({sum(r.status == 'complete' for r in runs)} complete).",
        f"- Task at scale `{spec.scale}`: {spec.epochs} epochs, P = {spec.points_per_epoch} log "
        f"points per epoch (horizon K = {m.horizon}), batch {spec.batch_size}, optimizer "
        f"{opt.name} (weight decay {opt.weight_decay}), data {json.dumps(spec.data_args)}, "
        f"model {json.dumps(spec.model_args) if spec.model_args else 'defaults'}.",
        f"- Channels [loss, ln lr, {spec.metric_name}]; the validation metric was measured on a "
        f"fixed subset of {min(1024, spec.data_args.get('n_val') or 1024)} validation examples "
        "at every log point (`RunRecorder`).",
        f"- LR range of the training runs: {tr['lr_range'][0]:.3g} .. {tr['lr_range'][1]:.3g} "
        "(the planner's clip range).",
    ]
    if payload.get("sweep_validation"):
        lines += [
            "- Sweep validation (mean over seeds of each run's best validation "
            f"{spec.metric_name}): "
            + ", ".join(f"{k} {100 * v:.2f}%" for k, v in payload["sweep_validation"].items())
            + "."
        ]
    lines += [
        "",
        "## Hardware",
        "",
        f"- {payload.get('machine', '?')}; Keras backend {payload.get('backend', '?')} for the "
        "sweep, PyTorch (CPU) for the LODE.",
        "- The 2 CPU cores were shared with five other jobs (load average ~10), so wall times "
        "are long and noisy: sweep "
        f"{_minutes(payload.get('timing_s', {}).get('sweep'))}, LODE training "
        f"{tr.get('wall_time_s', float('nan')):.0f} s.",
        "",
        "## Errors",
        "",
        f"- Trained on {tr['n_train']} runs, validated on {tr['n_val']} held-out runs "
        f"({', '.join(tr.get('val_run_ids', []))}): {tr['steps']} steps (best {tr['best_step']}),"
        f" validation MSE {tr['val_mse']:.4f} (standardized channels).",
        f"- Architecture: hidden {c['architecture']['hidden']}, latent "
        f"{c['architecture']['latent']}, state {c['architecture']['state']}, width "
        f"{c['architecture']['width']}, depth {c['architecture']['depth']}; window W = "
        f"{c['planner']['window']}, replan every {c['planner']['replan_every']} points; "
        f"trainer settings {json.dumps(hp)}.",
    ]
    if ex:
        lines += [
            "",
            f"Extrapolation on the held-out runs (encode the first part with window "
            f"{ex.get('window')}, predict the rest; {ex.get('units')}):",
            "",
            "| cut | predictor | loss | ln lr | metric | mean |",
            "|---|---|---|---|---|---|",
        ]
        for cut, preds in ex.get("by_fraction", {}).items():
            for name, e in preds.items():
                lines.append(
                    f"| {cut} | {name} | {e['loss']:.3f} | {e['log_lr']:.3f} | "
                    f"{e['metric']:.3f} | {e['mean']:.3f} |"
                )
    lines += ["", "## Benchmark results", ""]
    summ = payload.get("summary")
    if summ and payload.get("results"):
        from keras_lode.experiments import format_table

        lines += [
            f"`benchmarks/quality.py` on seeds the sweep never used "
            f"({', '.join(map(str, sorted({r['seed'] for r in payload['results']})))}; `n` "
            f"per method in the table); test {spec.metric_name} in %:",
            "",
            "```",
            format_table(payload["results"], "lode"),
            "```",
            "",
            "Baselines at their best sweep peak LR (mean best validation over the sweep seeds): "
            + ", ".join(f"{f}@{v['peak_lr']:g}" for f, v in payload["best_peak_lr"].items())
            + f"; the LODE warms up on {payload.get('lode_warmup')} until its first plan; "
            f"replay follows the best sweep run ({payload.get('replay_run')}). The paired "
            "difference compares the LODE with the method of highest mean test accuracy "
            "(chosen on the test set itself, which favors the baseline), seed by seed.",
            "",
            f"Raw numbers: `benchmarks/results/quality_{task}_{spec.scale}.json`.",
        ]
    else:
        lines += [
            "Not benchmarked yet: only the sweep and the LODE training ran for this task "
            "(see the note above)."
        ]
    cmd = f"python benchmarks/quality.py --task {task} --scale {spec.scale}"
    extra = []
    if tuple(payload["lrs"]) != GRIDS[spec.scale]["lrs"]:
        extra.append("--lrs " + ",".join(_fmt_lr(x) for x in payload["lrs"]))
    if tuple(payload["sweep_seeds"]) != GRIDS[spec.scale]["sweep_seeds"]:
        extra.append("--sweep-seeds " + ",".join(map(str, payload["sweep_seeds"])))
    base = " ".join([cmd, *extra])
    targs = payload.get("train_args", "")
    train_cmd = f"{base} --stage train" + (f' --train-args "{targs}"' if targs else "")
    evals = [f"{base} --stage evaluate  # skip for a sweep-only model"]
    merged = payload.get("merged_commands") or {}
    if merged:
        own = [c for c in payload.get("history", []) if "--stage evaluate" in c]
        evals = (
            own
            + [c for c in merged.values()]
            + [f"{base} --stage report --merge " + " ".join(merged)]
        )
    lines += [
        "",
        "## Reproduce",
        "",
        "```bash",
        f"{base} --stage sweep     # runs -> bench_work/{task}_{spec.scale}/runs",
        train_cmd,
        *evals,
        f"{base} --stage card      # copies the model here and writes this card",
        "```",
        "",
        "The train stage runs `keras-lode train bench_work/"
        f"{task}_{spec.scale}/runs -o bench_work/{task}_{spec.scale}/{task}.npz --task {task} "
        f"{payload.get('train_args', '')}`.",
        "",
    ]
    (ROOT / "models" / f"{task}.md").write_text("\n".join(lines))
    print(f"wrote {dest} and models/{task}.md")


def main(argv=None) -> int:
    args = parse_args(argv)
    import keras

    from keras_lode import load_runs
    from keras_lode.tasks import get_task

    spec = get_task(args.task, scale=args.scale)
    grid = GRIDS[args.scale]
    lrs = _floats(args.lrs, grid["lrs"])
    sweep_seeds = _ints(args.sweep_seeds, grid["sweep_seeds"])
    eval_seeds = _ints(args.eval_seeds, grid["eval_seeds"])
    overlap = set(sweep_seeds) & set(eval_seeds)
    if overlap:
        raise ValueError(f"Evaluation seeds must not be sweep seeds; both have {sorted(overlap)}.")
    work = Path(args.work or ROOT / "bench_work" / f"{args.task}_{args.scale}")
    runs_dir = work / "runs"
    model_path = Path(args.model) if args.model else work / f"{args.task}.npz"
    out_path = Path(
        args.out or ROOT / "benchmarks" / "results" / f"quality_{args.task}_{args.scale}.json"
    )
    payload = {"results": []}
    if out_path.is_file():
        payload = json.loads(out_path.read_text())
    payload.update(
        {
            "benchmark": "quality (docs/benchmarks.md Q1)",
            "task": args.task,
            "scale": args.scale,
            "epochs": spec.epochs,
            "points_per_epoch": spec.points_per_epoch,
            "data": spec.data_args,
            "families": PAPER_FAMILIES,
            "lrs": lrs,
            "sweep_seeds": sweep_seeds,
            "eval_seeds": eval_seeds,
            "runs_dir": str(runs_dir),
            "model": str(model_path),
            "lode_validation_samples": args.lode_validation_samples,
            "backend": keras.backend.backend(),
            "machine": f"{platform.machine()} {os.cpu_count()} CPUs, {platform.platform()}",
            "command": "python benchmarks/quality.py " + " ".join(argv or sys.argv[1:]),
        }
    )
    payload.setdefault("timing_s", {})
    payload.setdefault("history", []).append(payload["command"])
    for extra in args.merge:
        other = json.loads(Path(extra).read_text())
        have = {(r["method"], r["seed"]) for r in payload["results"]}
        payload["results"] += [
            r for r in other.get("results", []) if (r["method"], r["seed"]) not in have
        ]
        for k in ("sweep_validation", "best_peak_lr", "replay_run", "model_training", "sweep_runs"):
            payload.setdefault(k, other.get(k))
        payload.setdefault("merged_timing_s", {})[extra] = other.get("timing_s")
        payload.setdefault("merged_commands", {})[extra] = other.get("command")
    if args.stage in ("all", "sweep"):
        payload["timing_s"]["sweep"] = stage_sweep(
            spec, runs_dir, lrs, sweep_seeds, args.sweep_engine
        )
    if args.stage in ("all", "train") and not args.model:
        payload["train_args"] = args.train_args
        payload["timing_s"]["train"] = stage_train(args.task, runs_dir, model_path, args.train_args)
    if args.stage in ("all", "evaluate"):
        runs = load_runs(runs_dir)
        payload["sweep_runs"] = len(runs)
        needs_model = not args.methods or "lode" in args.methods.split(",")
        if needs_model and not model_path.is_file():
            raise FileNotFoundError(f"LODE model {model_path} not found: run the train stage.")
        if model_path.is_file():
            from keras_lode import load_model

            payload["model_training"] = load_model(model_path).config.get("training", {})
        t0 = time.perf_counter()
        stage_evaluate(spec, runs, str(model_path), eval_seeds, args.methods, out_path, payload)
        payload["timing_s"]["evaluate"] = payload["timing_s"].get("evaluate", 0) + (
            time.perf_counter() - t0
        )
    _finish(payload, out_path)
    if args.stage == "card":
        if payload.get("sweep_validation") is None and runs_dir.is_dir():
            payload["sweep_validation"] = best_peak_lrs(load_runs(runs_dir))[1]
            _finish(payload, out_path)
        write_card(args.task, spec, payload, model_path, load_runs(runs_dir), args.card_note)
        return 0
    if payload.get("results"):
        from keras_lode.experiments import format_table

        print(format_table(payload["results"], "lode"))
    print(f"wrote {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
