"""`keras-lode train RUNS -o model.npz`: train a LODE on a sweep and export it.

Loads the runs (a run file, a directory of them, or several), trains
`keras_lode.train.LatentODE` with `keras_lode.train.fit`, writes the pickle-free
model file and prints the extrapolation table (model vs the two naive predictors
on held-out runs). `--synthetic N` trains on N synthetic runs instead (a demo
that needs no sweep). Nothing heavy is imported at module level.
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
    parser.add_argument("--window", type=int, default=30, help="context window W (log points)")
    parser.add_argument("--hidden", type=int, default=20, help="GRU hidden size")
    parser.add_argument("--latent", type=int, default=20, help="latent size")
    parser.add_argument("--state", type=int, default=20, help="ODE state size")
    parser.add_argument("--width", type=int, default=20, help="MLP width")
    parser.add_argument("--depth", type=int, default=2, help="MLP hidden layers")
    parser.add_argument(
        "--step-size", type=float, default=0.5, help="RK4 step (a run spans 10 time units)"
    )
    parser.add_argument("--alpha", type=float, default=0.01, help="weight of the path length")
    parser.add_argument("--max-steps", type=int, default=1500, help="optimizer steps at most")
    parser.add_argument("--batch-size", type=int, default=32, help="windows per step")
    parser.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate")
    parser.add_argument("--val-fraction", type=float, default=0.2, help="share of runs held out")
    parser.add_argument("--patience", type=int, default=8, help="evaluations without progress")
    parser.add_argument("--eval-every", type=int, default=50, help="steps between evaluations")
    parser.add_argument("--seed", type=int, default=0, help="seed (split, windows, weights)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--task", help="task name stored in the model file's metadata")
    parser.add_argument("--report", metavar="PATH", help="also write the training report (JSON)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


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
    print(f"Training a LODE on {len(runs)} run(s).", file=sys.stderr)
    try:
        model, report = fit(
            runs,
            window=args.window,
            hidden=args.hidden,
            latent=args.latent,
            state=args.state,
            width=args.width,
            depth=args.depth,
            step_size=args.step_size,
            alpha=args.alpha,
            max_steps=args.max_steps,
            batch_size=args.batch_size,
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
        with open(args.report, "w", encoding="utf-8") as f:
            f.write(report.to_json())
    return 0


def report_skipped(training: dict) -> str:
    """The line saying how many runs were skipped and why."""
    skipped = training["skipped"]
    reasons = ", ".join(f"{v} {k}" for k, v in sorted(skipped.items()))
    return f"Skipped {sum(skipped.values())} of {training['n_runs']} runs: {reasons}."
