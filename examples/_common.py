"""Command-line plumbing shared by the examples (kept out of the examples' main logic)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

# The LODE and the baselines (the paper's four, linear decay and WSD), in --help's order.
SCHEDULES = ("lode", "cosine", "onecycle", "step", "constant", "linear", "wsd")
ROOT = Path(__file__).resolve().parent.parent


def parser(
    description: str, default_model: str, *, warmup: str = "constant", peak_lr: float = 3e-3
) -> argparse.ArgumentParser:
    """The examples' options. `warmup` and `peak_lr` default to the best baseline of the sweep
    behind the example's shipped model, which the LODE follows until its first plan (and
    which the control planner keeps unless a candidate is predicted to beat it)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument(
        "--schedule",
        choices=SCHEDULES,
        default="lode",
        help="LR schedule: the LODE or a parametric baseline (default: lode)",
    )
    p.add_argument(
        "--peak-lr",
        type=float,
        default=peak_lr,
        help=f"peak LR of a baseline; warm-up peak LR of the LODE (default: {peak_lr:g})",
    )
    p.add_argument(
        "--model",
        default=str(ROOT / default_model),
        help=f"LODE model file for --schedule lode (default: {default_model})",
    )
    p.add_argument(
        "--warmup",
        choices=SCHEDULES[1:],
        default=warmup,
        help=f"schedule (at --peak-lr) the LODE follows until its first plan (default: {warmup})",
    )
    p.add_argument(
        "--quick", action="store_true", help="seconds-long smoke run: tiny subset, 1 epoch"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=None, help="override the task's epochs")
    p.add_argument("--json", default=None, help="write the run's measurements to this JSON file")
    return p


def run(task: str, args, verbose: int = 2) -> dict:
    from keras_lode.experiments import Method, train_one, write_json
    from keras_lode.tasks import get_task

    overrides = {"epochs": args.epochs} if args.epochs else {}
    spec = get_task(task, scale="quick" if args.quick else "cpu", **overrides)
    if args.schedule == "lode":
        method = Method(
            "lode", peak_lr=args.peak_lr, model=args.model, options={"warmup_family": args.warmup}
        )
    else:
        method = Method(args.schedule, peak_lr=args.peak_lr)
    import keras

    print(
        f"{task}: schedule={method.label} backend={keras.backend.backend()} "
        f"scale={spec.scale} epochs={spec.epochs}"
    )
    result = train_one(spec, method, seed=args.seed, verbose=0 if args.quick else verbose)
    for e in result["epochs"]:
        print(
            f"Epoch {e['epoch']}: train loss {e['train_loss']:.4f}  "
            f"val {spec.metric_name} {e['val_metric']:.4f}  test {e['test_metric']:.4f}"
        )
    print(
        f"test {spec.metric_name} at best validation epoch ({result['best_epoch']}): "
        f"{result['test_at_best_val']:.4f}; at the end: {result['test_at_end']:.4f}; "
        f"{result['wall_s']:.1f} s"
    )
    if args.json:
        write_json(args.json, result)
    return result


os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
