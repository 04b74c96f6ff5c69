"""Do the closed-form and the LODE-table arms of one schedule train the same weights?

A schedule computed in closed form inside the compiled train step
(`AdamW(make_schedule(family, 6e-3, T))`) and the same schedule served from a per-step table
by `LODESchedule` (what `LODECallback(..., warmup=schedule)` configures) should give the same
LR at every step. They can differ in the last bits: the table is the schedule evaluated
eagerly on a vector of steps, the closed form is compiled per step, and the backend's
compiler may rewrite it (TensorFlow's graph optimizer turns `step / T` into `step * (1 / T)`,
XLA on JAX contracts multiply-adds into FMAs, graph and eager `cos` round differently).
Mostly an ulp or two; more in a cosine's tail, where `1 + cos` cancels and one ulp of `cos`
is many of the LR's. Training carries the first differing LR into differing weights.

For the current backend (`KERAS_BACKEND`) and each family (cosine, onecycle, wsd): a dense
net (16 -> 32 relu -> 4) on fixed random data (512 samples, batch 32, 16 steps per epoch,
20 epochs = 320 steps), AdamW with peak LR 6e-3, trained from the same initial weights in
the same batch order (`shuffle=False`, one thread) by four arms:

- `closed`: the closed-form schedule;
- `closed_plain`: the same with Keras' own AdamW instead of the probe optimizer below
  (checks that the probe changes nothing: weights bit-identical at every step);
- `matched`: `LODESchedule` + `LODECallback(random_controlled LODE, warmup=schedule,
  planning=False)`, the matched baseline arm of a paired comparison;
- `never_switching`: the same callback planning (from 20% of the run) with `margin=1e9`,
  so that it never leaves the warm-up.

How the LR is measured: every arm but `closed_plain` trains with a subclass of the class
`keras.optimizers.AdamW` instantiates on the backend (torch's fused AdamW on torch) whose
`_backend_update_step` copies the `learning_rate` it is passed (the LR the update uses,
computed inside the compiled train step) into an optimizer variable; a callback reads it and
the flattened weights after every batch. The table is the callback's per-step table
(`LODECallback.step_table`, float64) rounded to float32; the matched arm is checked to use
exactly it. (AdamW's weight decay evaluates the schedule again; the probe sees the update's.)

Reported per family: the steps where the closed arm's LR differs from the table's (count,
max |ulps|, how many above / below, mean relative difference over all steps), the first
step where the weights differ, max |weight difference| at the end, the final losses, and
whether the matched and never-switching arms end with bit-identical weights (and LRs).
Results go to `benchmarks/results/arm_divergence_<backend>.json`; it asserts nothing.

    KERAS_BACKEND=tensorflow OMP_NUM_THREADS=1 python benchmarks/arm_divergence.py
    KERAS_BACKEND=jax OMP_NUM_THREADS=1 python benchmarks/arm_divergence.py
    KERAS_BACKEND=torch OMP_NUM_THREADS=1 python benchmarks/arm_divergence.py
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from _backends import report_header  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
FAMILIES = ("cosine", "onecycle", "wsd")
ARMS = ("closed", "closed_plain", "matched", "never_switching")
BATCH = 32
POINTS_PER_EPOCH = 4


def _one_thread() -> None:
    """One compute thread: reductions in a fixed order, so that equal inputs give equal bits."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    elif backend == "torch":
        import torch

        torch.set_num_threads(1)


def _probe_adamw(learning_rate):
    """AdamW (the backend's own class) that keeps the LR passed to each update in `lr_probe`."""
    base = type(keras.optimizers.AdamW(1e-3))  # torch swaps in its fused AdamW

    class ProbeAdamW(base):
        def build(self, variables):
            super().build(variables)
            self.lr_probe = self.add_variable(
                (), dtype="float32", initializer="zeros", name="lr_probe"
            )

        def _backend_update_step(self, grads, trainable_variables, learning_rate):
            self.lr_probe.assign(keras.ops.cast(learning_rate, "float32"))
            return super()._backend_update_step(grads, trainable_variables, learning_rate)

    return ProbeAdamW(learning_rate)


