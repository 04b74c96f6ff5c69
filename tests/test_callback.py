"""LODECallback on each Keras backend: the LR really applied, replans, faults, resume.

The fits use a one-weight model whose gradient is exactly 1 at every step (MAE
against a far target), so the LR each step applied is read back from the weight
update. Where exact LR values matter, a hand-made LODE (`HalvingLODE`) makes the
real planner's output known: every accepted future has the LR path
`0.5 * lr_now * exp(-0.01 * i)` for the i-th point ahead.
"""

from __future__ import annotations

import json
import math
import warnings

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

from keras_lode.callbacks import LODECallback, RunRecorder
from keras_lode.schedules import LODESchedule

pytestmark = pytest.mark.backend

SPE, P, EPOCHS, W, EVERY = 4, 2, 4, 3, 2
K = EPOCHS * P  # 8 log points; replans at points 2, 4, 6
OVERRIDES = {"samples": 2, "sigma": 0.0, "loss_floor": 1e6, "lr_range": (1e-6, 10.0)}


class HalvingLODE:
    """A duck-typed LODE whose futures are known in closed form.

    encode: z[0] = ln(current LR) + ln(0.5). decode: log-LR path z[0] - 0.01 t, a flat
    loss (every point matches the wide loss band), metric t. With the "max_lr" anchor
    the anchor is j = 0, so the plan for point n + i is 0.5 * lr_n * exp(-0.01 i).
    """

    horizon = K
    points_per_epoch = P
    lr_range = (1e-6, 10.0)
    planner_defaults = {"window": W, "replan_every": EVERY}

    def __init__(self, fail=False):
        self.fail = fail

    def encode(self, t, y):
        if self.fail:
            raise RuntimeError("boom")
        return np.array([y[-1, 1] + math.log(0.5), 1.0])

    def decode(self, t, z):
        z = np.atleast_2d(z)
        out = np.zeros((len(z), len(t), 3))
        out[..., 1] = z[:, :1] - 0.01 * np.asarray(t)[None, :]
        out[..., 2] = np.asarray(t)[None, :]
        return out


def _halving_table(warm=0.1, skip=()):
    table = np.full(K, warm)
    for n in range(W - 1, K - 1, EVERY):
        if n in skip:
            continue
        i = np.arange(1, K - n)
        table[n + 1 :] = 0.5 * table[n] * np.exp(-0.01 * i)
    return table


def _expected_schedule(table, steps):
    u = np.clip((np.asarray(steps, float) + 1) * P / SPE - 1, 0, len(table) - 1)
    return np.interp(u, np.arange(len(table)), table)


def _served_halving_plan():
    """The LR per step a `LODESchedule` serves when the halving plan is made at 2, 4, 6."""
    tables = [_halving_table(skip=(2, 4, 6)), _halving_table(skip=(4, 6)),
              _halving_table(skip=(6,)), _halving_table()]  # fmt: skip
    return served_with_replans(tables, (6, 10, 14), _expected_schedule, EPOCHS * SPE)


def _build(optimizer_name, lr, kernel=1.0):
    keras.utils.set_random_seed(0)
    return probe_model(optimizer_name, lr, kernel)


def _data():
    x = np.ones((SPE * 2, 1), "float32")
    return x, np.full((SPE * 2, 1), -1000.0, "float32")


def _metric(y_true, y_pred):
    return float(np.mean(y_pred))


def _callback(lode=None, **kwargs):
    x, y = _data()
    kwargs = {**OVERRIDES, **kwargs}
    return LODECallback(
        lode or HalvingLODE(),
        validation_data=(x[:4], y[:4]),
        metric=kwargs.pop("metric", _metric),
        verbose=kwargs.pop("verbose", 0),
        **kwargs,
    )


