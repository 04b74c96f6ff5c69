"""MLP classifiers trained with SGD + momentum: 8x8 digits (scikit-learn) and Fashion-MNIST.

Their LRs live on SGD's scale (about 10x to 100x those of the AdamW tasks), which the zoo
of tasks needs for a LODE meant to plan for optimizers it has not seen.
"""

from __future__ import annotations

import numpy as np

from keras_lode.tasks import datasets
from keras_lode.tasks.cnn import fmnist_data
from keras_lode.tasks.registry import example_task
from keras_lode.tasks.task import Task, TaskData

_SPLIT_SEED = 12345  # fixed so every run of a task sees the same train/validation/test split
# cpu, cosine, seed 0: fmnist_mlp test accuracy 0.856 at 0.05, 0.841 at 0.2; digits_mlp (batch
# 16) 0.969 at 0.01, 0.972 at 0.05, 0.942 at 0.1 and chance at 0.2, so its grid sits lower.
SGD_PEAK_LRS = (1e-2, 2e-2, 5e-2, 1e-1, 2e-1)
DIGITS_PEAK_LRS = (5e-3, 1e-2, 2e-2, 5e-2, 1e-1)


def digits_data(
    seed: int = 0, n_train: int | None = None, n_val: int = 360, n_test: int = 360
) -> TaskData:
    """scikit-learn's 8x8 digits (1797 images) as `TaskData`, features scaled to [0, 1].

    A fixed permutation (not `seed`) deals validation, test, then training examples.

    Args:
        seed: unused (the split is fixed); kept for the data API.
        n_train / n_val / n_test: examples per split (`n_train=None`: all that remain,
            1077 at the defaults).

    Returns:
        `TaskData` with float32 `x` (N, 64) and int32 labels `y` (N,) in 0..9.

    Raises:
        ImportError: scikit-learn is not installed.
        ValueError: the splits ask for more than 1797 examples.
    """
    del seed
    x, y = datasets.load_digits()
    need = n_val + n_test + (n_train or 1)
    if need > len(x):
        raise ValueError(
            f"The digits dataset has {len(x)} examples; {need} are needed "
            f"(n_train={n_train}, n_val={n_val}, n_test={n_test})."
        )
    x = x / np.float32(16.0)
    perm = np.random.default_rng(_SPLIT_SEED).permutation(len(x))
    val, test = perm[:n_val], perm[n_val : n_val + n_test]
    rest = perm[n_val + n_test :]
    train = rest if n_train is None else rest[:n_train]
    return TaskData(x[train], y[train], x[val], y[val], x[test], y[test])


def build_mlp(
    seed: int = 0,
    input_shape=(64,),
    classes: int = 10,
    hidden=(128, 64),
    dropout: float = 0.0,
    name: str = "mlp",
):
    """Builds an MLP: flatten, ReLU dense layers (each followed by dropout if > 0), softmax.

    Args:
        seed: seed of the dropout layers (weights follow `keras.utils.set_random_seed`).
        input_shape: shape of one example (flattened first).
        classes: number of classes.
        hidden: widths of the hidden layers.
        dropout: dropout rate after each hidden layer (0: none).
        name: the model's name.

    Returns:
        An uncompiled `keras.Model` producing class probabilities.
    """
    import keras
    from keras import layers

    inputs = keras.Input(shape=tuple(input_shape))
    x = layers.Flatten()(inputs)
    for i, width in enumerate(hidden):
        x = layers.Dense(width, activation="relu")(x)
        if dropout > 0:
            x = layers.Dropout(dropout, seed=seed + i)(x)
    outputs = layers.Dense(classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name=name)


def digits_mlp(scale: str) -> Task:
    """The 8x8 digits MLP (64-128-64-10, dropout 0.2) task with SGD + momentum 0.9."""
    common = dict(
        name="digits_mlp",
        build=build_mlp,
        data=digits_data,
        optimizer="sgd",
        momentum=0.9,
        model_file="models/digits_mlp.npz",
        peak_lrs=DIGITS_PEAK_LRS,
    )
    if scale == "quick":
        return example_task(
            scale=scale,
            epochs=1,
            batch_size=32,
            points_per_epoch=2,
            model_args=dict(hidden=(32,), name="digits_mlp"),
            data_args=dict(n_train=256, n_val=128, n_test=128),
            **common,
        )
    # cpu and full share the data (1077 / 360 / 360); full trains longer. Batch 16 and
    # dropout keep the ~2000 steps of a cpu run (10-20 s) from memorizing 1077 examples early.
    return example_task(
        scale=scale,
        epochs=30 if scale == "cpu" else 60,
        batch_size=16,
        points_per_epoch=4,
        model_args=dict(hidden=(128, 64), dropout=0.2, name="digits_mlp"),
        data_args=dict(n_train=None, n_val=360, n_test=360),
        **common,
    )


def fmnist_mlp(scale: str) -> Task:
    """The Fashion-MNIST MLP (784-256-128-10, dropout 0.2) task with SGD + momentum 0.9."""
    common = dict(
        name="fmnist_mlp",
        build=build_mlp,
        data=fmnist_data,
        optimizer="sgd",
        momentum=0.9,
        model_file="models/fmnist_mlp.npz",
        peak_lrs=SGD_PEAK_LRS,
    )
    mlp = dict(input_shape=(28, 28, 1), hidden=(256, 128), dropout=0.2, name="fmnist_mlp")
    if scale == "quick":
        return example_task(
            scale=scale,
            epochs=1,
            batch_size=64,
            points_per_epoch=4,
            model_args=dict(mlp, hidden=(32,)),
            data_args=dict(n_train=512, n_val=256, n_test=256),
            **common,
        )
    if scale == "cpu":
        return example_task(
            scale=scale,
            epochs=8,
            batch_size=128,
            points_per_epoch=10,
            model_args=mlp,
            data_args=dict(n_train=20000, n_val=5000, n_test=5000),
            **common,
        )
    return example_task(
        scale=scale,
        epochs=20,
        batch_size=128,
        points_per_epoch=10,
        model_args=mlp,
        data_args=dict(n_train=None, n_val=5000, n_test=None),
        **common,
    )
