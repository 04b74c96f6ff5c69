"""Benchmark: train the LODE on 100 runs x 600 log points on this CPU.

Generates the paper-sized synthetic sweep (4 schedule families x 5 peak LRs x 5
seeds, 600 log points each, P = 10), trains with `keras_lode.train.fit` at the
paper's sizes (hidden/latent/state/width 20, depth 2, window 30), exports the
model file, and measures:

- wall time of `fit` (target: under 10 minutes on the 2-core CPU),
- the validation MSE and the extrapolation errors on the held-out runs of the
  split, and on 20 extra runs with seeds and peak LRs never trained on,
- NumPy-vs-torch decode parity of the exported file (float64 max abs error).

Writes `benchmarks/results/train_lode.json`. Timings on shared machines are noisy:
the load average before and after is recorded next to them.

Usage:
    python benchmarks/train_lode.py [--max-steps 1500] [--step-size 0.5] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--points", type=int, default=600)
    parser.add_argument("--max-steps", type=int, default=1500)
    parser.add_argument("--step-size", type=float, default=0.5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--window", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "train_lode.json"))
    parser.add_argument("--model-out", default=None, help="keep the model file here")
    args = parser.parse_args(argv)

    import tempfile

    import torch

    import keras_lode
    from keras_lode.runs.synthetic import synthetic_runs
    from keras_lode.train import LatentODE
    from keras_lode.train.evaluate import extrapolation_errors, format_table
    from keras_lode.train.trainer import export, fit

    load_before = os.getloadavg()
    runs = synthetic_runs(args.runs, points=args.points, points_per_epoch=10, seed=args.seed)
    unseen = synthetic_runs(
        20,
        points=args.points,
        points_per_epoch=10,
        seed=1000 + args.seed,
        peak_lrs=(1.6e-3, 3.7e-3, 8.5e-3, 2e-2, 4e-3),
    )
    t0 = time.perf_counter()
    model, report = fit(
        runs,
        window=args.window,
        step_size=args.step_size,
        max_steps=args.max_steps,
        batch_size=args.batch_size,
        threads=args.threads,
        seed=args.seed,
        evaluate=True,
        progress=not args.no_progress,
    )
    fit_seconds = time.perf_counter() - t0
    load_after = os.getloadavg()
    training = report.training

    t1 = time.perf_counter()
    unseen_eval = extrapolation_errors(
        model, unseen, report.train_runs, window=args.window, std=report.std
    )
    eval_seconds = time.perf_counter() - t1

    with tempfile.TemporaryDirectory() as tmp:
        path = args.model_out or os.path.join(tmp, "synthetic.npz")
        np_model = export(model, report, path, metadata={"task": "synthetic"})
        size = os.path.getsize(path)
        twin = LatentODE.load(path)
        loaded = keras_lode.load_model(path)
        assert loaded.config["training"]["n_train"] == training["n_train"]
        y = unseen[0].channels()
        t = np.arange(args.points, dtype=np.float64)
        z = np_model.encode(t[: args.window], y[: args.window])
        with torch.no_grad():
            ref = twin.decode(torch.as_tensor(t), torch.as_tensor(z)).numpy()
        parity = float(np.max(np.abs(np_model.decode(t, z) - ref)))

    result = {
        "benchmark": "train_lode",
        "command": "python benchmarks/train_lode.py " + " ".join(argv or sys.argv[1:]),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "load_average_before": [round(v, 2) for v in load_before],
            "load_average_after": [round(v, 2) for v in load_after],
        },
        "data": {
            "runs": args.runs,
            "points": args.points,
            "points_per_epoch": 10,
            "families": training["families"],
            "n_train": training["n_train"],
            "n_val": training["n_val"],
        },
        "settings": training["hyperparameters"],
        "fit_wall_s": round(fit_seconds, 1),
        "target_s": 600,
        "steps": training["steps"],
        "best_step": training["best_step"],
        "stopped_early": training["stopped_early"],
        "s_per_step": round(fit_seconds / max(training["steps"], 1), 4),
        "val_mse": training["val_mse"],
        "extrapolation_held_out": training["extrapolation"],
        "extrapolation_unseen": unseen_eval,
        "unseen_eval_s": round(eval_seconds, 1),
        "model_file_bytes": size,
        "numpy_torch_max_abs_err": parity,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(
        f"fit: {fit_seconds:.1f} s for {training['steps']} steps "
        f"({result['s_per_step']} s/step, best step {training['best_step']}), "
        f"val MSE {training['val_mse']:.4f}, load average {load_before[0]:.1f} -> "
        f"{load_after[0]:.1f}"
    )
    print("Held-out runs of the split:")
    print(format_table(training["extrapolation"]))
    print("Unseen seeds and peak LRs:")
    print(format_table(unseen_eval))
    print(f"NumPy vs torch decode, float64 max abs error: {parity:.2e}")
    print(f"Wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
