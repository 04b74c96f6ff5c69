"""LODESchedule: values, serialization, and the LR the optimizer really applies.

Runs once per Keras backend. The fits use a one-weight model whose gradient is
exactly 1 at every step (MAE against a far target), so the LR each step applied can
be read back from the weight update.
"""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
from lr_probe import KernelTrace, applied_lr, count_traces
from lr_probe import probe_model as _build

from keras_lode.schedules import LODESchedule

pytestmark = pytest.mark.backend

SPE, P = 4, 2  # steps per epoch, log points per epoch
TABLE = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]  # K = 6 log points = 3 epochs


def _expected(table, steps, spe=SPE, p=P):
    # The documented formula, written out independently of LODESchedule.lr_at.
    u = np.clip((np.asarray(steps, float) + 1) * p / spe - 1, 0, len(table) - 1)
    i0 = np.floor(u).astype(int)
    i1 = np.minimum(i0 + 1, len(table) - 1)
    w = u - i0
    return np.asarray(table)[i0] * (1 - w) + np.asarray(table)[i1] * w


def _data(n):
    # |w - (-1000)| has gradient +1 in w for any w > -1000.
    return np.ones((n, 1), "float32"), np.full((n, 1), -1000.0, "float32")


def test_values_eager_match_formula():
    sched = LODESchedule(TABLE, steps_per_epoch=SPE, points_per_epoch=P)
    steps = np.arange(14)
    got = [float(keras.ops.convert_to_numpy(sched(int(s)))) for s in steps]
    np.testing.assert_allclose(got, _expected(TABLE, steps), rtol=1e-6)
    # Hand values: step 3 ends log point 1 (LR 0.2); step 4 is halfway to point 2.
    np.testing.assert_allclose(got[3], 0.2, rtol=1e-6)
    np.testing.assert_allclose(got[4], 0.25, rtol=1e-6)
    np.testing.assert_allclose(got[13], 0.6, rtol=1e-6)  # past the end: last LR
    # The optimizer's iterations variable (int64 on TF, int32 on JAX) is cast.
    dtype = "int64" if keras.backend.backend() == "tensorflow" else "int32"
    step = keras.Variable(5, dtype=dtype, trainable=False)
    np.testing.assert_allclose(float(keras.ops.convert_to_numpy(sched(step))), 0.3, rtol=1e-6)
    np.testing.assert_allclose(sched.lr_at(steps), _expected(TABLE, steps), rtol=1e-12)


def test_no_plan_serves_initial_learning_rate():
    sched = LODESchedule(initial_learning_rate=0.02)
    assert float(keras.ops.convert_to_numpy(sched(7))) == pytest.approx(0.02)


def test_serialization_round_trip():
    sched = LODESchedule(TABLE, steps_per_epoch=SPE, points_per_epoch=P, name="plan")
    sched.set_plan([1.0, 2.0, 3.0], start=3)
    config = sched.get_config()
    assert config["learning_rates"] == pytest.approx([0.1, 0.2, 0.3, 1.0, 2.0, 3.0])
    restored = LODESchedule.from_config(json.loads(json.dumps(config)))
    assert restored.get_config() == config
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(sched))
    assert isinstance(again, LODESchedule)
    assert again.get_config() == config
    np.testing.assert_allclose(again.lr_at(np.arange(12)), sched.lr_at(np.arange(12)))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"learning_rates": [0.1, -0.2], "steps_per_epoch": 4}, r"learning_rates\[1\]=-0.2"),
        ({"learning_rates": [0.1, float("nan")], "steps_per_epoch": 4}, "finite, positive"),
        ({"learning_rates": [0.1, 0.2]}, "steps_per_epoch"),
        ({"learning_rates": [0.1], "steps_per_epoch": 0}, "steps_per_epoch=0"),
        ({"points_per_epoch": 0}, "points_per_epoch=0"),
        ({"initial_learning_rate": -1.0}, "initial_learning_rate=-1.0"),
    ],
)
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LODESchedule(**kwargs)


def test_set_plan_validates():
    sched = LODESchedule(TABLE, steps_per_epoch=SPE, points_per_epoch=P)
    with pytest.raises(ValueError, match="length K - start = 3"):
        sched.set_plan([0.1, 0.2], start=3)
    with pytest.raises(ValueError, match="start"):
        sched.set_plan([0.1], start=6)
    with pytest.raises(ValueError, match="configured plan"):
        LODESchedule().set_plan([0.1])


@pytest.mark.parametrize("optimizer_name", ["sgd", "adam", "adamw"])
def test_applied_lr_follows_plan_and_replan_without_retrace(optimizer_name, backend):
    sched = LODESchedule(TABLE, steps_per_epoch=SPE, points_per_epoch=P)
    model = _build(optimizer_name, sched)
    traces = count_traces(model)
    new_tail = [1e-3, 2e-3, 3e-3]

    seen = {}

    def replan(done):
        seen[done] = traces["n"]
        if done == 6:  # log point 2 ends after 6 steps: replace points 3.. for step 6 on
            sched.set_plan(new_tail, start=3)

    rec = KernelTrace(hook=replan)
    x, y = _data(SPE * 2)
    model.fit(x, y, batch_size=2, epochs=3, shuffle=False, verbose=0, callbacks=[rec])
    applied = applied_lr(rec.values, optimizer_name)
    before = _expected(TABLE, np.arange(6))
    after = _expected(TABLE[:3] + new_tail, np.arange(6, 12))
    np.testing.assert_allclose(applied[:6], before, rtol=2e-4)
    np.testing.assert_allclose(applied[6:], after, rtol=2e-4)
    # The very next step (6) interpolates between point 2 (0.3) and the new point 3 (1e-3).
    assert applied[6] == pytest.approx(0.5 * (0.3 + 1e-3), rel=2e-4)
    if backend != "torch":  # torch runs eagerly: there is nothing to retrace
        # Traced once (TF traces twice when Adam creates its slots on the first call,
        # with a float LR too), and never again: not per batch, not after the replan.
        assert 1 <= seen[1] <= 2
        assert traces["n"] == seen[1]


