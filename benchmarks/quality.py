"""Q1 of docs/benchmarks.md: does the LODE schedule train better models than the sweep's best?

Protocol v2, per task:

1. **Sweep** (training data, `keras-lode sweep`): six families (cosine, one-cycle, constant,
   step, linear decay, WSD) x five log-spaced peak LRs x four seeds, recorded at P log points
   per epoch, plus switched runs (a grid point re-run from its seed that switches to another
   config mid-run; counted separately) that teach the controlled LODE what an LR change does.
2. **Train** both LODEs on the same runs: the paper's generative model (`keras-lode train`)
   and the controlled ensemble (`keras-lode train --kind controlled`).
3. **Evaluate** on seeds the sweep never used. The *best baseline* is the family and peak LR
   with the best sweep validation metric (mean over sweep seeds of each run's best validation
   value; never the test metric). It and both LODE planners run on every evaluation seed
   (>= 20; 12 for the byte GPT at CPU scale); every other family at its best peak LR,
   *replay* (the LR curve of the best sweep run) and *retrieval* (follow the sweep run whose
   recent window is nearest) on the first 5.
   Both planners warm up on the best baseline's schedule, which the control planner also
   keeps as its default. Every method of a seed gets the same initial weights and data order:
   `keras.utils.set_random_seed(seed)` before the model is built, the same data split, and no
   method draws from the global random streams (the planners use their own generators).
4. Report test accuracy at the epoch of best validation and at the end, mean +/- sd, and per
   LODE planner the paired difference vs the best baseline with a 95% interval and the
   minimum detectable effect at 80% power (`summary.paired`).

Every stage writes to `--work` and is skipped when its output exists, so an interrupted run
resumes; evaluation results are saved after every run. Raw numbers go to
`benchmarks/results/quality_<task>_<scale>.json`.

    python benchmarks/quality.py --task fmnist_cnn --scale cpu          # ~2.5 h on 2 CPU cores
    python benchmarks/quality.py --task fmnist_cnn --scale cpu --stage evaluate \
        --model M.npz --controlled-model C.npz
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

from keras_lode.constants import FAMILIES

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parent.parent

# Sweep grid per scale: peak LRs are log-spaced around each family's usual optimum.
GRIDS = {
    "cpu": {
        "lrs": (0.0015, 0.003, 0.006, 0.012, 0.024),
        "sweep_seeds": (0, 1, 2, 3),
        "eval_seeds": tuple(range(100, 120)),
        "switched": 36,
    },
    "full": {
        "lrs": (1e-4, 3e-4, 1e-3, 3e-3, 1e-2),
        "sweep_seeds": (0, 1, 2, 3),
        "eval_seeds": tuple(range(100, 120)),
        "switched": 48,
    },
}
# Per-task departures from the scale's grid. The byte GPT at CPU scale diverges at a peak LR of
# 0.016 (it stays at the unigram accuracy) and is best near 0.004, so its grid is centred there.
TASK_GRIDS = {
    ("text_gpt", "cpu"): {
        "lrs": (0.001, 0.002, 0.004, 0.008, 0.016),
        "eval_seeds": tuple(range(100, 112)),
        "switched": 24,
    },
}


def grid_for(task, scale):
    """The sweep grid and evaluation seeds of `task` at `scale`."""
    return GRIDS[scale] | TASK_GRIDS.get((task, scale), {})


# Methods beyond the best baseline and the two planners run on this many evaluation seeds.
FEW_SEEDS = 5
PLANNERS = ("lode_control", "lode_generative")


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
    p.add_argument(
        "--ship",
        choices=("winner", "generative", "controlled"),
        default="winner",
        help="card stage: the model to ship; winner: the planner with the larger paired mean "
        "vs the best baseline (default)",
    )
    p.add_argument("--model", default=None, help="use this generative LODE file")
    p.add_argument("--controlled-model", default=None, help="use this controlled LODE file")
    p.add_argument("--lrs", default=None, help="override the sweep's peak LRs (comma-separated)")
    p.add_argument("--sweep-seeds", default=None, help="override the sweep seeds")
    p.add_argument("--eval-seeds", default=None, help="override the evaluation seeds")
    p.add_argument("--switched", type=int, default=None, help="switched runs of the sweep")
    p.add_argument("--workers", type=int, default=2, help="parallel sweep trials / members")
    p.add_argument(
        "--methods",
        default=None,
        help="evaluate only these labels (families, lode_control, lode_generative, replay, "
        "retrieval)",
    )
    p.add_argument(
        "--train-args", default="", help="extra arguments for `keras-lode train` (generative)"
    )
    p.add_argument(
        "--controlled-train-args",
        default="",
        help="extra arguments for `keras-lode train --kind controlled`",
    )
    p.add_argument(
        "--lode-validation-samples",
        type=int,
        default=None,
        help="the LODE callback's validation subset (default: the callback's, 1024)",
    )
    p.add_argument(
        "--rerun",
        default=None,
        help="comma-separated method labels whose results are moved to `superseded` (with "
        "--rerun-reason) before evaluating or merging, so that they are measured afresh",
    )
    p.add_argument("--rerun-reason", default="", help="why --rerun's results are superseded")
    p.add_argument(
        "--markdown", action="store_true", help="also print the README's tables (Markdown)"
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


def stage_sweep(spec, runs_dir, lrs, seeds, switched, workers):
    """Runs (or resumes: finished runs are skipped) the sweep; returns the wall time."""
    t0 = time.perf_counter()
    _cli(
        "sweep",
        "--task",
        f"keras_lode.tasks:{spec.name}:{spec.scale}",
        "--out",
        runs_dir,
        "--families",
        ",".join(FAMILIES),
        "--lrs",
        ",".join(map(str, lrs)),
        "--seeds",
        ",".join(map(str, seeds)),
        "--switched",
        switched,
        "--workers",
        workers,
        "-q",
    )
    return time.perf_counter() - t0


def stage_train(task, runs_dir, model_path, extra, kind="generative", workers=2):
    t0 = time.perf_counter()
    report = Path(model_path).with_suffix(".train.json")
    args = ["train", runs_dir, "-o", model_path, "--task", task, "--no-progress"]
    if kind == "controlled":
        args += ["--kind", "controlled", "--workers", workers, *extra.split()]
    else:
        args += ["--report", report, *extra.split()]
    _cli(*args)
    return time.perf_counter() - t0


def best_peak_lrs(runs):
    """Best peak LR per family by the mean (over seeds) of each run's best validation metric."""
    import numpy as np

    table = {}
    for r in runs:
        if r.status != "complete" or r.meta.get("switch"):
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


