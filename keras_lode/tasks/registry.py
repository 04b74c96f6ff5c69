"""The registry of example tasks and the pieces that build their `Task`s."""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Mapping
from typing import Any

from keras_lode._checks import config_with_options
from keras_lode.tasks.task import Task, TaskData

SCALES = ("quick", "cpu", "full")
OPTIMIZERS = ("adamw", "sgd")


@dataclasses.dataclass(frozen=True)
class ModelBuilder:
    """An example task's `build_model`: seeds Keras, then `func(seed=seed, **keywords)`."""

    func: Callable[..., Any]
    keywords: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __call__(self, seed: int = 0):
        """Builds the (uncompiled) Keras model with weights initialized from `seed`."""
        import keras

        keras.utils.set_random_seed(int(seed))
        return self.func(seed=seed, **self.keywords)


@dataclasses.dataclass(frozen=True)
class DataLoader:
    """An example task's `load_data`: `func(seed=seed, **keywords) -> TaskData`."""

    func: Callable[..., TaskData]
    keywords: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __call__(self, seed: int = 0) -> TaskData:
        """Loads the task's data; the train/validation split is fixed (seed only orders)."""
        return self.func(seed=seed, **self.keywords)


@dataclasses.dataclass(frozen=True)
class OptimizerFactory:
    """An example task's `make_optimizer`: AdamW with `weight_decay` or SGD with `momentum`."""

    name: str = "adamw"
    weight_decay: float = 1e-2
    momentum: float = 0.9

    def __post_init__(self):
        if self.name not in OPTIMIZERS:
            raise ValueError(
                f"Argument `optimizer` must be 'adamw' or 'sgd'. Received: {self.name!r}"
            )

    def __call__(self, learning_rate):
        """The optimizer with `learning_rate` (a float or a `LearningRateSchedule`)."""
        import keras

        if self.name == "adamw":
            return keras.optimizers.AdamW(
                learning_rate=learning_rate, weight_decay=self.weight_decay
            )
        return keras.optimizers.SGD(learning_rate=learning_rate, momentum=self.momentum)


@dataclasses.dataclass(frozen=True)
class ExampleTaskOptions:
    """The settings of an example task beyond its name, scale, model, data and training length.

    Attributes:
        optimizer: `"adamw"` or `"sgd"`; `weight_decay` and `momentum` apply as usual.
        weight_decay: AdamW's weight decay.
        momentum: SGD's momentum.
        metric_name: the validation metric (accuracy in [0, 1]; next-token accuracy for text).
        model_args / data_args: keyword arguments of `build` / `data` at this scale.
        model_file: default LODE file under `models/` for this task (may not exist yet).
        peak_lrs: the task's sweep grid of peak LRs (its sweep seeds are 0 and 1).
        metric: `"accuracy"` (per position for sequence outputs) or a callable
            `metric(y_true, y_pred) -> float`.
        mode: the metric's direction, `"max"` or `"min"`.
    """

    optimizer: str = "adamw"
    weight_decay: float = 1e-2
    momentum: float = 0.9
    metric_name: str = "accuracy"
    model_args: Mapping[str, Any] | None = None
    data_args: Mapping[str, Any] | None = None
    model_file: str | None = None
    peak_lrs: tuple = (3e-4, 1e-3, 3e-3)
    metric: Any = "accuracy"
    mode: str = "max"


def example_task(
    *,
    name: str,
    scale: str,
    build: Callable[..., Any],
    data: Callable[..., TaskData],
    epochs: int,
    batch_size: int,
    points_per_epoch: int,
    config: ExampleTaskOptions | None = None,
    **options,
) -> Task:
    """One example task at one scale, as a `Task`.

    Args:
        name: registry name, e.g. `"fmnist_cnn"`.
        scale: `"quick"`, `"cpu"` or `"full"`.
        build: `build(seed, **model_args) -> keras.Model` (uncompiled).
        data: `data(seed, **data_args) -> TaskData`.
        epochs, batch_size, points_per_epoch: training settings at this scale.
        config: an `ExampleTaskOptions`; None for the defaults.
        **options: fields of `ExampleTaskOptions` (`optimizer`, `weight_decay`,
            `momentum`, `metric_name`, `model_args`, `data_args`, `model_file`,
            `peak_lrs`, `metric`, `mode`), overriding `config`'s.

    Raises:
        ValueError: an unknown `scale` or `optimizer`.
        TypeError: an unknown option.
    """
    opts = config_with_options(ExampleTaskOptions, config, options, "example_task")
    if scale not in SCALES:
        raise ValueError(f"Argument `scale` must be one of {SCALES}. Received: {scale!r}")
    return Task(
        name=name,
        build_model=ModelBuilder(build, dict(opts.model_args or {})),
        load_data=DataLoader(data, dict(opts.data_args or {})),
        epochs=epochs,
        batch_size=batch_size,
        points_per_epoch=points_per_epoch,
        make_optimizer=OptimizerFactory(opts.optimizer, opts.weight_decay, opts.momentum),
        # RunRecorder's "accuracy" is per position for sequence outputs, i.e. next-token
        # accuracy for the text task; the task's own name for it is `metric_name`.
        metric=opts.metric,
        mode=opts.mode,
        peak_lrs=tuple(opts.peak_lrs),
        seeds=(0, 1),
        scale=scale,
        metric_name=opts.metric_name,
        model_file=opts.model_file,
    )


_REGISTRY = {
    "fmnist_cnn": "keras_lode.tasks.cnn:fmnist_cnn",
    "fmnist_resnet": "keras_lode.tasks.resnet:fmnist_resnet",
    "cifar10_resnet": "keras_lode.tasks.resnet:cifar10_resnet",
    "cifar100_resnet": "keras_lode.tasks.resnet:cifar100_resnet",
    "text_gpt": "keras_lode.tasks.gpt:text_gpt",
    "charlm": "keras_lode.tasks.charlm:charlm",
    "digits_mlp": "keras_lode.tasks.mlp:digits_mlp",
    "fmnist_mlp": "keras_lode.tasks.mlp:fmnist_mlp",
}

# Overrides that rebind the arguments of an example task's builder / loader.
_ARG_OVERRIDES = {"model_args": "build_model", "data_args": "load_data"}


def task_names() -> list[str]:
    """Names accepted by `get_task`."""
    return list(_REGISTRY)


def get_task(name: str, scale: str = "cpu", **overrides) -> Task:
    """Returns the `Task` of example task `name` at `scale`, with fields overridden.

    Args:
        name: one of `task_names()`.
        scale: `"quick"`, `"cpu"` or `"full"`.
        **overrides: `Task` fields to replace (e.g. `epochs=3`), and `model_args` /
            `data_args` to replace the keyword arguments of the model builder / data loader.

    Raises:
        ValueError: unknown task, scale or field.
    """
    if name not in _REGISTRY:
        raise ValueError(f"Unknown task {name!r}. Expected one of {task_names()}.")
    if scale not in SCALES:
        raise ValueError(f"Argument `scale` must be one of {SCALES}. Received: {scale!r}")
    module, func = _REGISTRY[name].split(":")
    task = getattr(importlib.import_module(module), func)(scale)
    fields = {f.name for f in dataclasses.fields(Task)} | set(_ARG_OVERRIDES)
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f"Unknown Task field(s) {unknown}. Expected some of {sorted(fields)}.")
    for arg, field in _ARG_OVERRIDES.items():
        if arg in overrides:
            bound = overrides.get(field, getattr(task, field))
            overrides[field] = dataclasses.replace(bound, keywords=dict(overrides.pop(arg)))
    return dataclasses.replace(task, **overrides) if overrides else task
