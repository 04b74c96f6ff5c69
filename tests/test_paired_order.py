"""Every method of a seed sees the same batches in the same order (comparisons are paired)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from sweep_tasks import TINY

from keras_lode.experiments import Method
from keras_lode.experiments.running import epoch_batches, load_task_data, train_one

pytestmark = pytest.mark.backend


def test_batch_order_depends_on_the_seed_only():
    x = np.arange(10)[:, None].astype("float32")
    y = np.arange(10).astype("int32")
    a, b = epoch_batches(x, y, 4, seed=3), epoch_batches(x, y, 4, seed=3)
    assert len(a) == 3
    first = [a[i][1].tolist() for i in range(3)]
    np.random.seed(123)  # the global streams do not matter
    keras.utils.set_random_seed(99)
    assert [b[i][1].tolist() for i in range(3)] == first
    assert sorted(sum(first, [])) == list(range(10))  # a permutation, last batch kept
    a.on_epoch_end()
    assert [a[i][1].tolist() for i in range(3)] != first  # reshuffled every epoch
    assert epoch_batches(x, y, 4, seed=4)[0][1].tolist() != first[0]


class _Noisy(keras.callbacks.Callback):
    """Consumes the global random streams between batches, as a planner's extras might."""

    def on_train_batch_end(self, batch, logs=None):
        np.random.random(7)
        keras.random.normal((3,), seed=None)
        self.model.predict(np.zeros((4, 8), "float32"), verbose=0)


def test_two_fits_of_one_seed_match_whatever_else_runs(monkeypatch):
    data = load_task_data(TINY, 0)
    method = Method("cosine", peak_lr=3e-2)
    quiet = train_one(TINY, method, seed=5, data=data)
    # The same fit with a callback that draws random numbers and predicts at every batch.
    import keras_lode.experiments.running as running

    plain_observer = running.observer_class

    def noisy_observer():
        base = plain_observer()

        class Noisy(base):
            def on_train_batch_end(self, batch, logs=None):
                super().on_train_batch_end(batch, logs)
                _Noisy.on_train_batch_end(self, batch, logs)

        return Noisy

    monkeypatch.setattr(running, "observer_class", noisy_observer)
    noisy = train_one(TINY, method, seed=5, data=data)
    assert [e["train_loss"] for e in noisy["epochs"]] == [e["train_loss"] for e in quiet["epochs"]]
    assert noisy["test_at_end"] == quiet["test_at_end"]