def evaluation_methods(best, models, ordered, extra):
    """`(full, few)`: the methods run on every evaluation seed, and on the first few.

    Until its first plan each LODE follows the best baseline's schedule (the control planner
    also keeps it as its default), so its windows look like the sweep's runs. The best
    baseline is its *matched arm*: served through the LODE's own LR mechanism with planning
    off, so a LODE that keeps it is bit-identical to it and the paired difference measures
    only what the planner changed.
    """
    from keras_lode.experiments import Method

    top = max(best, key=lambda f: best[f][1])
    peak = best[top][0]
    matched = models.get("lode_control") or models.get("lode_generative")
    full = [Method(top, peak_lr=peak, label=top, model=matched)] + [
        Method(
            "lode",
            model=models[label],
            peak_lr=peak,
            label=label,
            options={"warmup_family": top} | extra,
        )  # fmt: skip
        for label in PLANNERS
        if models.get(label)
    ]
    few = [
        Method(f, peak_lr=best[f][0], label=f, model=matched)
        for f in FAMILIES
        if f in best and f != top
    ]
    few += [
        Method("replay", runs=ordered[:1], label="replay"),
        Method("retrieval", runs=ordered, label="retrieval"),
    ]
    return full, few


def stage_evaluate(spec, runs, models, seeds, methods_filter, out_path, payload):
    from keras_lode.experiments import best_first, train_one

    best, grid = best_peak_lrs(runs)
    payload["sweep_validation"] = grid
    payload["best_peak_lr"] = {
        f: {"peak_lr": v[0], "val": v[1], "n": v[2]} for f, v in best.items()
    }
    grid_dir = payload["runs_dir"]
    ordered = [r for r in best_first(grid_dir) if not r.meta.get("switch")]
    top = max(best, key=lambda f: best[f][1])
    payload["best_baseline"] = top
    payload["lode_warmup"] = f"{top}@{best[top][0]:g}"
    extra = (
        {"validation_samples": payload["lode_validation_samples"]}
        if payload.get("lode_validation_samples")
        else {}
    )
    full, few = evaluation_methods(best, models, ordered, extra)
    if methods_filter:
        keep = set(methods_filter.split(","))
        full = [m for m in full if m.label in keep]
        few = [m for m in few if m.label in keep]
    payload["replay_run"] = ordered[0].run_id
    done = {(r["method"], r["seed"]) for r in payload["results"]}
    data = spec.load_data(seed=0)
    for i, seed in enumerate(seeds):
        for m in full + (few if i < FEW_SEEDS else []):
            if (m.label, seed) in done:
                continue
            r = train_one(spec, m, seed=seed, data=data)
            if m.kind in FAMILIES and i > 0:
                r.pop("points", None)
            payload["results"].append(r)
            print(
                f"  {m.label:<16} seed {seed}: test@best-val {100 * r['test_at_best_val']:.2f}"
                f"  test@end {100 * r['test_at_end']:.2f}  ({r['wall_s']:.0f} s)",
                flush=True,
            )
            _finish(payload, out_path)


