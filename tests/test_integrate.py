"""The NumPy fixed-grid solvers (issue 2, Done-when 2): exact solutions, convergence
order, torchdiffeq's grid and interpolation, and step-for-step agreement with torchdiffeq.
"""

from __future__ import annotations

import numpy as np
import pytest

from keras_lode.model import integrate
from keras_lode.model.integrate import make_grid, odeint

# A registry of problems with exact solutions, torchdiffeq tests/problems.py style:
# name -> (func, y0, exact(t) -> y).
_A = np.array([[-0.1, -2.0], [2.0, -0.1]])


def _linear_exact(t):
    # y' = A y with A = -0.1 I + 2 J: a damped rotation.
    t = np.asarray(t)[:, None]
    c, s = np.cos(2 * t), np.sin(2 * t)
    y0 = np.array([1.0, 0.5])
    return np.exp(-0.1 * t) * np.concatenate([c * y0[0] - s * y0[1], s * y0[0] + c * y0[1]], axis=1)


PROBLEMS = {
    "decay": (
        lambda t, y: -0.7 * y,
        np.array([1.0, -2.0, 3.0]),
        lambda t: np.exp(-0.7 * np.asarray(t))[:, None] * np.array([1.0, -2.0, 3.0]),
    ),
    "rotation": (lambda t, y: y @ _A.T, np.array([1.0, 0.5]), _linear_exact),
    "logistic": (
        lambda t, y: y * (1 - y),
        np.array([0.1]),
        lambda t: (0.1 / (0.1 + 0.9 * np.exp(-np.asarray(t))))[:, None],
    ),
}


