"""`keras-lode train RUNS -o model.npz`: train a LODE on a sweep and export it.

Loads the runs (a run file, a directory of them, or several), trains the controlled
ensemble (`--kind controlled`, the default: the kind of the shipped and benchmarked models)
or the paper's generative LODE (`--kind generative`), writes the pickle-free model file and
prints how well it predicts held-out runs against naive predictors. `--synthetic N` trains
on N synthetic runs instead (a demo that needs no sweep). Nothing heavy is imported at module level.
"""

from __future__ import annotations

import argparse
import sys

HELP = "train a LODE on recorded runs (needs keras_lode[train]) and export the model file"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "runs",
        metavar="RUNS",
        nargs="*",
        help="run files (.run.csv) or directories of them",
    )
    parser.add_argument("-o", "--output", required=True, metavar="PATH", help="model file (.npz)")
    parser.add_argument(
        "--synthetic",
        type=int,
        metavar="N",
        help="train on N synthetic runs (keras_lode.runs.synthetic) instead of RUNS",
    )
    parser.add_argument(
        "--synthetic-points",
        type=int,
        default=600,
        metavar="K",
        help="log points per synthetic run",
    )
    parser.add_argument(
        "--kind",
        choices=("controlled", "generative"),
        default="controlled",
        help="controlled: the LR path is an input, a calibrated ensemble (the shipped models' "
        "kind); generative: the paper's LODE, the LR a predicted channel (it lost to the best "
        "baseline in every benchmark of docs/benchmarks.md) (default: %(default)s)",
    )
    _add_controlled_arguments(parser)
    parser.add_argument(
        "--synthetic-switched",
        type=int,
        default=0,
        metavar="N",
        help="with --synthetic: also N synthetic switched runs (a schedule change mid-run)",
    )
    parser.add_argument(
        "--window",
        type=int,
        default=None,
        help="context window W in log points (default: 30 generative, 10 controlled)",
    )
    parser.add_argument(
        "--hidden",
        type=int,
        default=None,
        help="GRU hidden size (default: 20 generative, 24 controlled)",
    )
    parser.add_argument("--latent", type=int, default=20, help="generative: latent size")
    parser.add_argument(
        "--state",
        type=int,
        default=None,
        help="ODE state size (default: 20 generative, 24 controlled)",
    )
    parser.add_argument(
        "--width", type=int, default=None, help="MLP width (default: 20 generative, 32 controlled)"
    )
    parser.add_argument("--depth", type=int, default=2, help="MLP hidden layers")
    parser.add_argument(
        "--step-size", type=float, default=0.5, help="RK4 step (a run spans 10 time units)"
    )
    parser.add_argument(
        "--alpha", type=float, default=0.01, help="generative: weight of the path length"
    )
    parser.add_argument("--max-steps", type=int, default=1500, help="optimizer steps (at most)")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="windows per step (default: 32 generative, 64 controlled)",
    )
    parser.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate")
    parser.add_argument("--val-fraction", type=float, default=0.2, help="share of runs held out")
    parser.add_argument("--patience", type=int, default=8, help="evaluations without progress")
    parser.add_argument("--eval-every", type=int, default=50, help="steps between evaluations")
    parser.add_argument("--seed", type=int, default=0, help="seed (split, windows, weights)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--task", help="task name stored in the model file's metadata")
    parser.add_argument("--report", metavar="PATH", help="also write the training report (JSON)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    _show_defaults(parser)


def _add_controlled_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the controlled ensemble only."""
    parser.add_argument(
        "--members", type=int, default=5, help="controlled: ensemble size (default: %(default)s)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="controlled: members trained in parallel processes (default: min(members, cores))",
    )
    parser.add_argument(
        "--resample",
        choices=("bootstrap", "none", "seeds"),
        default="bootstrap",
        help="controlled: how the members' training runs differ: a bootstrap resample each, "
        "all runs (initialization only), or all but one training seed each "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--holdout-seeds",
        default=None,
        help="controlled: comma-separated seeds whose runs calibrate the ensemble and measure "
        "its decision skill (default: the largest seed)",
    )
    parser.add_argument(
        "--features",
        choices=("absolute", "relative"),
        default="absolute",
        help="controlled: 'absolute' reads the runs' raw channels (a model of their task); "
        "'relative' reads each run relative to its first log point on --horizon points of "
        "the fraction of training: one task-free model from runs of several tasks",
    )
    parser.add_argument(
        "--horizon",
        type=int,
        default=50,
        metavar="H",
        help="controlled, relative features: points of the model's grid (default 50)",
    )


def _show_defaults(parser: argparse.ArgumentParser) -> None:
    for action in parser._actions:  # show every default in --help
        shown = action.default is not None and action.default is not False
        if shown and action.default is not argparse.SUPPRESS and action.help:
            if "%(default)" not in action.help and "default" not in action.help:
                action.help += " (default: %(default)s)"


def _fail(message: str) -> int:
    print(f"keras-lode train: error: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    try:
        from keras_lode.train import fit as _  # noqa: F401  (checks torch + torchdiffeq)
    except ImportError as e:
        return _fail(str(e))
    from keras_lode.train.evaluate import format_table
    from keras_lode.train.trainer import export, fit

    if args.synthetic is not None:
        if args.runs:
            return _fail("give either RUNS or --synthetic N, not both")
        from keras_lode.runs.synthetic import synthetic_runs

        try:
            runs = synthetic_runs(args.synthetic, points=args.synthetic_points, seed=args.seed)
            runs += _synthetic_switched(runs, args.synthetic_switched, args.seed)
        except ValueError as e:
            return _fail(str(e))
    else:
        if not args.runs:
            return _fail("no RUNS given (run files or directories), and no --synthetic N")
        from keras_lode.runs import load_runs

        try:
            runs = load_runs(args.runs)
        except (OSError, ValueError) as e:
            return _fail(str(e))
        if not runs:
            return _fail(f"no run files (*.run.csv) found in {', '.join(args.runs)}")
    if args.kind == "controlled":
        return _run_controlled(args, runs)
    print(f"Training a LODE on {len(runs)} run(s).", file=sys.stderr)
    try:
        model, report = fit(
            runs,
            window=args.window or 30,
            hidden=args.hidden or 20,
            latent=args.latent,
            state=args.state or 20,
            width=args.width or 20,
            depth=args.depth,
            step_size=args.step_size,
            alpha=args.alpha,
            max_steps=args.max_steps,
            batch_size=args.batch_size or 32,
            lr=args.lr,
            val_fraction=args.val_fraction,
            patience=args.patience,
            eval_every=args.eval_every,
            seed=args.seed,
            threads=args.threads,
            progress=not args.no_progress,
        )
    except (TypeError, ValueError) as e:
        return _fail(str(e))
    metadata = {"task": args.task} if args.task else None
    try:
        export(model, report, args.output, metadata=metadata)
    except (OSError, ValueError) as e:
        return _fail(f"could not write {args.output}: {e}")
    t = report.training
    if t["skipped"]:
        print(report_skipped(t))
    print(
        f"Trained on {t['n_train']} run(s), validated on {t['n_val']}: {t['steps']} steps "
        f"(best {t['best_step']}), {t['wall_time_s']:.1f} s, validation MSE {t['val_mse']:.4f}."
    )
    if t["extrapolation"] is not None:
        print(format_table(t["extrapolation"]))
    print(f"Wrote {args.output}")
    if args.report:
        from keras_lode._json import write_json

        # Strict JSON (a NaN metric is null), not report.to_json(), which writes bare NaN.
        write_json(args.report, {"training": report.training, "history": report.history}, 2)
    return 0


def report_skipped(training: dict) -> str:
    """The line saying how many runs were skipped and why."""
    skipped = training["skipped"]
    reasons = ", ".join(f"{v} {k}" for k, v in sorted(skipped.items()))
    return f"Skipped {sum(skipped.values())} of {training['n_runs']} runs: {reasons}."


def _synthetic_switched(runs, n, seed):
    """N synthetic switched runs drawn over the synthetic sweep's grid (as a sweep would)."""
    if not n:
        return []
    from keras_lode.experiments.grid import make_switched_trials
    from keras_lode.runs.synthetic import synthetic_switched_runs

    families = sorted({r.meta["schedule"] for r in runs})
    lrs = sorted({r.meta["peak_lr"] for r in runs})
    seeds = sorted({r.meta["seed"] for r in runs})
    k, p = len(runs[0]), runs[0].points_per_epoch
    trials = make_switched_trials(families, lrs, seeds, runs=n, points=k, seed=seed)
    return synthetic_switched_runs(trials, points=k, points_per_epoch=p)


def _run_controlled(args, runs) -> int:
    from keras_lode.train.ensemble import fit_controlled

    holdout = None
    if args.holdout_seeds:
        try:
            holdout = [int(v) for v in args.holdout_seeds.split(",") if v.strip()]
        except ValueError:
            return _fail(f"--holdout-seeds must be comma-separated ints: {args.holdout_seeds!r}")
    switched = sum(1 for r in runs if r.meta.get("switch"))
    print(
        f"Training a controlled ensemble of {args.members} on {len(runs)} run(s) "
        f"({switched} switched).",
        file=sys.stderr,
    )
    if not switched:
        print(
            "note: no switched runs (keras-lode sweep --switched N): the ensemble sees no "
            "mid-run LR change and may misjudge one.",
            file=sys.stderr,
        )
    try:
        result = fit_controlled(
            runs,
            members=args.members,
            holdout_seeds=holdout,
            window=args.window or 10,
            hidden=args.hidden or 24,
            state=args.state or 24,
            width=args.width or 32,
            depth=args.depth,
            step_size=args.step_size,
            steps=args.max_steps,
            batch_size=args.batch_size or 64,
            lr=args.lr,
            seed=args.seed,
            workers=args.workers,
            verbose=not args.no_progress,
            features=args.features,
            horizon=args.horizon,
            resample=args.resample,
        )
    except (TypeError, ValueError) as e:
        return _fail(str(e))
    metadata = {"task": args.task} if args.task else {}
    try:
        result.export(args.output, **metadata)
    except (OSError, ValueError) as e:
        return _fail(f"could not write {args.output}: {e}")
    t = result.training
    if args.no_progress:  # fit_controlled printed the skill table otherwise
        from keras_lode.train.decision import format_skill

        print(format_skill(t["decision"], t["calibration"]))
    print(
        f"Trained {args.members} members on {t['n_train']} run(s), calibrated on "
        f"{t['n_heldout']} held-out run(s) of seed(s) {t['heldout_seeds']}: "
        f"{t['wall_time_s']:.1f} s."
    )
    print(f"Wrote {args.output}")
    if args.report:
        from keras_lode._json import write_json

        write_json(args.report, t, indent=2)  # strict JSON: a NaN metric is null
    return 0
