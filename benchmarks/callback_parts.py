"""Where the callback's own time goes: each part of LODECallback's work, timed inside a fit.

Fits the Fashion-MNIST CNN with `LODESchedule` + `LODECallback` (the paper-size random LODE,
the callback's defaults) as `benchmarks/overhead.py`'s LODE arm does, and times every call
of the parts the callback runs, per fit:

- `measure`: the validation metric on the fixed subset (predict + accuracy); the first call
  of a fit includes tracing/compiling the predict function;
- `loss_tracker`: reading the loss tracker's running sum and count;
- `learning_rate`: reading the LR in effect (reads the optimizer's step counter);
- `replan`: one planning call, including its checks;
- `apply`: handing the plan to the schedule (`_apply_table`);
- `fit_begin`: the set-up at train begin;
- `save_state`: writing the state file (a no-op here: no `state_path`).

It also prints the callback's own total (`LODECallback.seconds`) and the fit's wall time.
On JAX and on a GPU, a part that reads a device value first waits for the steps already
dispatched, so it includes that wait. This is a benchmark: it asserts nothing.

    python benchmarks/callback_parts.py --backends tensorflow,jax,torch --fits 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict

from _backends import compile_adamw, paper_lode, report_header, run_workers, write_report

PARTS = {
    # label: (module, owner, attribute)
    "measure": ("keras_lode.recorder", "ValidationProbe", "measure"),
    "loss_tracker": ("keras_lode.recorder", "LogPointObserver", "loss_tracker_state"),
    "learning_rate": ("keras_lode.recorder", None, "current_learning_rate"),
    "replan": ("keras_lode.callback", "LODECallback", "_replan"),
    "apply": ("keras_lode.callback", "LODECallback", "_apply_table"),
    "fit_begin": ("keras_lode.callback", "LODECallback", "_fit_begin"),
    "save_state": ("keras_lode.callback", "LODECallback", "_save_state"),
}


def _instrument(times: dict) -> None:
    import importlib

    for label, (module_name, owner_name, attr) in PARTS.items():
        module = importlib.import_module(module_name)
        owner = getattr(module, owner_name) if owner_name else module
        original = getattr(owner, attr)

        def timed(*args, _original=original, _label=label, **kwargs):
            t0 = time.perf_counter()
            try:
                return _original(*args, **kwargs)
            finally:
                times[_label].append(time.perf_counter() - t0)

        setattr(owner, attr, timed)


def _worker(args) -> dict:
    import keras
    import numpy as np

    times: dict[str, list[float]] = defaultdict(list)
    _instrument(times)

    from keras_lode.callback import LODECallback
    from keras_lode.lode_schedule import LODESchedule
    from keras_lode.tasks.cnn import build_cnn
    from keras_lode.tasks.data import load_fashion_mnist

    (x, y), _ = load_fashion_mnist()
    idx = np.random.default_rng(0).permutation(len(x))
    x = (x.astype("float32") / 255.0)[..., None]
    y = y.astype("int64")
    train, val = idx[: args.train], idx[args.train : args.train + 2000]
    lode = paper_lode(args.points_per_epoch, args.epochs * args.points_per_epoch)
    fits = []
    for i in range(args.fits):
        times.clear()
        keras.utils.set_random_seed(0)
        model = compile_adamw(build_cnn(seed=0), LODESchedule(initial_learning_rate=2e-3))
        callback = LODECallback(
            lode,
            validation_data=(x[val], y[val]),
            points_per_epoch=args.points_per_epoch,
            window=args.window,
            replan_every=args.replan_every,
            seed=0,
            verbose=0,
        )
        t0 = time.perf_counter()
        model.fit(
            x[train],
            y[train],
            batch_size=128,
            epochs=args.epochs,
            verbose=0,
            callbacks=[callback],
        )
        wall = time.perf_counter() - t0
        fit = {
            "wall_s": wall,
            "callback_s": callback.seconds,
            "parts_ms": {k: [round(1e3 * t, 3) for t in v] for k, v in times.items()},
        }
        fits.append(fit)
        print(
            f"[{keras.backend.backend()}] fit {i}: {wall:.2f} s, callback "
            f"{1e3 * callback.seconds:.1f} ms: "
            + "; ".join(f"{k} {v}" for k, v in fit["parts_ms"].items()),
            file=sys.stderr,
            flush=True,
        )
    return {"backend": keras.backend.backend(), "fits": fits, "summary": _summary(fits)}


def _summary(fits: list[dict]) -> dict:
    """Per part: median over fits of its first call and of its later calls, its share."""
    out = {}
    for label in PARTS:
        calls = [f["parts_ms"].get(label, []) for f in fits]
        if not any(calls):
            continue
        firsts = [c[0] for c in calls if c]
        later = [t for c in calls for t in c[1:]]
        totals = [sum(c) / 1e3 / f["wall_s"] for c, f in zip(calls, fits, strict=True)]
        out[label] = {
            "calls_per_fit": statistics.median(len(c) for c in calls),
            "first_ms": statistics.median(firsts),
            "later_ms": statistics.median(later) if later else None,
            "share_of_fit_percent": 100 * statistics.median(totals),
        }
    out["callback_share_percent"] = 100 * statistics.median(
        f["callback_s"] / f["wall_s"] for f in fits
    )
    out["wall_s"] = statistics.median(f["wall_s"] for f in fits)
    return out


def _print(backend: str, summary: dict) -> None:
    print(
        f"{backend}: fit {summary['wall_s']:.2f} s, callback's own time "
        f"{summary['callback_share_percent']:.2f}% (medians over fits)"
    )
    for label in PARTS:
        if label in summary:
            s = summary[label]
            later = "-" if s["later_ms"] is None else f"{s['later_ms']:.1f}"
            print(
                f"  {label:14s} {s['calls_per_fit']:>4} calls, first {s['first_ms']:7.1f} ms, "
                f"later {later:>6} ms, {s['share_of_fit_percent']:.2f}% of the fit"
            )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backends", default="tensorflow,jax,torch")
    ap.add_argument("--fits", type=int, default=3)
    ap.add_argument("--train", type=int, default=12000)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--points-per-epoch", type=int, default=2)
    ap.add_argument("--window", type=int, default=2)
    ap.add_argument("--replan-every", type=int, default=1)
    ap.add_argument("--output", default=None)
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(_worker(args)))
        return 0
    config = {k: v for k, v in vars(args).items() if k not in ("worker", "output")}
    report = report_header(__file__, argv, config=config, backends={})
    child_argv = list(argv if argv is not None else sys.argv[1:])
    for backend, result in run_workers(__file__, child_argv, args.backends, report):
        _print(backend, result["summary"])
    out = args.output or f"{__file__.rsplit('/', 1)[0]}/results/callback_parts.json"
    write_report(report, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
