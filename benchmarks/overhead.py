"""Overhead of LODECallback: `fit` with it vs the same fit with a parametric schedule.

Fashion-MNIST CNN (a subset), same data, model and seed in both arms:

- baseline: AdamW with Keras's `CosineDecay` schedule, no callback;
- LODE: AdamW with a `LODESchedule`, plus `LODECallback` (a random NumPy LODE of the
  paper's sizes: hidden 20, latent 20, S=30 samples) measuring the validation metric at
  every log point and replanning every `--replan-every` points;
- same path: AdamW with a `LODESchedule` holding the LR path the LODE arm followed, fixed
  in advance, and no callback. The LR a run follows changes the numbers its kernels see
  (e.g. a cosine decayed to ~0 makes subnormal floats, which are slow on CPU kernels
  that do not flush them), so LODE / same-path is the cost of the callback itself, and
  LODE / baseline the cost of the LODE as a user sees it against that schedule.

An untimed LODE fit first records the path. The arms then rotate their order in each
round; the script reports the ratios of wall times per round and their medians over
rounds, plus the time the callback itself measured (observer + planning). Each backend
runs in its own subprocess (one Keras backend per process). Results go to
`benchmarks/results/overhead.json`. This is a benchmark: it asserts nothing.

Run:

```
python benchmarks/overhead.py --backends tensorflow,jax,torch --pairs 3
```

Timings on a shared machine are noisy: read the per-pair ratios, not only the median.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from pathlib import Path

from _backends import (
    compile_adamw,
    no_tf_autotune,
    paper_lode,
    patch_array_adapter_no_autotune,
    report_header,
    run_workers,
    write_report,
)

RESULTS = Path(__file__).resolve().parent / "results" / "overhead.json"
ARMS = ("baseline", "lode", "same_path")


def _worker(args) -> dict:
    import keras
    import numpy as np

    from keras_lode.callbacks import LODECallback
    from keras_lode.schedules import LODESchedule
    from keras_lode.tasks.cnn import build_cnn
    from keras_lode.tasks.datasets import load_fashion_mnist

    (x, y), _ = load_fashion_mnist()
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(x))
    train, val = idx[: args.train], idx[args.train : args.train + args.val]
    x = (x.astype("float32") / 255.0)[..., None]
    x_train, y_train = x[train], y[train].astype("int64")
    x_val, y_val = x[val], y[val].astype("int64")
    steps = -(-args.train // args.batch_size)
    total_points = args.epochs * args.points_per_epoch
    lode = paper_lode(args.points_per_epoch, total_points)

    path = {}
    if args.plain_dataset:
        import tensorflow as tf

        data = tf.data.Dataset.from_tensor_slices((x_train, y_train)).batch(args.batch_size)
        if args.no_autotune:
            data = data.with_options(no_tf_autotune())
    elif args.no_autotune and keras.backend.backend() == "tensorflow":
        patch_array_adapter_no_autotune()

    class EpochClock(keras.callbacks.Callback):
        """Wall clock at each epoch end (on JAX, epoch end waits for the epoch's steps)."""

        def __init__(self):
            super().__init__()
            self.ends = []

        def on_epoch_end(self, epoch, logs=None):
            self.ends.append(time.perf_counter())

    def fit(arm: str) -> dict:
        gc.collect()  # the previous fits' models are garbage: collect them outside the timing
        keras.utils.set_random_seed(args.seed)
        model = build_cnn(seed=args.seed)
        if arm == "baseline":
            lr = keras.optimizers.schedules.CosineDecay(args.lr, steps * args.epochs)
            callbacks = []
        elif arm == "same_path":
            lr = LODESchedule(
                path["table"], steps_per_epoch=steps, points_per_epoch=args.points_per_epoch
            )
            callbacks = []
        else:
            # float: the callback assigns the optimizer's LR variable at each log point
            # (piecewise constant per interval, no per-step schedule evaluation).
            lr = args.lr if args.lr_mode == "float" else LODESchedule(initial_learning_rate=args.lr)
            callbacks = [
                LODECallback(
                    lode,
                    validation_data=(x_val, y_val),
                    **(
                        {"validation_samples": args.validation_samples}
                        if args.validation_samples
                        else {}
                    ),
                    validation_batch_size=args.validation_batch_size,
                    points_per_epoch=args.points_per_epoch,
                    window=args.window,
                    replan_every=args.replan_every,
                    seed=args.seed,
                    verbose=0,
                )
            ]
        compile_adamw(model, lr)
        clock = EpochClock()  # every arm, last: the same (tiny) cost in each
        if args.gc_off:
            gc.disable()
        t0 = time.perf_counter()
        if args.plain_dataset:
            model.fit(data, epochs=args.epochs, verbose=0, callbacks=[*callbacks, clock])
        else:
            model.fit(
                x_train,
                y_train,
                batch_size=args.batch_size,
                epochs=args.epochs,
                shuffle=not args.no_shuffle,
                verbose=0,
                callbacks=[*callbacks, clock],
            )
        wall = time.perf_counter() - t0
        gc.enable()
        # After the first epoch: without the one-time costs (compiling the train and the
        # validation-predict functions, the first planning call), which weigh on short fits.
        out = {"wall_s": wall, "after_first_epoch_s": clock.ends[-1] - clock.ends[0]}
        if callbacks:
            cb = callbacks[0]
            out.update(
                callback_s=cb.seconds,
                plan_s=cb.plan_seconds,
                replans=len(cb.plans),
                validation_samples=cb.probe.samples,
                validation_batch_size=cb.probe.chunk,
                final_lr=float(cb.plan_table[-1]),
                plan_table=[float(v) for v in cb.plan_table],
            )
        return out

    # Untimed: the LR path the LODE arm follows (deterministic for the seed), and warm-up.
    keras.utils.set_random_seed(args.seed)
    first = fit("lode")
    path["table"] = first["plan_table"]

    arms = ARMS
    pairs = []
    for i in range(args.pairs):
        order = arms[i % 3 :] + arms[: i % 3]
        result = {arm: fit(arm) for arm in order}
        result["order"] = list(order)
        result["ratio"] = result["lode"]["wall_s"] / result["baseline"]["wall_s"]
        result["ratio_same_path"] = result["lode"]["wall_s"] / result["same_path"]["wall_s"]
        if args.epochs > 1:
            result["ratio_after_first_epoch"] = (
                result["lode"]["after_first_epoch_s"] / result["baseline"]["after_first_epoch_s"]
            )
        result["lode"].pop("plan_table", None)
        pairs.append(result)
        print(
            f"[{keras.backend.backend()}] round {i}: baseline {result['baseline']['wall_s']:.2f}s"
            f" same-path {result['same_path']['wall_s']:.2f}s lode {result['lode']['wall_s']:.2f}s"
            f" lode/baseline {result['ratio']:.4f} lode/same-path {result['ratio_same_path']:.4f}"
            f" (callback {result['lode']['callback_s']:.2f}s, planning "
            f"{result['lode']['plan_s']:.3f}s, {result['lode']['replans']} replans)"
            + (
                f" lode/baseline after epoch 1 {result['ratio_after_first_epoch']:.4f}"
                if "ratio_after_first_epoch" in result
                else ""
            ),
            file=sys.stderr,
            flush=True,
        )
    ratios = [p["ratio"] for p in pairs]
    same = [p["ratio_same_path"] for p in pairs]
    shares = [p["lode"]["callback_s"] / p["lode"]["wall_s"] for p in pairs]
    return {
        "backend": keras.backend.backend(),
        "steps_per_epoch": steps,
        "pairs": pairs,
        "median_ratio": statistics.median(ratios),
        "median_extra_percent": 100 * (statistics.median(ratios) - 1),
        "median_ratio_same_path": statistics.median(same),
        "median_extra_percent_same_path": 100 * (statistics.median(same) - 1),
        "median_callback_share_percent": 100 * statistics.median(shares),
        **(
            {
                "median_extra_percent_after_first_epoch": 100
                * (statistics.median(p["ratio_after_first_epoch"] for p in pairs) - 1)
            }
            if args.epochs > 1
            else {}
        ),
    }


def _fastest_fits(result: dict) -> dict:
    """Ratios of each arm's fastest fit: robust to stalls that hit some fits, not others."""
    fastest = {arm: min(p[arm]["wall_s"] for p in result["pairs"]) for arm in ARMS}
    return {
        "fastest_s": fastest,
        "fastest_extra_percent": 100 * (fastest["lode"] / fastest["baseline"] - 1),
        "fastest_extra_percent_same_path": 100 * (fastest["lode"] / fastest["same_path"] - 1),
    }


def _median_ci(ratios: list[float], level: float = 0.9, draws: int = 5000) -> list[float]:
    """Bootstrap interval of the median ratio, in percent extra (resampled rounds, seed 0)."""
    import numpy as np

    r = np.asarray(ratios, dtype=float)
    medians = np.median(np.random.default_rng(0).choice(r, (draws, len(r))), axis=1)
    tail = 100 * (1 - level) / 2
    return [float(100 * (q - 1)) for q in np.percentile(medians, [tail, 100 - tail])]


def _print_summary(backend: str, result: dict) -> None:
    result.update(_fastest_fits(result))
    result["median_extra_percent_ci90"] = _median_ci([p["ratio"] for p in result["pairs"]])
    print(
        f"{backend}: LODE vs same LR path {result['median_extra_percent_same_path']:+.2f}% "
        "(ratios "
        + ", ".join(f"{p['ratio_same_path']:.4f}" for p in result["pairs"])
        + f"); LODE vs cosine {result['median_extra_percent']:+.2f}% (ratios "
        + ", ".join(f"{p['ratio']:.4f}" for p in result["pairs"])
        + "), 90% bootstrap interval of that median "
        + "[{:+.1f}%, {:+.1f}%]".format(*result["median_extra_percent_ci90"])
        + f"; fastest fits: LODE vs same path {result['fastest_extra_percent_same_path']:+.2f}%"
        f", vs cosine {result['fastest_extra_percent']:+.2f}%"
        f"; callback's own time {result['median_callback_share_percent']:.2f}% of the fit"
    )
    if "median_extra_percent_after_first_epoch" in result:
        print(
            f"{backend}: after the first epoch, LODE vs cosine "
            f"{result['median_extra_percent_after_first_epoch']:+.2f}% (ratios "
            + ", ".join(f"{p['ratio_after_first_epoch']:.4f}" for p in result["pairs"])
            + ")"
        )


def _summarize(paths: list[Path]) -> None:
    pooled: dict[str, list[tuple[float, float | None]]] = {}
    for path in paths:
        report = json.loads(path.read_text())
        print(f"{path.name}: {report['command']}")
        for backend, result in report["backends"].items():
            if "pairs" in result:
                _print_summary(backend, result)
                pooled.setdefault(backend, []).extend(
                    (p["ratio"], p.get("ratio_after_first_epoch")) for p in result["pairs"]
                )
        path.write_text(json.dumps(report, indent=2) + "\n")
    if len(paths) < 2:
        return
    for backend, rounds in pooled.items():
        ratios = [r for r, _ in rounds]
        after = [a for _, a in rounds if a is not None]
        line = (
            f"{backend}, {len(rounds)} rounds pooled: LODE vs cosine "
            f"{100 * (statistics.median(ratios) - 1):+.2f}% "
            "[{:+.1f}%, {:+.1f}%]".format(*_median_ci(ratios))
        )
        if after:
            line += (
                f"; after the first epoch ({len(after)} rounds) "
                f"{100 * (statistics.median(after) - 1):+.2f}% "
                "[{:+.1f}%, {:+.1f}%]".format(*_median_ci(after))
            )
        print(line)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", default="tensorflow,jax,torch")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--train", type=int, default=12000, help="training images")
    parser.add_argument("--val", type=int, default=2000, help="validation pool")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument(
        "--points-per-epoch",
        type=int,
        default=2,
        help="P; 2 on 12k images keeps the paper's ~47 steps per log point (P=10 on 60k)",
    )
    parser.add_argument(
        "--validation-samples",
        type=int,
        default=None,
        help="the callback's validation subset (default: the callback's, 256)",
    )
    parser.add_argument(
        "--validation-batch-size",
        type=int,
        default=None,
        help="predict batch of the measurement (default: the callback's, per backend)",
    )
    parser.add_argument("--window", type=int, default=3)
    parser.add_argument("--replan-every", type=int, default=1)
    parser.add_argument(
        "--no-shuffle",
        action="store_true",
        help="feed batches in order (a check: TensorFlow's intermittent multi-second "
        "stalls on this machine happen with and without shuffling)",
    )
    parser.add_argument(
        "--plain-dataset",
        action="store_true",
        help="feed every arm a pre-batched tf.data.Dataset (no shuffle, no prefetch) instead "
        "of NumPy arrays: on this machine TensorFlow's ~2.5-s stalls come with Keras's NumPy "
        "input pipeline (docs/benchmarks.md); any backend (tf.data needs TensorFlow)",
    )
    parser.add_argument(
        "--no-autotune",
        action="store_true",
        help="turn tf.data's autotuning off in every arm's input pipeline (TensorFlow only): "
        "its model thread causes TensorFlow's ~2.5-s stalls on this machine "
        "(docs/benchmarks.md)",
    )
    parser.add_argument(
        "--gc-off",
        action="store_true",
        help="disable Python's garbage collector during each timed fit (a check: are the "
        "intermittent multi-second stalls collections?)",
    )
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument(
        "--lr-mode",
        choices=("schedule", "float"),
        default="schedule",
        help="LODE arm's optimizer LR: a LODESchedule (interpolated per step) or a float the "
        "callback assigns at log points",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=str(RESULTS))
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument(
        "--summarize",
        nargs="+",
        default=None,
        metavar="JSON",
        help="print the summary of results files written by this script (and add the "
        "fastest-fit ratios and intervals to them); with several files, also the median "
        "and its interval over all their rounds pooled, per backend; runs nothing",
    )
    args = parser.parse_args(argv)
    if args.summarize:
        _summarize([Path(f) for f in args.summarize])
        return 0

    if args.worker:
        print(json.dumps(_worker(args)))
        return 0

    config = {k: v for k, v in vars(args).items() if k not in ("worker", "output", "backends")}
    report = report_header(__file__, argv, config=config, backends={})
    child_argv = list(argv if argv is not None else sys.argv[1:])
    for backend, result in run_workers(__file__, child_argv, args.backends, report):
        _print_summary(backend, result)
    write_report(report, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
