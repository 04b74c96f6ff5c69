"""Leave-one-task-out decision skill: can a LODE trained on other tasks judge this task's LR?

For every task of a zoo, a controlled ensemble is trained on the *other* tasks' runs and
scored on the held-out task's counterfactual groups (runs of one seed that share their
prefix and differ only in the LR continuation after a switch point: the sweep's switched
and branch runs). For each group the members predict every continuation's final metric; the figures:

- `spearman`: rank correlation (within a group, averaged) of predicted and actual gains
  over the group's default (the run that did not switch);
- `rmse`: of the predicted gain, in improvement units (accuracy; ln-ratio for a minimized
  metric);
- `realized`: the actual gain of taking each group's best predicted continuation (0 when
  the default is predicted best), against `oracle` (the best continuation in hindsight);
  `realized_rule`: that of the planner's absolute rule with the model's calibrated spread
  (switch when the best `mean - kappa * sd` beats the default's mean by `margin`, at the
  control planner's defaults), what a fit with this model would do;
- `paired` (task-free models, zoos of >= 3 tasks): the paired rule calibrated on the
  *other* tasks' groups (`fit_paired(by="task")`: spread, kappa and margin chosen there),
  applied to the held-out task's groups (`evaluate_rule`): its realized gain, how often it
  switched, and the coverage of its calibrated interval on a task it never saw.

Two input kinds are compared: `absolute` (raw channels, what a task's own model reads; it
needs every task to share one run length) and `relative` (task-free features:
`keras_lode.model.features`).

    # the synthetic world (seconds per fit): tasks that differ in their LR scale
    python benchmarks/zoo_loto.py --synthetic --out benchmarks/results/zoo_loto_synthetic.json
    # a zoo of sweeps: one directory of runs per task (keras-lode sweep --switched N)
    python benchmarks/zoo_loto.py --zoo runs/zoo --out benchmarks/results/zoo_loto_cpu.json
    # the closed loop: each held-out task's `scenarios.py --scenario rescue` file (run with
    # that task's leave-one-task-out model) gathered into one table, `heldout`
    python benchmarks/zoo_loto.py --closed-loop digits_mlp=PATH fmnist_mlp=PATH \
        --out benchmarks/results/zoo_loto.json
    # the model for every task: one trained on all of them (keras-lode train), calibrated
    # on every task's groups (cross-fitted by task), written with its paired section
    python benchmarks/zoo_loto.py --zoo runs/zoo --prior --calibrate zoo.npz models/zoo.npz \
        --out benchmarks/results/zoo_model.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

#: Synthetic tasks: (LR scale: recorded LR = scale x the LR the dynamics see, log points).
SYNTHETIC_TASKS = {"sgd_like": (1.0, 40), "adam_like": (0.1, 40), "large_lr": (10.0, 40)}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--synthetic", action="store_true", help="the synthetic world's tasks")
    src.add_argument("--zoo", help="directory with one sub-directory of runs per task")
    p.add_argument(
        "--calibrate",
        nargs=2,
        metavar=("MODEL", "OUT"),
        default=None,
        help="calibrate MODEL (trained on every task) on every task's groups of "
        "--zoo (and --extra-groups), cross-fitted by task; write OUT",
    )
    src.add_argument("--closed-loop", nargs="+", metavar="TASK=FILE",
                     help="scenarios.py rescue files of leave-one-task-out models")  # fmt: skip
    p.add_argument("--out", required=True, help="results JSON")
    p.add_argument(
        "--heldout", default=None, help="comma-separated tasks to hold out (default all)"
    )
    p.add_argument("--extra-groups", nargs="+", default=(), metavar="TASK=FILE",
                   help="more branch groups of a task: a scenarios.py headroom file")  # fmt: skip
    p.add_argument("--save-dir", default=None,
                   help="write each held-out task's model, with the paired calibration fitted "
                        "on the other tasks, as <task>.npz (for the closed loop)")  # fmt: skip
    p.add_argument(
        "--models",
        default=None,
        help="a --save-dir of an earlier run: score its held-out models (trained "
        "without their task) instead of training new ones",
    )
    p.add_argument(
        "--prior",
        action="store_true",
        help="fit a continuation prior with the paired calibration (keras_lode.model.prior)",
    )
    p.add_argument(
        "--starts",
        default=None,
        help="comma-separated: the planner library's starting LR multipliers in "
        "every model file written (default: the planner's)",
    )
    p.add_argument(
        "--no-trust", action="store_true", help="write model files without their trust region"
    )
    p.add_argument(
        "--ceiling-tolerance", type=float, default=None,
        help="write each held-out model's LR ceiling from the other tasks' highest near-best "
        "peak LRs (within this many seed sd of the best; keras_lode.train.lr_ceiling)",
    )  # fmt: skip
    p.add_argument("--features", default="absolute,relative", help="input kinds to compare")
    p.add_argument("--horizon", type=int, default=40, help="task-free model's grid points")
    p.add_argument("--window", type=int, default=8)
    p.add_argument("--members", type=int, default=3)
    p.add_argument("--steps", type=int, default=800)
    p.add_argument("--workers", type=int, default=1)
    return p.parse_args(argv)


def _scaled(run, scale: float, task: str):
    """The run as a task whose LR scale is `scale` (same dynamics, LRs recorded x scale)."""
    from keras_lode.runs.run import Run

    meta = {**run.meta, "task": task}
    if meta.get("switch"):
        meta["switch"] = {**meta["switch"], "to_peak_lr": meta["switch"]["to_peak_lr"] * scale}
    return Run(step=run.step, epoch=run.epoch, lr=run.lr * scale, loss=run.loss,
               metric=run.metric, meta=meta)  # fmt: skip


def synthetic_zoo(seed: int = 0) -> dict:
    """Task -> runs: a 6-family x 3-LR x 3-seed grid plus switched runs per task."""
    from keras_lode.runs.synthetic import synthetic_run, synthetic_switched_run

    fams = ("cosine", "onecycle", "constant", "step", "linear", "wsd")
    lrs = (3e-3, 1e-2, 3e-2)
    targets = [(f, lr) for f in ("cosine", "linear", "wsd", "constant") for lr in lrs]
    zoo = {}
    for t, (task, (scale, K)) in enumerate(SYNTHETIC_TASKS.items()):
        P = K // 10
        runs = [synthetic_run(f, lr, seed=s, points=K, points_per_epoch=P)
                for f in fams for lr in lrs for s in range(3)]  # fmt: skip
        rng = np.random.default_rng(seed + t)
        for s in range(5):  # switched groups: from constant @ each LR, at 30% and 50%
            for base_lr in lrs:
                for at in (int(0.3 * K), int(0.5 * K)):
                    picks = rng.choice(len(targets), size=4, replace=False)
                    for i in picks:
                        f, lr = targets[i]
                        sw = synthetic_switched_run(
                            "constant", base_lr, f, lr, at, seed=s, points=K, points_per_epoch=P
                        )
                        runs.append(sw)
                if s >= 3:  # evaluation seeds also need their base runs
                    runs.append(synthetic_run("constant", base_lr, seed=s, points=K,
                                              points_per_epoch=P))  # fmt: skip
        zoo[task] = [_scaled(r, scale, task) for r in runs]
    return zoo


def load_zoo(root) -> dict:
    """Task -> runs of each sub-directory of `root` (every run file, grid and switched)."""
    from keras_lode.runs import load_runs

    zoo = {}
    for d in sorted(Path(root).iterdir()):
        if d.is_dir() and any(d.glob("*.run.csv")):
            runs = [r for r in load_runs(d) if r.status == "complete"]
            if runs:
                zoo[d.name] = runs
    if len(zoo) < 2:
        raise SystemExit(f"{root}: need run directories of at least two tasks, found {list(zoo)}")
    return zoo


def switch_groups(runs):
    """(base run, point, [runs]) for every base run with switched or branch runs (`keras-lode
    sweep --switched N` / `--branches N`) that leave it at a point."""
    by_id = {r.run_id: r for r in runs}
    groups = {}
    for r in runs:
        sw = r.meta.get("switch") or r.meta.get("branch")
        if isinstance(sw, dict) and sw.get("base") in by_id and len(r) == len(by_id[sw["base"]]):
            groups.setdefault((sw["base"], int(sw["at_point"])), []).append(r)
    return [(by_id[b], n, rs) for (b, n), rs in sorted(groups.items())]


def predicted_finals(model, base, n, paths, mode) -> np.ndarray:
    """(M, C) predicted final metric (improvement units for a task-free model)."""
    from keras_lode.model.controlled import predict_paths
    from keras_lode.model.features import is_task_free, model_grid

    y = base.channels()
    K = len(base)
    if is_task_free(model):
        g = model_grid(model, y[: n + 1], position=n, total_points=K, paths=paths, mode=mode)
        return predict_paths(model, g.window, g.paths, g.position, 1.0)[:, :, -1, 1]
    W = int(model.window)
    return predict_paths(model, y[n - W + 1 : n + 1], paths, n, model.horizon / K)[:, :, -1, 1]


def score_task(model, runs) -> dict:
    """Paired skill of `model` on a task's switch groups (see the module docstring)."""
    from keras_lode.model.defaults import CONTROL_DEFAULTS
    from keras_lode.model.features import Reference, is_task_free
    from keras_lode.train.decision import spearman

    kappa, margin = CONTROL_DEFAULTS["kappa"], CONTROL_DEFAULTS["margin"]
    rho, err, realized, oracle, chose = [], [], [], [], 0
    by_rule, chose_rule = [], 0
    for base, n, switched in switch_groups(runs):
        mode = base.meta.get("mode") or "max"
        if n + 1 < int(model.window) + 1:
            continue
        paths = np.stack([base.lr[n + 1 :]] + [r.lr[n + 1 :] for r in switched])
        try:
            finals = predicted_finals(model, base, n, paths, mode)
        except ValueError:
            continue  # a point the model cannot read
        pred, sd = (np.asarray(v, dtype=np.float64) for v in model.spread(finals))
        try:
            ref = Reference.from_rows(base.channels(), mode)
        except ValueError:
            continue  # a base run without a usable first point
        actual = ref.improvement(np.array([base.metric[-1]] + [r.metric[-1] for r in switched]))
        if not is_task_free(model) and mode == "min":
            pred = -pred  # a task's own model predicts the raw minimized metric
        # The planner's absolute rule with the model's calibrated spread: switch to the best
        # pessimistic bound when it beats the default's mean by the margin.
        bound = pred[1:] - kappa * sd[1:]
        pick = int(np.argmax(bound))
        rule_switch = bool(bound[pick] - pred[0] > margin)
        gain_p, gain_a = pred[1:] - pred[0], actual[1:] - actual[0]
        if not (np.all(np.isfinite(gain_p)) and np.all(np.isfinite(gain_a))):
            continue
        if gain_p.size >= 2:
            rho.append(spearman(gain_p, gain_a))
        err.extend((gain_p - gain_a) ** 2)
        best = int(np.argmax(gain_p))
        take = gain_p[best] > 0
        chose += int(take)
        realized.append(float(gain_a[best]) if take else 0.0)
        chose_rule += int(rule_switch)
        by_rule.append(float(gain_a[pick]) if rule_switch else 0.0)
        oracle.append(max(0.0, float(gain_a.max())))
    groups = len(realized)
    if not groups:
        return {"groups": 0}
    return {
        "groups": groups,
        "spearman": float(np.nanmean(rho)) if rho else None,
        "rmse": float(np.sqrt(np.mean(err))),
        "realized": float(np.mean(realized)),
        "oracle": float(np.mean(oracle)),
        "switched_share": chose / groups,
        "realized_rule": float(np.mean(by_rule)),
        "switched_share_rule": chose_rule / groups,
    }


