"""LODECallback with a controlled model, on each Keras backend: plan followed, faults, resume.

As in test_callback.py, a one-weight model with a gradient of exactly 1 lets the LR of
every step be read back from the weight updates. `DoublingControlled` is a hand-made
controlled model whose plan is known: it scores a path by its mean LR, so the control
planner always picks the library's highest path, the constant at 2x the current LR.
"""

from __future__ import annotations

import json
import os

import keras
import numpy as np
import pytest
from lr_probe import (
    KernelTrace,
    KillAt,
    applied_lr,
    count_traces,
    probe_model,
    served_with_replans,
)

from keras_lode import LODEWarning
from keras_lode.callbacks import LODECallback
from keras_lode.planning import ControlPlan
from keras_lode.schedules import LODESchedule

pytestmark = pytest.mark.backend

SPE, P, EPOCHS, W = 4, 2, 4, 3
K = EPOCHS * P  # 8 log points; replans at points 2, 4, 6
LR_RANGE = (1e-6, 10.0)


class DoublingControlled:
    kind = "controlled"
    window = W
    horizon = K
    points_per_epoch = P
    lr_range = LR_RANGE
    members = 3

    def __init__(self, fail=False):
        self.fail = fail
        self.planner_defaults = {"lr_range": list(LR_RANGE)}

    def predict(self, t_window, window, t, log_lr):
        if self.fail:
            raise RuntimeError("boom")
        score = np.exp(log_lr[:, 1:]).mean(axis=1)
        out = np.zeros((self.members, log_lr.shape[0], len(t), 2))
        out[:, :, :, 1] = score[None, :, None] + np.array([-1e-3, 0.0, 1e-3])[:, None, None]
        return out

    def spread(self, values):
        return values.mean(axis=0), values.std(axis=0, ddof=1)


def _doubling_table(warm=0.1, replans=(2, 4, 6)):
    table = np.full(K, warm)
    for n in replans:
        table[n + 1 :] = 2 * table[n]
    return table


def _data():
    x = np.ones((SPE * 2, 1), "float32")
    return x, np.full((SPE * 2, 1), -1000.0, "float32")


def _metric(y_true, y_pred):
    return float(np.mean(y_pred))


def _callback(lode=None, **kwargs):
    x, y = _data()
    kwargs = {"first_replan": 2, "replan_every": 2, "margin": 0.0, **kwargs}
    return LODECallback(
        lode or DoublingControlled(),
        validation_data=(x[:4], y[:4]),
        metric=_metric,
        verbose=0,
        **kwargs,
    )


def _fit(model, cb, extra=(), backup=None):
    x, y = _data()
    callbacks = ([backup] if backup else []) + [*extra, cb]
    return model.fit(x, y, batch_size=2, epochs=EPOCHS, shuffle=False, verbose=0,
                     callbacks=callbacks)  # fmt: skip


