"""What does `LODESchedule` cost per training step, against a float LR and `CosineDecay`?

For each backend (one process each), the Fashion-MNIST CNN (`--model cnn`) or a small MLP
(`--model mlp`: 32 -> 64 -> 64 -> 10, a ~1-ms step on CPU, where per-step costs show as on a
GPU) with AdamW (weight decay, so the optimizer asks for the LR once per decayed variable and
once for the update) is compiled with each LR kind:

- the first `train_on_batch` in a fresh model (trace + compile; one fresh process per
  backend, so the figures of later arms share warm caches: compare within a row);
- the median per-step time of `train_on_batch` over `--rounds` rounds of `--steps` steps,
  the arms interleaved;
- on JAX, the number of host lookups `LODESchedule` makes per step; elsewhere, the number of
  times it evaluates its table per step (eager torch) or in all traces (TensorFlow).

It asserts nothing; results go to `benchmarks/results/schedule_step.json`.

    python benchmarks/schedule_step.py --backends tensorflow,jax,torch
    python benchmarks/schedule_step.py --model mlp \
        --output benchmarks/results/schedule_step_mlp.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from _backends import report_header, run_workers, write_report

RESULTS = Path(__file__).resolve().parent / "results" / "schedule_step.json"
KINDS = ("float", "cosine", "lode")


def _worker(args) -> dict:
    import keras
    import numpy as np

    from keras_lode.schedules import LODESchedule
    from keras_lode.tasks.cnn import build_cnn

    rng = np.random.default_rng(0)
    if args.model == "cnn":
        x = rng.random((128, 28, 28, 1), dtype=np.float32)

        def build():
            return build_cnn(seed=0)
    else:
        x = rng.random((128, 32), dtype=np.float32)

        def build():
            return keras.Sequential(
                [
                    keras.Input((32,)),
                    keras.layers.Dense(64, activation="relu"),
                    keras.layers.Dense(64, activation="relu"),
                    keras.layers.Dense(10, activation="softmax"),
                ]
            )

    y = rng.integers(0, 10, 128)
    lookups = [0]
    evaluations = [0]

    def make(kind):
        if kind == "float":
            return 2e-3
        if kind == "cosine":
            return keras.optimizers.schedules.CosineDecay(2e-3, 188)
        schedule = LODESchedule([2e-3, 1e-3, 5e-4, 1e-4], steps_per_epoch=94, points_per_epoch=2)
        plain = schedule.lr_at

        def counting(step):
            lookups[0] += 1
            return plain(step)

        schedule.lr_at = counting  # JAX reads the plan through lr_at on the host
        interpolate = schedule._interpolate

        def counting_evaluations(*a):
            evaluations[0] += 1
            return interpolate(*a)

        schedule._interpolate = counting_evaluations
        return schedule

    models, first = {}, {}
    for kind in KINDS:
        keras.utils.set_random_seed(0)
        model = build()
        model.compile(
            optimizer=keras.optimizers.AdamW(make(kind), weight_decay=1e-2),
            loss="sparse_categorical_crossentropy",
        )
        t0 = time.perf_counter()
        model.train_on_batch(x, y)
        first[kind] = time.perf_counter() - t0
        models[kind] = model
    times = {kind: [] for kind in KINDS}
    for _ in range(args.rounds):
        for kind, model in models.items():
            if kind == "lode":
                lookups[0] = 0
                evaluations_before = evaluations[0]
            t0 = time.perf_counter()
            for _ in range(args.steps):
                model.train_on_batch(x, y)
            times[kind].append(1e3 * (time.perf_counter() - t0) / args.steps)
            if kind == "lode":
                per_step = lookups[0] / args.steps
                evaluations_per_step = (evaluations[0] - evaluations_before) / args.steps
    step_ms = {kind: statistics.median(v) for kind, v in times.items()}
    return {
        "backend": keras.backend.backend(),
        "first_step_s": first,
        "step_ms": step_ms,
        "lode_vs_cosine_percent": 100 * (step_ms["lode"] / step_ms["cosine"] - 1),
        "host_lookups_per_step": per_step if keras.backend.backend() == "jax" else None,
        "table_evaluations_per_step": evaluations_per_step,
        "table_evaluations_in_all": evaluations[0],
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backends", default="tensorflow,jax,torch")
    ap.add_argument("--model", choices=("cnn", "mlp"), default="cnn")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--output", default=str(RESULTS))
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(_worker(args)))
        return 0
    argv = list(argv if argv is not None else sys.argv[1:])
    report = report_header(__file__, argv, backends={})
    for backend, r in run_workers(__file__, argv, args.backends, report):
        steps = ", ".join(f"{k} {v:.1f} ms" for k, v in r["step_ms"].items())
        firsts = ", ".join(f"{k} {v:.2f} s" for k, v in r["first_step_s"].items())
        extra = (
            f"; {r['host_lookups_per_step']:.0f} host lookup(s) per step"
            if r["host_lookups_per_step"] is not None
            else f"; table evaluated {r['table_evaluations_per_step']:.1f} times per step, "
            f"{r['table_evaluations_in_all']} in all"
        )
        print(
            f"{backend}: step {steps} (LODESchedule vs cosine "
            f"{r['lode_vs_cosine_percent']:+.1f}%); first step {firsts}{extra}"
        )
    write_report(report, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