def as_branch_groups(runs, task: str) -> list:
    """The task's switch groups as `BranchGroup`s with their whole prefix (task-free)."""
    from keras_lode.train.counterfactual import BranchGroup

    out = []
    for base, n, switched in switch_groups(runs):
        rows = base.channels()[: n + 1]
        paths = np.stack([base.lr[n + 1 :]] + [r.lr[n + 1 :] for r in switched])
        actual = np.array([base.metric[-1]] + [r.metric[-1] for r in switched])
        names = ["default"] + [r.run_id for r in switched]
        out.append(BranchGroup(int(base.meta.get("seed") or 0), n, len(base), rows, names,
                               paths, actual, history=rows, task=task,
                               mode=base.meta.get("mode") or "max"))  # fmt: skip
    return out


def extra_groups(specs, window: int) -> dict:
    """Task -> branch groups of scenarios.py headroom files (`TASK=FILE`)."""
    from counterfactual import branch_groups

    out: dict = {}
    for spec in specs:
        task, _, path = spec.partition("=")
        task = task.strip()
        if not path or not task:
            raise SystemExit(f"--extra-groups takes TASK=FILE. Received: {spec!r}")
        groups = branch_groups(json.loads(Path(path).read_text()), window)
        for g in groups:
            g.task = task
        out.setdefault(task, []).extend(groups)
    return out