def _finish(payload, out_path):
    from keras_lode.experiments import paired_difference, summarize, write_json

    res = payload["results"]
    payload.pop("summary", None)  # never left over from results that were moved away
    if res:
        top = payload.get("best_baseline")
        payload["summary"] = {"rows": {}, "paired": []}
        for key in ("test_at_best_val", "test_at_end"):
            payload["summary"]["rows"][key] = summarize(res, None, key)["rows"]
            by = {}
            for r in res:
                by.setdefault(r["method"], {})[r["seed"]] = r[key]
            # Each planner vs the best baseline, then the two planners against each other.
            for ref, base in [(p, top) for p in PLANNERS] + [PLANNERS]:
                if base not in by or ref not in by:
                    continue
                seeds = sorted(set(by[ref]) & set(by[base]))
                if len(seeds) < 2:
                    continue
                d = paired_difference([by[ref][s] for s in seeds], [by[base][s] for s in seeds])
                payload["summary"]["paired"].append(
                    {"reference": ref, "baseline": base, "key": key, **d}
                )
    write_json(out_path, payload)


def markdown_tables(payload) -> str:
    """The README's two tables from a results payload: test metric per method (mean +/- sd),
    then each paired difference with its 95% interval and minimum detectable effect."""
    rows = payload["summary"]["rows"]
    end = {r["method"]: r for r in rows["test_at_end"]}
    best = payload.get("best_peak_lr", {})
    top = payload.get("best_baseline")
    names = {
        "lode_control": "controlled LODE, control planner",
        "lode_generative": "generative LODE, the paper's planner",
        "replay": "replay (the best sweep run's LR curve)",
        "retrieval": "retrieval (nearest sweep run)",
    }

    def label(m):
        if m in best:
            return f"{m} @ {best[m]['peak_lr']:g}" + (" (best baseline)" if m == top else "")
        return names.get(m, m)

    def pm(r):
        return f"{100 * r['mean']:.2f} +/- {100 * r['std']:.2f}"

    lines = ["| method | seeds | test @ best val | test @ end |", "|---|---|---|---|"]
    for r in rows["test_at_best_val"]:
        lines.append(f"| {label(r['method'])} | {r['n']} | {pm(r)} | {pm(end[r['method']])} |")
    lines += [
        "",
        "| difference | key | paired difference (points) | 95% CI | n | MDE at 80% power |",
        "|---|---|---|---|---|---|",
    ]
    short = {"lode_control": "control planner", "lode_generative": "paper's planner"}
    for d in payload["summary"]["paired"]:
        lo, hi = d["ci95"]
        base = short.get(d["baseline"]) or label(d["baseline"]).replace(" (best baseline)", "")
        lines.append(
            f"| {short.get(d['reference'], d['reference'])} - {base}"
            f" | {d['key']} | {100 * d['mean']:+.2f} | [{100 * lo:+.2f}, {100 * hi:+.2f}] | "
            f"{d['n']} | {100 * d['mde80']:.2f} |"
        )
    return "\n".join(lines)


