"""A LODE that never leaves its warm-up trains exactly as its matched baseline arm.

The baseline arm of a paired comparison is served through the LODE's own LR mechanism
(`LODECallback(..., planning=False)`: the same per-step table, the same measurements), so
the only difference between the arms is what the planner decides. A closed-form schedule
computed inside the compiled step differs from the table by a few float32 ulps on some
steps, which training amplifies (docs/benchmarks.md, "Matched arms").
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from keras_lode.callbacks import LODECallback
from keras_lode.model.controlled import random_controlled
from keras_lode.schedules import LODESchedule, make_schedule

pytestmark = pytest.mark.backend

SPE, P, EPOCHS = 8, 4, 3


def _fit(family: str, planning: bool):
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(SPE * 16, 6)).astype("float32")
    y = rng.integers(0, 3, size=SPE * 16)
    model = keras.Sequential(
        [keras.Input((6,)), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(3)]
    )
    model.compile(
        optimizer=keras.optimizers.AdamW(LODESchedule(initial_learning_rate=1e-2)),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    lode = random_controlled(0, members=2, horizon=EPOCHS * P, points_per_epoch=P, window=3,
                             lr_range=(1e-5, 1.0))  # fmt: skip
    warmup = make_schedule(family, 2e-2, EPOCHS * SPE)
    # margin 1e9: the planner scores every candidate at every replan and keeps the warm-up.
    cb = LODECallback(lode, validation_data=(x[:32], y[:32]), warmup=warmup, verbose=0,
                      planning=planning, margin=1e9)  # fmt: skip
    model.fit(x, y, batch_size=16, epochs=EPOCHS, shuffle=False, verbose=0, callbacks=[cb])
    return [np.asarray(keras.ops.convert_to_numpy(w)) for w in model.weights], cb


@pytest.mark.parametrize("family", ["cosine", "onecycle", "wsd"])
def test_lode_that_never_switches_is_bit_identical_to_its_matched_arm(family):
    lode_weights, lode = _fit(family, planning=True)
    null_weights, null = _fit(family, planning=False)
    assert len(lode.plans) >= 2 and not null.plans  # the LODE did plan, and kept its default
    assert all(p.chosen_name == "default" for p in lode.plans.values())
    np.testing.assert_array_equal(lode.step_table, null.step_table)
    for a, b in zip(lode_weights, null_weights, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(lode.history, null.history)
