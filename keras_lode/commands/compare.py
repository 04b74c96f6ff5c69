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
        default=None,
        help="comma-separated methods: lode[@WARMUP_LR], FAMILY@PEAK_LR "
        "(cosine, onecycle, step, constant, linear, wsd), replay, retrieval "
        "(default: with --runs, the LODE and the sweep's best config per family by "
        f"validation; without, on fmnist_cnn only, {DEFAULT_METHODS}: the LODE against the "
        "README's baselines, WSD @ 0.006, the best schedule of the shipped LODE's sweep, and "
        "one-cycle @ 0.012, the second best; any other task needs --runs or --methods)",
    )
    parser.add_argument(
        "--model",
        default=None,
        help="LODE model file (default: the task's own model_file or its shipped model in "
        "models/; your own task needs one for the lode method)",
    )
    parser.add_argument(
        "--lode-warmup",
        default=None,
        help="schedule family the LODE follows (at its @LR) until its first plan; the paired "
        "row compares the LODE with that family at that LR (default: the best family of "
        "--runs; else the first family of --methods at the LODE's LR; else "
        f"{DEFAULT_LODE_WARMUP}, as in `keras-lode demo`)",
    )
    parser.add_argument(
        "--runs",
        default=None,
        help="directory of the task's sweep runs: the default methods (best config per "
        "family by validation) and the runs of the replay/retrieval methods",
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


def choose_methods(args, task) -> tuple[str, str, str | None]:
    """The `--methods` text, the LODE's warm-up family and a note saying where they came from.

    Own methods (`--methods`) are taken as given; without them the task's sweep (`--runs`)
    gives its best config per family by validation, and the LODE warms up on the best one;
    fmnist_cnn alone has defaults without `--runs` (the README's baselines).

    Raises:
        ValueError: no `--methods`, no `--runs` and a task other than fmnist_cnn.
    """
    from keras_lode.constants import FAMILIES

    warmup = args.lode_warmup
    if args.methods:
        if warmup is None:  # the first baseline at the LODE's LR, else the default
            items = [m.strip().partition("@") for m in args.methods.split(",")]
            lode_lr = next((lr for k, _, lr in items if k == "lode"), "")
            same_lr = [k for k, _, lr in items if k in FAMILIES and _same_lr(lr, lode_lr)]
            warmup = (same_lr or [DEFAULT_LODE_WARMUP])[0]
        return args.methods, warmup, None
    if args.runs:
        from keras_lode.experiments.best import best_per_family
        from keras_lode.runs import load_runs

        runs = load_runs(args.runs, kind="grid", status="complete")
        own = [r for r in runs if r.meta.get("task") == task.name]
        best = best_per_family(own or runs)
        if not best:
            raise ValueError(
                f"--runs {args.runs!r} holds no complete grid run with a finite validation "
                "metric to take the methods from; pass --methods."
            )
        by_family = {b["family"]: b for b in best}
        if warmup is not None and warmup not in by_family:
            raise ValueError(
                f"Argument `--lode-warmup` must be a family of --runs {args.runs!r} "
                f"({', '.join(by_family)}). Received: {warmup!r}"
            )
        lode = by_family[warmup or best[0]["family"]]
        text = ",".join([f"lode@{lode['peak_lr']:g}"] + [b["label"] for b in best])
        note = (
            f"methods from --runs {args.runs}: the sweep's best config per family by "
            f"validation ({', '.join(b['label'] for b in best)}); the LODE warms up on "
            f"{lode['label']}"
        )
        return text, lode["family"], note
    if task.name != "fmnist_cnn":
        raise ValueError(
            f"no methods for task {task.name!r}: the default methods ({DEFAULT_METHODS}) are "
            "fmnist_cnn's. Pass --runs DIR (the task's sweep: its best config per family by "
            "validation is compared) or --methods (e.g. lode@3e-3,cosine@3e-3)."
        )
    return DEFAULT_METHODS, warmup or DEFAULT_LODE_WARMUP, None


def _same_lr(a: str, b: str) -> bool:
    try:
        return bool(b) and abs(float(a) - float(b)) <= 1e-12 * max(abs(float(b)), 1e-30)
    except ValueError:
        return False


def warmup_baseline(methods, warmup: str) -> str | None:
    """Label of the baseline the LODE warmed up on (its family at its LR), if compared."""
    from keras_lode.experiments import Method

    lode = next((m for m in methods if m.kind == "lode"), None)
    if lode is None or lode.peak_lr is None:
        return None
    label = Method(warmup, peak_lr=lode.peak_lr).label
    return label if any(m.label == label for m in methods) else None


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
        run_comparison,
        summarize,
        write_json,
    )
    from keras_lode.experiments.stats import format_lode_runs

    try:
        seeds = parse_seeds(args.seeds)
        import_keras("keras-lode compare", quiet=True)
        task = resolve_task(args.task, args.scale, args.epochs)
        text, warmup, note = choose_methods(args, task)
        model = args.model or default_model_for(task)
        kinds = [m.strip().partition("@")[0] for m in str(text).split(",")]
        if model is None and "lode" in kinds:
            raise ValueError(
                f"no LODE model file for task {task.name!r}: pass --model PATH (train one on "
                "the task's sweep with `keras-lode train`), or leave lode out of --methods."
            )
        methods = parse_methods(text, model, args.runs, warmup)
    except (ValueError, TypeError, FileNotFoundError, ImportError) as e:
        print(f"keras-lode compare: error: {e}", file=sys.stderr)
        return 2
    if note:
        print(note, flush=True)
    from keras_lode.tasks.datasets import DatasetUnavailable

    try:
        results = run_comparison(task, methods, seeds, verbose=args.verbose)
    except DatasetUnavailable as e:  # the message says how to get the data
        print(f"keras-lode compare: error: {e}", file=sys.stderr)
        return 2
    out = Path(args.out)
    lode = next((m.label for m in methods if m.kind == "lode"), None)
    base = warmup_baseline(methods, warmup)
    print(format_table(results, reference=lode, baseline=base))
    if lode is not None:
        warm = f"{warmup}@{next(m.peak_lr for m in methods if m.kind == 'lode'):g}"
        if base is None:
            print(
                f"no paired row: the LODE's warm-up baseline ({warm}) is not among the "
                "methods; add it to --methods to see what the LODE's plans changed"
            )
        print(format_lode_runs(results, base or warm))
    write_json(
        out / "results.json",
        {
            "task": task.name,
            "scale": task.scale,
            "epochs": task.epochs,
            "seeds": seeds,
            "methods": [m.label for m in methods],
            "model": model,
            "lode_warmup": warmup,
            "summary": summarize(results, lode, baseline=base),
            "summary_end": summarize(results, lode, "test_at_end", base),
            "results": results,
        },
    )
    print(f"wrote {out / 'results.json'}")
    _plot(results, out / "compare.png", task)
    return 0


def _plot(results, path, task) -> None:
    """The comparison figure, or a one-line note when matplotlib is missing."""
    from keras_lode.experiments import plot_comparison

    title = f"{task.name} ({task.scale})" if task.scale else task.name
    try:
        png = plot_comparison(results, path, title=title)
    except ImportError as e:
        print(f"note: no {path.name} written: {e}")
        return
    print(f"wrote {png}")