def _fmt_lr(x):
    return f"{x:g}"


def _load_line(payload):
    loads = payload.get("load_average") or {}
    if not loads:
        return "load average not recorded"
    return "load average " + ", ".join(
        f"{stage} {lo:.1f} -> {hi:.1f}" for stage, (lo, hi) in loads.items()
    )


def winner(payload):
    """The planner with the larger paired mean vs the best baseline (test at best validation)."""
    rows = [
        d
        for d in (payload.get("summary") or {}).get("paired", [])
        if d["key"] == "test_at_best_val" and d["baseline"] == payload.get("best_baseline")
    ]
    if not rows:
        return None
    return max(rows, key=lambda d: d["mean"])["reference"]


def shipped_kind(payload, ship="winner"):
    """The model kind the card stage ships: `ship` itself, or for "winner" the kind of the
    planner with the larger paired mean vs the best baseline (generative if none)."""
    if ship in ("generative", "controlled"):
        return ship
    if ship != "winner":
        raise ValueError(f"--ship must be winner, generative or controlled; got {ship!r}")
    return "controlled" if winner(payload) == "lode_control" else "generative"


def _paired_lines(payload):
    lines = []
    for d in (payload.get("summary") or {}).get("paired", []):
        lo, hi = d["ci95"]
        lines.append(
            f"- {d['reference']} - {d['baseline']} ({d['key']}, n = {d['n']}): "
            f"**{100 * d['mean']:+.2f}** points, 95% CI [{100 * lo:+.2f}, {100 * hi:+.2f}], "
            f"minimum detectable effect at 80% power {100 * d['mde80']:.2f}"
        )
    return lines


