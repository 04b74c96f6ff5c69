"""Latency of the controlled LODE: one `predict` and one control replan, beside the paper's decode.

Side by side in one process (these machines are shared: compare within a run, quote medians):

* `predict`: M = 5 members x C = 64 candidate LR paths over T = 600 points (a whole
  600-point run), float64 and float32, at the default member sizes
  (`keras_lode.model.config.controlled_config`);
* one control replan (`keras_lode.plan` on a controlled model) with the default candidate
  library on a K = 600 run at its first replan (20% of the run), so the prediction covers
  the most points a replan ever predicts;
* the paper's generative decode at its sizes (31 latents over 1,171 points, the most one
  generative planning call decodes), for reference.

Weights are random with a gentle field (as a trained model's): latency does not depend on
what the model learned.

    python benchmarks/control_latency.py       # writes benchmarks/results/control_latency.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.plan_latency import make_model_and_window  # noqa: E402
from keras_lode.model.controlled import random_controlled  # noqa: E402
from keras_lode.planning import plan  # noqa: E402


def timed(repeats, fn, *args, **kwargs):
    fn(*args, **kwargs)  # warm
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(*args, **kwargs)
        out.append(1e3 * (time.perf_counter() - t0))
    q = statistics.quantiles(out, n=4)
    return {"median_ms": statistics.median(out), "q1_ms": q[0], "q3_ms": q[2], "n": repeats}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--points", type=int, default=600)
    ap.add_argument("--members", type=int, default=5)
    ap.add_argument("--candidates", type=int, default=64)
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/control_latency.json"))
    args = ap.parse_args(argv)
    K, M, C = args.points, args.members, args.candidates
    W = 10
    rng = np.random.default_rng(0)
    window = np.column_stack(
        [np.linspace(1.0, 0.6, W), np.full(W, math.log(3e-3)), np.linspace(0.5, 0.7, W)]
    )
    results = {}
    for dtype in ("float64", "float32"):
        model = random_controlled(
            0,
            members=M,
            horizon=K,
            window=W,
            mean=[1.0, math.log(3e-3), 0.6],
            std=[0.5, 1.5, 0.2],
            lr_range=(1e-5, 5e-2),
            field_scale=0.3,
            dtype=np.dtype(dtype).type,
        )
        tw = np.arange(W, dtype=np.float64)
        t = np.arange(W - 1, W - 1 + K, dtype=np.float64)
        log_lr = np.log(3e-3) + np.cumsum(rng.normal(0, 0.02, (C, K)), axis=1)
        out = model.predict(tw, window, t, log_lr)
        assert out.shape == (M, C, K, 2) and np.all(np.isfinite(out))
        results[f"predict_{dtype}"] = timed(args.repeats, model.predict, tw, window, t, log_lr)
        n = round(0.2 * K)
        cur = np.geomspace(3e-3, 3e-5, K - 1 - n)
        p = plan(model, window, position=n, total_points=K, current_plan=cur)
        results[f"replan_{dtype}"] = timed(
            args.repeats, plan, model, window, position=n, total_points=K, current_plan=cur
        )
        results[f"replan_{dtype}"]["candidates"] = len(p.names)
        results[f"replan_{dtype}"]["points"] = K - n
        results[f"replan_{dtype}"]["stages_ms"] = {k: 1e3 * v for k, v in p.timings.items()}
    gen, gwin = make_model_and_window(K, 29, 30)
    z = np.repeat(gen.encode(np.arange(30.0), gwin)[None], 31, axis=0)
    tg = np.arange(2 * K - 29, dtype=np.float64)
    results["generative_decode_float64"] = timed(args.repeats, gen.decode, tg, z)
    out = {
        "benchmark": "control_latency",
        "command": "python benchmarks/control_latency.py " + " ".join(argv or sys.argv[1:]),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "load_average_before": list(os.getloadavg()),
        },
        "settings": {"points": K, "members": M, "candidates": C, "window": W},
        "targets_ms": {"predict": 20.0, "replan": 30.0},
        "results": results,
    }
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    for k, v in results.items():
        extra = (
            f"  ({v['candidates']} candidates x {v['points']} points)" if "candidates" in v else ""
        )
        q = f"[q1 {v['q1_ms']:.2f}, q3 {v['q3_ms']:.2f}]"
        print(f"{k:<28} median {v['median_ms']:7.2f} ms  {q}{extra}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
