"""Does `keras.optimizers.ScheduleFreeAdamW` follow its own update rule on this backend?

The scenario benchmark uses Schedule-Free AdamW (Defazio et al. 2024) as a peer a user
without a sweep might reach for. On the byte GPT it reached 4-27% next-token accuracy on
TensorFlow against ~41% for constant AdamW, and ~36% on JAX and PyTorch with the same
settings, so this script checks the optimizer itself, away from any model.

It minimizes `f(w) = 0.5 * ||w||^2` (gradient `w`) from `w = 1` for `--steps` steps and
compares the variable after each step with a NumPy reference of the rule the optimizer's own
code documents (no warm-up, no weight decay):

    v_t = beta2 v_{t-1} + (1 - beta2) g_t^2              g_t = gradient at y_{t-1}
    z_t = z_{t-1} - lr g_t / (sqrt(v_t / (1 - beta2^t)) + eps)
    x_t = (1 - 1/t) x_{t-1} + (1/t) z_t
    y_t = (1 - beta1) z_t + beta1 x_t                    (the model's variable)

It prints the largest relative difference of `y` and writes
`benchmarks/results/schedule_free_check_<backend>.json`. A benchmark: it asserts nothing.

    KERAS_BACKEND=tensorflow python benchmarks/schedule_free_check.py
    KERAS_BACKEND=jax python benchmarks/schedule_free_check.py
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

RESULTS = Path(__file__).resolve().parent / "results"


def reference(steps: int, lr: float, beta1: float, beta2: float, eps: float) -> np.ndarray:
    """The documented rule in float64: the variable `y` after each step."""
    z = x = y = np.ones(4)
    v = np.zeros(4)
    out = []
    for t in range(1, steps + 1):
        g = y.copy()
        v = beta2 * v + (1 - beta2) * g**2
        z = z - lr * g / (np.sqrt(v / (1 - beta2**t)) + eps)
        x = (1 - 1 / t) * x + (1 / t) * z
        y = (1 - beta1) * z + beta1 * x
        out.append(y.copy())
    return np.array(out)


def keras_run(steps: int, lr: float, beta1: float, beta2: float, eps: float) -> np.ndarray:
    """The same problem through `model.fit`, the compiled train step users run."""
    import keras

    keras.utils.set_random_seed(0)
    w = keras.layers.Dense(1, use_bias=False, kernel_initializer="ones")
    model = keras.Sequential([keras.Input((4,)), w])
    # One-hot rows, 4 per batch: the outputs are the kernel's entries, and the batch mean of
    # 2 * output^2 is 0.5 * ||kernel||^2, whose gradient is the kernel itself.
    model.compile(
        optimizer=keras.optimizers.ScheduleFreeAdamW(lr, beta_1=beta1, beta_2=beta2, epsilon=eps),
        loss=lambda y_true, y_pred: 2.0 * keras.ops.square(y_pred)[:, 0],
    )
    trace = []

    class Trace(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            # Through the model's weights: on JAX that syncs the train state first.
            trace.append(np.ravel(self.model.get_weights()[0]).astype(np.float64))

    x = np.tile(np.eye(4, dtype="float32"), (steps, 1))
    model.fit(x, np.zeros((4 * steps, 1), "float32"), batch_size=4, epochs=1, shuffle=False,
              verbose=0, callbacks=[Trace()])  # fmt: skip
    return np.array(trace)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--lr", type=float, default=0.0025)
    args = p.parse_args(argv)
    import keras

    from keras_lode._json import write_json

    beta1, beta2, eps = 0.9, 0.999, 1e-8
    ref = reference(args.steps, args.lr, beta1, beta2, eps)
    got = keras_run(args.steps, args.lr, beta1, beta2, eps)
    rel = np.abs(got - ref) / np.maximum(np.abs(ref), 1e-12)
    first = int(np.argmax(rel.max(axis=1) > 1e-4)) if np.any(rel > 1e-4) else None
    backend = keras.backend.backend()
    out = {
        "benchmark": "schedule_free_check",
        "backend": backend,
        "keras": keras.__version__,
        "steps": args.steps,
        "lr": args.lr,
        "max_rel_diff": float(rel.max()),
        "first_step_off_by_1e-4": None if first is None else first + 1,
        "final_y_keras": got[-1].tolist(),
        "final_y_reference": ref[-1].tolist(),
    }
    write_json(RESULTS / f"schedule_free_check_{backend}.json", out, indent=1)
    print(f"{backend} (keras {keras.__version__}): max relative difference of y from the "
          f"documented rule over {args.steps} steps: {rel.max():.2e}; first step off by more "
          f"than 1e-4: {out['first_step_off_by_1e-4']}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
