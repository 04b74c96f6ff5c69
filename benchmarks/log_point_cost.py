"""Which part of a log-point observation costs wall time in `fit`? (one backend per run)

The callback's own timer cannot say: on JAX and on a GPU a read of a device value first waits
for the steps already dispatched, which is time the device spends training, not overhead. So
this script fits the same model several times with a probe callback that does one part of what
`LODECallback` does at each log point, and compares wall times against a fit with no probe:

- `sync`: `self.model` (on JAX, copies the in-flight train state back to the variables);
- `tracker`: reads the loss tracker's running total (waits for the dispatched steps);
- `predict`: `predict_on_batch` on the validation subset (the callback's measurement);
- `all`: the three together;
- `lode`: the real `LODECallback` (random NumPy LODE of the paper's sizes) with a
  `LODESchedule`, against a `CosineDecay` fit.

Every probe acts at the same steps (every `steps_per_epoch / P` steps). Kinds rotate their
order per round; medians of the per-round ratios to the no-probe fit are printed and written to
JSON. It asserts nothing.

    KERAS_BACKEND=jax python benchmarks/log_point_cost.py --model cnn --rounds 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from _backends import compile_adamw, paper_lode, report_header, write_report

KINDS = ("none", "sync", "tracker", "predict", "all", "lode")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", choices=("cnn", "mlp"), default="cnn")
    ap.add_argument("--train", type=int, default=12000)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--points-per-epoch", type=int, default=2)
    ap.add_argument("--samples", type=int, default=256, help="validation subset")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument(
        "--output",
        default=None,
        help="JSON path (default: results/log_point_cost_<backend>_<model>.json)",
    )
    args = ap.parse_args(argv)

    import keras
    import numpy as np

    from keras_lode.callback import LODECallback
    from keras_lode.lode_schedule import LODESchedule

    rng = np.random.default_rng(0)
    if args.model == "cnn":
        from keras_lode.tasks.cnn import build_cnn
        from keras_lode.tasks.data import load_fashion_mnist

        (x, y), _ = load_fashion_mnist()
        idx = rng.permutation(len(x))[: args.train + 2000]
        x = (x[idx].astype("float32") / 255.0)[..., None]
        y = y[idx].astype("int64")

        def build():
            return build_cnn(seed=0)
    else:
        x = rng.random((args.train + 2000, 32), dtype=np.float32)
        y = rng.integers(0, 10, args.train + 2000)

        def build():
            return keras.Sequential(
                [
                    keras.Input((32,)),
                    keras.layers.Dense(64, activation="relu"),
                    keras.layers.Dense(10, activation="softmax"),
                ]
            )

    x_train, y_train, x_val, y_val = x[2000:], y[2000:], x[:2000], y[:2000]
    steps = -(-len(x_train) // 128)
    every = max(steps // args.points_per_epoch, 1)
    total = args.epochs * args.points_per_epoch
    lode = paper_lode(args.points_per_epoch, total)

    class Probe(keras.callbacks.Callback):
        def __init__(self, kind):
            super().__init__()
            self.kind = kind

        def on_train_batch_begin(self, batch, logs=None):
            if batch == 0 or batch % every:
                return
            model = self.model  # the sync (on JAX)
            if self.kind in ("tracker", "all"):
                tracker = model._loss_tracker
                float(keras.ops.convert_to_numpy(tracker.total))
            if self.kind in ("predict", "all"):
                np.asarray(model.predict_on_batch(x_val[: args.samples]))

    def fit(kind) -> float:
        keras.utils.set_random_seed(0)
        model = build()
        if kind == "lode":
            lr = LODESchedule(initial_learning_rate=2e-3)
            callbacks = [
                LODECallback(
                    lode,
                    validation_data=(x_val, y_val),
                    validation_samples=args.samples,
                    points_per_epoch=args.points_per_epoch,
                    window=2,
                    verbose=0,
                )
            ]
        else:
            lr = keras.optimizers.schedules.CosineDecay(2e-3, steps * args.epochs)
            callbacks = [] if kind == "none" else [Probe(kind)]
        compile_adamw(model, lr)
        t0 = time.perf_counter()
        model.fit(
            x_train, y_train, batch_size=128, epochs=args.epochs, verbose=0, callbacks=callbacks
        )
        return time.perf_counter() - t0

    fit("lode")  # warm caches, untimed
    walls = {k: [] for k in KINDS}
    for r in range(args.rounds):
        order = KINDS[r % len(KINDS) :] + KINDS[: r % len(KINDS)]
        for kind in order:
            walls[kind].append(fit(kind))
        print(
            f"round {r}: " + ", ".join(f"{k} {walls[k][-1]:.2f}s" for k in KINDS),
            file=sys.stderr,
            flush=True,
        )
    extra = {
        k: 100
        * (statistics.median(a / b for a, b in zip(walls[k], walls["none"], strict=True)) - 1)
        for k in KINDS
    }
    backend = keras.backend.backend()
    print(
        f"{backend} {args.model}: extra wall time vs no probe (median of {args.rounds}): "
        + ", ".join(f"{k} {v:+.1f}%" for k, v in extra.items() if k != "none")
    )
    report = report_header(
        __file__,
        argv,
        backend=backend,
        config=vars(args),
        log_points_per_fit=total,
        walls_s=walls,
        median_extra_percent=extra,
    )
    out = args.output or (
        Path(__file__).resolve().parent / "results" / f"log_point_cost_{backend}_{args.model}.json"
    )
    write_report(report, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