@pytest.mark.parametrize("mode", ["schedule", "float"])
@pytest.mark.parametrize("optimizer_name", ["sgd", "adam", "adamw"])
def test_applied_lr_equals_plan(optimizer_name, mode, backend):
    lr = LODESchedule(initial_learning_rate=0.1) if mode == "schedule" else 0.1
    model = _build(optimizer_name, lr)
    traces = count_traces(model)
    weights = KernelTrace()
    cb = _callback()
    x, y = _data()
    # A recorder placed before the callback (README, "Using keras_lode in model.fit") sees
    # the LR each interval ran with.
    recorder = RunRecorder(points_per_epoch=P, validation_data=(x[:4], y[:4]), metric=_metric)
    history = model.fit(
        x,
        y,
        batch_size=2,
        epochs=EPOCHS,
        shuffle=False,
        verbose=0,
        callbacks=[weights, recorder, cb],
    )
    table = _halving_table()
    np.testing.assert_allclose(cb.plan_table, table, rtol=1e-6)
    assert sorted(cb.plans) == [2, 4, 6]
    applied = applied_lr(weights.values, optimizer_name)
    if mode == "schedule":
        expected = _served_halving_plan()  # interpolated between log points
    else:  # piecewise constant per interval
        tables = [_halving_table(skip=(2, 4, 6)), _halving_table(skip=(4, 6)),
                  _halving_table(skip=(6,)), table]  # fmt: skip
        serve = lambda t, s: t[s // (SPE // P)]  # noqa: E731
        expected = served_with_replans(tables, (6, 10, 14), serve, EPOCHS * SPE)
    np.testing.assert_allclose(applied, expected, rtol=2e-4)
    # The replan at point 2 (after 6 steps) is made once step 6 is dispatched and reaches
    # step 7, the next step after it; step 6 runs on the warm-up.
    assert applied[6] == pytest.approx(0.1, rel=1e-3)
    assert applied[7] != pytest.approx(0.1, rel=1e-3)
    # logs["learning_rate"] reaches History: the LR of each epoch's last step.
    np.testing.assert_allclose(history.history["learning_rate"], table[P - 1 :: P], rtol=1e-5)
    # The recorded LR channel is the plan in effect.
    np.testing.assert_allclose(np.exp(cb.history[:, 1]), table, rtol=1e-5)
    np.testing.assert_allclose(recorder.run.lr, table, rtol=1e-5)
    if backend != "torch":  # torch runs eagerly; TF traces Adam twice (slot creation)
        assert 1 <= traces["n"] <= 2
    run = cb.to_run({"task": "toy"})
    assert len(run) == K and run.meta["schedule"] == "lode" and run.status == "complete"
    assert run.step.tolist() == [2 * (i + 1) for i in range(K)]
    np.testing.assert_allclose(run.lr, table, rtol=1e-5)


def test_real_planner_with_random_model():
    from keras_lode.model import random_model
    from keras_lode.planning import derive_seed

    lode = random_model(seed=0, horizon=K, points_per_epoch=P, lr_range=(1e-3, 1.0))
    model = _build("sgd", LODESchedule(initial_learning_rate=0.1))
    weights = KernelTrace()
    cb = LODECallback(
        lode,
        validation_data=(_data()[0][:4], _data()[1][:4]),
        window=W,
        replan_every=EVERY,
        metric=_metric,
        seed=3,
        verbose=0,
    )
    x, y = _data()
    # The toy run (loss ~1000) is nothing like a random model's "training runs": one warning.
    with pytest.warns(UserWarning, match="'this fit' does not look like") as record:
        model.fit(
            x, y, batch_size=2, epochs=EPOCHS, shuffle=False, verbose=0, callbacks=[weights, cb]
        )
    assert len([r for r in record if "does not look like" in str(r.message)]) == 1
    assert sorted(cb.plans) == [2, 4, 6]
    table = cb.plan_table
    assert np.all(np.isfinite(table)) and np.all(table > 0)
    for n, p in cb.plans.items():
        assert p.position == n and p.total_points == K
        if not p.fallback:
            assert np.all((p.lr >= 1e-3 * (1 - 1e-9)) & (p.lr <= 1.0 * (1 + 1e-9)))
    np.testing.assert_allclose(table[7:], cb.plans[6].lr, rtol=1e-12)
    # Each replan draws its own noise, reproducible from the callback's seed.
    assert [cb.plans[n].seed for n in (2, 4, 6)] == [derive_seed(3, n) for n in (2, 4, 6)]
    assert len({cb.plans[n].seed for n in (2, 4, 6)}) == 3
    applied = applied_lr(weights.values, "sgd")
    np.testing.assert_allclose(
        applied, _expected_schedule(table, np.arange(EPOCHS * SPE)), rtol=2e-4
    )


def test_run_longer_than_horizon_is_mapped_by_fraction():
    class LongHorizon(HalvingLODE):
        horizon = 2 * K

    model = _build("sgd", LODESchedule(initial_learning_rate=0.1))
    cb = _callback(LongHorizon())
    x, y = _data()
    with pytest.warns(UserWarning, match="mapping by fraction of training"):
        model.fit(x, y, batch_size=2, epochs=EPOCHS, shuffle=False, verbose=0, callbacks=[cb])
    assert sorted(cb.plans) == [2, 4, 6]
    # Model time runs twice as fast as run points: the LR path decays by 0.02 per point.
    np.testing.assert_allclose(cb.plans[6].lr, 0.5 * cb.plan_table[6] * np.exp(-0.02), rtol=1e-6)


def test_planner_raising_keeps_current_plan(backend):
    model = _build("sgd", LODESchedule(initial_learning_rate=0.1))
    weights = KernelTrace()
    cb = _callback(HalvingLODE(fail=True))
    x, y = _data()
    with pytest.warns(UserWarning, match="planning raised RuntimeError: boom") as record:
        history = model.fit(
            x, y, batch_size=2, epochs=EPOCHS, shuffle=False, verbose=0, callbacks=[weights, cb]
        )
    assert len([r for r in record if "boom" in str(r.message)]) == 3  # one per replan
    assert len(history.history["loss"]) == EPOCHS
    np.testing.assert_allclose(cb.plan_table, 0.1)
    np.testing.assert_allclose(applied_lr(weights.values, "sgd"), 0.1, rtol=2e-4)


def test_nan_loss_skips_replan_and_lr_stays_finite():
    model = _build("sgd", 0.1)
    x, y = _data()
    x[1] = np.nan  # first batch: the loss (and then the weights) go NaN
    cb = _callback()
    with pytest.warns(UserWarning, match="non-finite training loss"):
        history = model.fit(
            x, y, batch_size=2, epochs=EPOCHS, shuffle=False, verbose=0, callbacks=[cb]
        )
    assert len(history.history["loss"]) == EPOCHS
    assert not cb.plans
    np.testing.assert_allclose(cb.plan_table, 0.1)
    lr = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
    assert lr == pytest.approx(0.1)


def test_missing_validation_values_skip_that_replan():
    calls = {"n": 0}

    def flaky(y_true, y_pred):
        calls["n"] += 1
        return math.nan if calls["n"] == 2 else float(np.mean(y_pred))  # point 1 missing

    model = _build("sgd", LODESchedule(initial_learning_rate=0.1))
    cb = _callback(metric=flaky)
    x, y = _data()
    with pytest.warns(UserWarning, match=r"log point 2 skipped \(the window has missing"):
        model.fit(x, y, batch_size=2, epochs=EPOCHS, shuffle=False, verbose=0, callbacks=[cb])
    assert sorted(cb.plans) == [4, 6]  # the window of point 4 (points 2-4) is complete
    np.testing.assert_allclose(cb.plan_table, _halving_table(skip=(2,)), rtol=1e-6)
    assert np.all(np.isfinite(cb.plan_table))


def test_kill_and_resume_continues_the_same_plan(tmp_path):
    x, y = _data()

    def fit(state, extra=(), backup=None):
        model = _build("adam", LODESchedule(initial_learning_rate=0.1))
        weights = KernelTrace()
        cb = _callback(state_path=state)
        callbacks = ([backup] if backup else []) + [weights, cb, *extra]
        model.fit(x, y, batch_size=2, epochs=EPOCHS, shuffle=False, verbose=0, callbacks=callbacks)
        return model, weights, cb

    _, w_full, cb_full = fit(tmp_path / "full.json")
    state = tmp_path / "lode_state.json"
    backup_dir = tmp_path / "backup"
    with pytest.raises(RuntimeError, match="killed"):
        # Killed at step 12: mid-epoch 2 (of 0..3), after the replan at point 4 (its point
        # ends after 10 steps and is read when step 11 begins).
        fit(
            state,
            extra=[KillAt(12)],
            backup=keras.callbacks.BackupAndRestore(str(backup_dir), save_freq="epoch"),
        )
    saved = json.loads(state.read_text())
    assert saved["format"] == "keras_lode.callback_state" and not saved["finished"]
    assert sorted(int(n) for n in saved["replans"]) == [2, 4]
    model, w_resumed, cb_resumed = fit(
        state, backup=keras.callbacks.BackupAndRestore(str(backup_dir), save_freq="epoch")
    )
    # BackupAndRestore restarts epoch 2 from its end-of-epoch-1 backup (step 8).
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == EPOCHS * SPE
    np.testing.assert_allclose(cb_resumed.plan_table, cb_full.plan_table, rtol=1e-9)
    full = applied_lr(w_full.values, "adam")
    resumed = applied_lr(w_resumed.values, "adam")
    assert len(resumed) == (EPOCHS - 2) * SPE
    np.testing.assert_allclose(resumed, full[2 * SPE :], rtol=2e-4)
    assert json.loads(state.read_text())["finished"]


def test_bad_arguments():
    x, y = _data()
    with pytest.raises(TypeError, match=r"Unknown planner option\(s\) \['sigmaa'\]"):
        LODECallback(HalvingLODE(), validation_data=(x, y), sigmaa=0.1)
    with pytest.raises(ValueError, match="validation_data"):
        LODECallback(HalvingLODE(), validation_data=None)
    with pytest.raises(TypeError, match="model"):
        LODECallback(object(), validation_data=(x, y))
    with pytest.raises(ValueError, match="window"):
        LODECallback(HalvingLODE(), validation_data=(x, y), window=0)
    with pytest.raises(ValueError, match="validation_batch_size"):
        LODECallback(HalvingLODE(), validation_data=(x, y), validation_batch_size=0)
    assert (
        LODECallback(HalvingLODE(), validation_data=(x, y), validation_batch_size=3).probe.chunk
        == 3
    )
    cb = _callback()
    model = _build("sgd", keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5))
    with pytest.raises(ValueError, match="LODESchedule or a float"):
        model.fit(x, y, batch_size=2, epochs=1, verbose=0, callbacks=[cb])


