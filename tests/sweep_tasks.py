"""Tiny sweep tasks for tests/test_sweep.py, importable by path ('tests/sweep_tasks.py:TINY')
so that Ray workers and isolated trial subprocesses can load them."""

from __future__ import annotations

import numpy as np

from keras_lode.experiments import Task


def _data(n_train=256, n_val=64, n_test=64, features=8, classes=3):
    rng = np.random.default_rng(0)
    w = rng.normal(size=(features, classes))

    def split(n):
        x = rng.normal(size=(n, features)).astype("float32")
        return x, np.argmax(x @ w, axis=1).astype("int32")

    return {"train": split(n_train), "val": split(n_val), "test": split(n_test)}


def _mlp(seed):
    import keras

    return keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )


TINY = Task(
    name="tiny",
    build_model=_mlp,
    load_data=_data,
    epochs=2,
    batch_size=32,
    points_per_epoch=2,
    validation_samples=64,
    peak_lrs=(1e-3, 3e-2),
    seeds=(0, 1),
    families=("cosine", "constant"),
)


def _flaky_mlp(seed):
    if seed == 1:
        raise RuntimeError("boom: seed 1 cannot be built")
    return _mlp(seed)


def _regression_data():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(128, 8)).astype("float32")
    y = (x @ rng.normal(size=(8, 1))).astype("float32")
    return {"x_train": x, "y_train": y, "x_val": x[:32], "y_val": y[:32]}


def _linear(seed):
    import keras

    return keras.Sequential([keras.Input((8,)), keras.layers.Dense(1)])


def neg_mse(y_true, y_pred):
    with np.errstate(over="ignore", invalid="ignore"):  # diverged on purpose
        return -float(np.mean((np.asarray(y_true) - np.asarray(y_pred)) ** 2))


def _sgd(learning_rate):
    import keras

    return keras.optimizers.SGD(learning_rate=learning_rate)


# Plain SGD on MSE: a huge learning rate diverges within a few steps, a small one trains.
REGRESSION = Task(
    name="regression",
    build_model=_linear,
    load_data=_regression_data,
    epochs=4,
    batch_size=32,
    points_per_epoch=2,
    make_optimizer=_sgd,
    loss="mse",
    metric=neg_mse,
    validation_samples=32,
    peak_lrs=(1e-2, 1e3),
    seeds=(0,),
    families=("constant",),
)

FLAKY = Task(
    name="flaky",
    build_model=_flaky_mlp,
    load_data=_data,
    epochs=1,
    batch_size=64,
    points_per_epoch=2,
    validation_samples=64,
    peak_lrs=(1e-2,),
    seeds=(0, 1),
    families=("constant",),
)


def make_tiny():
    """A zero-argument factory, as a task spec may name one."""
    return TINY
