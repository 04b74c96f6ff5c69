"""keras_lode's warnings name the user's line and share one category (the user's path, item 8)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import keras_lode


class _Fake:
    """A tiny generative stand-in whose horizon differs from the run's (a mapping warning)."""

    horizon = 20
    points_per_epoch = 10
    lr_range = (1e-6, 1.0)
    planner_defaults = {}

    def encode(self, t, y):
        return np.array([y[-1, 1], 1.0])

    def decode(self, t, z):
        out = np.zeros((len(z), len(t), 3))
        out[..., 1] = np.asarray(z)[:, :1]
        return out


def test_planner_warning_names_the_callers_line():
    window = np.column_stack([np.ones(5), np.full(5, math.log(1e-3)), np.ones(5)])
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        keras_lode.plan(_Fake(), window, position=10, total_points=40, seed=0)
    [w] = [r for r in rec if "fraction of training" in str(r.message)]
    assert w.filename == __file__
    assert issubclass(w.category, keras_lode.LODEWarning)
    assert issubclass(keras_lode.LODEWarning, UserWarning)


def test_one_filter_silences_them():
    window = np.column_stack([np.ones(5), np.full(5, math.log(1e-3)), np.ones(5)])
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        warnings.filterwarnings("ignore", category=keras_lode.LODEWarning)
        keras_lode.plan(_Fake(), window, position=10, total_points=40, seed=0)
    assert not [r for r in rec if issubclass(r.category, keras_lode.LODEWarning)]


@pytest.mark.backend
def test_callback_warning_inside_fit_names_the_fit_line():
    import keras

    from keras_lode.callbacks import LODECallback

    class Failing(_Fake):
        horizon = 8
        points_per_epoch = 2
        planner_defaults = {"window": 3, "replan_every": 2}

        def encode(self, t, y):
            raise RuntimeError("boom")

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mae")
    x, y = np.ones((8, 1), "float32"), np.zeros((8, 1), "float32")
    cb = LODECallback(Failing(), validation_data=(x[:4], y[:4]), points_per_epoch=2,
                      metric=lambda t, p: float(np.mean(p)), verbose=0)  # fmt: skip
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        model.fit(x, y, batch_size=2, epochs=4, verbose=0, callbacks=[cb])  # the line named
    hits = [r for r in rec if "boom" in str(r.message)]
    assert hits and all(r.filename == __file__ for r in hits)
