"""`keras-lode compare`: train a task with the LODE and baselines over seeds, tabulate, plot."""

from __future__ import annotations

HELP = "train a task with the LODE and baseline schedules over seeds; print a table, write JSON+PNG"


# The README's baselines for the default task (fmnist_cnn at CPU scale), from the sweep behind
# the shipped LODE: WSD @ 0.006 has the best sweep validation accuracy (the best baseline, as
# in `keras-lode demo`), one-cycle @ 0.012 the second best. The LODE warms up on WSD @ 0.006.
DEFAULT_METHODS = "lode@0.006,wsd@0.006,onecycle@0.012"
DEFAULT_LODE_WARMUP = "wsd"


def add_arguments(parser) -> None:
    parser.add_argument(
        "--task",
        default="fmnist_cnn",
        help="a built-in task name (fmnist_cnn, fmnist_resnet, cifar10_resnet, "
        "cifar100_resnet, text_gpt) or your own task, given as to `keras-lode sweep`: "
        "'path/to/file.py:attr' or 'module:attr' (a Task or a factory returning one); "
        "default fmnist_cnn",
    )
    parser.add_argument(
        "--scale",
        default=None,
        choices=("quick", "cpu", "full"),
        help="scale of a built-in task (default cpu)",
    )
    parser.add_argument(
        "--methods",
        default=DEFAULT_METHODS,
        help="comma-separated methods: lode[@WARMUP_LR], FAMILY@PEAK_LR "
        "(cosine, onecycle, step, constant, linear, wsd), replay, retrieval "
        f"(default: {DEFAULT_METHODS}: the LODE against the README's baselines on "
        "fmnist_cnn, WSD @ 0.006, the best schedule of the shipped LODE's sweep, and "
        "one-cycle @ 0.012, the second best; for another task pass its best LRs)",
    )
    parser.add_argument(
        "--model",
        default=None,
        help="LODE model file (default: the task's own model_file or its shipped model in "
        "models/; your own task needs one for the lode method)",
    )
    parser.add_argument(
        "--lode-warmup",
        default=DEFAULT_LODE_WARMUP,
        help="schedule family the LODE follows (at its @LR) until its first plan "
        f"(default {DEFAULT_LODE_WARMUP}, as in `keras-lode demo`)",
    )
    parser.add_argument(
        "--runs", default=None, help="directory of sweep runs for the replay/retrieval methods"
    )
    parser.add_argument(
        "--seeds", default="100,101,102", help="comma-separated seeds (default 100,101,102)"
    )
    parser.add_argument(
        "--epochs", type=int, default=None, help="override the task's epochs (default: the task's)"
    )
    parser.add_argument(
        "--out",
        default="compare_out",
        help="output directory for results.json and compare.png (default compare_out)",
    )
    parser.add_argument("--verbose", type=int, default=0, help="model.fit verbosity (default 0)")


def resolve_task(spec: str, scale: str | None = None, epochs: int | None = None):
    """The task of `--task`: a built-in name at `scale` (default cpu), or a task spec as
    `keras-lode sweep` takes it (`keras_lode.experiments.load_task`)."""
    import dataclasses

    from keras_lode.experiments import load_task
    from keras_lode.tasks import get_task

    if ":" not in spec:
        return get_task(spec, scale=scale or "cpu", **({"epochs": epochs} if epochs else {}))
    task = load_task(spec, scale)
    return dataclasses.replace(task, epochs=epochs) if epochs else task


def default_model_for(task) -> str | None:
    """The task's own LODE file (`Task.model_file`) if it exists, else its shipped model."""
    from pathlib import Path

    from keras_lode.experiments import default_model

    if task.model_file and Path(task.model_file).is_file():
        return str(task.model_file)
    return default_model(task.name)


def run(args) -> int:
    import os
    import sys
    from pathlib import Path

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from keras_lode._backend import import_keras
    from keras_lode.commands.arguments import parse_seeds
    from keras_lode.experiments import (
        format_table,
        parse_methods,
        plot_comparison,
        run_comparison,
        summarize,
        write_json,
    )

    try:
        seeds = parse_seeds(args.seeds)
        import_keras("keras-lode compare", quiet=True)
        task = resolve_task(args.task, args.scale, args.epochs)
        model = args.model or default_model_for(task)
        kinds = [m.strip().partition("@")[0] for m in str(args.methods).split(",")]
        if model is None and "lode" in kinds:
            raise ValueError(
                f"no LODE model file for task {task.name!r}: pass --model PATH (train one on "
                "the task's sweep with `keras-lode train`), or leave lode out of --methods."
            )
        methods = parse_methods(args.methods, model, args.runs, args.lode_warmup)
    except (ValueError, TypeError, FileNotFoundError, ImportError) as e:
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
    title = f"{task.name} ({task.scale})" if task.scale else task.name
    png = plot_comparison(results, out / "compare.png", title=title)
    print(f"wrote {out / 'results.json'} and {png}")
    return 0
