"""Reading back the LR an optimizer really applied, shared by the Keras-side tests.

The fits use a one-weight model whose gradient is exactly 1 at every step (MAE against a
far target), so each step's LR is the weight update itself.
"""

from __future__ import annotations

import keras
import numpy as np


def probe_model(optimizer_name, lr, kernel=1.0):
    """The one-weight model `applied_lr` reads: `y = kernel * x`, MAE, no bias.

    `optimizer_name` is "sgd", "adam" or "adamw" (weight decay 0.5); `lr` is a float or a
    schedule. Epsilon 1e-12 makes Adam's step exactly lr for a constant unit gradient.
    """
    inp = keras.Input((1,))
    out = keras.layers.Dense(
        1, use_bias=False, kernel_initializer=keras.initializers.Constant(kernel)
    )(inp)
    model = keras.Model(inp, out)
    if optimizer_name == "sgd":
        opt = keras.optimizers.SGD(lr)
    elif optimizer_name == "adam":
        opt = keras.optimizers.Adam(lr, epsilon=1e-12)
    else:
        opt = keras.optimizers.AdamW(lr, weight_decay=0.5, epsilon=1e-12)
    model.compile(optimizer=opt, loss="mean_absolute_error")
    return model


def applied_lr(weights, optimizer_name):
    """The LR of each step from the kernel before the first and after every step."""
    w = np.asarray(weights, np.float64)
    dw = w[:-1] - w[1:]  # positive: the weight goes down
    if optimizer_name == "adamw":
        # AdamW first decays w by lr * wd * w (wd 0.5), then takes the Adam step lr * 1.
        return dw / (1.0 + 0.5 * w[:-1])
    return dw


def count_traces(model):
    """Counts calls of `model.train_step`: a compiled train function calls it once per trace."""
    counter = {"n": 0}
    original = model.train_step

    def train_step(*args, **kwargs):
        counter["n"] += 1
        return original(*args, **kwargs)

    model.train_step = train_step
    return counter


class KernelTrace(keras.callbacks.Callback):
    """Records the probe model's kernel before the first step and after every step.

    `hook(step)` (optional) is called after each step with the number of steps done.
    `applied_lr(trace.values, optimizer_name)` gives each step's LR.
    """

    def __init__(self, hook=None):
        super().__init__()
        self.values = []
        self.hook = hook

    def _kernel(self):
        return float(keras.ops.convert_to_numpy(self.model.layers[-1].kernel)[0, 0])

    def on_train_begin(self, logs=None):
        if not self.values:
            self.values.append(self._kernel())

    def on_train_batch_end(self, batch, logs=None):
        self.values.append(self._kernel())
        if self.hook is not None:
            self.hook(len(self.values) - 1)


class KillAt(keras.callbacks.Callback):
    """Raises `RuntimeError("killed")` at the end of the `at_step`-th batch (a crash)."""

    def __init__(self, at_step):
        super().__init__()
        self.at_step, self.seen = at_step, 0

    def on_train_batch_end(self, batch, logs=None):
        self.seen += 1
        if self.seen == self.at_step:
            raise RuntimeError("killed")


def served_with_replans(tables, replan_counts, serve, total_steps):
    """The LR per step of a fit whose plan changed at log points.

    A log point is read once the step after it has been dispatched (the observer never
    waits for the device mid-epoch), so a plan made at a point that ends after `c` steps
    reaches step `c + 1` (0-based); step `c` still runs on the plan before it.

    Args:
        tables: the plan per log point before any replan, then after each replan.
        replan_counts: steps completed at each replan's point.
        serve: `serve(table, steps) -> LR per step` (how the optimizer serves a table).
        total_steps: steps of the fit.
    """
    steps = np.arange(total_steps)
    out = np.asarray(serve(tables[0], steps), dtype=np.float64)
    for table, count in zip(tables[1:], replan_counts, strict=True):
        later = steps >= count + 1
        out[later] = serve(table, steps[later])
    return out