def test_callback_keeps_async_dispatch():
    # Log points are found at batch begin: on_train_batch_end is not overridden, so
    # Keras keeps dispatching batch-end callbacks asynchronously (JAX).
    from keras.callbacks import CallbackList

    model = _build("sgd", 0.1)
    plain = CallbackList([], model=model)
    with_lode = CallbackList([_callback()], model=model)
    assert with_lode._async_train == plain._async_train


def test_verbose_lines_and_plots(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    model = _build("sgd", LODESchedule(initial_learning_rate=0.1))
    cb = _callback(verbose=1, plot_dir=tmp_path / "plots")
    x, y = _data()
    model.fit(x, y, batch_size=2, epochs=EPOCHS, shuffle=False, verbose=0, callbacks=[cb])
    lines = [ln for ln in capsys.readouterr().out.splitlines() if "LODE plan at point" in ln]
    assert len(lines) == 3 and lines[0].startswith("Epoch 1.50: LODE plan at point 2/8")
    pngs = sorted(p.name for p in (tmp_path / "plots").glob("*.png"))
    assert pngs == ["plan_00002.png", "plan_00004.png", "plan_00006.png"]


class _SaveAt(keras.callbacks.Callback):
    """Saves the whole model (optimizer included) after a given batch of a given epoch."""

    def __init__(self, path, epoch, batch):
        super().__init__()
        self.path, self.epoch, self.batch, self.now = path, epoch, batch, None

    def on_epoch_begin(self, epoch, logs=None):
        self.now = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.now, batch) == (self.epoch, self.batch):
            self.model.save(self.path)
            optimizer = self.model.optimizer
            self.plan = getattr(optimizer, "inner_optimizer", optimizer)._learning_rate.plan
            self.iterations = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))