class _Recorder(keras.callbacks.Callback):
    """After each batch: the flattened weights, the probed LR (NaN without probe), the loss."""

    def __init__(self):
        super().__init__()
        self.weights, self.lr, self.loss = [], [], []

    def on_train_batch_end(self, batch, logs=None):
        model = self.model  # on JAX this syncs the train state into the variables
        self.weights.append(np.concatenate([np.ravel(w) for w in model.get_weights()]))
        probe = getattr(model.optimizer, "lr_probe", None)
        self.lr.append(np.nan if probe is None else float(keras.ops.convert_to_numpy(probe)))
        self.loss.append(float(logs["loss"]) if logs and "loss" in logs else np.nan)


def _data(steps_per_epoch: int):
    rng = np.random.default_rng(0)
    n = steps_per_epoch * BATCH
    x = rng.normal(size=(n, 16)).astype("float32")
    w = rng.normal(size=(16, 4))
    y = np.argmax(x @ w + rng.normal(size=(n, 4)), axis=1).astype("int32")
    xv = rng.normal(size=(256, 16)).astype("float32")
    yv = np.argmax(xv @ w + rng.normal(size=(256, 4)), axis=1).astype("int32")
    return x, y, xv, yv


def _net():
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [keras.Input((16,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(4)]
    )


def _train(arm: str, family: str, init, data, args) -> dict:
    """One arm's fit; returns per-step weights, probed LRs and losses (and the callback's)."""
    from keras_lode import LODEWarning
    from keras_lode.callbacks import LODECallback
    from keras_lode.model.controlled import random_controlled
    from keras_lode.schedules import LODESchedule, make_schedule

    x, y, xv, yv = data
    total = args.steps_per_epoch * args.epochs
    schedule = make_schedule(family, args.peak, total)
    callback = None
    if arm == "closed":
        optimizer = _probe_adamw(schedule)
    elif arm == "closed_plain":
        optimizer = keras.optimizers.AdamW(schedule)
    else:
        optimizer = _probe_adamw(LODESchedule(initial_learning_rate=1e-3))
        lode = random_controlled(
            0,
            members=2,
            hidden=4,
            state=4,
            width=8,
            depth=1,
            window=4,
            horizon=args.epochs * POINTS_PER_EPOCH,
            points_per_epoch=POINTS_PER_EPOCH,
        )
        planner = {"planning": False} if arm == "matched" else {"margin": 1e9}
        callback = LODECallback(
            lode,
            validation_data=(xv, yv),
            warmup=schedule,
            points_per_epoch=POINTS_PER_EPOCH,
            validation_samples=64,
            verbose=0,
            **planner,
        )
    keras.utils.set_random_seed(0)
    model = _net()
    model.set_weights(init)
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    recorder = _Recorder()
    callbacks = [recorder] if callback is None else [callback, recorder]
    with warnings.catch_warnings():
        # The random LODE was trained on no runs: its "implausible run" warning says nothing.
        warnings.simplefilter("ignore", LODEWarning)
        model.fit(
            x, y, batch_size=BATCH, epochs=args.epochs, shuffle=False, verbose=0,
            callbacks=callbacks,
        )  # fmt: skip
    out = {
        "weights": np.array(recorder.weights),
        "lr": np.array(recorder.lr, np.float32),
        "loss": np.array(recorder.loss),
        "jit_compile": str(model.jit_compile),
    }
    if callback is not None:
        out["step_table"] = callback.step_table
        out["replans"] = len(callback.plans)
        out["switched"] = sum(bool(getattr(p, "switched", False)) for p in callback.plans.values())
        out["plan_is_warmup"] = bool(
            np.array_equal(callback.plan_table, callback.tables.warmup_table)
        )
    return out


def _ulps(a, b) -> np.ndarray:
    """Signed float32 ulp distance `a - b` of positive floats."""
    ia = np.asarray(a, np.float32).view(np.int32).astype(np.int64)
    ib = np.asarray(b, np.float32).view(np.int32).astype(np.int64)
    return ia - ib


def _first(mask) -> int | None:
    return int(np.argmax(mask)) if np.any(mask) else None


def _compare(res: dict) -> dict:
    """The figures of one family from its arms' recordings."""
    closed, matched, never = res["closed"], res["matched"], res["never_switching"]
    table = np.asarray(matched["step_table"], np.float64).astype(np.float32)
    du = _ulps(closed["lr"], table)
    differs = np.nonzero(du)[0]
    rel = (closed["lr"].astype(np.float64) - table) / table
    weights_differ = np.any(closed["weights"] != matched["weights"], axis=1)
    first_w = _first(weights_differ)
    dw = np.abs(closed["weights"].astype(np.float64) - matched["weights"])
    return {
        "steps": len(table),
        "jit_compile": closed["jit_compile"],
        "lr_closed_vs_table": {
            "steps_differing": len(differs),
            "first_step_differing": int(differs[0]) if len(differs) else None,
            "max_abs_ulps": int(np.abs(du).max()),
            "step_of_max_abs_ulps": int(np.argmax(np.abs(du))) if len(differs) else None,
            "closed_above_table": int((du > 0).sum()),
            "closed_below_table": int((du < 0).sum()),
            "mean_relative_difference": float(rel.mean()),
            "steps_differing_in_last_10_percent": int((differs >= 0.9 * len(table)).sum()),
        },
        "matched_lr_is_table": bool(np.array_equal(matched["lr"], table)),
        "never_switching_lr_is_table": bool(np.array_equal(never["lr"], table)),
        "weights_closed_vs_matched": {
            "first_step_differing": first_w,
            "lr_ulps_at_that_step": None if first_w is None else int(du[first_w]),
            "lr_differing_steps_up_to_it": None
            if first_w is None
            else int(np.count_nonzero(du[: first_w + 1])),
            "max_abs_difference_end": float(dw[-1].max()),
            "max_abs_difference_any_step": float(dw.max()),
            "final_loss_closed": float(closed["loss"][-1]),
            "final_loss_matched": float(matched["loss"][-1]),
        },
        "matched_vs_never_switching": {
            "weights_bit_identical_end": bool(
                np.array_equal(matched["weights"][-1], never["weights"][-1])
            ),
            "weights_bit_identical_every_step": bool(
                np.array_equal(matched["weights"], never["weights"])
            ),
            "lrs_bit_identical": bool(np.array_equal(matched["lr"], never["lr"])),
            "replans": never["replans"],
            "switched": never["switched"],
            "plan_is_warmup": never["plan_is_warmup"],
        },
        "probe_changes_nothing": bool(
            np.array_equal(closed["weights"], res["closed_plain"]["weights"])
        ),
    }


def _line(family: str, r: dict) -> str:
    lr, w = r["lr_closed_vs_table"], r["weights_closed_vs_matched"]
    nv = r["matched_vs_never_switching"]
    return (
        f"{family}: LR differs at {lr['steps_differing']}/{r['steps']} steps "
        f"(max {lr['max_abs_ulps']} ulp, +{lr['closed_above_table']}/-{lr['closed_below_table']}, "
        f"mean rel {lr['mean_relative_difference']:+.1e}); weights first differ at step "
        f"{w['first_step_differing']}, max |dw| at end {w['max_abs_difference_end']:.1e}; "
        f"matched == never-switching: {nv['weights_bit_identical_end']} "
        f"({nv['replans']} replans, {nv['switched']} switched); "
        f"probe neutral: {r['probe_changes_nothing']}"
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--steps-per-epoch", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--peak", type=float, default=6e-3)
    ap.add_argument("--output", default=None, help="default results/arm_divergence_<backend>.json")
    args = ap.parse_args(argv)
    from keras_lode._json import write_json

    _one_thread()
    backend = keras.backend.backend()
    report = report_header(__file__, argv, backend=backend, keras=keras.__version__, families={})
    report["command"] = f"KERAS_BACKEND={backend} OMP_NUM_THREADS=1 {report['command']}".strip()
    data = _data(args.steps_per_epoch)
    init = _net().get_weights()
    t0 = time.perf_counter()
    for family in [f.strip() for f in args.families.split(",") if f.strip()]:
        res = {arm: _train(arm, family, init, data, args) for arm in ARMS}
        report["families"][family] = _compare(res)
        print(f"{backend} {_line(family, report['families'][family])}", flush=True)
    report["seconds"] = time.perf_counter() - t0
    out = args.output or RESULTS / f"arm_divergence_{backend}.json"
    write_json(out, report)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