def score_paired(model, zoo: dict, held: str, extra=None, prior: bool = False) -> dict:
    """The paired rule calibrated on the other tasks' groups, on the held-out task's.

    The calibration (`planner.paired`) is returned under `section` for the model file."""
    from keras_lode.train.counterfactual import evaluate_rule, fit_paired, paired_section

    extra = extra or {}

    def groups(task):
        return as_branch_groups(zoo.get(task, []), task) + list(extra.get(task, []))

    train = [g for t in sorted(set(zoo) | set(extra)) if t != held for g in groups(t)]
    test = groups(held)
    try:
        fitted = fit_paired(model, train, by="task", prior=prior)
    except ValueError as e:  # fewer than two other tasks with groups
        return {"error": str(e)}
    section = paired_section(fitted)
    return {
        "section": section,
        "train_groups": {
            t: sum(g.task == t for g in train) for t in sorted({g.task for g in train})
        },
        "realized_among_training_tasks": fitted["realized"],
        "folds": fitted["folds"],
        "calibration": {
            k: section[k]
            for k in (
                "sd_scale",
                "sd_floor",
                "kappa",
                "margin",
                "switch",
                "starts",
                "trusted",
                "coverage",
            )
            if k in section
        },  # fmt: skip
        **({"prior": section["prior"]} if section.get("prior") else {}),
        **evaluate_rule(model, test, section),
        **below_best_peak(model, zoo.get(held, []), test, section),
    }


