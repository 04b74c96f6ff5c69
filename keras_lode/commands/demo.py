"""`keras-lode demo`: the main job — Fashion-MNIST CNN with the shipped LODE vs the best baseline.

Trains the small Fashion-MNIST CNN twice per seed on a CPU-sized budget — once with the
LODE shipped in `models/fmnist_cnn.npz`, once with the best baseline of the sweep it was
trained on — prints the comparison table and writes a PNG with both LR schedules and the
validation/test accuracy curves.

`--no-sweep` shows what a user without a sweep meets instead: the CNN on AdamW's Keras
default 1e-3 held constant, the same with `ReduceLROnPlateau`, and the same with
`LODECallback()` and no model file (the pretrained zoo model), on paired seeds.
"""

from __future__ import annotations

HELP = "main job: Fashion-MNIST CNN with the shipped LODE vs the best baseline; table + plot"

# The best baseline of the sweep behind models/fmnist_cnn.npz: highest mean (over the sweep's
# 4 seeds) best validation accuracy of its 6 families x 5 peak LRs, 89.14% (see
# models/fmnist_cnn.md and benchmarks/results/quality_fmnist_cnn_cpu.json).
BEST_BASELINE = "wsd@0.006"
#: Keras' default LR of the CNN's optimizer (AdamW): where a user without a sweep starts.
NO_SWEEP_LR = 1e-3


def add_arguments(parser) -> None:
    parser.add_argument(
        "--model", default=None, help="LODE model file (default: models/fmnist_cnn.npz)"
    )
    parser.add_argument(
        "--baseline",
        default=BEST_BASELINE,
        help=f"baseline method FAMILY@PEAK_LR (default: {BEST_BASELINE}, the "
        "best schedule of the model's sweep)",
    )
    parser.add_argument(
        "--seeds",
        default="100",
        help="comma-separated seeds, one run per method each (default 100)",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="override the epochs (default: the model's training horizon)",
    )
    parser.add_argument(
        "--no-sweep",
        action="store_true",
        help=f"no sweep of your own: constant AdamW {NO_SWEEP_LR:g}, the same with "
        "ReduceLROnPlateau, and the same with LODECallback() (the pretrained zoo model)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="seconds-long smoke run on a tiny subset (checks the plumbing only)",
    )
    parser.add_argument(
        "--out",
        default="demo_out",
        help="output directory for demo.json and demo.png (default demo_out)",
    )


def run(args) -> int:
    import os
    import sys
    from pathlib import Path

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from keras_lode._backend import import_keras
    from keras_lode.commands.arguments import parse_seeds
    from keras_lode.experiments import (
        default_model,
        format_table,
        parse_methods,
        plot_comparison,
        run_comparison,
        summarize,
        write_json,
    )
    from keras_lode.pretrained import zoo_model_path
    from keras_lode.tasks import get_task

    model = args.model or (str(zoo_model_path()) if args.no_sweep else default_model("fmnist_cnn"))
    try:
        if model is None or not Path(model).is_file():
            raise FileNotFoundError(
                f"LODE model file not found: {model or 'models/fmnist_cnn.npz'}. Run the demo "
                "from the repository root or pass --model PATH."
            )
        seeds = parse_seeds(args.seeds)
        methods = _methods(args, model, parse_methods)
        task = get_task(
            "fmnist_cnn", scale="quick" if args.quick else "cpu", **_overrides(args, model)
        )
        keras = import_keras("keras-lode demo", quiet=True)
    except (ValueError, OSError, ImportError) as e:
        print(f"keras-lode demo: error: {e}", file=sys.stderr)
        return 2

    print(
        f"keras-lode demo: Fashion-MNIST CNN, {task.epochs} epochs, "
        f"{task.data_args.get('n_train') or 'all'} training images, backend "
        f"{keras.backend.backend()}, seeds {seeds}; LODE {model} vs {methods[1].label}"
    )
    from keras_lode.experiments.stats import format_lode_runs, lode_results
    from keras_lode.tasks.datasets import DatasetUnavailable

    try:
        results = run_comparison(task, methods, seeds)
    except DatasetUnavailable as e:  # the message says how to get the data: it is the output
        print(f"keras-lode demo: error: {e}", file=sys.stderr)
        return 2
    note = difference_note(results, methods[1].label, args.quick)
    reference = None if note else "lode"
    print()
    print(format_table(results, reference=reference))
    if note:
        print(note)
    print(format_lode_runs(results, methods[1].label))
    out = Path(args.out)
    write_json(
        out / "demo.json",
        {
            "task": task.name,
            "scale": task.scale,
            "epochs": task.epochs,
            "seeds": seeds,
            "model": model,
            "baseline": methods[1].label,
            "no_sweep": bool(args.no_sweep),
            "quick": bool(args.quick),
            "lode_plans": [r["lode"]["plans"] for r in lode_results(results)],
            "difference_reported": note is None,
            "note": note,
            "summary": summarize(results, reference),
            "results": results,
        },
    )
    png = plot_comparison(
        results, out / "demo.png", title=f"Fashion-MNIST CNN: LODE vs {methods[1].label}"
    )
    print(f"wrote {out / 'demo.json'} and {png}")
    return 0


