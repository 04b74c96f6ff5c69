"""`TaskSpec`, `TaskData` and the registry of example tasks."""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from typing import Any

import numpy as np

SCALES = ("quick", "cpu", "full")


@dataclasses.dataclass
class TaskData:
    """Arrays of one task: train, validation (for the LR schedule and model selection), test."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    def __post_init__(self):
        for part in ("train", "val", "test"):
            x, y = getattr(self, f"x_{part}"), getattr(self, f"y_{part}")
            if len(x) != len(y):
                raise ValueError(
                    f"TaskData: x_{part} has {len(x)} examples but y_{part} has {len(y)}."
                )
            if len(x) == 0:
                raise ValueError(f"TaskData: x_{part} is empty.")


@dataclasses.dataclass
class TaskSpec:
    """One example task at one scale.

    Args:
        name: registry name, e.g. `"fmnist_cnn"`.
        scale: `"quick"`, `"cpu"` or `"full"`.
        build: `build(seed, **model_args) -> keras.Model` (uncompiled).
        data: `data(seed, **data_args) -> TaskData`.
        epochs: training epochs.
        batch_size: training batch size.
        points_per_epoch: log points per epoch P (what a run records and the LODE sees).
        optimizer: `"adamw"` or `"sgd"`; `weight_decay` and `momentum` apply as usual.
        metric_name: the validation metric (accuracy in [0, 1]; next-token accuracy for text).
        model_args / data_args: keyword arguments of `build` / `data` at this scale.
        model_file: default LODE file under `models/` for this task (may not exist yet).
    """

    name: str
    scale: str
    build: Callable[..., Any]
    data: Callable[..., TaskData]
    epochs: int
    batch_size: int
    points_per_epoch: int
    optimizer: str = "adamw"
    weight_decay: float = 1e-2
    momentum: float = 0.9
    metric_name: str = "accuracy"
    model_args: dict = dataclasses.field(default_factory=dict)
    data_args: dict = dataclasses.field(default_factory=dict)
    model_file: str | None = None
    lr_grid: tuple = (3e-4, 1e-3, 3e-3)

    def __post_init__(self):
        if self.scale not in SCALES:
            raise ValueError(f"Argument `scale` must be one of {SCALES}. Received: {self.scale!r}")
        for key in ("epochs", "batch_size", "points_per_epoch"):
            value = getattr(self, key)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"Argument `{key}` must be a positive int. Received: {value!r}")
        if self.optimizer not in ("adamw", "sgd"):
            raise ValueError(
                f"Argument `optimizer` must be 'adamw' or 'sgd'. Received: {self.optimizer!r}"
            )

    def load_data(self, seed: int = 0) -> TaskData:
        """Loads this task's data; the train/validation split is fixed (seed only orders)."""
        return self.data(seed=seed, **self.data_args)

    def build_model(self, seed: int = 0):
        """Builds the (uncompiled) Keras model with weights initialized from `seed`."""
        import keras

        keras.utils.set_random_seed(int(seed))
        return self.build(seed=seed, **self.model_args)

    def make_optimizer(self, learning_rate):
        """The task's optimizer with `learning_rate` (a float or a `LearningRateSchedule`)."""
        import keras

        if self.optimizer == "adamw":
            return keras.optimizers.AdamW(
                learning_rate=learning_rate, weight_decay=self.weight_decay
            )
        return keras.optimizers.SGD(learning_rate=learning_rate, momentum=self.momentum)

    def compile(self, model, learning_rate):
        """Compiles `model` with the task's optimizer, loss and accuracy metric."""
        model.compile(
            optimizer=self.make_optimizer(learning_rate),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        return model

    def steps_per_epoch(self, n_train: int) -> int:
        """Number of optimizer steps per epoch for `n_train` examples (last batch kept)."""
        return -(-int(n_train) // self.batch_size)

    def as_sweep_task(self):
        """This task as a `keras_lode.sweep.Task` (see `keras-lode sweep`)."""
        from keras_lode.tasks._sweep_adapter import to_sweep_task

        return to_sweep_task(self)


_REGISTRY = {
    "fmnist_cnn": "keras_lode.tasks.cnn:fmnist_cnn",
    "fmnist_resnet": "keras_lode.tasks.resnet:fmnist_resnet",
    "cifar10_resnet": "keras_lode.tasks.resnet:cifar10_resnet",
    "cifar100_resnet": "keras_lode.tasks.resnet:cifar100_resnet",
    "text_gpt": "keras_lode.tasks.gpt:text_gpt",
}


def task_names() -> list[str]:
    """Names accepted by `get_task`."""
    return list(_REGISTRY)


def get_task(name: str, scale: str = "cpu", **overrides) -> TaskSpec:
    """Returns the `TaskSpec` of task `name` at `scale`, with fields overridden by `overrides`.

    Args:
        name: one of `task_names()`.
        scale: `"quick"`, `"cpu"` or `"full"`.
        **overrides: `TaskSpec` fields to replace (e.g. `epochs=3`).

    Raises:
        ValueError: unknown task, scale or field.
    """
    if name not in _REGISTRY:
        raise ValueError(f"Unknown task {name!r}. Expected one of {task_names()}.")
    if scale not in SCALES:
        raise ValueError(f"Argument `scale` must be one of {SCALES}. Received: {scale!r}")
    module, func = _REGISTRY[name].split(":")
    spec = getattr(importlib.import_module(module), func)(scale)
    fields = {f.name for f in dataclasses.fields(TaskSpec)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f"Unknown TaskSpec field(s) {unknown}. Expected some of {sorted(fields)}.")
    return dataclasses.replace(spec, **overrides) if overrides else spec
