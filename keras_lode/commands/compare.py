"""`keras-lode compare`: train a task with the LODE and baselines over seeds, tabulate, plot."""

from __future__ import annotations

HELP = "train a task with the LODE and baseline schedules over seeds; print a table, write JSON+PNG"


def add_arguments(parser) -> None:
    parser.add_argument(
        "--task",
        default="fmnist_cnn",
        help="task name (fmnist_cnn, fmnist_resnet, cifar10_resnet, "
        "cifar100_resnet, text_gpt); default fmnist_cnn",
    )
    parser.add_argument(
        "--scale", default="cpu", choices=("quick", "cpu", "full"), help="task scale (default cpu)"
    )
    parser.add_argument(
        "--methods",
        default="lode,onecycle@3e-3,cosine@3e-3",
        help="comma-separated methods: lode[@WARMUP_LR], FAMILY@PEAK_LR "
        "(cosine, onecycle, step, constant), replay, retrieval "
        "(default: lode,onecycle@3e-3,cosine@3e-3)",
    )
    parser.add_argument(
        "--model",
        default=None,
        help="LODE model file (default: the task's shipped model in models/)",
    )
    parser.add_argument(
        "--lode-warmup",
        default="constant",
        help="schedule family the LODE follows (at its @LR) until its first plan "
        "(default constant)",
    )
    parser.add_argument(
        "--runs", default=None, help="directory of sweep runs for the replay/retrieval methods"
    )
    parser.add_argument(
        "--seeds", default="100,101,102", help="comma-separated seeds (default 100,101,102)"
    )
    parser.add_argument("--epochs", type=int, default=None, help="override the task's epochs")
    parser.add_argument(
        "--out", default="compare_out", help="output directory for results.json and compare.png"
    )
    parser.add_argument("--verbose", type=int, default=0, help="model.fit verbosity")


def run(args) -> int:
    import os
    import sys
    from pathlib import Path

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from keras_lode._backend import import_keras
    from keras_lode.commands._args import parse_seeds
    from keras_lode.experiments import (
        default_model,
        format_table,
        parse_methods,
        plot_comparison,
        run_comparison,
        summarize,
        write_json,
    )
    from keras_lode.tasks import get_task

    try:
        seeds = parse_seeds(args.seeds)
        model = args.model or default_model(args.task)
        methods = parse_methods(args.methods, model, args.runs, args.lode_warmup)
        overrides = {"epochs": args.epochs} if args.epochs else {}
        import_keras("keras-lode compare", quiet=True)
        task = get_task(args.task, scale=args.scale, **overrides)
    except (ValueError, FileNotFoundError, ImportError) as e:
        print(f"keras-lode compare: error: {e}", file=sys.stderr)
        return 2
    results = run_comparison(task, methods, seeds, verbose=args.verbose)
    out = Path(args.out)
    lode = next((m.label for m in methods if m.kind == "lode"), None)
    print(format_table(results, reference=lode))
    write_json(
        out / "results.json",
        {
            "task": task.name,
            "scale": task.scale,
            "epochs": task.epochs,
            "seeds": seeds,
            "methods": [m.label for m in methods],
            "model": model,
            "summary": summarize(results, lode),
            "summary_end": summarize(results, lode, "test_at_end"),
            "results": results,
        },
    )
    png = plot_comparison(results, out / "compare.png", title=f"{task.name} ({task.scale})")
    print(f"wrote {out / 'results.json'} and {png}")
    return 0
