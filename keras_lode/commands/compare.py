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


def parse_seeds(text: str) -> list[int]:
    """Parses `"1,2,3"` into `[1, 2, 3]` (raises ValueError naming the argument)."""
    try:
        seeds = [int(s) for s in str(text).split(",") if s.strip()]
    except ValueError as e:
        raise ValueError(
            f"Argument `--seeds` must be comma-separated integers. Received: {text!r}"
        ) from e
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"Argument `--seeds` must list distinct integers. Received: {text!r}")
    return seeds


def parse_methods(
    text: str, model: str | None, runs_dir: str | None, lode_warmup: str = "constant"
):
    """Parses the `--methods` list into `keras_lode.compare.Method`s."""
    from keras_lode import compare

    methods = []
    runs = None
    for item in [m.strip() for m in str(text).split(",") if m.strip()]:
        kind, _, lr = item.partition("@")
        if kind not in compare.METHOD_KINDS:
            raise ValueError(
                f"Argument `--methods`: unknown method {kind!r} in {text!r}. "
                f"Expected some of {compare.METHOD_KINDS}."
            )
        peak = None
        if lr:
            try:
                peak = float(lr)
            except ValueError as e:
                raise ValueError(
                    f"Argument `--methods`: {item!r} has a bad LR {lr!r}; expected e.g. "
                    "cosine@3e-3."
                ) from e
        if kind in ("replay", "retrieval"):
            if runs_dir is None:
                raise ValueError(f"Method {kind!r} needs `--runs DIR` (the sweep's runs).")
            if runs is None:
                runs = best_first(runs_dir)
            methods.append(compare.Method(kind, runs=runs))
        elif kind == "lode":
            if lode_warmup not in compare.FAMILIES:
                raise ValueError(
                    f"Argument `--lode-warmup` must be one of {compare.FAMILIES}. "
                    f"Received: {lode_warmup!r}"
                )
            methods.append(
                compare.Method(
                    "lode", peak_lr=peak, model=model, options={"warmup_family": lode_warmup}
                )
            )
        else:
            methods.append(compare.Method(kind, peak_lr=peak))
    if not methods:
        raise ValueError(f"Argument `--methods` is empty. Received: {text!r}")
    return methods


def best_first(runs_dir: str):
    """Loads the complete runs of a sweep, best final validation metric first."""
    import math

    from keras_lode import load_runs

    runs = [r for r in load_runs(runs_dir) if r.status == "complete"]
    if not runs:
        raise ValueError(f"No complete runs in --runs {runs_dir!r}.")

    def score(r):
        m = [v for v in r.metric if math.isfinite(v)]
        return max(m) if m else -math.inf

    return sorted(runs, key=score, reverse=True)


def default_model(task: str) -> str | None:
    """Path of the task's shipped model: `models/` under the cwd or next to the package."""
    from pathlib import Path

    import keras_lode

    name = f"{task}.npz"
    for root in (Path.cwd(), Path(keras_lode.__file__).resolve().parent.parent):
        p = root / "models" / name
        if p.is_file():
            return str(p)
    return None


def run(args) -> int:
    import os
    import sys
    from pathlib import Path

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from keras_lode import compare
    from keras_lode.tasks import get_task

    try:
        seeds = parse_seeds(args.seeds)
        model = args.model or default_model(args.task)
        methods = parse_methods(args.methods, model, args.runs, args.lode_warmup)
        overrides = {"epochs": args.epochs} if args.epochs else {}
        spec = get_task(args.task, scale=args.scale, **overrides)
    except (ValueError, FileNotFoundError) as e:
        print(f"keras-lode compare: error: {e}", file=sys.stderr)
        return 2
    results = run_comparison(spec, methods, seeds, verbose=args.verbose)
    out = Path(args.out)
    lode = next((m.label for m in methods if m.kind == "lode"), None)
    print(compare.format_table(results, reference=lode))
    compare.write_json(
        out / "results.json",
        {
            "task": spec.name,
            "scale": spec.scale,
            "epochs": spec.epochs,
            "seeds": seeds,
            "methods": [m.label for m in methods],
            "model": model,
            "summary": compare.summarize(results, lode),
            "summary_end": compare.summarize(results, lode, "test_at_end"),
            "results": results,
        },
    )
    png = compare.plot(results, out / "compare.png", title=f"{spec.name} ({spec.scale})")
    print(f"wrote {out / 'results.json'} and {png}")
    return 0


def run_comparison(spec, methods, seeds, verbose=0) -> list[dict]:
    """Trains every method on every seed (data loaded once) and returns the results."""
    from keras_lode import compare

    data = spec.load_data(seed=0)
    results = []
    for seed in seeds:
        for m in methods:
            r = compare.train_one(spec, m, seed=seed, data=data, verbose=verbose)
            print(
                f"  {m.label:<20} seed {seed}: test@best-val {100 * r['test_at_best_val']:.2f}"
                f"  test@end {100 * r['test_at_end']:.2f}  ({r['wall_s']:.0f} s)",
                flush=True,
            )
            results.append(r)
    return results
