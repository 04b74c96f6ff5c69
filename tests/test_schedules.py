"""Parametric schedules: values vs NumPy formulas, serialization, use inside an optimizer.

Every test here runs on each Keras backend (marked `backend`).
"""

from __future__ import annotations

import json
import math

import keras
import numpy as np
import pytest

from keras_lode import schedules
from keras_lode.schedules import (
    FAMILIES,
    WSD,
    Constant,
    LinearDecay,
    OneCycle,
    StepDecay,
    Switched,
    WarmupCosine,
    make_schedule,
)

pytestmark = pytest.mark.backend


# ---------------------------------------------------------------- NumPy references
def ref_constant(s, lr):
    return np.full_like(s, lr, dtype=np.float64)


def ref_step(s, lr0, every, rate):
    return lr0 * rate ** np.floor(s / every)


def ref_warmup_cosine(s, peak, total, warmup, init, alpha):
    out = np.empty_like(s, dtype=np.float64)
    for i, x in enumerate(s):
        if x < warmup:
            out[i] = init + (peak - init) * x / warmup
        else:
            f = min((x - warmup) / (total - warmup), 1.0)
            out[i] = peak * (alpha + (1 - alpha) * 0.5 * (1 + math.cos(math.pi * f)))
    return out


def ref_onecycle(s, peak, total, pct, div, final_div, anneal):
    lo, end = peak / div, peak / div / final_div

    def ann(a, b, f):
        if anneal == "cosine":
            return b + (a - b) * 0.5 * (1 + math.cos(math.pi * f))
        return a + (b - a) * f

    rise = pct * total
    out = []
    for x in s:
        if x < rise:
            out.append(ann(lo, peak, x / rise))
        else:
            out.append(ann(peak, end, min((x - rise) / (total - rise), 1.0)))
    return np.array(out)


def ref_linear(s, peak, total, warmup, init, end):
    out = np.empty_like(s, dtype=np.float64)
    for i, x in enumerate(s):
        if x < warmup:
            out[i] = init + (peak - init) * x / warmup
        else:
            out[i] = peak + (end - peak) * min((x - warmup) / (total - warmup), 1.0)
    return out


def ref_wsd(s, peak, total, warmup, frac, cooldown, init, end):
    start = max(total - max(1, round(frac * total)), warmup)
    out = np.empty_like(s, dtype=np.float64)
    for i, x in enumerate(s):
        if x < warmup:
            out[i] = init + (peak - init) * x / warmup
        elif x < start:
            out[i] = peak
        else:
            f = min((x - start) / (total - start), 1.0)
            if cooldown == "linear":
                out[i] = peak + (end - peak) * f
            else:
                out[i] = end + (peak - end) * (1 - math.sqrt(f))
    return out


STEPS = np.array([0, 1, 7, 25, 29, 30, 31, 50, 64, 99, 100, 140], dtype=np.float64)

CASES = [
    (Constant(0.03), lambda s: ref_constant(s, 0.03)),
    (StepDecay(0.1, decay_steps=30, decay_rate=0.5), lambda s: ref_step(s, 0.1, 30, 0.5)),
    (
        WarmupCosine(2e-3, total_steps=100, warmup_steps=10, initial_learning_rate=1e-4, alpha=0.1),
        lambda s: ref_warmup_cosine(s, 2e-3, 100, 10, 1e-4, 0.1),
    ),
    (
        WarmupCosine(2e-3, total_steps=100),
        lambda s: ref_warmup_cosine(s, 2e-3, 100, 0, 0.0, 0.0),
    ),
    (OneCycle(1e-2, total_steps=100), lambda s: ref_onecycle(s, 1e-2, 100, 0.3, 25, 1e4, "cosine")),
    (
        OneCycle(
            5e-3,
            total_steps=100,
            pct_start=0.25,
            div_factor=10,
            final_div_factor=100,
            anneal="linear",
        ),
        lambda s: ref_onecycle(s, 5e-3, 100, 0.25, 10, 100, "linear"),
    ),
    (
        LinearDecay(2e-3, total_steps=100, warmup_steps=10, initial_learning_rate=1e-4),
        lambda s: ref_linear(s, 2e-3, 100, 10, 1e-4, 0.0),
    ),
    (
        LinearDecay(2e-3, total_steps=100, end_learning_rate=2e-5),
        lambda s: ref_linear(s, 2e-3, 100, 0, 0.0, 2e-5),
    ),
    (
        WSD(3e-3, total_steps=100, warmup_steps=5, decay_fraction=0.3, end_learning_rate=3e-6),
        lambda s: ref_wsd(s, 3e-3, 100, 5, 0.3, "linear", 0.0, 3e-6),
    ),
    (
        WSD(3e-3, total_steps=100, decay_fraction=0.25, cooldown="1-sqrt"),
        lambda s: ref_wsd(s, 3e-3, 100, 0, 0.25, "1-sqrt", 0.0, 0.0),
    ),
]
IDS = [
    "constant",
    "step",
    "warmup_cosine",
    "cosine",
    "onecycle_cos",
    "onecycle_linear",
    "linear_warmup",
    "linear_floor",
    "wsd_linear",
    "wsd_1sqrt",
]


