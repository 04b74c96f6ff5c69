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
