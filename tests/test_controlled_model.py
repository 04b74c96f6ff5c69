"""The controlled ensemble in NumPy: parity with its torch twin, the file, the arguments.

Parity runs in two layers, as for the generative model: against golden outputs written by
`scripts/make_golden.py --controlled` (always), and live against torch when it is installed.
"""

from __future__ import annotations

import importlib.util
import json
import os

import numpy as np
import pytest

import keras_lode
from keras_lode.model import ControlledODE, load_model, random_controlled
from keras_lode.model.config import controlled_config
from keras_lode.model.schema import member_weight_shapes

GOLDEN = os.path.join(os.path.dirname(__file__), "golden")
TOL = {np.float64: 1e-6, np.float32: 1e-4}


def _make_golden_module():
    path = os.path.join(os.path.dirname(__file__), "..", "scripts", "make_golden.py")
    spec = importlib.util.spec_from_file_location("make_golden", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MG = _make_golden_module()


@pytest.fixture(scope="module")
def golden():
    with np.load(os.path.join(GOLDEN, "controlled_parity.npz"), allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", list(MG.CONTROLLED_CASES))
def test_golden_parity(golden, case, dtype):
    sizes, members, step, horizon = MG.CONTROLLED_CASES[case]
    model = load_model(os.path.join(GOLDEN, f"controlled_{case}.npz"), dtype=dtype)
    assert model.kind == "controlled" and model.members == members
    args = MG.controlled_inputs(list(MG.CONTROLLED_CASES).index(case), horizon)
    y = model.predict(*args)
    tag = "f64" if dtype is np.float64 else "f32"
    want = golden[f"{case}/{tag}/y"]
    assert y.shape == want.shape == (members, 4, args[2].size, 2)
    np.testing.assert_allclose(y, want, rtol=0, atol=TOL[dtype])
    # The LR path matters: the four candidates end at clearly different predictions.
    final = want[:, :, -1, :]
    assert np.ptp(final[..., 0], axis=1).min() > 1e-3
    assert np.ptp(final[..., 1], axis=1).min() > 1e-4


def test_golden_cases_have_non_dividing_steps():
    for _sizes, _m, step, horizon in MG.CONTROLLED_CASES.values():
        interval = 10.0 / horizon
        assert abs(10.0 / step - round(10.0 / step)) > 1e-3
        assert abs(interval / step - round(interval / step)) > 1e-3


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_live_torch_parity(dtype):
    torch = pytest.importorskip("torch")
    pytest.importorskip("torchdiffeq")
    from keras_lode.train.member import (
        ControlledMember,
        check_weight_names,
        ensemble_config,
        ensemble_weights,
    )

    torch.manual_seed(7)
    tdtype = getattr(torch, dtype)
    ens = [
        ControlledMember(
            hidden=5, state=3, width=7, depth=2, step_size=0.45, horizon=37, mean=[2, -5, 0.5]
        ).to(tdtype)
        for _ in range(2)
    ]
    config = ensemble_config(ens, window=7, lr_range=(1e-5, 1e-1), points_per_epoch=5)
    check_weight_names(ens[0], config)
    model = ControlledODE(config, ensemble_weights(ens), dtype=getattr(np, dtype))
    rng = np.random.default_rng(3)
    t_window = np.arange(3.0, 10.0)
    window = np.column_stack(
        [rng.uniform(1, 3, 7), np.log(rng.uniform(1e-3, 1e-2, 7)), rng.uniform(0.3, 0.8, 7)]
    )
    t = np.arange(9.0, 37.0)
    log_lr = np.log(rng.uniform(1e-5, 1e-2, (3, t.size)))  # a jagged path
    with torch.no_grad():
        want = np.stack(
            [
                m.predict(*(torch.tensor(a, dtype=tdtype) for a in (t_window, window, t, log_lr)))
                .double()
                .numpy()
                for m in ens
            ]
        )
    np.testing.assert_allclose(
        model.predict(t_window, window, t, log_lr), want, rtol=0, atol=TOL[getattr(np, dtype)]
    )


def test_predict_batches_members_and_candidates_consistently():
    model = random_controlled(1, members=3, horizon=40, window=6)
    tw, w = np.arange(10, 16), np.column_stack([np.ones(6), np.full(6, -6.0), np.full(6, 0.5)])
    t = np.arange(15, 40)
    paths = np.log(np.stack([np.full(t.size, 1e-3), np.geomspace(1e-3, 1e-5, t.size)]))
    both = model.predict(tw, w, t, paths)
    one = model.predict(tw, w, t, paths[1])
    np.testing.assert_allclose(both[:, 1:], one, rtol=0, atol=1e-12)
    # t may be any strictly increasing points from the window's end: a subset reads the
    # same trajectory where the points coincide (the RK4 grid depends on t[0], t[-1]).
    sub = model.predict(tw, w, t[[0, 5, 9, -1]], paths[:, [0, 5, 9, -1]])
    assert sub.shape == (3, 2, 4, 2)
    np.testing.assert_allclose(sub[..., 0, :], both[..., 0, :], rtol=0, atol=1e-12)


def test_predict_rejects_bad_arguments():
    model = random_controlled(0, members=2, horizon=30, window=5)
    tw = np.arange(5, 10)
    w = np.column_stack([np.ones(5), np.full(5, -6.0), np.full(5, 0.5)])
    t = np.arange(9, 30)
    lr = np.full((2, t.size), -6.0)
    with pytest.raises(ValueError, match=r"`t` must start at the window's last point 9"):
        model.predict(tw, w, t[1:], lr[:, 1:])
    with pytest.raises(ValueError, match=r"`log_lr` must have shape \(C, T\) with T = 21"):
        model.predict(tw, w, t, lr[:, :-1])
    with pytest.raises(ValueError, match="`window` must have shape"):
        model.predict(tw, w[:, :2], t, lr)
    with pytest.raises(ValueError, match="`window` holds NaN"):
        model.predict(tw, np.where(np.eye(5, 3) > 0, np.nan, w), t, lr)
    bad = lr.copy()
    bad[0, 3] = np.inf
    with pytest.raises(ValueError, match="`log_lr` holds NaN/inf"):
        model.predict(tw, w, t, bad)
    with pytest.raises(ValueError, match="strictly increasing"):
        model.predict(tw[::-1], w, t, lr)


def test_spread_applies_the_stored_calibration():
    model = random_controlled(0, members=4, calibration={"sd_scale": 3.0, "sd_floor": 0.01})
    values = np.array([[0.80, 0.7], [0.82, 0.7], [0.84, 0.7], [0.86, 0.7]])
    mean, sd = model.spread(values)
    np.testing.assert_allclose(mean, [0.83, 0.7])
    raw = np.std(values[:, 0], ddof=1)
    np.testing.assert_allclose(sd, [3.0 * np.hypot(raw, 0.01), 3.0 * 0.01])


# ---------------------------------------------------------------------- the file


def _write(path, config, weights):
    arrays = {"config": np.frombuffer(json.dumps(config).encode(), dtype=np.uint8)}
    arrays.update(weights)
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return path


def _parts(members=2):
    model = random_controlled(0, members=members, hidden=3, state=4, width=5, depth=1)
    config = model.config
    weights = {f"member{i}.{n}": v[i] for n, v in model.weights.items() for i in range(members)}
    return config, weights


def test_file_round_trip(tmp_path):
    model = random_controlled(2, members=3, horizon=40)
    path = tmp_path / "c.npz"
    model.save(path)
    again = keras_lode.load_model(path, dtype=np.float64)
    assert isinstance(again, ControlledODE) and again.members == 3 and again.kind == "controlled"
    tw, w = np.arange(0, 10), np.column_stack([np.ones(10), np.full(10, -6.0), np.ones(10) / 2])
    t, lr = np.arange(9, 40), np.full((1, 31), -7.0)
    np.testing.assert_array_equal(again.predict(tw, w, t, lr), model.predict(tw, w, t, lr))
    # By default a controlled model computes in float32 (a generative one in float64).
    fast = keras_lode.load_model(path)
    assert fast.dtype is np.float32
    np.testing.assert_allclose(fast.predict(tw, w, t, lr), model.predict(tw, w, t, lr), atol=1e-4)


def test_refuses_a_wrong_member_count(tmp_path):
    config, weights = _parts(2)
    config["members"] = 3
    with pytest.raises(ValueError, match=r"key 'member2\.encoder\.weight_ih'.*it missing"):
        load_model(_write(tmp_path / "m.npz", config, weights))
    config["members"] = 0
    with pytest.raises(ValueError, match="key 'members': expected an integer from 1 to 64"):
        load_model(_write(tmp_path / "m.npz", config, weights))


def test_refuses_a_missing_member_key(tmp_path):
    config, weights = _parts(2)
    del weights["member1.readout.bias"]
    with pytest.raises(ValueError, match=r"key 'member1\.readout\.bias'.*it missing"):
        load_model(_write(tmp_path / "m.npz", config, weights))


def test_refuses_an_extra_member(tmp_path):
    config, weights = _parts(2)
    weights["member2.readout.bias"] = np.zeros(2)
    with pytest.raises(ValueError, match=r"key 'member2\.readout\.bias'.*unknown extra key"):
        load_model(_write(tmp_path / "m.npz", config, weights))


def test_refuses_non_finite_weights(tmp_path):
    config, weights = _parts(2)
    weights["member1.field.layers.0.weight"] = weights["member1.field.layers.0.weight"].copy()
    weights["member1.field.layers.0.weight"][0, 0] = np.nan
    with pytest.raises(ValueError, match=r"member1\.field\.layers\.0\.weight.*finite values"):
        load_model(_write(tmp_path / "m.npz", config, weights))


def test_refuses_object_arrays(tmp_path):
    config, weights = _parts(2)
    weights["member0.to_state.bias"] = np.array([object()] * 4, dtype=object)
    path = tmp_path / "m.npz"
    arrays = {"config": np.frombuffer(json.dumps(config).encode(), dtype=np.uint8), **weights}
    with open(path, "wb") as f:
        np.savez(f, **arrays)  # savez pickles the object array; the loader must refuse it
    with pytest.raises(ValueError, match=r"member0\.to_state\.bias.*object/pickled array"):
        load_model(path)


def test_refuses_an_unknown_kind(tmp_path):
    config, weights = _parts(2)
    config["kind"] = "stochastic"
    with pytest.raises(ValueError, match=r"key 'kind': expected one of \['generative', "):
        load_model(_write(tmp_path / "m.npz", config, weights))


def test_refuses_a_controlled_file_without_calibration(tmp_path):
    config, weights = _parts(2)
    del config["calibration"]
    with pytest.raises(ValueError, match="key 'calibration': expected to be present"):
        load_model(_write(tmp_path / "m.npz", config, weights))
    config, weights = _parts(2)
    config["calibration"]["sd_scale"] = -1.0
    with pytest.raises(ValueError, match=r"calibration\.sd_scale': expected a number > 0"):
        load_model(_write(tmp_path / "m.npz", config, weights))


def test_generative_files_without_a_kind_still_load():
    # The shipped ResNet model is a generative file written before `kind` existed.
    path = os.path.join(os.path.dirname(__file__), "..", "models", "fmnist_resnet.npz")
    model = load_model(path)
    assert model.kind == "generative" and "kind" not in model.config
    assert type(model).__name__ == "LatentODE"


def test_config_builder_names_match_member_shapes():
    config = controlled_config(members=2, hidden=3, state=4, width=5, depth=1, window=6)
    shapes = member_weight_shapes(config)
    assert shapes["field.layers.0.weight"] == (5, 6)  # state + [u, t / horizon]
    assert shapes["readout.weight"] == (2, 4)
    assert config["time"]["scale"] == pytest.approx(10.0 / 50)