def _np(x):
    return np.asarray(keras.ops.convert_to_numpy(x), dtype=np.float64)


@pytest.mark.parametrize("schedule,ref", CASES, ids=IDS)
def test_values_match_numpy_formula(schedule, ref):
    got = np.array([float(_np(schedule(int(s)))) for s in STEPS])
    want = ref(STEPS)
    # float32 arithmetic: relative to each value, plus a floor relative to the peak.
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-6 * want.max())


@pytest.mark.parametrize("dtype", ["int32", "int64"])
@pytest.mark.parametrize("schedule,ref", CASES[2:], ids=IDS[2:])
def test_accepts_integer_variable_step(schedule, ref, dtype):
    # Optimizers call schedule(self.iterations): an integer backend variable.
    step = keras.Variable(37, dtype=dtype, trainable=False)
    np.testing.assert_allclose(float(_np(schedule(step))), ref(np.array([37.0]))[0], rtol=2e-6)


def test_onecycle_endpoints_follow_div_factors():
    s = OneCycle(4e-3, total_steps=50, div_factor=20, final_div_factor=50)
    assert float(_np(s(0))) == pytest.approx(4e-3 / 20, rel=1e-6)
    assert float(_np(s(15))) == pytest.approx(4e-3, rel=1e-6)  # end of the 30% rise
    assert float(_np(s(50))) == pytest.approx(4e-3 / 20 / 50, rel=1e-5)
    assert float(_np(s(500))) == pytest.approx(4e-3 / 20 / 50, rel=1e-5)


@pytest.mark.parametrize("schedule", [c[0] for c in CASES], ids=IDS)
def test_config_round_trip_through_json(schedule):
    config = schedule.get_config()
    clone = type(schedule).from_config(json.loads(json.dumps(config)))
    assert clone.get_config() == config
    # The registered name makes generic Keras deserialization find the class.
    blob = json.loads(json.dumps(keras.saving.serialize_keras_object(schedule)))
    again = keras.saving.deserialize_keras_object(blob)
    assert type(again) is type(schedule)
    assert again.get_config() == config
    np.testing.assert_allclose(_np(again(33)), _np(schedule(33)), rtol=1e-7)


@pytest.mark.parametrize("family", FAMILIES)
def test_schedule_drives_optimizer_in_fit_and_survives_save(family, tmp_path):
    # One weight w, input 1, target 1000, MAE loss: every SGD step adds exactly lr(step)
    # to w, so after n steps w == sum(lr(0..n-1)) -- a check that the compiled train
    # step used the schedule at every step.
    n, total = 12, 12
    schedule = make_schedule(family, 0.05, total_steps=total)
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((1,)), keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")]
    )
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=schedule), loss="mae")
    x = np.ones((n, 1), "float32")
    model.fit(x, 1000 * x, batch_size=1, epochs=1, shuffle=False, verbose=0)
    expected = sum(float(_np(schedule(i))) for i in range(n))
    w = float(_np(model.layers[0].kernel)[0, 0])
    assert w == pytest.approx(expected, rel=1e-5)
    assert int(_np(model.optimizer.iterations)) == n
    assert float(_np(model.optimizer.learning_rate)) == pytest.approx(
        float(_np(schedule(n))), rel=1e-6, abs=1e-12
    )

    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    sched = loaded.optimizer._learning_rate
    assert type(sched) is type(schedule)
    assert sched.get_config() == schedule.get_config()