def test_save_load_fit_continues_with_same_lr(tmp_path):
    sched = LODESchedule(TABLE, steps_per_epoch=SPE, points_per_epoch=P)
    model = _build("sgd", sched)
    x, y = _data(SPE * 2)
    model.fit(x, y, batch_size=2, epochs=1, shuffle=False, verbose=0)
    sched.set_plan([0.05, 0.04, 0.03, 0.02], start=2)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    restored = loaded.optimizer._learning_rate
    assert isinstance(restored, LODESchedule)
    np.testing.assert_allclose(restored.plan, [0.1, 0.2, 0.05, 0.04, 0.03, 0.02])
    assert int(keras.ops.convert_to_numpy(loaded.optimizer.iterations)) == SPE
    rec = KernelTrace()
    loaded.fit(
        x, y, batch_size=2, initial_epoch=1, epochs=3, shuffle=False, verbose=0, callbacks=[rec]
    )
    applied = applied_lr(rec.values, "sgd")
    expected = _expected([0.1, 0.2, 0.05, 0.04, 0.03, 0.02], np.arange(SPE, 3 * SPE))
    np.testing.assert_allclose(applied, expected, rtol=2e-4)


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="the host lookup is JAX's path")
def test_jax_reads_the_host_table_once_per_step():
    # AdamW evaluates the schedule once per weight-decayed variable; on JAX each
    # evaluation would be a host round trip. One per step, and still the right LR.
    schedule = LODESchedule([0.1, 0.05, 0.02], steps_per_epoch=3, points_per_epoch=3)
    lookups = []
    plain = schedule.lr_at

    def counting(step):
        lookups.append(int(np.asarray(step)))
        return plain(step)

    schedule.lr_at = counting
    model = keras.Sequential(
        [keras.Input((2,)), keras.layers.Dense(4), keras.layers.Dense(3), keras.layers.Dense(1)]
    )
    model.compile(optimizer=keras.optimizers.AdamW(schedule, weight_decay=0.1), loss="mse")
    x, y = np.ones((6, 2), "float32"), np.ones((6, 1), "float32")
    model.fit(x, y, batch_size=2, epochs=1, shuffle=False, verbose=0)
    assert lookups == [0, 1, 2]  # 6 variables decayed, one lookup per step


def test_one_evaluation_per_step_and_still_the_right_lr():
    # AdamW asks for the LR once per weight-decayed variable and once for the update. The
    # schedule evaluates its table once per step (torch) or once per trace (TensorFlow,
    # JAX), reusing the result for the step's other calls.
    schedule = LODESchedule([0.1, 0.05, 0.02], steps_per_epoch=3, points_per_epoch=3)
    evaluations = []
    plain = schedule._interpolate

    def counting(step, table, pps):
        evaluations.append(step)
        return plain(step, table, pps)

    schedule._interpolate = counting
    model = keras.Sequential(
        [keras.Input((2,)), keras.layers.Dense(4), keras.layers.Dense(3), keras.layers.Dense(1)]
    )
    model.compile(optimizer=keras.optimizers.AdamW(schedule, weight_decay=0.1), loss="mse")
    traces = count_traces(model)
    x, y = np.ones((6, 2), "float32"), np.ones((6, 1), "float32")
    model.fit(x, y, batch_size=2, epochs=1, shuffle=False, verbose=0)
    if keras.backend.backend() == "torch":
        assert len(evaluations) == 3  # eager: one per step
    elif keras.backend.backend() == "jax":
        assert evaluations == []  # no callback attached the plan: the host lookup serves it
    else:
        assert 1 <= len(evaluations) == traces["n"] <= 2  # one per trace
    # Reuse never crosses a replan: the next evaluation at the same step sees the new plan.
    step = keras.Variable(1, dtype="int32", trainable=False)
    before = float(keras.ops.convert_to_numpy(schedule(step)))
    schedule.set_plan([0.3, 0.3, 0.3])
    after = float(keras.ops.convert_to_numpy(schedule(step)))
    assert before == pytest.approx(0.05) and after == pytest.approx(0.3)


@pytest.mark.skipif(keras.backend.backend() != "torch", reason="torch.compile is torch's")
def test_torch_compiled_train_step_follows_plan_and_replan():
    # jit_compile=True on torch traces the train step with torch.compile; the per-step
    # result cache stays out of that trace, and a replan still reaches the next step.
    schedule = LODESchedule(TABLE[:4], steps_per_epoch=SPE, points_per_epoch=P)
    model = _build("adamw", schedule)
    model.compile(optimizer=model.optimizer, loss="mean_absolute_error", jit_compile=True)
    assert model.jit_compile

    def replan(step):
        if step == 4:
            schedule.set_plan([0.05, 0.05], start=2)

    rec = KernelTrace(hook=replan)
    x, y = _data(SPE * 2)
    model.fit(x, y, batch_size=2, epochs=2, shuffle=False, verbose=0, callbacks=[rec])
    expected = _expected([0.1, 0.2, 0.05, 0.05], np.arange(2 * SPE))
    np.testing.assert_allclose(applied_lr(rec.values, "adamw"), expected, rtol=2e-4)
