"""`Task`: what a sweep trial or a comparison run trains; `TaskData`; `split_data`.

One type serves the sweep engine (`keras_lode.experiments.engines`), the comparison runs
(`keras_lode.experiments.running`) and the example tasks (`keras_lode.tasks.get_task`).
Task specs (`"my_tasks.py:TASK"`) are resolved by `keras_lode.tasks.loading.load_task`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from keras_lode._checks import check_int
from keras_lode.constants import FAMILIES


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
class Task:
    """A training task: model, data and training settings (a sweep's and a comparison's).

    Example:

    ```python
    def build(seed):
        return keras.Sequential([keras.Input((64,)), keras.layers.Dense(10, "softmax")])

    def data():
        return {"train": (x_tr, y_tr), "val": (x_va, y_va), "test": (x_te, y_te)}

    task = Task("digits_mlp", build, data, epochs=5, batch_size=64, points_per_epoch=4)
    ```

    Args:
        name: task name, stored as `meta["task"]` of every run.
        build_model: `build_model(seed) -> keras.Model` (compiled or not: the sweep
            compiles it with its own optimizer, loss and schedule).
        load_data: `load_data()` returning the train/validation/test arrays: a dict
            `{"train": (x, y), "val": (x, y), "test": (x, y)}`, a dict or object with
            `x_train, y_train, x_val, y_val, x_test, y_test` (e.g. a `TaskData`); the test
            split is optional. The example tasks' loaders also take `seed=`; comparison
            runs (`keras_lode.experiments.train_one`) call `load_data(seed=...)` and need a
            `TaskData`.
        epochs: training epochs per trial.
        batch_size: training batch size.
        points_per_epoch: log points per epoch P recorded by `RunRecorder`.
        make_optimizer: `make_optimizer(learning_rate) -> keras optimizer`; default
            `keras.optimizers.AdamW(learning_rate)`.
        loss: the Keras loss.
        metric: the validation metric (a `RunRecorder` metric name or a callable
            `metric(y_true, y_pred) -> float` on NumPy arrays).
        validation_samples: size of the fixed validation subset measured at each point.
        peak_lrs, seeds, families: the default grid of this task.
        schedule_args: per-family extra arguments of `make_schedule`, e.g.
            `{"cosine": {"warmup_steps": 100}}`.
        meta: extra metadata stored in every run (e.g. `{"model": "cnn-96k"}`).
        scale: scale of an example task (`"quick"`, `"cpu"`, `"full"`); stored as
            `meta["scale"]` of every run when set.
        metric_name: display name of the metric (e.g. `"next_token_accuracy"`); stored as
            `meta["metric_name"]` of every run when set.
        model_file: default LODE model file of this task (may not exist yet).
        mode: `"max"` (default: accuracy) or `"min"` (a validation loss, bits per
            character): the metric's direction, as Keras callbacks take `mode`. Runs record
            it, the sweep's best config, a comparison's best epoch and its
            `ReduceLROnPlateau` peer follow it.
    """

    name: str
    build_model: Callable[..., Any]
    load_data: Callable[..., Any]
    epochs: int
    batch_size: int = 128
    points_per_epoch: int = 10
    make_optimizer: Callable[[Any], Any] | None = None
    loss: Any = "sparse_categorical_crossentropy"
    metric: Any = "accuracy"
    validation_samples: int = 1024
    peak_lrs: Sequence[float] = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
    seeds: Sequence[int] = (0, 1, 2, 3, 4)
    families: Sequence[str] = FAMILIES
    schedule_args: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    meta: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    scale: str | None = None
    metric_name: str | None = None
    model_file: str | None = None
    mode: str = "max"

    def __post_init__(self):
        if self.mode not in ("max", "min"):
            raise ValueError(f"Task `mode` must be 'max' or 'min'. Received: mode={self.mode!r}")
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"Task `name` must be a non-empty str. Received: {self.name!r}")
        for key in ("build_model", "load_data"):
            if not callable(getattr(self, key)):
                raise TypeError(f"Task `{key}` must be callable. Received: {getattr(self, key)!r}")
        for key in ("epochs", "batch_size", "points_per_epoch", "validation_samples"):
            value = getattr(self, key)
            # check_int decides; any bad value is a ValueError with this message (a test
            # and the CLI's error handling rely on it).
            try:
                check_int(key, value, minimum=1)
            except (TypeError, ValueError):
                raise ValueError(
                    f"Task `{key}` must be a positive int. Received: {key}={value!r}"
                ) from None
        unknown = sorted(set(self.schedule_args) - set(FAMILIES))
        if unknown:
            raise ValueError(
                f"Task `schedule_args` has unknown families {unknown}. Expected some of {FAMILIES}."
            )

    @property
    def accuracy_metric(self) -> bool:
        """Whether the task's metric is the built-in top-1 accuracy."""
        return _is_accuracy(self.metric)

    @property
    def model_args(self) -> dict:
        """Keyword arguments bound into `build_model` (an example task's builder or a
        `functools.partial`); `{}` for a plain function."""
        return dict(getattr(self.build_model, "keywords", None) or {})

    @property
    def data_args(self) -> dict:
        """Keyword arguments bound into `load_data`, like `model_args`."""
        return dict(getattr(self.load_data, "keywords", None) or {})

    def build_optimizer(self, learning_rate):
        """The task's optimizer with `learning_rate` (a float or a `LearningRateSchedule`)."""
        if self.make_optimizer is not None:
            return self.make_optimizer(learning_rate)
        import keras

        return keras.optimizers.AdamW(learning_rate=learning_rate)

    def compile(self, model, learning_rate):
        """Compiles `model` with the task's optimizer and loss (and Keras' accuracy metric
        when the task's metric is `"accuracy"`); returns the model."""
        model.compile(
            optimizer=self.build_optimizer(learning_rate),
            loss=self.loss,
            metrics=["accuracy"] if _is_accuracy(self.metric) else None,
        )
        return model

    def steps_per_epoch(self, n_train: int) -> int:
        """Number of optimizer steps per epoch for `n_train` examples (last batch kept)."""
        return -(-int(n_train) // self.batch_size)

    def run_meta(self) -> dict[str, Any]:
        """The task's part of a run's metadata: `meta`, then `scale` and `metric_name` if set."""
        meta = dict(self.meta)
        for key in ("scale", "metric_name"):
            value = getattr(self, key)
            if value is not None:
                meta.setdefault(key, value)
        return meta


def _is_accuracy(metric) -> bool:
    return isinstance(metric, str) and metric in ("accuracy", "sparse_categorical_accuracy")


def split_data(data) -> dict[str, tuple | None]:
    """Normalizes what `Task.load_data()` returns to `{"train", "val", "test"}` pairs."""
    out: dict[str, tuple | None] = {}
    for part, aliases in (
        ("train", ("train",)),
        ("val", ("val", "validation")),
        ("test", ("test",)),
    ):
        pair = None
        for alias in aliases:
            if isinstance(data, Mapping) and alias in data:
                pair = data[alias]
            elif isinstance(data, Mapping) and f"x_{alias}" in data:
                pair = (data[f"x_{alias}"], data.get(f"y_{alias}"))
            elif hasattr(data, f"x_{alias}"):
                pair = (getattr(data, f"x_{alias}"), getattr(data, f"y_{alias}", None))
            if pair is not None:
                break
        if pair is None:
            if part == "test":
                out[part] = None
                continue
            keys = sorted(data) if isinstance(data, Mapping) else type(data).__name__
            raise ValueError(
                f"Task `load_data()` returned no {part!r} split (looked for keys {aliases} or "
                f"x_{aliases[0]}/y_{aliases[0]}). Received: {keys}"
            )
        if not isinstance(pair, tuple | list) or len(pair) != 2 or pair[1] is None:
            raise ValueError(
                f"Task `load_data()` split {part!r} must be an (x, y) pair. "
                f"Received: {type(pair).__name__}"
            )
        out[part] = (pair[0], pair[1])
    return out