@pytest.fixture(params=["float32", "mixed_float16"])
def dtype_policy(request):
    # mixed_float16 wraps the optimizer in a LossScaleOptimizer, which saves its inner
    # optimizer's variables with its own.
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(request.param)
    yield request.param
    keras.mixed_precision.set_global_policy(previous)


@pytest.mark.parametrize("saver_first", [True, False])
def test_model_saved_mid_fit_loads_with_its_optimizer_state(tmp_path, saver_first, dtype_policy):
    # On JAX the callback adds the plan to the optimizer's variables during the fit; the
    # saved optimizer must still match a freshly built one, or Keras skips (with only a
    # warning) loading all of its state: step count and Adam's moments.
    model = _build("adam", LODESchedule(initial_learning_rate=0.1))
    if dtype_policy == "mixed_float16":
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    model.optimizer.build(model.trainable_variables)
    n_variables = len(model.optimizer.variables)  # iterations, momentum, velocity (+ scale)
    cb = _callback()
    # After step 10: the replan at point 2 is applied; point 4 ends here, its replan
    # comes at the next batch begin.
    saver = _SaveAt(tmp_path / "mid.keras", epoch=2, batch=1)
    x, y = _data()
    callbacks = [saver, cb] if saver_first else [cb, saver]
    model.fit(x, y, batch_size=2, epochs=EPOCHS, shuffle=False, verbose=0, callbacks=callbacks)
    assert len(model.optimizer.variables) == n_variables  # detached at the end of the fit
    assert saver.iterations == 2 * SPE + 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "Skipping variable loading for optimizer ..."
        loaded = keras.saving.load_model(tmp_path / "mid.keras")
    assert int(keras.ops.convert_to_numpy(loaded.optimizer.iterations)) == saver.iterations
    inner = getattr(loaded.optimizer, "inner_optimizer", loaded.optimizer)
    np.testing.assert_allclose(inner._learning_rate.plan, saver.plan, rtol=1e-12)
    # The schedule's table has one LR per step (the warm-up is served exactly per step);
    # step 6, dispatched before the replan at point 2 was read, keeps the warm-up's LR.
    tables = [_halving_table(skip=(2, 4, 6)), _halving_table(skip=(4, 6))]
    expected = served_with_replans(tables, (6,), _expected_schedule, EPOCHS * SPE)
    np.testing.assert_allclose(saver.plan, expected, rtol=1e-6)
    moments = [
        keras.ops.convert_to_numpy(v)
        for v in loaded.optimizer.variables
        if "momentum" in v.path or "velocity" in v.path
    ]
    assert moments and all(np.any(m != 0) for m in moments)


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="JAX carries the plan in state")
def test_jax_fit_with_callback_makes_no_host_lookups():
    schedule = LODESchedule(initial_learning_rate=0.1)
    traced = []  # the host lookup is built into a trace: count those builds
    plain = schedule._jax_host_lookup

    def counting(step):
        traced.append(step)
        return plain(step)

    schedule._jax_host_lookup = counting
    model = _build("adamw", schedule)
    weights = KernelTrace()
    cb = _callback()
    x, y = _data()
    model.fit(x, y, batch_size=2, epochs=EPOCHS, shuffle=False, verbose=0, callbacks=[weights, cb])
    assert traced == []
    applied = applied_lr(weights.values, "adamw")
    np.testing.assert_allclose(applied, _served_halving_plan(), rtol=2e-4)
    # Without the callback the same schedule still follows a replan, through the host.
    schedule.set_plan([0.01] * len(schedule.plan))  # one LR per step after the callback's fit
    weights = KernelTrace()
    model.fit(x, y, batch_size=2, epochs=1, shuffle=False, verbose=0, callbacks=[weights])
    assert traced and all(t is traced[0] for t in traced)  # one trace, one step tracer
    np.testing.assert_allclose(applied_lr(weights.values, "adamw"), 0.01, rtol=2e-4)


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="JAX carries the plan in state")
def test_jax_attach_failure_falls_back_to_the_host_lookup():
    # An optimizer that refuses new variables: the fit goes on, warns, and still follows
    # the plan (through the host lookup), with the optimizer's variables untouched.
    model = _build("adam", LODESchedule(initial_learning_rate=0.1))
    model.optimizer.build(model.trainable_variables)
    before = list(model.optimizer.variables)
    calls = {"n": 0}
    plain = model.optimizer._track_variable

    def refuse_second(variable):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("no more variables")
        return plain(variable)

    model.optimizer._track_variable = refuse_second
    weights = KernelTrace()
    x, y = _data()
    with pytest.warns(UserWarning, match="could not carry the plan.*no more variables"):
        model.fit(
            x,
            y,
            batch_size=2,
            epochs=EPOCHS,
            shuffle=False,
            verbose=0,
            callbacks=[weights, _callback()],
        )
    after = model.optimizer.variables
    assert len(after) == len(before) and all(a is b for a, b in zip(after, before, strict=True))
    np.testing.assert_allclose(
        applied_lr(weights.values, "adam"),
        _served_halving_plan(),
        rtol=2e-4,
    )