@pytest.mark.parametrize("mode", ["schedule", "float"])
def test_fit_follows_the_control_plan(mode, backend):
    keras.utils.set_random_seed(0)
    lr = LODESchedule(initial_learning_rate=0.1) if mode == "schedule" else 0.1
    model = probe_model("sgd", lr, 1.0)
    traces = count_traces(model)
    weights = KernelTrace()
    cb = _callback()
    _fit(model, cb, extra=[weights])
    table = _doubling_table()
    assert sorted(cb.plans) == [2, 4, 6]
    assert all(
        isinstance(p, ControlPlan) and p.chosen_name == "constant 2x" for p in cb.plans.values()
    )
    np.testing.assert_allclose(cb.plan_table, table, rtol=1e-6)
    applied = applied_lr(weights.values, "sgd")

    def serve(t, steps):
        if mode == "schedule":
            return np.interp(np.clip((steps + 1) * P / SPE - 1, 0, K - 1), np.arange(K), t)
        return t[steps // (SPE // P)]

    tables = [_doubling_table(replans=r) for r in ((), (2,), (2, 4), (2, 4, 6))]
    expected = served_with_replans(tables, (6, 10, 14), serve, EPOCHS * SPE)
    np.testing.assert_allclose(applied, expected, rtol=2e-4)
    # The replan at point 2 (after 6 steps) reaches step 7, the step after it is made.
    assert applied[6] == pytest.approx(0.1, rel=1e-3)
    assert applied[7] != pytest.approx(0.1, rel=1e-3)
    if backend != "torch":
        assert 1 <= traces["n"] <= 2  # replans never retrace


def test_planner_raising_keeps_the_current_plan(backend):
    keras.utils.set_random_seed(0)
    model = probe_model("sgd", LODESchedule(initial_learning_rate=0.1), 1.0)
    weights = KernelTrace()
    cb = _callback(DoublingControlled(fail=True))
    with pytest.warns(UserWarning, match="planning raised RuntimeError: boom") as record:
        history = _fit(model, cb, extra=[weights])
    assert len([r for r in record if "boom" in str(r.message)]) == 3
    assert len(history.history["loss"]) == EPOCHS
    np.testing.assert_allclose(cb.plan_table, 0.1)
    np.testing.assert_allclose(applied_lr(weights.values, "sgd"), 0.1, rtol=2e-4)


def test_nan_loss_skips_the_replan(backend):
    keras.utils.set_random_seed(0)
    model = probe_model("sgd", 0.1, 1.0)
    x, y = _data()
    x[1] = np.nan
    cb = _callback()
    with pytest.warns(UserWarning, match="non-finite training loss"):
        history = model.fit(x, y, batch_size=2, epochs=EPOCHS, shuffle=False, verbose=0,
                            callbacks=[cb])  # fmt: skip
    assert len(history.history["loss"]) == EPOCHS
    assert not cb.plans
    np.testing.assert_allclose(cb.plan_table, 0.1)


def test_resume_after_backup_and_restore_keeps_the_plan(tmp_path, backend):
    def fresh():
        keras.utils.set_random_seed(0)
        return probe_model("adam", LODESchedule(initial_learning_rate=0.1), 1.0)

    w_full = KernelTrace()
    cb_full = _callback(state_path=tmp_path / "full.json")
    _fit(fresh(), cb_full, extra=[w_full])
    state = tmp_path / "state.json"
    backup = tmp_path / "backup"
    with pytest.raises(RuntimeError, match="killed"):  # after point 4's replan (read at step 11)
        _fit(fresh(), _callback(state_path=state), extra=[KillAt(12)],
             backup=keras.callbacks.BackupAndRestore(str(backup), save_freq="epoch"))  # fmt: skip
    assert sorted(int(n) for n in json.loads(state.read_text())["replans"]) == [2, 4]
    # The state file is strict JSON (NaN as null) with the usual mode, not mkstemp's 0600.
    json.loads(state.read_text(), parse_constant=lambda c: pytest.fail(f"bare {c}"))
    umask = os.umask(0)
    os.umask(umask)
    assert state.stat().st_mode & 0o777 == 0o666 & ~umask
    w_res = KernelTrace()
    cb_res = _callback(state_path=state)
    _fit(fresh(), cb_res, extra=[w_res],
         backup=keras.callbacks.BackupAndRestore(str(backup), save_freq="epoch"))  # fmt: skip
    np.testing.assert_allclose(cb_res.plan_table, cb_full.plan_table, rtol=1e-9)
    full = applied_lr(w_full.values, "adam")
    resumed = applied_lr(w_res.values, "adam")
    np.testing.assert_allclose(resumed, full[2 * SPE :], rtol=2e-4)


class _Long(DoublingControlled):
    horizon = 20
    points_per_epoch = 5


def test_cadence_in_fractions_of_the_run():
    # Defaults for a controlled model: first replan at 20% of the run, then every 10%.
    keras.utils.set_random_seed(0)
    model = probe_model("sgd", 0.1, 1.0)
    x = np.ones((40, 1), "float32")
    y = np.full((40, 1), -1000.0, "float32")
    cb = LODECallback(_Long(), validation_data=(x[:4], y[:4]), metric=_metric,
                      points_per_epoch=5, verbose=0, margin=0.0)  # fmt: skip
    model.fit(x, y, batch_size=2, epochs=4, shuffle=False, verbose=0, callbacks=[cb])
    # K = 20 points: first replan at point 4, every 2 points, never at the last point.
    assert cb.first_replan == 4 and cb.replan_every == 2
    assert sorted(cb.plans) == [4, 6, 8, 10, 12, 14, 16, 18]
    # Never before the encoder has its window.
    cb2 = LODECallback(_Long(), validation_data=(x[:4], y[:4]), metric=_metric,
                       points_per_epoch=5, verbose=0, first_replan=0.01)  # fmt: skip
    model.fit(x, y, batch_size=2, epochs=4, shuffle=False, verbose=0, callbacks=[cb2])
    assert min(cb2.plans) == W - 1
    with pytest.raises(ValueError, match="fraction of the run"):
        LODECallback(DoublingControlled(), validation_data=(x, y), replan_every=1.5)
    with pytest.raises(TypeError, match="Unknown planner option"):
        LODECallback(DoublingControlled(), validation_data=(x, y), samples=4)


def test_real_controlled_model_in_a_fit():
    from keras_lode.model.controlled import random_controlled

    lode = random_controlled(1, members=2, horizon=K, points_per_epoch=P, window=W,
                             lr_range=(1e-3, 1.0))  # fmt: skip
    keras.utils.set_random_seed(0)
    model = probe_model("sgd", LODESchedule(initial_learning_rate=0.1), 1.0)
    cb = _callback(lode)
    with pytest.warns(UserWarning, match="channel 'loss'"):  # the toy loss is ~1000
        _fit(model, cb)
    assert sorted(cb.plans) == [2, 4, 6]
    table = cb.plan_table
    assert np.all(np.isfinite(table)) and np.all((table >= 1e-3 * (1 - 1e-9)) & (table <= 1.0))
    np.testing.assert_allclose(table[7:], cb.plans[6].lr)


def test_window_shorter_than_the_models_encoder_is_refused():
    x, y = _data()
    with pytest.raises(ValueError, match="shorter than the controlled model's encoder window"):
        LODECallback(DoublingControlled(), validation_data=(x, y), window=W - 1)


class DoublingRelative(DoublingControlled):
    """The doubling model read as a task-free one: it scores relative LR paths."""

    features = "relative"


def test_fit_follows_a_task_free_plan(backend):
    # A task-free model plans from the whole history in units of the first LR; mapped back,
    # its "constant 2x" doubles the run's own LR at each replan, as the task's model does.
    keras.utils.set_random_seed(0)
    model = probe_model("sgd", LODESchedule(initial_learning_rate=0.1), 1.0)
    cb = _callback(DoublingRelative(), points_per_epoch=P)  # a task-free model has no P
    _fit(model, cb)
    assert sorted(cb.plans) == [2, 4, 6]
    assert all(p.chosen_name == "constant 2x" for p in cb.plans.values())
    np.testing.assert_allclose(cb.plan_table, _doubling_table(), rtol=1e-9)


def test_a_plan_before_a_windows_worth_of_points_checks_the_current_point(caplog):
    # A task-free model may plan before the callback's window has filled (it reads the
    # whole run); the once-per-fit check of its prediction must read the current point, not
    # an empty slice (which it once did, and logged that it could not check).
    class Fine(DoublingRelative):  # its grid is 4x as fine as the run's log points
        horizon = 4 * K

    keras.utils.set_random_seed(0)
    model = probe_model("sgd", LODESchedule(initial_learning_rate=0.1), 1.0)
    cb = _callback(Fine(), points_per_epoch=P, window=5)
    with caplog.at_level("WARNING", logger="keras_lode"):
        _fit(model, cb)
    assert min(cb.plans) < cb.window - 1 and cb.checked_prediction
    assert not [r for r in caplog.records if "could not check" in r.getMessage()]


@pytest.mark.parametrize("ceiling", [{"sgd": 0.3}, {"adam": 0.3}])
def test_a_fit_never_raises_the_lr_above_the_models_ceiling(ceiling, backend):
    # The doubling model would double the LR at every replan; its ceiling for the fit's
    # optimizer (SGD) lets it double once, from 0.1 to 0.2 (0.4 would pass 0.3), and a
    # ceiling that knows no SGD lets it raise nothing (with one warning).
    keras.utils.set_random_seed(0)
    model = probe_model("sgd", LODESchedule(initial_learning_rate=0.1), 1.0)
    lode = DoublingRelative()
    lode.planner_defaults["lr_ceiling"] = ceiling
    cb = _callback(lode, points_per_epoch=P)
    if "sgd" in ceiling:
        _fit(model, cb)
        np.testing.assert_allclose(cb.plan_table, _doubling_table(replans=(2,)), rtol=1e-9)
        assert any("LR ceiling" in why for why in cb.plans[4].rejected.values())
    else:
        with pytest.warns(LODEWarning, match="'SGD' is of no kind"):
            _fit(model, cb)
        np.testing.assert_allclose(cb.plan_table, np.full(K, 0.1), rtol=1e-9)
    assert cb.plan_table.max() <= 0.3


class DoublingWithPrior(DoublingRelative):
    """The task-free doubling model with a paired calibration whose continuation prior adds
    nothing (alpha 1, zero weights): what the callback does with a prior is all that differs."""

    def __init__(self):
        from keras_lode.model.prior import SHAPE_FEATURES

        super().__init__()
        prior = {"features": list(SHAPE_FEATURES), "alpha": 1.0,
                 "weights": [0.0] * len(SHAPE_FEATURES), "fractions": [0.0, 1.0]}  # fmt: skip
        self.planner_defaults["paired"] = {
            "sd_scale": 1.0, "sd_floor": 0.0, "kappa": 0.0, "margin": 0.0, "trusted": True,
            "level": 0.85, "coverage": 0.9, "prior": prior,
        }  # fmt: skip


def test_a_continuation_prior_decides_once(backend):
    # The prior was fitted on decisions from runs on their own schedule: after the first
    # switch the fit keeps that plan; later plans are made and logged, and say why.
    keras.utils.set_random_seed(0)
    model = probe_model("sgd", LODESchedule(initial_learning_rate=0.1), 1.0)
    cb = _callback(DoublingWithPrior(), points_per_epoch=P)
    _fit(model, cb)
    assert sorted(cb.plans) == [2, 4, 6]
    assert cb.plans[2].switched and cb.plans[2].chosen_name == "constant 2x"
    assert not cb.plans[4].switched and not cb.plans[6].switched
    assert "continuation prior decided at log point 2" in cb.plans[6].reason
    np.testing.assert_allclose(cb.plan_table, _doubling_table(replans=(2,)), rtol=1e-9)


def test_a_resumed_fit_remembers_that_the_prior_decided(tmp_path, backend):
    # With a float LR the optimizer's restored LR is the planned one, so the resumed warm-up
    # looks like the plan: only the state file's record of the switch keeps the rule.
    def fresh():
        keras.utils.set_random_seed(0)
        return probe_model("sgd", 0.1, 1.0)

    state, backup = tmp_path / "state.json", tmp_path / "backup"
    cb = _callback(DoublingWithPrior(), points_per_epoch=P, state_path=state)
    with pytest.raises(RuntimeError, match="killed"):  # after point 4's replan
        _fit(fresh(), cb, extra=[KillAt(12)],
             backup=keras.callbacks.BackupAndRestore(str(backup), save_freq="epoch"))  # fmt: skip
    assert json.loads(state.read_text())["switches"] == [2]
    cb_res = _callback(DoublingWithPrior(), points_per_epoch=P, state_path=state)
    _fit(fresh(), cb_res,
         backup=keras.callbacks.BackupAndRestore(str(backup), save_freq="epoch"))  # fmt: skip
    assert cb_res.switches == {2}
    assert not any(p.switched for n, p in cb_res.plans.items() if n > 2)
    np.testing.assert_allclose(cb_res.plan_table, _doubling_table(replans=(2,)), rtol=1e-6)


class OtherTaskDoubling(DoublingControlled):
    """The doubling model, trained (by its metadata) on another task."""

    config = {"metadata": {"task": "other_task"}}


@pytest.mark.parametrize("anchor", [True, False])
def test_a_stranger_fit_keeps_its_warm_up(anchor, backend):
    # The fit names its task, which is not the model's: one warning, then every plan is
    # made and logged but the LR stays on the warm-up (unless anchor_strangers=False).
    keras.utils.set_random_seed(0)
    model = probe_model("sgd", LODESchedule(initial_learning_rate=0.1), 1.0)
    cb = _callback(OtherTaskDoubling(), task="my_task", anchor_strangers=anchor)
    with pytest.warns(UserWarning, match="not the model's task") as record:
        _fit(model, cb)
    anchored = [r for r in record if "default-anchored" in str(r.message)]
    assert sorted(cb.plans) == [2, 4, 6]
    if anchor:
        assert len(anchored) == 1
        np.testing.assert_allclose(cb.plan_table, 0.1)
        assert not any(p.switched for p in cb.plans.values())
        assert all("planner chose 'constant 2x'" in p.reason for p in cb.plans.values())
    else:
        assert not anchored
        np.testing.assert_allclose(cb.plan_table, _doubling_table(), rtol=1e-6)