def below_best_peak(model, runs, groups, section) -> dict:
    """`{below_best_peak: ...}`: the rule on the groups whose LR at the branch point is below
    half the peak LR of the task's best grid config (the rescue scenario's situation: an LR
    too low), with that peak; empty without the task's grid runs."""
    from keras_lode.experiments.best import best_per_family
    from keras_lode.train.counterfactual import evaluate_rule

    rows = best_per_family([r for r in runs if r.kind == "grid"])
    if not rows:
        return {}
    peak = float(rows[0]["peak_lr"])
    low = [g for g in groups if g.history is not None and np.exp(g.history[-1, 1]) < peak / 2]
    summary = evaluate_rule(model, low, section) if low else {"groups": 0}
    return {"below_best_peak": {"best_peak_lr": peak, **summary}}


def library_of(args, zoo: dict, held: str | None = None) -> dict:
    """The planner settings `--starts` / `--no-trust` / `--ceiling-tolerance` ask a written
    model file to carry; the LR ceiling is fitted on the tasks of `zoo` other than `held`
    (all of them for the model of every task; without the flag, training's own stays)."""
    out = {}
    if args.starts:
        out["starts"] = [float(v) for v in args.starts.split(",") if v.strip()]
    if args.no_trust:
        out["trust"] = None
    if args.ceiling_tolerance is not None:
        from keras_lode.train.lr_ceiling import fit_lr_ceiling

        others = [r for t, runs in zoo.items() if t != held for r in runs]
        section, record = fit_lr_ceiling(others, tolerance=args.ceiling_tolerance)
        print(f"  {held or 'all tasks'}: LR ceiling {section} "
              f"(tolerance {args.ceiling_tolerance:g})", flush=True)  # fmt: skip
        if section:
            out["lr_ceiling"] = section
            out["training.lr_ceiling"] = record  # where it came from, beside training's own
    return out


def with_library(path, library: dict) -> None:
    """Rewrites the model file at `path` with `library` in its planner section (`trust:
    None` removes the trust region; a key `"training.K"` goes to the training section)."""
    if not library:
        return
    from keras_lode.model.io import read_model_file, save_model

    config, weights = read_model_file(path)
    for key, value in library.items():
        section, _, key = key.rpartition(".")  # "training.lr_ceiling": the training section
        target = config.setdefault(section or "planner", {})
        if value is None:
            target.pop(key, None)
        else:
            target[key] = value
    save_model(path, config, weights)


def save_model_of(save_dir, task: str, fit, section, library=None) -> None:
    """`<save_dir>/<task>.npz`: the model that never saw `task`, with the paired calibration
    fitted on the other tasks (none when there was too little to calibrate on). `fit` is a
    fit to export or the path of a model file already exported."""
    if not save_dir:
        return
    from keras_lode.train.counterfactual import with_paired_calibration

    path = Path(save_dir) / f"{task}.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    source = Path(fit) if isinstance(fit, str | Path) else None
    if source is None:
        fit.export(path, task=f"zoo without {task}")
    if section is None and source is not None:
        print(f"  {task}: no calibration to write (too few other tasks' groups)", flush=True)
        return
    if section is not None:
        with_paired_calibration(source or path, section, path)
        with_library(path, library or {})
    print(f"  wrote {path}", flush=True)


