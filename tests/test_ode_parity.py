"""NumPy LatentODE vs the torch twin: encode and decode agree (issue 2, Done-when 1).

Two layers: the golden files written by scripts/make_golden.py (always run, no torch
needed), and live random torch models (skipped where torch is not installed). Sizes:
three architectures; step sizes 1.0 and 0.7, the latter not dividing the time span so
torchdiffeq's short last step and its linear interpolation are exercised.
"""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest

from keras_lode.model import LatentODE, load_model, random_model

GOLDEN = os.path.join(os.path.dirname(__file__), "golden")
# The issue asks for 1e-6 (float64) and 1e-4 (float32). float64 is held to 1e-9 because the
# two sides agree to ~1e-12 and a 1e-6 bound would not tell the 3/8 rule from classic RK4
# on these smooth fields (that difference is 1e-8..1e-5 here).
TOL = {np.float64: 1e-9, np.float32: 1e-4}


def _make_golden_module():
    path = os.path.join(os.path.dirname(__file__), "..", "scripts", "make_golden.py")
    spec = importlib.util.spec_from_file_location("make_golden", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


MG = _make_golden_module()
CASES = list(MG.CASES)


@pytest.fixture(scope="module")
def golden():
    with np.load(os.path.join(GOLDEN, "parity.npz"), allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("case", CASES)
def test_golden_parity(golden, case, dtype):
    tag = "f64" if dtype is np.float64 else "f32"
    model = load_model(os.path.join(GOLDEN, f"case_{case}.npz"), dtype=dtype)
    t_window, window, t_decode = MG.inputs(CASES.index(case))
    z_in = golden[f"{case}/z_in"]
    tol = TOL[dtype]

    z = model.encode(t_window, window)
    assert z.dtype == dtype
    np.testing.assert_allclose(z, golden[f"{case}/{tag}/z"], rtol=0, atol=tol)

    for method in ("fast", "reference"):
        y, h = model.decode(t_decode, z_in, return_states=True, method=method)
        assert y.shape == golden[f"{case}/{tag}/y"].shape
        np.testing.assert_allclose(y, golden[f"{case}/{tag}/y"], rtol=0, atol=tol)
        np.testing.assert_allclose(h, golden[f"{case}/{tag}/h"], rtol=0, atol=tol)

    # The golden outputs are far from trivial: a wrong model could not match by luck.
    assert np.ptp(golden[f"{case}/f64/y"][..., 0]) > 0.1


def test_golden_cases_cover_a_non_dividing_step():
    for case in CASES:
        sizes, step, scale = MG.CASES[case]
        _, _, t_decode = MG.inputs(CASES.index(case))
        span = (t_decode[-1] - t_decode[0]) * scale
        model = load_model(os.path.join(GOLDEN, f"case_{case}.npz"))
        assert model.step_size == step and model.time_scale == scale
        if step == 0.7:
            assert not np.isclose(span / step, round(span / step))
    assert len({tuple(MG.CASES[c][0].items()) for c in CASES}) >= 3


def test_single_latent_matches_batch_row():
    model = load_model(os.path.join(GOLDEN, "case_mid_h07.npz"))
    z = np.random.default_rng(0).normal(size=(3, model.latent))
    t = np.arange(0.0, 25.0)
    batch = model.decode(t, z)
    assert batch.shape == (3, 25, 3)
    np.testing.assert_allclose(model.decode(t, z[1]), batch[1], rtol=0, atol=1e-12)
    _, window, _ = MG.inputs(0)
    zb = model.encode(np.arange(12.0), window)
    np.testing.assert_allclose(model.encode(np.arange(12.0), window[2]), zb[2], atol=1e-12)


# --- live torch ---------------------------------------------------------------------------

LIVE_SIZES = [
    dict(hidden=3, latent=2, state=4, width=5, depth=1),
    dict(hidden=9, latent=7, state=6, width=8, depth=2),
    dict(hidden=20, latent=20, state=20, width=20, depth=2),
]


@pytest.mark.parametrize("step_size", [1.0, 0.45])
@pytest.mark.parametrize("sizes", LIVE_SIZES, ids=["small", "mid", "paper"])
def test_live_torch_parity(tmp_path, sizes, step_size):
    torch = pytest.importorskip("torch")
    pytest.importorskip("torchdiffeq")
    from keras_lode.train import LatentODE

    torch.manual_seed(7)
    tm = LatentODE(step_size=step_size, mean=[0.5, -4.0, 0.7], std=[0.3, 1.2, 0.1], **sizes)
    path = tmp_path / "live.npz"
    tm.double().export(path, points_per_epoch=5, horizon=40)
    rng = np.random.default_rng(3)
    t_window = np.arange(10.0, 20.0)
    window = rng.normal([0.5, -4.0, 0.7], [0.3, 1.2, 0.1], size=(4, 10, 3))
    # 0.45 does not divide the span of 29.5 log points.
    t_decode = np.concatenate([[0.0, 0.5], np.arange(1.0, 30.0)])
    z = rng.normal(size=(5, sizes["latent"]))

    for dtype in (np.float64, np.float32):
        tdt = torch.float64 if dtype is np.float64 else torch.float32
        m = tm.to(tdt)
        nm = load_model(path, dtype=dtype)
        with torch.no_grad():
            zt = m.encode(torch.tensor(t_window), torch.tensor(window)).numpy()
            yt, ht = m.decode(torch.tensor(t_decode), torch.tensor(z), return_states=True)
        np.testing.assert_allclose(nm.encode(t_window, window), zt, rtol=0, atol=TOL[dtype])
        yn, hn = nm.decode(t_decode, z, return_states=True)
        np.testing.assert_allclose(yn, yt.numpy(), rtol=0, atol=TOL[dtype])
        np.testing.assert_allclose(hn, ht.numpy(), rtol=0, atol=TOL[dtype])


def test_torch_from_numpy_round_trip(tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("torchdiffeq")
    from keras_lode.train import LatentODE

    nm = random_model(
        5,
        hidden=6,
        latent=4,
        state=5,
        width=7,
        depth=2,
        step_size=0.6,
        mean=[1.0, -3.0, 0.5],
        std=[2.0, 1.0, 0.2],
        field_scale=0.7,
    )
    tm = LatentODE.from_numpy(nm)
    assert tm.to_latent.weight.dtype == torch.float64
    t = np.arange(0.0, 20.0)
    z = np.random.default_rng(0).normal(size=(2, 4))
    with torch.no_grad():
        yt = tm.decode(torch.tensor(t), torch.tensor(z)).numpy()
    np.testing.assert_allclose(nm.decode(t, z), yt, rtol=0, atol=1e-10)
    # And back through the file.
    nm.save(tmp_path / "rt.npz")
    tm2 = LatentODE.load(tmp_path / "rt.npz")
    for k, v in tm.state_dict().items():
        assert torch.equal(v, tm2.state_dict()[k]), k
    assert torch.equal(tm2.mean, tm.mean) and torch.equal(tm2.std, tm.std)


def test_torch_twin_exposes_latent_path():
    torch = pytest.importorskip("torch")
    pytest.importorskip("torchdiffeq")
    from keras_lode.train import LatentODE

    tm = LatentODE(hidden=5, latent=4, state=6, width=5, depth=1)
    z = torch.zeros(3, 4)
    y, h = tm.decode(torch.arange(8.0), z, return_states=True)
    assert y.shape == (3, 8, 3) and h.shape == (3, 8, 6)
    # Gradients flow to the vector field scale (the trainer needs this).
    h.pow(2).sum().backward()
    assert tm.field.scale.grad is not None and float(tm.field.scale.grad.abs()) > 0
    with pytest.raises(ValueError, match="`z`"):
        tm.decode(torch.arange(8.0), torch.zeros(3, 5))


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_jax_decode_path_matches_golden(golden, dtype):
    jax = pytest.importorskip("jax")
    case = "paper_h07"
    tag = "f64" if dtype is np.float64 else "f32"
    model = load_model(os.path.join(GOLDEN, f"case_{case}.npz"), dtype=dtype)
    _, _, t_decode = MG.inputs(CASES.index(case))
    x64_before = jax.config.jax_enable_x64
    y, h = model.decode(t_decode, golden[f"{case}/z_in"], return_states=True, method="jax")
    assert y.dtype == dtype
    np.testing.assert_allclose(y, golden[f"{case}/{tag}/y"], rtol=0, atol=TOL[dtype])
    np.testing.assert_allclose(h, golden[f"{case}/{tag}/h"], rtol=0, atol=TOL[dtype])
    # The user's global JAX setting is left as it was.
    assert jax.config.jax_enable_x64 == x64_before
    # The model-level default selects the path too.
    model.decode_method = "jax"
    np.testing.assert_array_equal(model.decode(t_decode, golden[f"{case}/z_in"]), y)


def test_decode_rejects_bad_arguments():
    model = load_model(os.path.join(GOLDEN, "case_tiny_h1.npz"))
    with pytest.raises(ValueError, match="`method`"):
        model.decode(np.arange(3.0), np.zeros(3), method="rk45")
    with pytest.raises(ValueError, match="`z`.*L = 3"):
        model.decode(np.arange(3.0), np.zeros(4))
    with pytest.raises(ValueError, match="`z`.*NaN"):
        model.decode(np.arange(3.0), np.array([0.0, np.nan, 0.0]))
    with pytest.raises(ValueError, match="`t`.*strictly increasing"):
        model.decode(np.array([0.0, 2.0, 1.0]), np.zeros(3))
    with pytest.raises(ValueError, match="`y`.*NaN"):
        model.encode(np.arange(3.0), np.array([[1.0, -3.0, np.nan]] * 3))
    with pytest.raises(ValueError, match=r"`y`.*\(3, 3\)"):
        model.encode(np.arange(3.0), np.zeros((4, 3)))
    with pytest.raises(ValueError, match="`dtype`"):
        load_model(os.path.join(GOLDEN, "case_tiny_h1.npz"), dtype=np.float16)


def test_fast_decode_survives_softplus_overflow():
    # States near 3000 make exp() overflow in the two-ufunc softplus of the fast kernel; it
    # then reruns with the safe form (and stays safe) and matches the reference path.
    base = random_model(0, hidden=4, latent=3, state=5, width=6, depth=2)
    weights = dict(base.weights)
    weights["to_state.layers.2.bias"] = weights["to_state.layers.2.bias"] + 3000.0
    model = LatentODE(base.config, weights)
    t = np.arange(0.0, 60.0)
    z = np.random.default_rng(0).normal(size=(4, 3))
    with np.errstate(all="raise"):  # nothing leaks out as a floating-point error
        fast = model.decode(t, z)
    assert model._safe
    assert np.isfinite(fast).all()
    np.testing.assert_allclose(fast, model.decode(t, z, method="reference"), rtol=0, atol=1e-9)


def test_decode_is_thread_safe_and_model_copyable():
    import copy
    import pickle
    from concurrent.futures import ThreadPoolExecutor

    model = load_model(os.path.join(GOLDEN, "case_mid_h07.npz"))
    t = np.arange(0.0, 80.0)
    zs = [np.random.default_rng(i).normal(size=(5, model.latent)) for i in range(8)]
    expected = [model.decode(t, z) for z in zs]  # one thread; same ops -> same bits
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda z: model.decode(t, z), zs * 3))
    for i, y in enumerate(got):
        np.testing.assert_array_equal(y, expected[i % 8])
    for clone in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        np.testing.assert_array_equal(clone.decode(t, zs[0]), model.decode(t, zs[0]))
