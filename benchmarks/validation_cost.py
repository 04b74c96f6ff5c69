"""What does the callback's validation measurement cost, per backend and predict batch?

The callback measures the validation metric on a fixed subset at every log point; this is
almost all of its cost. This script times, in one process per backend, on real
Fashion-MNIST images and the example CNN:

- one training step (batch 128, AdamW), median of `--reps`;
- one measurement of `--samples` validation images through `ValidationProbe`, at each
  predict batch in `--chunks` (and at the default one), median of `--reps`;

and prints the measurement as a share of the training time of one log interval at the
paper's geometry (`--steps-per-point`, 47 = 60k images / batch 128 / P 10). That share is
what the callback adds to `fit`, to first order. It asserts nothing; results go to
`benchmarks/results/validation_cost.json`.

    python benchmarks/validation_cost.py --backends tensorflow,jax,torch
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from _backends import report_header, run_workers, write_report

RESULTS = Path(__file__).resolve().parent / "results" / "validation_cost.json"


def _median_ms(fn, reps: int) -> float:
    fn()
    fn()  # trace / warm up
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def _worker(args) -> dict:
    import keras

    from keras_lode.recorder import ValidationProbe, default_validation_batch_size
    from keras_lode.tasks.cnn import build_cnn
    from keras_lode.tasks.data import load_fashion_mnist

    (x, y), _ = load_fashion_mnist()
    x = (x[: 128 + 4096].astype("float32") / 255.0)[..., None]
    y = y[: 128 + 4096].astype("int64")
    keras.utils.set_random_seed(0)
    model = build_cnn(seed=0)
    model.compile(
        optimizer=keras.optimizers.AdamW(1e-3, weight_decay=1e-2),
        loss="sparse_categorical_crossentropy",
    )
    xb, yb = x[:128], y[:128]
    train_ms = _median_ms(lambda: model.train_on_batch(xb, yb), args.reps)
    interval_ms = args.steps_per_point * train_ms
    default = default_validation_batch_size()
    chunks = sorted({int(c) for c in args.chunks.split(",")} | {default})
    rows = []
    for chunk in chunks:
        probe = ValidationProbe((x[128:], y[128:]), samples=args.samples, batch_size=chunk)
        ms = _median_ms(lambda probe=probe: probe.measure(model), args.reps)
        rows.append(
            {
                "batch_size": chunk,
                "default": chunk == default,
                "measure_ms": ms,
                "share_of_interval_percent": 100 * ms / interval_ms,
            }
        )
    return {
        "backend": keras.backend.backend(),
        "train_step_ms": train_ms,
        "interval_ms": interval_ms,
        "rows": rows,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backends", default="tensorflow,jax,torch")
    ap.add_argument("--samples", type=int, default=1024, help="validation subset size")
    ap.add_argument("--chunks", default="64,128,256,512,1024", help="predict batches to time")
    ap.add_argument("--steps-per-point", type=int, default=47)
    ap.add_argument("--reps", type=int, default=9)
    ap.add_argument("--output", default=str(RESULTS))
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(_worker(args)))
        return 0

    argv = list(argv if argv is not None else sys.argv[1:])
    report = report_header(
        __file__,
        argv,
        config={k: v for k, v in vars(args).items() if k not in ("worker", "output")},
        backends={},
    )
    for backend, result in run_workers(__file__, argv, args.backends, report):
        print(
            f"{backend}: train step {result['train_step_ms']:.1f} ms, "
            f"{args.steps_per_point}-step interval {result['interval_ms']:.0f} ms"
        )
        for row in result["rows"]:
            mark = "  <- default" if row["default"] else ""
            print(
                f"  {args.samples} samples in batches of {row['batch_size']:>4}: "
                f"{row['measure_ms']:7.1f} ms = {row['share_of_interval_percent']:5.2f}% "
                f"of the interval{mark}"
            )
    write_report(report, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