def test_make_schedule_defaults_and_overrides():
    step = make_schedule("step", 0.3, total_steps=90)
    assert isinstance(step, StepDecay)
    assert (step.decay_steps, step.decay_rate) == (30, 0.1)
    cos = make_schedule("cosine", 1e-3, total_steps=100, warmup_steps=10)
    assert isinstance(cos, WarmupCosine) and cos.warmup_steps == 10
    # Default floor keeps ln(lr) finite at the end of training.
    assert float(_np(cos(100))) == pytest.approx(1e-6, rel=1e-5)
    one = make_schedule("onecycle", 1e-3, total_steps=100, anneal="linear")
    assert isinstance(one, OneCycle) and one.anneal == "linear"
    assert isinstance(make_schedule("constant", 1e-3, total_steps=10), Constant)
    lin = make_schedule("linear", 1e-3, total_steps=100)
    assert isinstance(lin, LinearDecay)
    assert float(_np(lin(100))) == pytest.approx(1e-6, rel=1e-5)
    wsd = make_schedule("wsd", 1e-3, total_steps=100)
    assert isinstance(wsd, WSD) and wsd.decay_start == 80
    assert float(_np(wsd(79))) == pytest.approx(1e-3, rel=1e-6)
    assert float(_np(wsd(100))) == pytest.approx(1e-6, rel=1e-5)
    assert set(FAMILIES) == {"cosine", "onecycle", "constant", "step", "linear", "wsd"}
    assert schedules.FAMILIES is FAMILIES


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="family.*'cosin'"):
        make_schedule("cosin", 1e-3, 100)
    with pytest.raises(TypeError, match="unexpected arguments \\['warmup'\\]"):
        make_schedule("cosine", 1e-3, 100, warmup=5)
    with pytest.raises(ValueError, match="total_steps.*Received: total_steps=0"):
        make_schedule("onecycle", 1e-3, 0)
    with pytest.raises(ValueError, match="max_learning_rate.*-1"):
        OneCycle(-1.0, 100)
    with pytest.raises(ValueError, match="anneal.*'exp'"):
        OneCycle(1e-3, 100, anneal="exp")
    with pytest.raises(ValueError, match="pct_start"):
        OneCycle(1e-3, 100, pct_start=1.0)
    with pytest.raises(ValueError, match="div_factor.*0.5"):
        OneCycle(1e-3, 100, div_factor=0.5)
    with pytest.raises(ValueError, match="warmup_steps.*< `total_steps`"):
        WarmupCosine(1e-3, 10, warmup_steps=10)
    with pytest.raises(ValueError, match="decay_rate.*1.5"):
        StepDecay(1e-3, 10, decay_rate=1.5)
    with pytest.raises(TypeError, match="learning_rate.*'fast'"):
        Constant("fast")
    with pytest.raises(ValueError, match="end_learning_rate.*<= `peak_learning_rate`"):
        LinearDecay(1e-3, 100, end_learning_rate=1e-2)
    with pytest.raises(ValueError, match="decay_fraction.*1.5"):
        WSD(1e-3, 100, decay_fraction=1.5)
    with pytest.raises(ValueError, match="cooldown.*'cosine'"):
        WSD(1e-3, 100, cooldown="cosine")
    with pytest.raises(ValueError, match="warmup_steps.*< `total_steps`"):
        WSD(1e-3, 10, warmup_steps=10)


def test_switched_follows_first_then_second_and_round_trips():
    first = make_schedule("cosine", 3e-3, total_steps=100)
    second = make_schedule("onecycle", 1e-2, total_steps=100)
    sw = Switched(first, second, switch_step=40)
    for step in (0, 39):
        assert float(_np(sw(step))) == pytest.approx(float(_np(first(step))), rel=1e-6)
    for step in (40, 41, 99):
        assert float(_np(sw(step))) == pytest.approx(float(_np(second(step))), rel=1e-6)
    blob = json.loads(json.dumps(keras.saving.serialize_keras_object(sw)))
    again = keras.saving.deserialize_keras_object(blob)
    assert isinstance(again, Switched) and again.switch_step == 40
    np.testing.assert_allclose(_np(again(70)), _np(sw(70)), rtol=1e-7)
    with pytest.raises(TypeError, match="`second` must be a LearningRateSchedule"):
        Switched(first, 0.1, 40)
    with pytest.raises(ValueError, match="switch_step.*Received: switch_step=0"):
        Switched(first, second, 0)
