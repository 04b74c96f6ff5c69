"""Time one batched LODE decode: 31 latents over 1,200 log points, default sizes.

This is the decode of one planning call at the paper's sizes (S = 30 samples plus z0,
K = 600 so 2K = 1,200 log points; hidden/latent/state/width 20, depth 2, RK4 step 1).
Every available path is timed in one process, interleaved round by round so machine
load hits them alike, and the medians are printed and written to JSON.

    python benchmarks/decode.py                    # all paths, 15 rounds
    python benchmarks/decode.py --rounds 30 --paths fast jax --out out/decode.json

Paths: `fast` (NumPy fused loop, the default), `reference` (NumPy generic
`keras_lode.model.integrate.odeint`), `jax` (jitted `lax.scan`, when jax is installed; its
compile time is reported separately), `loop` (a plain Python-loop NumPy RK4, the
naive baseline the issue quotes), `torch` (torchdiffeq, when installed; training side).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from keras_lode.model import random_model  # noqa: E402


def naive_loop(model, t, z):
    """A plain Python-loop RK4: one vector-field call per stage, new arrays each time.

    Outputs the grid points only, so it matches the other paths only at step 1 in log
    points (`--step-size 1 --time-scale 1`, the default).
    """
    h = model.initial_state(z)
    ts = t * model.time_scale
    grid = np.arange(ts[0], ts[-1] + 1e-9, model.step_size)
    out = [h]
    for t0, t1 in zip(grid[:-1], grid[1:], strict=True):
        dt = t1 - t0
        k1 = model.field(t0, h)
        k2 = model.field(t0, h + dt * k1 / 3)
        k3 = model.field(t0, h + dt * (k2 - k1 / 3))
        k4 = model.field(t0, h + dt * (k1 - k2 + k3))
        h = h + dt * (k1 + 3 * (k2 + k3) + k4) / 8
        out.append(h)
    states = np.stack(out, axis=1)
    w = model.weights
    return model.denormalize(states @ w["to_channels.weight"].T + w["to_channels.bias"])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--samples", type=int, default=31)
    parser.add_argument("--points", type=int, default=1200)
    parser.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    parser.add_argument("--paths", nargs="+", default=["fast", "reference", "jax", "loop", "torch"])
    parser.add_argument(
        "--field-scale",
        type=float,
        default=0.1,
        help="initial `scale` of the random vector field. 0.1 keeps the states O(10) over "
        "1,200 points, as a trained model's are; 1.0 (torch's init) drives them past "
        "the fast softplus range, so `fast` runs its safe (slower) form",
    )
    parser.add_argument(
        "--step-size",
        type=float,
        default=1.0,
        help="RK4 step in model time (1.0 with --time-scale 1: one step per log point, the "
        "reference's setting; `keras-lode train` models use 0.5 at time scale 10/K)",
    )
    parser.add_argument("--time-scale", type=float, default=1.0, help="model time per log point")
    parser.add_argument("--out", default=None, help="write the raw numbers here (JSON)")
    args = parser.parse_args(argv)

    model = random_model(
        0,
        horizon=args.points // 2,
        dtype=np.dtype(args.dtype).type,
        field_scale=args.field_scale,
        step_size=args.step_size,
        time_scale=args.time_scale,
    )
    rng = np.random.default_rng(0)
    window = np.stack(
        [rng.normal(0.0, 1.0, 30), rng.normal(0.0, 1.0, 30), rng.uniform(0, 1, 30)], -1
    )
    z0 = model.encode(np.arange(30.0), window)
    z = z0 + 0.15 * np.abs(z0) * rng.normal(size=(args.samples, z0.size))
    t = np.arange(float(args.points))

    paths = {}
    extra = {}
    for name in args.paths:
        if name in ("fast", "reference", "jax"):
            if name == "jax":
                try:
                    import jax  # noqa: F401
                except ImportError:
                    print("jax: not installed, skipped")
                    continue
                start = time.perf_counter()
                model.decode(t, z, method="jax")
                extra["jax_first_call_s"] = time.perf_counter() - start
            paths[name] = lambda m=name: model.decode(t, z, method=m)
        elif name == "loop":
            paths[name] = lambda: naive_loop(model, t, z)
        elif name == "torch":
            try:
                import torch

                from keras_lode.train import LatentODE
            except ImportError:
                print("torch: not installed, skipped")
                continue
            # One thread: at these sizes extra threads only add contention.
            torch.set_num_threads(1)
            tm = LatentODE.from_numpy(model)
            tt, zt = torch.tensor(t, dtype=tm.mean.dtype), torch.tensor(z, dtype=tm.mean.dtype)

            def run_torch(tm=tm, tt=tt, zt=zt):
                with torch.no_grad():
                    return tm.decode(tt, zt)

            paths[name] = run_torch
        else:
            parser.error(f"unknown path {name!r}")

    reference = model.decode(t, z, method="fast")
    for name, fn in paths.items():
        y = fn()
        y = y.numpy() if hasattr(y, "numpy") else np.asarray(y)
        extra[f"{name}_max_abs_diff_vs_fast"] = float(np.abs(y - reference).max())

    times = {name: [] for name in paths}
    for _ in range(args.rounds):
        for name, fn in paths.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)

    medians = {name: statistics.median(v) for name, v in times.items()}
    kernel = model._kernels.get(args.samples)
    extra["fast_safe_softplus"] = bool(kernel is not None and kernel.safe)
    print(
        f"decode of {args.samples} latents x {args.points} log points, default sizes, "
        f"step {model.step_size}, {args.dtype}, field scale {args.field_scale} (safe softplus: "
        f"{extra['fast_safe_softplus']}), median of {args.rounds} interleaved rounds "
        f"({platform.processor() or platform.machine()}, {os.cpu_count()} CPUs):"
    )
    base = medians.get("fast")
    for name, m in medians.items():
        ratio = f"  ({m / base:.2f}x fast)" if base else ""
        print(f"  {name:10s} {m * 1e3:8.1f} ms{ratio}")
    if "jax_first_call_s" in extra:
        print(f"  jax first call (compile): {extra['jax_first_call_s']:.2f} s")
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(
                {
                    "samples": args.samples,
                    "points": args.points,
                    "dtype": args.dtype,
                    "rounds": args.rounds,
                    "field_scale": args.field_scale,
                    "step_size": args.step_size,
                    "time_scale": args.time_scale,
                    "median_s": medians,
                    "times_s": times,
                    **extra,
                    "machine": platform.platform(),
                    "cpus": os.cpu_count(),
                },
                f,
                indent=2,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
