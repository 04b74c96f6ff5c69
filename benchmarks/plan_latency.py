"""Latency of one planning call at the paper's sizes (docs/benchmarks.md, Q2).

Measures `keras_lode.plan` with a model of hidden 20, latent 20, state 20, width 20,
depth 2, S = 30 samples (31 latents with z0) on a run of K = 600 log points, planned at
the first point a 30-point window allows (n = 29), so the decode covers 2K - n = 1,171
points: the most a call ever decodes. Reports

* the median (and quartiles) of >= 20 warm calls in this process,
* the share of each stage (encode, decode, selection) from `Plan.timings`,
* the first call in a fresh process: `python -c` that imports keras_lode, loads the model
  file and plans once (time from before the import to the plan, the whole process's wall
  time including interpreter start-up, and its peak resident memory).

The weights are random (`keras_lode.model.random_model`, with a trained model's channel
statistics and a gentle vector field): latency does not depend on what the model learned,
as long as its futures stay finite (a field that overflows makes the decode redo its
integration on a slower, overflow-safe path). The window is one of the model's own
trajectories, so the loss band matches and the selection stage does its full work (the
accepted count is reported).

Usage:

    python benchmarks/plan_latency.py            # writes benchmarks/results/plan_latency.json
    python benchmarks/plan_latency.py --repeats 50 --position 300
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SIZES = {"hidden": 20, "latent": 20, "state": 20, "width": 20, "depth": 2}

FIRST_CALL = """
import time
t0 = time.perf_counter()
import numpy as np
import keras_lode
model = keras_lode.load_model({path!r})
if {method!r} != "default":
    model.decode_method = {method!r}
window = np.load({window!r})
t1 = time.perf_counter()
p = keras_lode.plan(model, window, position={position}, total_points={total},
                    samples={samples}, seed=0)
t2 = time.perf_counter()
import resource, sys, json
print(json.dumps({{"first_call_s": t2 - t0, "import_and_load_s": t1 - t0,
                   "plan_s": t2 - t1, "accepted": p.accepted,
                   "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                   "torch_imported": "torch" in sys.modules,
                   "keras_imported": "keras" in sys.modules,
                   "jax_imported": "jax" in sys.modules}}))