def _fit_warmup_only(warm):
    """A fit whose window is the whole run (it never replans): the LR is the warm-up's.
    Returns the kernel trace and the callback."""
    model = _build("sgd", LODESchedule(initial_learning_rate=0.1))
    weights = KernelTrace()
    cb = _callback(warmup=warm, window=K)
    x, y = _data()
    with pytest.warns(UserWarning, match="never replan"):
        model.fit(x, y, batch_size=2, epochs=EPOCHS, shuffle=False, verbose=0,
                  callbacks=[weights, cb])  # fmt: skip
    return weights, cb


@pytest.mark.parametrize("family", ["onecycle", "cosine"])
def test_warmup_is_the_named_schedule_at_every_step(family, backend):
    """The warm-up is served exactly per step, not sampled at log points (user path, item 2)."""
    from keras_lode.schedules import make_schedule

    steps = np.arange(EPOCHS * SPE)
    warm = make_schedule(family, 0.1, len(steps))
    exact = np.array([float(keras.ops.convert_to_numpy(warm(int(s)))) for s in steps])
    # No replan: the whole run is the warm-up.
    weights, cb = _fit_warmup_only(warm)
    np.testing.assert_allclose(applied_lr(weights.values, "sgd"), exact, rtol=2e-4)
    np.testing.assert_allclose(cb.step_table, exact, rtol=1e-6)
    # With replans: exact up to the first one (point 2 ends at step 6), the plan after it.
    model = _build("sgd", LODESchedule(initial_learning_rate=0.1))
    weights = KernelTrace()
    cb = _callback(warmup=warm)
    x, y = _data()
    model.fit(x, y, batch_size=2, epochs=EPOCHS, shuffle=False, verbose=0,
              callbacks=[weights, cb])  # fmt: skip
    applied = applied_lr(weights.values, "sgd")
    # Point 2 ends after 6 steps; its plan reaches step 7 (step 6 runs on the warm-up).
    np.testing.assert_allclose(applied[:7], exact[:7], rtol=2e-4)
    assert sorted(cb.plans) == [2, 4, 6]
    np.testing.assert_allclose(applied, cb.step_table, rtol=2e-4)  # the record of what ran
    # After the first replan the final plan, except the steps each later replan found
    # already dispatched (10 and 14), which kept the plan before it.
    later = np.setdiff1d(np.arange(7, len(steps)), (10, 14))
    served = _expected_schedule(cb.plan_table, steps)
    np.testing.assert_allclose(cb.step_table[later], served[later], rtol=1e-6)


