"""Log points never make the host wait for the device in the middle of an epoch.

A host read of a device value waits for every step dispatched before it. The observer
takes a log point's values without reading them (`snapshot`) and reads them (`to_host`)
once the next train step has been dispatched. This test counts, per fit, the reads made
before any step was dispatched after the values were taken: only the epoch-end points,
where Keras has synchronized anyway, may be read at once.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from keras_lode.callbacks import LODECallback, RunRecorder, observer
from keras_lode.model.controlled import random_controlled
from keras_lode.schedules import LODESchedule

pytestmark = pytest.mark.backend

SPE, P, EPOCHS = 8, 4, 2


class DispatchCounter(keras.callbacks.Callback):
    """Counts calls of the model's train function (one per dispatched step)."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def on_epoch_begin(self, epoch, logs=None):
        # Wrapped here: LODECallback may rebuild the train function at train begin.
        train_function = self.model.train_function
        if getattr(train_function, "counted", False):
            return

        def counted(*args, **kwargs):
            self.count += 1
            return train_function(*args, **kwargs)

        counted.counted = True
        self.model.train_function = counted


def test_log_points_are_read_after_the_next_step_is_dispatched(monkeypatch):
    counter = DispatchCounter()
    reads = []  # (dispatches when taken, dispatches when read)
    take, read = observer.snapshot, observer.to_host

    def tagged_snapshot(values):
        return {"__taken_at__": counter.count, **take(values)}

    def tagged_to_host(values):
        values = dict(values)
        reads.append((values.pop("__taken_at__"), counter.count))
        return read(values)

    monkeypatch.setattr(observer, "snapshot", tagged_snapshot)
    monkeypatch.setattr(observer, "to_host", tagged_to_host)

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(SPE * 16, 6)).astype("float32")
    y = rng.integers(0, 3, size=SPE * 16)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3, activation="softmax")])
    model.compile(
        optimizer=keras.optimizers.Adam(LODESchedule(initial_learning_rate=1e-2)),
        loss="sparse_categorical_crossentropy",
    )

    def no_predict_on_batch(*args, **kwargs):  # it returns NumPy: a blocking read
        raise AssertionError("predict_on_batch called during fit")

    monkeypatch.setattr(model, "predict_on_batch", no_predict_on_batch)
    lode = random_controlled(0, members=2, horizon=EPOCHS * P, points_per_epoch=P, window=3,
                             lr_range=(1e-4, 1.0))  # fmt: skip
    cb = LODECallback(lode, validation_data=(x[:32], y[:32]), verbose=0)
    recorder = RunRecorder(points_per_epoch=P, validation_data=(x[:32], y[:32]))
    model.fit(x, y, batch_size=16, epochs=EPOCHS, shuffle=False, verbose=0,
              callbacks=[counter, recorder, cb])  # fmt: skip

    observers = 2
    assert counter.count == EPOCHS * SPE
    assert len(reads) == EPOCHS * P * observers  # every point taken and read once
    blocking = [r for r in reads if r[1] == r[0]]
    # Only each epoch's last point (read at epoch end, where Keras syncs anyway).
    assert len(blocking) == EPOCHS * observers
    assert all(r[1] == r[0] + 1 for r in reads if r not in blocking)
    # And the measurements are real: finite validation accuracy and interval losses.
    assert np.all(np.isfinite(recorder.run.metric)) and np.all(np.isfinite(recorder.run.loss))
    np.testing.assert_allclose(cb.history[:, 2], recorder.run.metric)
    assert np.all(np.isfinite(cb.history))
