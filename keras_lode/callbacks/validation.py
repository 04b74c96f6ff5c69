"""ValidationProbe: a validation metric measured on a fixed subset, without stalling `fit`.

`model.evaluate` mid-epoch resets the shared metrics, so the metric is computed from the
model's outputs on a fixed subset of the validation data, in fixed-size chunks (one trace,
no retracing for a ragged last chunk). The forward passes are dispatched at a log point
and read one training step later by `LogPointObserver`, so the host never waits for the
device in the middle of an epoch.
"""

from __future__ import annotations

import logging

import keras
import numpy as np

__all__ = ["ValidationProbe", "default_validation_batch_size", "inference_function"]

logger = logging.getLogger(__name__)

_METRICS = ("accuracy", "sparse_categorical_accuracy", "categorical_accuracy", "binary_accuracy")
# Predict batch of the validation probe when none is given: the cheapest per sample on
# each backend's CPU kernels for the example tasks (measured by a validation-cost
# script, now in git history; docs/benchmarks.md).
# PyTorch runs Keras's channels-last layers through layout copies whose cost grows
# out of cache with the batch, so 128-sample chunks take about half the time of one
# 1024 batch there; TensorFlow and JAX are fastest with one large batch. Every chunk
# has the same shape, so the predict function traces once.
_DEFAULT_CHUNK = {"torch": 128}
_MAX_CHUNK = 1024


def default_validation_batch_size(backend: str | None = None) -> int:
    """The predict batch `ValidationProbe` uses when `batch_size` is None."""
    return _DEFAULT_CHUNK.get(backend or keras.backend.backend(), _MAX_CHUNK)


# ---------------------------------------------------------------------- validation metric
def _accuracy(y_true: np.ndarray, y_pred: np.ndarray, kind: str) -> float:
    y_pred = np.asarray(y_pred)
    y_true = np.asarray(y_true)
    if y_pred.ndim >= 2 and y_pred.shape[-1] > 1 and kind != "binary_accuracy":
        pred = np.argmax(y_pred, axis=-1)
        if kind == "categorical_accuracy" or (kind == "accuracy" and y_true.shape == y_pred.shape):
            true = np.argmax(y_true, axis=-1)
        else:
            true = y_true.reshape(pred.shape).astype(np.int64)
        return float(np.mean(pred == true))
    # One output unit: probabilities (or logits, which share the sign of p - 0.5 only
    # when they are probabilities; documented: give a callable for logits).
    pred = (y_pred.reshape(len(y_pred), -1) > 0.5).astype(np.int64)
    true = np.asarray(y_true).reshape(pred.shape).astype(np.int64)
    return float(np.mean(pred == true))


