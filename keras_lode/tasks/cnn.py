"""Fashion-MNIST CNN: conv32-pool-conv64-pool-dropout-dense128 (the CPU-scale benchmark model)."""

from __future__ import annotations

import numpy as np

from keras_lode.tasks import datasets
from keras_lode.tasks.registry import example_task
from keras_lode.tasks.task import Task, TaskData

_SPLIT_SEED = 12345  # fixed so every run of a task sees the same train/validation split


def image_task_data(
    loader,
    n_train: int | None = None,
    n_val: int = 5000,
    n_test: int | None = None,
    seed: int = 0,
    channels_last_gray: bool = True,
) -> TaskData:
    """Splits a `(train, test)` image dataset into train / validation / test, scaled to [0, 1].

    The validation examples come from the training set and never overlap the training
    subset; the split does not depend on `seed` (so runs with different seeds are comparable).
    """
    del seed  # the split is fixed; seeds only change initialization and batch order
    (x_tr, y_tr), (x_te, y_te) = loader()
    if n_val <= 0 or n_val >= len(x_tr):
        raise ValueError(
            f"Argument `n_val` must be in [1, {len(x_tr) - 1}]. Received: n_val={n_val!r}"
        )
    perm = np.random.default_rng(_SPLIT_SEED).permutation(len(x_tr))
    val_idx = perm[:n_val]
    train_idx = perm[n_val:] if n_train is None else perm[n_val : n_val + n_train]
    if n_test is not None and n_test < len(x_te):
        test_idx = np.random.default_rng(_SPLIT_SEED + 1).permutation(len(x_te))[:n_test]
        x_te, y_te = x_te[test_idx], y_te[test_idx]

    def prep(x):
        x = np.asarray(x, dtype=np.float32) / 255.0
        if x.ndim == 3 and channels_last_gray:
            x = x[..., None]
        return x

    def lab(y):
        return np.asarray(y).reshape(-1).astype("int32")

    return TaskData(
        x_train=prep(x_tr[train_idx]),
        y_train=lab(y_tr[train_idx]),
        x_val=prep(x_tr[val_idx]),
        y_val=lab(y_tr[val_idx]),
        x_test=prep(x_te),
        y_test=lab(y_te),
    )


def fmnist_data(seed: int = 0, **kwargs) -> TaskData:
    """Fashion-MNIST as `TaskData` (see `image_task_data` for the arguments)."""
    return image_task_data(datasets.load_fashion_mnist, seed=seed, **kwargs)


def build_cnn(
    seed: int = 0,
    input_shape=(28, 28, 1),
    classes: int = 10,
    filters=(32, 64),
    dense: int = 128,
    dropout: float = 0.3,
):
    """Builds the small CNN (about 96k parameters at the default sizes).

    Args:
        seed: seed of the dropout layer (weights follow `keras.utils.set_random_seed`).
        input_shape: image shape, channels last.
        classes: number of classes.
        filters: filters of the two 3x3 conv layers.
        dense: width of the hidden dense layer.
        dropout: dropout rate before the dense layers.

    Returns:
        An uncompiled `keras.Model` producing class probabilities.
    """
    import keras
    from keras import layers

    inputs = keras.Input(shape=input_shape)
    x = inputs
    for f in filters:
        x = layers.Conv2D(f, 3, activation="relu", padding="same")(x)
        x = layers.MaxPooling2D()(x)
    x = layers.Dropout(dropout, seed=seed)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(dense, activation="relu")(x)
    outputs = layers.Dense(classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="fmnist_cnn")


def fmnist_cnn(scale: str) -> Task:
    """The Fashion-MNIST CNN task at `scale` (`quick`, `cpu`, `full`)."""
    common = dict(
        name="fmnist_cnn",
        build=build_cnn,
        data=fmnist_data,
        optimizer="adamw",
        weight_decay=1e-2,
        model_file="models/fmnist_cnn.npz",
        peak_lrs=(1e-3, 3e-3, 1e-2),
    )
    if scale == "quick":
        return example_task(
            scale=scale,
            epochs=1,
            batch_size=64,
            points_per_epoch=4,
            model_args=dict(filters=(8, 16), dense=32),
            data_args=dict(n_train=512, n_val=256, n_test=256),
            **common,
        )
    if scale == "cpu":
        # Sized so a run takes ~25-45 s on 2 shared CPU cores (TensorFlow): the whole
        # benchmark protocol (sweep + evaluation, ~60 runs) must fit in about an hour there.
        return example_task(
            scale=scale,
            epochs=5,
            batch_size=128,
            points_per_epoch=10,
            data_args=dict(n_train=8000, n_val=2000, n_test=5000),
            **common,
        )
    return example_task(
        scale=scale,
        epochs=15,
        batch_size=128,
        points_per_epoch=10,
        data_args=dict(n_train=None, n_val=5000, n_test=None),
        **common,
    )
