"""`keras-lode demo`: the main job — Fashion-MNIST CNN with the shipped LODE vs the best baseline.

Trains the small Fashion-MNIST CNN twice per seed on a CPU-sized budget — once with the
LODE shipped in `models/fmnist_cnn.npz`, once with the best baseline of the sweep it was
trained on — prints the comparison table and writes a PNG with both LR schedules and the
validation/test accuracy curves.
"""

from __future__ import annotations

HELP = "main job: Fashion-MNIST CNN with the shipped LODE vs the best baseline; table + plot"

# The best baseline of the sweep behind models/fmnist_cnn.npz: highest mean (over the sweep's
# 2 seeds) best validation accuracy of its 4 families x 3 peak LRs, 88.87% (see
# models/fmnist_cnn.md and benchmarks/results/quality_fmnist_cnn_cpu.json).
BEST_BASELINE = "cosine@1e-2"


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

    model = args.model or default_model("fmnist_cnn")
    try:
        if model is None or not Path(model).is_file():
            raise FileNotFoundError(
                f"LODE model file not found: {model or 'models/fmnist_cnn.npz'}. Run the demo "
                "from the repository root or pass --model PATH."
            )
        seeds = parse_seeds(args.seeds)
        family, _, peak = args.baseline.partition("@")
        # The LODE warms up on the baseline's own schedule until its first plan, so the
        # two runs differ only in what the LODE plans.
        methods = parse_methods(
            f"lode@{peak or '1e-3'},{args.baseline}", model, None, lode_warmup=family
        )
        overrides = {"epochs": args.epochs} if args.epochs else {}
        if args.quick:
            # Enough steps per epoch for the model's P log points; the LODE will not get
            # to plan in one short epoch: this checks the plumbing, not the schedule.
            overrides.update(
                points_per_epoch=10, data_args=dict(n_train=1280, n_val=256, n_test=256)
            )
        task = get_task("fmnist_cnn", scale="quick" if args.quick else "cpu", **overrides)
        keras = import_keras("keras-lode demo", quiet=True)
    except (ValueError, FileNotFoundError, ImportError) as e:
        print(f"keras-lode demo: error: {e}", file=sys.stderr)
        return 2

    print(
        f"keras-lode demo: Fashion-MNIST CNN, {task.epochs} epochs, "
        f"{task.data_args.get('n_train') or 'all'} training images, backend "
        f"{keras.backend.backend()}, seeds {seeds}; LODE {model} vs {methods[1].label}"
    )
    results = run_comparison(task, methods, seeds)
    print()
    print(format_table(results, reference="lode"))
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
            "summary": summarize(results, "lode"),
            "results": results,
        },
    )
    png = plot_comparison(
        results, out / "demo.png", title=f"Fashion-MNIST CNN: LODE vs {methods[1].label}"
    )
    print(f"wrote {out / 'demo.json'} and {png}")
    return 0