"""


def make_model_and_window(total, position, window_len, seed=0, step_size=0.5, time_scale=None):
    from keras_lode.model import random_model

    # Channel statistics of a typical run and a gentle field (scale 0.3), as a trained model
    # has: with the default field scale 1, random weights drive the imagined LR to ~1e11 by
    # point 1,000, and the decode then redoes the integration on its overflow-safe path.
    model = random_model(
        seed=seed,
        horizon=total,
        points_per_epoch=10,
        mean=[1.0, math.log(1e-2), 0.5],
        std=[0.5, 1.0, 0.2],
        field_scale=0.3,
        step_size=step_size,
        time_scale=(10.0 / total) if time_scale is None else time_scale,
        **SIZES,
    )
    # A trajectory of the model itself: encode a plausible window, decode from time 0, and
    # observe the decoded path at points position - W + 1 .. position.
    t = np.arange(window_len, dtype=np.float64)
    seed_window = np.column_stack(
        [np.linspace(1.0, 0.5, window_len), np.full(window_len, math.log(1e-2)),
         np.linspace(0.3, 0.7, window_len)]
    )  # fmt: skip
    z = model.encode(t, seed_window)
    path = model.decode(np.arange(position + 1, dtype=np.float64), z)
    return model, np.ascontiguousarray(path[position - window_len + 1 :])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=30, help="warm calls (>= 20)")
    ap.add_argument("--total-points", type=int, default=600)
    ap.add_argument("--position", type=int, default=29)
    ap.add_argument("--window", type=int, default=30)
    ap.add_argument("--samples", type=int, default=30)
    ap.add_argument(
        "--decode-method",
        default=None,
        help="LatentODE.decode_method to use (e.g. fast, jax); default the model's",
    )
    ap.add_argument(
        "--step-size",
        type=float,
        default=0.5,
        help="RK4 step in model time (default 0.5, the `keras-lode train` default)",
    )
    ap.add_argument(
        "--time-scale",
        type=float,
        default=None,
        help="model time per log point (default 10 / K, the `keras-lode train` default: a "
        "run spans 10 units, so the planner's 2K horizon is 40 RK4 steps at step 0.5); "
        "--time-scale 1 --step-size 1 is one RK4 step per log point",
    )
    ap.add_argument("--out", default="benchmarks/results/plan_latency.json")
    args = ap.parse_args(argv)
    if args.repeats < 20:
        ap.error(f"--repeats must be >= 20. Received: {args.repeats}")

    import keras_lode

    model, window = make_model_and_window(
        args.total_points, args.position, args.window,
        step_size=args.step_size, time_scale=args.time_scale,
    )  # fmt: skip
    if args.decode_method is not None:
        model.decode_method = args.decode_method
    method = getattr(model, "decode_method", "default")
    kw = dict(position=args.position, total_points=args.total_points, samples=args.samples)

    keras_lode.plan(model, window, seed=0, **kw)  # warm-up (kernel caches, page faults)
    totals, stages = [], {"encode": [], "decode": [], "selection": []}
    accepted = []
    for i in range(args.repeats):
        t0 = time.perf_counter()
        p = keras_lode.plan(model, window, seed=i, **kw)
        totals.append(time.perf_counter() - t0)
        accepted.append(p.accepted)
        for k in stages:
            stages[k].append(p.timings[k])
    q1, med, q3 = np.percentile(totals, [25, 50, 75])
    stage_med = {k: statistics.median(v) for k, v in stages.items()}
    stage_sum = sum(stage_med.values())

    with tempfile.TemporaryDirectory() as tmp:
        mpath = os.path.join(tmp, "model.npz")
        wpath = os.path.join(tmp, "window.npy")
        model.save(mpath)
        np.save(wpath, window)
        code = FIRST_CALL.format(
            path=mpath, window=wpath, position=args.position, total=args.total_points,
            samples=args.samples, method=method,
        )  # fmt: skip
        env = dict(os.environ)
        t0 = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
        )
        process_wall = time.perf_counter() - t0
    first = json.loads(out.stdout.strip().splitlines()[-1])
    first["process_wall_s"] = process_wall

    decoded_points = 2 * args.total_points - args.position
    result = {
        "benchmark": "plan_latency",
        "command": "python benchmarks/plan_latency.py " + " ".join(argv or sys.argv[1:]),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "cpu_count": os.cpu_count(),
        },
        "settings": {
            **SIZES,
            "samples": args.samples,
            "latents_decoded": args.samples + 1,
            "total_points": args.total_points,
            "position": args.position,
            "window": args.window,
            "decoded_points": decoded_points,
            "dtype": np.dtype(getattr(model, "dtype", np.float64)).name,
            "repeats": args.repeats,
            "decode_method": method,
            "step_size": model.step_size,
            "time_scale": model.time_scale,
            "rk4_steps": math.ceil(decoded_points * model.time_scale / model.step_size),
        },
        "warm": {
            "median_ms": med * 1e3,
            "q1_ms": q1 * 1e3,
            "q3_ms": q3 * 1e3,
            "min_ms": min(totals) * 1e3,
            "stage_median_ms": {k: v * 1e3 for k, v in stage_med.items()},
            "stage_share": {k: v / stage_sum for k, v in stage_med.items()},
            "accepted_median": statistics.median(accepted),
        },
        "first_call": first,
        "targets": {"warm_ms": 30, "first_call_s": 2.0},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")

    print(
        f"plan(): {args.samples + 1} latents x {decoded_points} points, K={args.total_points}, "
        f"n={args.position}, sizes {SIZES}, decode method {method}, RK4 step {model.step_size} "
        f"at time scale {model.time_scale:.4g} per log point"
    )
    print(
        f"warm: median {med * 1e3:.2f} ms (IQR {q1 * 1e3:.2f}-{q3 * 1e3:.2f}) over "
        f"{args.repeats} calls; accepted {statistics.median(accepted):.0f}/{args.samples + 1}"
    )
    print(
        "stages: "
        + ", ".join(
            f"{k} {stage_med[k] * 1e3:.2f} ms ({stage_med[k] / stage_sum:.0%})" for k in stages
        )
    )
    print(
        f"first call in a fresh process: {first['first_call_s']:.3f} s from import to plan "
        f"(import+load {first['import_and_load_s']:.3f} s, plan {first['plan_s']:.3f} s); "
        f"process wall {process_wall:.3f} s; peak RSS {first['peak_rss_mb']:.0f} MB; "
        f"torch imported: {first['torch_imported']}, keras imported: {first['keras_imported']}"
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