def rescore(args, zoo: dict, held: str, extra: dict) -> dict:
    """The paired rule of `--models DIR`'s model that never saw `held`, calibrated afresh."""
    from keras_lode.model import load_model

    path = Path(args.models) / f"{held}.npz"
    if not path.exists():
        raise SystemExit(f"--models: {path} is missing (a --save-dir of an earlier run)")
    row = {"held_out": held, "features": "relative", "model": str(path),
           "paired": score_paired(load_model(path), zoo, held, extra, args.prior)}  # fmt: skip
    save_model_of(args.save_dir, held, path, row["paired"].pop("section", None),
                  library_of(args, zoo, held))  # fmt: skip
    print(f"  {held:12s} paired rule: {json.dumps(row['paired'])}", flush=True)
    return row


def calibrate_all(args, argv) -> int:
    """`--calibrate MODEL OUT`: the paired rule of a model trained on every task, calibrated
    on every task's groups (cross-fitted by task: each figure is a task's, from a calibration
    on the others'), written into OUT; the fit's summary goes to --out."""
    from keras_lode.model import load_model
    from keras_lode.train.counterfactual import (
        fit_paired,
        paired_section,
        with_paired_calibration,
    )

    if not args.zoo:
        raise SystemExit("--calibrate needs --zoo (the task directories of the groups)")
    model_path, out_path = args.calibrate
    zoo = load_zoo(args.zoo)
    extra = extra_groups(args.extra_groups, args.window)
    groups = [g for t in sorted(set(zoo) | set(extra))
              for g in as_branch_groups(zoo.get(t, []), t) + list(extra.get(t, []))]  # fmt: skip
    result = fit_paired(load_model(model_path), groups, by="task", prior=args.prior)
    section = paired_section(result)
    with_paired_calibration(model_path, section, out_path)
    with_library(out_path, library_of(args, zoo))
    tasks = sorted({g.task for g in groups})
    command = "python benchmarks/zoo_loto.py " + " ".join(sys.argv[1:] if argv is None else argv)
    summary = {"benchmark": "zoo_model", "model": str(model_path), "wrote": str(out_path),
               "tasks": {t: sum(g.task == t for g in groups) for t in tasks},
               "command": command, "paired": result}  # fmt: skip
    Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")
    r = result["realized"]
    print(f"{result['groups']} groups of {len(summary['tasks'])} tasks; cross-fitted by task: "
          f"rule {r['rule']:+.2f} of oracle {r['oracle']:+.2f} points; trusted "
          f"{result['trusted']}, switch {result['rule']['switch']}; wrote {out_path}")  # fmt: skip
    return 0


def heldout_row(task: str, payload: dict) -> dict:
    """One held-out task's closed-loop figures from its scenarios.py results file: the
    LODE from the optimizer's default LR against the default, the default with
    `ReduceLROnPlateau` and cosine decay from it (paired, test accuracy at the end,
    points), and the share of the gap to the sweep's best it captured."""
    from scenarios import gain_units, summarize

    summary = summarize(payload)
    rows = {(r["method"], r["reference"]): r for r in summary["scenarios"]
            if r["scenario"] == "rescue" and r["key"] == "test_at_end"}  # fmt: skip
    want = ("rescue", "default", "test_at_end")
    cap = [c for c in summary["capture"] if (c["scenario"], c["start"], c["key"]) == want]
    out = {"task": task, "n": cap[0]["n"] if cap else 0,
           "capture": cap[0]["capture"] if cap else None,
           "gap": cap[0]["gap"] if cap else None, "units": gain_units(payload)}  # fmt: skip
    for key, ref in (("vs_default", "default:constant"), ("vs_plateau", "default:plateau"),
                     ("vs_cosine", "default:cosine")):  # fmt: skip
        r = rows.get(("default:lode", ref))
        out[key] = {"mean": r["mean"], "ci95": r["ci95"], "n": r["n"]} if r else None
    return out