@pytest.mark.parametrize("name", list(PROBLEMS))
def test_rk4_matches_exact_solution(name):
    func, y0, exact = PROBLEMS[name]
    t = np.linspace(0.0, 4.0, 9)
    y = odeint(func, y0, t, method="rk4", step_size=0.02)
    assert y.shape == (9,) + y0.shape
    np.testing.assert_allclose(y, exact(t), rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", list(PROBLEMS))
def test_rk4_error_drops_16x_when_step_halves(name):
    func, y0, exact = PROBLEMS[name]
    t = np.array([0.0, 4.0])
    errors = [
        np.abs(odeint(func, y0, t, step_size=h)[-1] - exact(t)[-1]).max() for h in (0.4, 0.2, 0.1)
    ]
    ratios = [errors[0] / errors[1], errors[1] / errors[2]]
    for r in ratios:
        assert 12 < r < 20, (errors, ratios)


@pytest.mark.parametrize("method,order", [("euler", 1), ("midpoint", 2)])
def test_lower_order_methods_converge_at_their_order(method, order):
    func, y0, exact = PROBLEMS["decay"]
    t = np.array([0.0, 2.0])
    e1, e2 = (
        np.abs(odeint(func, y0, t, method=method, step_size=h)[-1] - exact(t)[-1]).max()
        for h in (0.02, 0.01)
    )
    assert 2**order * 0.85 < e1 / e2 < 2**order * 1.15


def test_three_eighths_rule_is_exact_for_cubic_quadrature():
    # y' = 4 t^3 - 3 t^2 + 1: the 3/8 rule integrates cubics exactly, even with a grid
    # whose last step is short.
    t = np.array([0.0, 0.8, 2.0, 2.3])  # on grid points; the last step is 0.3
    y = odeint(
        lambda t, y: (4 * t**3 - 3 * t**2 + 1) * np.ones_like(y), np.zeros(1), t, step_size=0.4
    )
    np.testing.assert_allclose(y[:, 0], t**4 - t**3 + t, rtol=0, atol=1e-12)


def test_rk4_is_the_three_eighths_rule_not_classic():
    # One step of y' = y^2 from 1 with dt = 0.1, written out by hand.
    f = lambda t, y: y**2  # noqa: E731
    y0, dt = 1.0, 0.1
    k1 = f(0, y0)
    k2 = f(0, y0 + dt * k1 / 3)
    k3 = f(0, y0 + dt * (k2 - k1 / 3))
    k4 = f(0, y0 + dt * (k1 - k2 + k3))
    three_eighths = y0 + dt * (k1 + 3 * (k2 + k3) + k4) / 8
    c2 = f(0, y0 + dt / 2 * k1)
    c3 = f(0, y0 + dt / 2 * c2)
    classic = y0 + dt * (k1 + 2 * (c2 + c3) + f(0, y0 + dt * c3)) / 6
    y = odeint(f, np.array([y0]), np.array([0.0, dt]), step_size=dt)[-1, 0]
    assert y == pytest.approx(three_eighths, abs=1e-15)
    assert abs(y - classic) > 1e-8  # the two rules differ by 7e-8 on this step


def test_grid_like_torchdiffeq():
    np.testing.assert_allclose(make_grid(np.array([0.0, 1.0]), 0.3), [0, 0.3, 0.6, 0.9, 1.0])
    np.testing.assert_allclose(make_grid(np.array([2.0, 5.0]), 1.0), [2, 3, 4, 5])
    g = make_grid(np.array([0.0, 1.0], dtype=np.float32), 0.3)
    assert g.dtype == np.float32 and g[-1] == np.float32(1.0) and len(g) == 5


def test_linear_interpolation_between_grid_points():
    # y' = 1 with y0 = 0 gives y = t exactly on the grid; between grid points the output
    # is the linear interpolation, also exact here. y' = y shows the interpolation is
    # linear (not the true exponential) between grid points of step 1.
    t = np.array([0.0, 0.25, 1.0, 1.5, 2.75, 3.0])
    y = odeint(lambda t, y: np.ones_like(y), np.zeros(1), t, step_size=1.0)
    np.testing.assert_allclose(y[:, 0], t, atol=1e-15)
    y = odeint(lambda t, y: y, np.ones(1), np.array([0.0, 0.5, 1.0]), step_size=1.0)[:, 0]
    assert y[1] == pytest.approx((1 + y[2]) / 2, abs=1e-15)


def test_batched_state_and_step_on_output_times():
    func, y0, exact = PROBLEMS["decay"]
    yb = np.stack([y0, 2 * y0])  # (2, 3): func is batched over leading dims
    t = np.linspace(0.0, 1.0, 101)
    y = odeint(func, yb, t)  # step_size=None: steps on the output times
    assert y.shape == (101, 2, 3)
    np.testing.assert_allclose(y[:, 1], 2 * y[:, 0], rtol=1e-14)
    np.testing.assert_allclose(y[:, 0], exact(t), atol=1e-9)


def test_single_output_time_returns_y0():
    y = odeint(lambda t, y: y, np.array([2.0]), np.array([3.0]), step_size=0.5)
    np.testing.assert_array_equal(y, [[2.0]])


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(method="dopri5"), "`method`"),
        (dict(step_size=0.0), "`step_size`"),
        (dict(step_size=float("nan")), "`step_size`"),
        (dict(step_size="big"), "`step_size`"),
        (dict(t=np.array([0.0, 2.0, 1.0])), "strictly increasing"),
        (dict(t=np.zeros((2, 2))), "1-D"),
        (dict(t=np.array([0.0, np.inf])), "finite"),
    ],
)
def test_bad_arguments_raise_naming_the_argument(kwargs, match):
    args = dict(t=np.array([0.0, 1.0]), method="rk4", step_size=0.1)
    args.update(kwargs)
    with pytest.raises((ValueError, TypeError), match=match):
        odeint(lambda t, y: -y, np.ones(2), **args)


# --- step for step against torchdiffeq ----------------------------------------------------


@pytest.mark.parametrize("method", ["rk4", "midpoint", "euler"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_matches_torchdiffeq(method, dtype):
    torch = pytest.importorskip("torch")
    torchdiffeq = pytest.importorskip("torchdiffeq")
    w = np.random.default_rng(0).normal(size=(4, 4)).astype(dtype)

    def np_func(t, y):
        return np.tanh(y @ w) * np.cos(t)

    wt = torch.tensor(w)

    def torch_func(t, y):
        return torch.tanh(y @ wt) * torch.cos(t)

    y0 = np.random.default_rng(1).normal(size=(3, 4)).astype(dtype)
    # Off-grid output times and a step that does not divide the span.
    t = np.array([0.5, 0.8, 1.0, 2.3, 3.0, 4.15], dtype=dtype)
    yn = odeint(np_func, y0, t, method=method, step_size=0.3)
    yt = torchdiffeq.odeint(
        torch_func, torch.tensor(y0), torch.tensor(t), method=method, options={"step_size": 0.3}
    ).numpy()
    assert yn.dtype == dtype
    np.testing.assert_allclose(yn, yt, rtol=0, atol=1e-12 if dtype == np.float64 else 2e-6)


def test_solver_classes_are_small_and_registered():
    assert integrate.SOLVERS["rk4"].order == 4
    assert issubclass(integrate.RK4, integrate.FixedGridODESolver)
