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
    # A resumed fit (initial_epoch=1) sees epoch 1's order, not epoch 0's again.
    second = [a[i][1].tolist() for i in range(3)]
    resumed = epoch_batches(x, y, 4, seed=3, initial_epoch=1)
    assert [resumed[i][1].tolist() for i in range(3)] == second


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


def test_a_lode_that_keeps_its_warmup_trains_exactly_as_its_baseline(tmp_path):
    """A control planner that never switches follows the warm-up at every step, so its fit is
    the baseline's, bit for bit (the comparison measures only what the planner changes)."""
    import dataclasses

    from keras_lode.model.controlled import random_controlled

    task = dataclasses.replace(TINY, epochs=4, points_per_epoch=4)  # 2 steps per log point
    K = task.epochs * task.points_per_epoch
    lode = random_controlled(
        0, members=2, horizon=K, points_per_epoch=4, window=4, lr_range=(1e-9, 1.0),
        mean=[1.0, -4.0, 0.5], std=[10.0, 10.0, 10.0],
    )  # fmt: skip
    lode.save(tmp_path / "c.npz")
    data = load_task_data(task, 0)
    model = str(tmp_path / "c.npz")
    # The matched arm: cosine served through the LODE's own LR mechanism, planning off.
    base = train_one(task, Method("cosine", peak_lr=3e-2, model=model), seed=5, data=data)
    keep = Method(
        "lode",
        model=model,
        peak_lr=3e-2,
        options={"warmup_family": "cosine", "margin": 1e9},  # no candidate can beat it
    )
    kept = train_one(task, keep, seed=5, data=data)
    assert kept["lode"]["plans"] >= 3 and not kept["lode"]["switches"]
    assert base["lode"]["plans"] == 0
    # Bit for bit: the same per-step table, the same measurements.
    assert [e["train_loss"] for e in kept["epochs"]] == [e["train_loss"] for e in base["epochs"]]
    assert kept["test_at_end"] == base["test_at_end"]


def test_parse_methods_matches_the_baselines_of_a_lode():
    from keras_lode.experiments import parse_methods

    methods = parse_methods("lode@0.006,wsd@0.006,cosine@0.003", "m.npz", None, "wsd")
    assert [(m.kind, m.model) for m in methods] == [
        ("lode", "m.npz"),
        ("wsd", "m.npz"),
        ("cosine", "m.npz"),
    ]
    plain = parse_methods("wsd@0.006", "m.npz", None, "wsd")  # no LODE: closed form
    assert plain[0].model is None
    unmatched = parse_methods("lode,wsd@0.006", "m.npz", None, "wsd", matched=False)
    assert unmatched[1].model is None