def closed_loop(specs) -> dict:
    """`{heldout: [...], average_vs_cosine}` from `TASK=FILE` specs."""
    rows = []
    for spec in specs:
        task, _, path = spec.partition("=")
        if not path:
            raise SystemExit(f"--closed-loop takes TASK=FILE. Received: {spec!r}")
        rows.append(heldout_row(task, json.loads(Path(path).read_text())))
    # The average is over the tasks measured in accuracy points (a minimized metric's rows are
    # in its own units, not to be averaged with them).
    points = [r for r in rows if r["vs_cosine"] and r["units"] == "points"]
    return {"heldout": rows,
            "average_vs_cosine": float(np.mean([r["vs_cosine"]["mean"] for r in points]))
            if points else None,
            "average_over": [r["task"] for r in points],
            "units": "points of test accuracy at the end (a minimized metric: its "
                     "decrease, each row's units); capture = share of the gap to the "
                     "task's sweep best"}  # fmt: skip


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.closed_loop:
        sys.path.insert(0, str(ROOT / "benchmarks"))
        out = {"benchmark": "zoo_loto", "command": "python benchmarks/zoo_loto.py "
               + " ".join(sys.argv[1:] if argv is None else argv),
               **closed_loop(args.closed_loop)}  # fmt: skip
        Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
        for r in out["heldout"]:
            print(json.dumps(r))
        print(f"wrote {args.out}")
        return 0
    if args.calibrate:
        return calibrate_all(args, argv)
    from keras_lode.train.ensemble import fit_controlled

    zoo = synthetic_zoo() if args.synthetic else load_zoo(args.zoo)
    kinds = [k.strip() for k in args.features.split(",") if k.strip()]
    sys.path.insert(0, str(ROOT / "benchmarks"))
    extra = extra_groups(args.extra_groups, args.window)
    known = set(zoo) | set(extra)
    heldout = [t.strip() for t in args.heldout.split(",")] if args.heldout else list(zoo)
    if sorted(set(heldout) - known):
        raise SystemExit(f"--heldout: unknown task(s) {sorted(set(heldout) - known)}; the zoo "
                         f"has {sorted(known)}")  # fmt: skip
    print(f"tasks: {', '.join(f'{t} ({len(r)} runs)' for t, r in zoo.items())}", flush=True)
    if extra:
        print("extra branch groups: " + ", ".join(f"{t} ({len(g)})" for t, g in extra.items())
              + f"; held out in turn: {', '.join(heldout)}", flush=True)  # fmt: skip
    results = []
    if args.models:
        results = [rescore(args, zoo, held, extra) for held in heldout]
    for held in heldout if not args.models else ():
        train = [r for t, rs in zoo.items() if t != held for r in rs]
        for kind in kinds:
            t0 = time.perf_counter()
            try:
                fit = fit_controlled(
                    train, members=args.members, window=args.window, steps=args.steps,
                    workers=args.workers, verbose=False, features=kind, horizon=args.horizon,
                )  # fmt: skip
            except ValueError as e:  # e.g. absolute inputs over tasks of different lengths
                print(f"  {held:12s} {kind:8s} not trained: {e}", flush=True)
                results.append({"held_out": held, "features": kind, "error": str(e)})
                continue
            row = {"held_out": held, "features": kind, "fit_s": round(time.perf_counter() - t0, 1),
                   **score_task(fit.model, zoo.get(held, []))}  # fmt: skip
            if kind == "relative" and len(set(zoo) | set(extra)) >= 3:
                row["paired"] = score_paired(fit.model, zoo, held, extra, args.prior)
                section = row["paired"].pop("section", None)
                save_model_of(args.save_dir, held, fit, section, library_of(args, zoo, held))
            results.append(row)
            shown = [
                f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
                for k, v in row.items()
                if k not in ("held_out", "features", "paired")
            ]
            print(f"  {held:12s} {kind:8s} " + ", ".join(shown), flush=True)
            if "paired" in row:
                print(f"  {'':12s} paired rule: {json.dumps(row['paired'])}", flush=True)
    settings = {k: getattr(args, k) for k in ("horizon", "window", "members", "steps", "prior")}
    if args.models:  # the saved models' own settings hold (each model file has them)
        settings = {"models": args.models, "prior": args.prior}
    out = {
        "benchmark": "zoo_loto",
        "source": "synthetic" if args.synthetic else str(args.zoo),
        "tasks": {t: len(r) for t, r in zoo.items()},
        "settings": settings,
        "command": "python benchmarks/zoo_loto.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "results": results,
    }
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
