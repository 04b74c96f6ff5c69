"""Reading back the LR an optimizer really applied, shared by the Keras-side tests.

The fits use a one-weight model whose gradient is exactly 1 at every step (MAE against a
far target), so each step's LR is the weight update itself.
"""

from __future__ import annotations

import numpy as np


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