def _methods(args, model: str, parse_methods) -> list:
    """The LODE, then the baseline(s): the best of the model's sweep, or with `--no-sweep`
    the constant default and the same with ReduceLROnPlateau. The LODE warms up on the
    (first) baseline's own schedule until its first plan, so the runs differ only in what
    the LODE plans."""
    if args.no_sweep and args.baseline != BEST_BASELINE:
        raise ValueError("--baseline does not apply with --no-sweep (its baselines are fixed)")
    family, _, peak = args.baseline.partition("@")
    baseline = args.baseline
    if args.no_sweep:
        family, peak = "constant", f"{NO_SWEEP_LR:g}"
        baseline = f"constant@{peak},plateau@{peak}"
    return parse_methods(f"lode@{peak or '1e-3'},{baseline}", model, None, lode_warmup=family)


def _overrides(args, model: str) -> dict:
    """The task's overrides: `--epochs`; with `--quick` a tiny subset, but the model's whole
    horizon at its P (5 epochs of 10 log points for the shipped model, as for a task-free
    one, which reads any run), so that the LODE does replan: the plumbing checked includes
    planning and following the plan."""
    import math

    from keras_lode.model import load_model
    from keras_lode.model.features import is_task_free

    overrides = {"epochs": args.epochs} if args.epochs else {}
    if args.quick:
        lode = load_model(model)
        free = is_task_free(lode)
        p = 10 if free else int(lode.points_per_epoch or 10)
        overrides.setdefault("epochs", max(1, math.ceil((50 if free else lode.horizon) / p)))
        overrides.update(points_per_epoch=p, data_args=dict(n_train=1280, n_val=256, n_test=256))
    return overrides


def difference_note(results: list[dict], baseline: str, quick: bool) -> str | None:
    """Why the demo reports no LODE - baseline difference, or None when it reports one.

    A LODE run that never planned followed the baseline's own schedule throughout, so the
    two runs compare nothing; a `--quick` run is a plumbing check on 1,280 images.
    """
    from keras_lode.experiments.stats import lode_results

    lode = [r["lode"] for r in lode_results(results)]
    planned = [s["plans"] - s["fallbacks"] for s in lode]
    if not planned or max(planned) == 0:
        s = lode[0] if lode else {"window": "?", "total_points": "?"}
        return (
            f"No difference reported: the LODE did not replan (window of {s['window']} log "
            f"points, a run of {s['total_points']}), so it stayed on its warm-up, "
            f"{baseline}'s schedule, and the two runs compare nothing."
        )
    if quick:
        return (
            f"No difference reported: --quick checks the plumbing (the LODE made "
            f"{sum(planned)} plan(s) over {len(planned)} run(s)); a run on 1,280 images does "
            "not compare the schedules. Run without --quick for that."
        )
    return None