def test_warmup_that_starts_at_zero_is_served_per_step(backend):
    """A warm-up whose LR is 0 at step 0 (linear warm-up from 0) does not stop the fit."""
    steps = np.arange(EPOCHS * SPE)

    def warm(step):
        return 0.1 * np.minimum(np.asarray(step, "float64") / 8.0, 1.0)

    weights, cb = _fit_warmup_only(warm)
    expected = np.maximum(warm(steps), 1e-30)
    np.testing.assert_allclose(cb.step_table, expected, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(applied_lr(weights.values, "sgd"), warm(steps), atol=1e-6)


# ---------------------------------------------------------------------- dense log points
def _geometry_lode(points_per_epoch, total_points):
    class Lode(HalvingLODE):
        horizon = total_points

    Lode.points_per_epoch = points_per_epoch
    return Lode()


def _tables_of(cb):
    """The plan per log point before any replan, then after each replan (in order)."""
    tables = [cb.tables.warmup_table.copy()]
    for n in sorted(cb._replans):
        t = tables[-1].copy()
        t[n + 1 :] = cb._replans[n]
        tables.append(t)
    return tables


@pytest.mark.parametrize("mode", ["schedule", "float"])
def test_points_one_step_apart_follow_the_plan_and_record_what_ran(mode, backend):
    # Every step is a log point: the point read at a hook is the previous one while the
    # next is being taken. The plan must still reach the next step (never an older point's
    # LR), and the recorded LR of each point is the LR its step ran with, not a later plan's.
    p = 4  # = steps per epoch
    epochs = 3
    k = epochs * p
    lr = LODESchedule(initial_learning_rate=0.1) if mode == "schedule" else 0.1
    model = _build("sgd", lr)
    weights = KernelTrace()
    x, y = _data()
    cb = LODECallback(_geometry_lode(p, k), validation_data=(x[:4], y[:4]), metric=_metric,
                      verbose=0, points_per_epoch=p, **OVERRIDES)  # fmt: skip
    model.fit(x, y, batch_size=2, epochs=epochs, shuffle=False, verbose=0,
              callbacks=[weights, cb])  # fmt: skip
    applied = applied_lr(weights.values, "sgd")
    assert len(applied) == k
    assert sorted(cb.plans) == [2, 4, 6, 8, 10]
    # Point n (one step, step n) recorded the LR step n ran with.
    np.testing.assert_allclose(np.exp(cb.history[:, 1]), applied, rtol=2e-4)
    # A plan made at point n is read at the next hook and reaches step n + 2 (0-based),
    # the first step dispatched after it: exactly `served_with_replans`.
    counts = [n + 1 for n in sorted(cb._replans)]
    expected = served_with_replans(_tables_of(cb), counts, lambda t, s: t[s], k)
    np.testing.assert_allclose(applied, expected, rtol=2e-4)
    if cb.step_table is not None:  # the schedule's table records what was served
        np.testing.assert_allclose(cb.step_table, applied, rtol=2e-4)


@pytest.mark.skipif(keras.backend.backend() == "torch", reason="torch runs one step per call")
@pytest.mark.parametrize("mode", ["schedule", "float"])
def test_steps_per_execution_records_and_serves_what_ran(mode, backend):
    # Two steps per train-function call: the callback sees one hook per call, so a point
    # taken at a call is read at the next (here the epoch's end) and its plan reaches the
    # next epoch. The record must match the LRs that ran.
    lr = LODESchedule(initial_learning_rate=0.1) if mode == "schedule" else 0.1
    model = _build("sgd", lr)
    model.compile(optimizer=model.optimizer, loss="mean_absolute_error", steps_per_execution=2)
    weights = KernelTrace()  # one reading per call: the sum of its two steps' LRs
    x, y = _data()
    cb = _callback()
    model.fit(x, y, batch_size=2, epochs=EPOCHS, shuffle=False, verbose=0,
              callbacks=[weights, cb])  # fmt: skip
    pair_sums = applied_lr(weights.values, "sgd")
    assert len(pair_sums) == EPOCHS * SPE // 2
    assert sorted(cb.plans) == [2, 4, 6]
    # Replans at points 2, 4, 6 (each an epoch's first point) are read at that epoch's end.
    counts = [(n // P + 1) * SPE - 1 for n in sorted(cb._replans)]
    if mode == "schedule":
        served = served_with_replans(_tables_of(cb), counts, _expected_schedule, EPOCHS * SPE)
        np.testing.assert_allclose(cb.step_table, served, rtol=1e-6)
    else:
        serve = lambda t, s: t[s // (SPE // P)]  # noqa: E731
        served = served_with_replans(_tables_of(cb), counts, serve, EPOCHS * SPE)
    np.testing.assert_allclose(pair_sums, served.reshape(-1, 2).sum(axis=1), rtol=2e-4)
    # Each point recorded the LR of its interval's last step.
    np.testing.assert_allclose(np.exp(cb.history[:, 1]), served[SPE // P - 1 :: SPE // P],
                               rtol=2e-4)  # fmt: skip