def _errors_generative(m, tr):
    c = m.config
    hp = tr.get("hyperparameters", {})
    ex = tr.get("extrapolation") or {}
    lines = [
        f"- Trained on {tr['n_train']} runs, validated on {tr['n_val']} held-out runs "
        f"({', '.join(tr.get('val_run_ids', []))}): {tr['steps']} steps (best "
        f"{tr['best_step']}), validation MSE {tr['val_mse']:.4f} (standardized channels).",
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
    return lines


def _errors_controlled(m, tr, metric_name):
    from keras_lode.planning import CONTROL_DEFAULTS

    c = m.config
    a = c["architecture"]
    skill, cal = tr["decision"], tr["calibration"]
    err, rank = skill["final_metric_error"], skill["rank_spearman"]
    names = ("lode", "config_mean", "family_mean", "hold_last")
    lines = [
        f"- {c['members']} members trained on {tr['n_train']} runs "
        f"({tr.get('switched_runs', 0)} of the {tr['n_runs']} runs are switched); the "
        f"{tr['n_heldout']} runs of seed(s) {tr['heldout_seeds']} are held out to calibrate the "
        f"spread and measure the decision skill below. Training: {tr['wall_time_s']:.0f} s "
        f"({tr.get('workers', 1)} processes).",
        f"- Architecture: GRU encoder hidden {a['hidden']}, state {a['state']}, vector field "
        f"width {a['width']} x depth {a['depth']}, control {a['control']}, window W = "
        f"{a['window']}; trainer settings {json.dumps(tr.get('hyperparameters', {}))}.",
        "- Planner defaults: "
        + ", ".join(f"{k} {v}" for k, v in CONTROL_DEFAULTS.items())
        + " (`keras_lode.planning.CONTROL_DEFAULTS`).",
        "",
        f"Decision skill on the held-out runs ({skill['n_cases']} cuts at "
        f"{', '.join(f'{f:.0%}' for f in skill['fractions'])} of {skill['n_runs']} runs): "
        f"error of the predicted final {metric_name} from the run so far, in points:",
        "",
        "| predictor | final-metric RMSE (points) | Spearman (mean over cuts) |",
        "|---|---|---|",
    ]
    for n in names:
        lines.append(f"| {n} | {100 * err[n]:.2f} | {rank[n]['mean']:.2f} |")
    lines += [
        "",
        f"Coverage of mean +/- 2 sd on the held-out cuts: {cal['coverage_2sd_raw']:.2f} raw, "
        f"{cal['coverage_2sd_calibrated']:.2f} calibrated (sd scale "
        f"{cal['sd_scale']:.2f}, floor {cal['sd_floor']:.4f}).",
    ]
    return lines


def _reproduce_commands(payload):
    """The recorded commands in order: the evaluations merged into this file (run in parallel
    processes) go before the first command that merged them."""
    merged = list((payload.get("merged_commands") or {}).values())
    out = []
    for c in payload.get("history", []):
        if "--stage card" in c:
            continue
        if merged and "--merge" in c:
            out += [m for m in merged if m not in out]
        out.append(c)
    return out + [m for m in merged if m not in out]


def write_card(task, spec, payload, model_path, runs, note="", card_command=""):
    """Copies the model into models/ and writes its card from the file and the results."""
    import shutil

    from keras_lode import load_model

    dest = ROOT / "models" / f"{task}.npz"
    if Path(model_path).resolve() != dest.resolve():
        shutil.copyfile(model_path, dest)
    m = load_model(dest)
    c = m.config
    tr = c["training"]
    controlled = m.kind == "controlled"
    opt = spec.make_optimizer  # the example task's OptimizerFactory
    what = (
        f"A controlled latent-ODE ensemble ({c['members']} members; the LR path is its input, "
        "the control planner chooses it)"
        if controlled
        else "A generative latent-ODE learning-rate scheduler (the paper's model and planner)"
    )
    lines = [
        f"# LODE model card: `{task}`",
        "",
        f"{what} for the `{task}` example task "
        f"(`keras_lode.tasks.get_task({task!r}, scale={spec.scale!r})`), trained by this "
        "project's own sweep and trainer. File: "
        f"`models/{task}.npz` ({dest.stat().st_size // 1024} KB, pickle-free).",
        "",
    ]
    if note:
        lines += [note, ""]
    grid_runs = [r for r in runs if not r.meta.get("switch")]
    fams = sorted({r.meta["schedule"] for r in grid_runs})
    lrs = sorted({float(r.meta["peak_lr"]) for r in grid_runs})
    seeds = sorted({int(r.meta["seed"]) for r in grid_runs})
    switched = len(runs) - len(grid_runs)
    lines += [
        "## Sweep",
        "",
        f"- {tr['n_runs']} runs. Grid: families {', '.join(fams)} x peak LRs "
        f"{', '.join(_fmt_lr(x) for x in lrs)} x seeds {', '.join(map(str, seeds))}, "
        f"{len(grid_runs)} runs ({sum(r.status == 'complete' for r in grid_runs)} complete)"
        + (
            f"; plus {switched} switched runs (a grid point re-run from its seed that changes "
            "schedule mid-run)."
            if switched
            else "."
        ),
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
        f"- Times on shared CPU cores ({_load_line(payload)}): sweep "
        f"{sum(float(r.meta.get('wall_seconds', 0)) for r in runs) / 60:.0f} run-minutes "
        f"(the sum of the runs' wall times, several running at a time), LODE training "
        f"{tr.get('wall_time_s', float('nan')):.0f} s, evaluation "
        f"{sum(float(r.get('wall_s', 0)) for r in payload.get('results', [])) / 60:.0f} "
        "run-minutes (the results' own wall times).",
        "",
        "## Errors",
        "",
    ]
    lines += (
        _errors_controlled(m, tr, spec.metric_name) if controlled else _errors_generative(m, tr)
    )
    lines += ["", "## Benchmark results", ""]
    if payload.get("summary") and payload.get("results"):
        from keras_lode.experiments import format_table

        lines += [
            f"`benchmarks/quality.py` (protocol {payload.get('protocol', 1)}) on seeds the "
            f"sweep never used ({', '.join(map(str, sorted({r['seed'] for r in payload['results']})))};"  # noqa: E501
            f" `n` per method in the table); test {spec.metric_name} in %, at the epoch of best "
            "validation and at the end:",
            "",
            "```",
            format_table(payload["results"], None),
            "```",
            "",
            f"The best baseline, chosen on the sweep's validation metric (never on test), is "
            f"{payload.get('lode_warmup')}; both planners warm up on it until their first plan, "
            "and the control planner keeps it as its default. Each family at its best "
            "sweep peak LR: "
            + ", ".join(f"{f}@{v['peak_lr']:g}" for f, v in payload["best_peak_lr"].items())
            + f"; replay follows the best sweep run ({payload.get('replay_run')}). Paired "
            "differences, seed by seed, vs the best baseline and between the planners:",
            "",
            *_paired_lines(payload),
            "",
            f"Raw numbers: `benchmarks/results/quality_{task}_{spec.scale}.json`.",
        ]
    else:
        lines += [
            "Not benchmarked yet: only the sweep and the LODE training ran for this task "
            "(see the note above)."
        ]
    lines += [
        "",
        "## Reproduce",
        "",
        "The commands that produced the runs, the models and the results (from the results "
        "file's history), then this card:",
        "",
        "```bash",
        *_reproduce_commands(payload),
        card_command,
        "```",
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
    grid = grid_for(args.task, args.scale)
    lrs = _floats(args.lrs, grid["lrs"])
    sweep_seeds = _ints(args.sweep_seeds, grid["sweep_seeds"])
    eval_seeds = _ints(args.eval_seeds, grid["eval_seeds"])
    overlap = set(sweep_seeds) & set(eval_seeds)
    if overlap:
        raise ValueError(f"Evaluation seeds must not be sweep seeds; both have {sorted(overlap)}.")
    work = Path(args.work or ROOT / "bench_work" / f"{args.task}_{args.scale}")
    runs_dir = work / "runs"
    model_path = Path(args.model) if args.model else work / f"{args.task}.npz"
    control_path = (
        Path(args.controlled_model)
        if args.controlled_model
        else work / f"{args.task}_controlled.npz"
    )
    switched = args.switched if args.switched is not None else grid["switched"]
    out_path = Path(
        args.out or ROOT / "benchmarks" / "results" / f"quality_{args.task}_{args.scale}.json"
    )
    payload = {"results": []}
    if out_path.is_file():
        payload = json.loads(out_path.read_text())
        if payload.get("protocol") != 2:  # results of the first protocol: start afresh
            payload = {"results": []}
    payload.update(
        {
            "benchmark": "quality (docs/benchmarks.md Q1)",
            "protocol": 2,
            "task": args.task,
            "scale": args.scale,
            "epochs": spec.epochs,
            "points_per_epoch": spec.points_per_epoch,
            "data": spec.data_args,
            "families": list(FAMILIES),
            "switched": switched,
            "lrs": lrs,
            "sweep_seeds": sweep_seeds,
            "eval_seeds": eval_seeds,
            "runs_dir": str(runs_dir),
            "model": str(model_path),
            "controlled_model": str(control_path),
            "lode_validation_samples": args.lode_validation_samples,
            "backend": keras.backend.backend(),
            "machine": f"{platform.machine()} {os.cpu_count()} CPUs, {platform.platform()}",
            "command": "python benchmarks/quality.py " + shlex.join(argv or sys.argv[1:]),
        }
    )
    payload.setdefault("timing_s", {})
    history = payload.setdefault("history", [])
    if payload["command"] not in history:
        history.append(payload["command"])
    if args.rerun:
        if not args.rerun_reason:
            raise ValueError("--rerun needs --rerun-reason: say why the results are superseded")
        labels = set(args.rerun.split(","))
        present = {r["method"] for r in payload["results"]} | {
            m for e in payload.get("superseded", []) for m in e["methods"]
        }
        if labels - present:
            raise ValueError(f"--rerun: no results of {sorted(labels - present)} in {out_path}")
        done = any(
            e["methods"] == sorted(labels) and e["reason"] == args.rerun_reason
            for e in payload.get("superseded", [])
        )
        if done:  # the same rerun again (e.g. a resumed command): nothing more to move
            labels = set()
        moved = [r for r in payload["results"] if r["method"] in labels]
        payload["results"] = [r for r in payload["results"] if r["method"] not in labels]
        if labels:
            payload.setdefault("superseded", []).append(
                {
                    "methods": sorted(labels),
                    "reason": args.rerun_reason,
                    "results": moved,
                    "summary_paired": (payload.get("summary") or {}).get("paired", []),
                }
            )
            print(f"moved {len(moved)} results of {sorted(labels)} to `superseded`")
    for extra in args.merge:
        other = json.loads(Path(extra).read_text())
        have = {(r["method"], r["seed"]) for r in payload["results"]}
        payload["results"] += [
            r for r in other.get("results", []) if (r["method"], r["seed"]) not in have
        ]
        for k in (
            "sweep_validation",
            "best_peak_lr",
            "best_baseline",
            "lode_warmup",
            "replay_run",
            "model_training",
            "sweep_runs",
            "switched_runs",
        ):
            if payload.get(k) is None:
                payload[k] = other.get(k)
            elif k in ("best_baseline", "lode_warmup") and other.get(k) not in (None, payload[k]):
                raise ValueError(
                    f"--merge {extra}: its {k} is {other.get(k)!r}, this file's {payload[k]!r}"
                )
        payload.setdefault("merged_timing_s", {})[extra] = other.get("timing_s")
        payload.setdefault("merged_commands", {})[extra] = other.get("command")
    loads = payload.setdefault("load_average", {})
    if args.stage in ("all", "sweep"):
        before = os.getloadavg()[0]
        payload["timing_s"]["sweep"] = stage_sweep(
            spec, runs_dir, lrs, sweep_seeds, switched, args.workers
        )
        loads["sweep"] = (before, os.getloadavg()[0])
    if args.stage in ("all", "train"):
        before = os.getloadavg()[0]
        payload["train_args"] = args.train_args
        payload["controlled_train_args"] = args.controlled_train_args
        if not args.model and not model_path.is_file():
            payload["timing_s"]["train"] = stage_train(
                args.task, runs_dir, model_path, args.train_args
            )
        if not args.controlled_model and not control_path.is_file():
            payload["timing_s"]["train_controlled"] = stage_train(
                args.task,
                runs_dir,
                control_path,
                args.controlled_train_args,
                kind="controlled",
                workers=args.workers,
            )
        loads["train"] = (before, os.getloadavg()[0])
    if args.stage in ("all", "evaluate"):
        runs = load_runs(runs_dir)
        payload["sweep_runs"] = sum(1 for r in runs if not r.meta.get("switch"))
        payload["switched_runs"] = sum(1 for r in runs if r.meta.get("switch"))
        from keras_lode import load_model

        models = {}
        for label, path in (("lode_generative", model_path), ("lode_control", control_path)):
            wanted = not args.methods or label in args.methods.split(",")
            if wanted and not path.is_file():
                raise FileNotFoundError(f"LODE model {path} not found: run the train stage.")
            if path.is_file():
                models[label] = str(path)
                payload.setdefault("model_training", {})[label] = load_model(path).config.get(
                    "training", {}
                )
        t0, before = time.perf_counter(), os.getloadavg()[0]
        stage_evaluate(spec, runs, models, eval_seeds, args.methods, out_path, payload)
        payload["timing_s"]["evaluate"] = payload["timing_s"].get("evaluate", 0) + (
            time.perf_counter() - t0
        )
        loads["evaluate"] = (before, os.getloadavg()[0])
    _finish(payload, out_path)
    if args.stage == "card":
        if payload.get("sweep_validation") is None and runs_dir.is_dir():
            payload["sweep_validation"] = best_peak_lrs(load_runs(runs_dir))[1]
            _finish(payload, out_path)
        ship = shipped_kind(payload, args.ship)
        path = control_path if ship == "controlled" else model_path
        print(f"shipping the {ship} model {path}")
        argv_ = list(argv or sys.argv[1:])
        if "--card-note" in argv_:  # the note is in the card itself
            argv_[argv_.index("--card-note") + 1] = "<the note above>"
        card_command = "python benchmarks/quality.py " + shlex.join(argv_)
        write_card(
            args.task, spec, payload, path, load_runs(runs_dir), args.card_note, card_command
        )
        return 0
    if payload.get("results"):
        from keras_lode.experiments import format_table

        print(format_table(payload["results"], "lode_control"))
        for d in payload["summary"]["paired"]:
            lo, hi = d["ci95"]
            print(f"{d['reference']} - {d['baseline']} ({d['key']}): {100 * d['mean']:+.2f} "
                  f"[{100 * lo:+.2f}, {100 * hi:+.2f}] points, n={d['n']}, "
                  f"mde80 {100 * d['mde80']:.2f}")  # fmt: skip
        if args.markdown:
            print(markdown_tables(payload))
    print(f"wrote {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