class ValidationProbe:
    """Measures a validation metric on a fixed subset of the validation data.

    `start(model)` dispatches the forward passes and returns their outputs as device
    tensors without waiting for them; `finish(outputs)` reads them to the host and
    computes the metric. Callers that read one training step later (`LogPointObserver`)
    never stall the step pipeline; `measure(model)` does both at once. The forward pass
    is the model's inference call (`training=False`, as `predict_on_batch`), compiled once
    per backend; a model it cannot run falls back to `predict_on_batch` (logged once).

    Args:
        validation_data: `(x, y)` NumPy arrays (or array-likes; `x` may be a list or
            dict of arrays for multi-input models).
        samples: size of the fixed subset (drawn once, seed 0; all if fewer).
        metric: `"accuracy"` (also `"sparse_categorical_accuracy"`,
            `"categorical_accuracy"`, `"binary_accuracy"`) or a callable
            `metric(y_true, y_pred) -> float` on NumPy arrays.
        batch_size: samples per `predict_on_batch` call; None picks the backend's
            cheapest (`default_validation_batch_size()`: 128 on PyTorch, else up to
            1024). It changes the cost, not the value measured.

    Raises:
        ValueError: if `validation_data` is not an `(x, y)` pair of equal lengths,
            `samples` or `batch_size` is not a positive int, or `metric` is an
            unknown name.
    """

    def __init__(
        self, validation_data, samples: int = 1024, metric="accuracy", batch_size: int | None = None
    ):
        if not isinstance(validation_data, tuple | list) or len(validation_data) != 2:
            raise ValueError(
                "Argument `validation_data` must be a tuple `(x, y)` of arrays. "
                f"Received: validation_data of type {type(validation_data).__name__}"
            )
        if isinstance(samples, bool) or not isinstance(samples, int) or samples <= 0:
            raise ValueError(
                f"Argument `validation_samples` must be a positive int. Received: {samples!r}"
            )
        if batch_size is not None and (
            isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0
        ):
            raise ValueError(
                "Argument `validation_batch_size` must be a positive int or None. "
                f"Received: {batch_size!r}"
            )
        if not callable(metric) and metric not in _METRICS:
            raise ValueError(
                f"Argument `metric` must be one of {_METRICS} or a callable "
                f"metric(y_true, y_pred) -> float. Received: metric={metric!r}"
            )
        x, y = validation_data
        x = keras.tree.map_structure(np.asarray, x)
        y = np.asarray(y)
        n = len(y)
        lengths = {len(a) for a in keras.tree.flatten(x)}
        if lengths != {n} or n == 0:
            raise ValueError(
                "Argument `validation_data` must hold x and y with the same, non-zero number "
                f"of samples. Received x lengths {sorted(lengths)} and y length {n}."
            )
        take = min(samples, n)
        rng = np.random.default_rng(0)
        index = np.sort(rng.choice(n, size=take, replace=False)) if take < n else np.arange(n)
        self.x = keras.tree.map_structure(lambda a: a[index], x)
        self.y = y[index]
        self.metric = metric
        self.metric_name = (
            metric if isinstance(metric, str) else getattr(metric, "__name__", "metric")
        )
        self.samples = take
        self.chunk = min(batch_size or default_validation_batch_size(), take)
        self._cached = None

    def _chunks(self) -> list:
        # Built once, as backend tensors, so no log point pays the host-to-device copy.
        if getattr(self, "_cached", None) is None:
            n, chunks = self.samples, []
            for start in range(0, n, self.chunk):
                idx = np.arange(start, start + self.chunk)
                # Pad the last chunk to the chunk size by wrapping around, so every
                # call has the same shape and the predict function is traced once.
                idx = np.where(idx < n, idx, idx % n)
                xb = keras.tree.map_structure(
                    lambda a, idx=idx: keras.ops.convert_to_tensor(a[idx]), self.x
                )
                chunks.append((xb, min(start + self.chunk, n) - start))
            self._cached = chunks
        return self._cached

    def start(self, model) -> list:
        """Dispatches the forward passes of the subset; returns the device outputs."""
        forward = self._forward_for(model)
        if forward is None:
            return [model.predict_on_batch(xb) for xb, _ in self._chunks()]
        try:
            return [forward(xb) for xb, _ in self._chunks()]
        except Exception as e:  # a model the compiled forward cannot run: fall back
            logger.info(
                "ValidationProbe: the compiled forward pass failed (%s: %s); measuring with "
                "predict_on_batch instead.",
                type(e).__name__,
                e,
            )
            self._forward = (model, None)
            return [model.predict_on_batch(xb) for xb, _ in self._chunks()]

    def finish(self, outputs: list) -> float:
        """Reads the outputs of `start` to the host and returns the metric."""
        preds = []
        for out, (_, keep) in zip(outputs, self._chunks(), strict=True):
            first = keras.tree.flatten(out)[0]
            preds.append(np.asarray(keras.ops.convert_to_numpy(first))[:keep])
        y_pred = np.concatenate(preds, axis=0)
        if callable(self.metric):
            return float(self.metric(self.y, y_pred))
        return _accuracy(self.y, y_pred, self.metric)

    def measure(self, model) -> float:
        """Returns the metric of `model` on the subset (waits for it)."""
        return self.finish(self.start(model))

    def _forward_for(self, model):
        cached = getattr(self, "_forward", None)
        if cached is not None and cached[0] is model:
            return cached[1]
        forward = inference_function(model)
        self._forward = (model, forward)
        return forward


def inference_function(model):
    """`x -> model(x, training=False)` compiled for the backend, returning device tensors.

    TensorFlow: a `tf.function`; JAX: `jax.jit` of `model.stateless_call` on the current
    variable values (read at each call, so it follows training); torch: an eager call
    under `torch.no_grad()`. None on other backends or for a model that overrides
    `predict_step` (the caller uses `predict_on_batch`, which runs the model's own step).
    """
    if _custom_predict_step(model):
        return None
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    if backend == "jax":
        import jax

        def stateless(trainable, non_trainable, x):
            return model.stateless_call(trainable, non_trainable, x, training=False)[0]

        jitted = jax.jit(stateless)

        def forward(x):
            trainable = [v.value for v in model.trainable_variables]
            non_trainable = [v.value for v in model.non_trainable_variables]
            return jitted(trainable, non_trainable, x)

        return forward
    if backend == "torch":
        import torch

        def forward(x):
            with torch.no_grad():
                return model(x, training=False)

        return forward
    return None


def _custom_predict_step(model) -> bool:
    """Whether `model`'s class (not Keras) defines the `predict_step` it runs."""
    for cls in type(model).__mro__:
        if "predict_step" in cls.__dict__:
            return not cls.__module__.startswith("keras.")
    return False
