"""Fixed-grid ODE solvers in NumPy that reproduce torchdiffeq's, step for step.

The LODE is trained with `torchdiffeq.odeint(func, y0, t, method="rk4",
options={"step_size": h})` and must decode identically at inference without torch.
This module mirrors torchdiffeq's layout (`_impl/fixed_grid.py` + `rk_common.py`): a
base solver owns the time grid and the linear interpolation at the requested output
times, each method is a tiny class with an `order` and a `_step_func`, and the step
formulas are free functions.

What "identical" means here:

* grid: `arange(ceil((t[-1] - t[0]) / h + 1)) * h + t[0]`, computed in the dtype of
  `t`, with its last point replaced by `t[-1]` (so a step size that does not divide the
  span ends with one short step);
* `method="rk4"` is torchdiffeq's `rk4_alt_step_func`, the 3/8 rule (not the classic
  1/6 rule, which torchdiffeq calls `rk4` internally but does not use for "rk4");
* an output time inside a grid interval is the linear interpolation of the two grid
  states; an output time equal to a grid point is that grid state.

`func(t, y)` is called with `y` batched over any leading dimensions, so one call
integrates many trajectories at once.
"""

from __future__ import annotations

import functools
import math

import numpy as np

__all__ = [
    "Euler",
    "FieldKernel",
    "FixedGridODESolver",
    "Midpoint",
    "RK4",
    "SOLVERS",
    "euler_step_func",
    "make_grid",
    "midpoint_step_func",
    "jax_rk4",
    "odeint",
    "rk4_alt_step_func",
]

_ONE_THIRD = 1 / 3
_TWO_THIRDS = 2 / 3


# --- step formulas (free functions, as in torchdiffeq's rk_common.py) -----------------


def euler_step_func(func, t0, dt, t1, y0, f0=None):
    """Forward Euler increment `dt * f(t0, y0)`."""
    if f0 is None:
        f0 = func(t0, y0)
    return dt * f0


def midpoint_step_func(func, t0, dt, t1, y0, f0=None):
    """Explicit midpoint increment."""
    if f0 is None:
        f0 = func(t0, y0)
    half_dt = 0.5 * dt
    return dt * func(t0 + half_dt, y0 + f0 * half_dt)


def rk4_alt_step_func(func, t0, dt, t1, y0, f0=None):
    """Runge-Kutta 3/8-rule increment: torchdiffeq's `method="rk4"`.

    The operation order follows torchdiffeq's `rk4_alt_step_func` so that float32
    results round the same way.
    """
    k1 = f0
    if k1 is None:
        k1 = func(t0, y0)
    k2 = func(t0 + dt * _ONE_THIRD, y0 + dt * k1 * _ONE_THIRD)
    k3 = func(t0 + dt * _TWO_THIRDS, y0 + dt * (k2 - k1 * _ONE_THIRD))
    k4 = func(t1, y0 + dt * (k1 - k2 + k3))
    return (k1 + 3 * (k2 + k3) + k4) * dt * 0.125


# --- grid and interpolation --------------------------------------------------------------


def make_grid(t, step_size):
    """The integration grid torchdiffeq builds for `options={"step_size": step_size}`.

    Args:
        t: 1-D strictly increasing output times (float array).
        step_size: positive step, in the units of `t`.

    Returns:
        1-D array in the dtype of `t`, starting at `t[0]` and ending exactly at `t[-1]`.
    """
    t = np.asarray(t)
    dt = t.dtype.type
    start, end = t[0], t[-1]
    # Same arithmetic, same dtype as torch.ceil((end - start) / step_size + 1).
    niters = int(np.ceil((end - start) / dt(step_size) + dt(1)))
    grid = np.arange(0, niters, dtype=t.dtype) * dt(step_size) + start
    grid[-1] = end
    return grid


def interp_plan(grid, t):
    """Where each output time falls on the grid, exactly as torchdiffeq assigns it.

    torchdiffeq walks the grid and gives output `t[j]` (j >= 1) to the first interval
    `[g[i-1], g[i]]` with `g[i] >= t[j]`; `t[0]` is the initial state.

    Returns:
        `(index, weight, exact)`: for output j, the right grid index `i`, the weight of
        the right end in the linear interpolation, and whether `t[j]` equals `g[i]`.
    """
    idx = np.searchsorted(grid, t, side="left")
    idx = np.clip(idx, 1, len(grid) - 1)
    g0, g1 = grid[idx - 1], grid[idx]
    exact = t == g1
    with np.errstate(divide="ignore", invalid="ignore"):
        w = (t - g0) / (g1 - g0)
    w = np.where(exact, 1, w).astype(grid.dtype)
    w[0] = 0.0
    idx[0] = 1
    exact[0] = False
    return idx, w, exact


def _check_t(t, dtype=None):
    t = np.asarray(t, dtype=dtype)
    if t.ndim != 1 or t.size < 1:
        raise ValueError(
            f"Argument `t` must be a 1-D array of output times. Received shape {t.shape}."
        )
    if not np.issubdtype(t.dtype, np.floating):
        t = t.astype(np.float64)
    if not np.all(np.isfinite(t)):
        raise ValueError("Argument `t` must hold finite times. Received non-finite values.")
    if t.size > 1 and not np.all(t[1:] > t[:-1]):
        raise ValueError("Argument `t` must be strictly increasing.")
    return t


def _check_step_size(step_size):
    if step_size is None:
        return None
    try:
        h = float(step_size)
    except (TypeError, ValueError):
        raise TypeError(
            f"Argument `step_size` must be a positive number. Received: step_size={step_size!r}"
        ) from None
    if not (h > 0 and math.isfinite(h)):
        raise ValueError(
            f"Argument `step_size` must be a positive finite number. Received: step_size={h}"
        )
    return h


# --- solvers -----------------------------------------------------------------------------


class FixedGridODESolver:
    """Base class: owns the grid, the stepping loop and the linear interpolation.

    Subclasses set `order` and implement `_step_func(func, t0, dt, t1, y0)`.

    Args:
        func: callable `func(t, y) -> dy/dt`, batched over the leading dims of `y`.
        y0: initial state at `t[0]`, any shape.
        step_size: fixed step; `None` steps exactly on the output times.
    """

    order: int = 0

    def __init__(self, func, y0, step_size=None):
        self.func = func
        self.y0 = np.asarray(y0)
        self.step_size = _check_step_size(step_size)

    def _step_func(self, func, t0, dt, t1, y0):
        raise NotImplementedError

    def grid(self, t):
        if self.step_size is None:
            return np.array(t, copy=True)
        return make_grid(t, self.step_size)

    def integrate(self, t):
        """Integrate and return the states at `t`, shape `(len(t),) + y0.shape`."""
        t = _check_t(t)
        grid, states = self.integrate_grid(t)
        return interpolate(states, grid, t)

    def integrate_grid(self, t):
        """Integrate over the grid of `t`; returns `(grid, states at every grid point)`.

        For a caller that maps states linearly before interpolating (cheaper when the
        mapped values are smaller than the states); `interpolate` then gives the values
        at `t` exactly as `integrate` would, up to rounding.
        """
        t = _check_t(t)
        grid = self.grid(t)
        # Keep every grid state, then interpolate once, vectorized, at the end.
        states = np.empty((len(grid),) + self.y0.shape, dtype=self.y0.dtype)
        states[0] = self.y0
        y0 = self.y0
        for i in range(len(grid) - 1):
            t0, t1 = grid[i], grid[i + 1]
            y0 = y0 + self._step_func(self.func, t0, t1 - t0, t1, y0)
            states[i + 1] = y0
        return grid, states


def interpolate(states, grid, t):
    """Linear interpolation of grid `states` at output times `t`, torchdiffeq's way.

    Args:
        states: `(len(grid),) + state_shape`.
        grid: the integration grid.
        t: output times, `t[0] == grid[0]`, `t[-1] == grid[-1]`.

    Returns:
        `(len(t),) + state_shape`.
    """
    if len(t) == 1:
        return states[:1].copy()
    idx, w, exact = interp_plan(grid, t)
    y1 = states[idx]
    y0 = states[idx - 1]
    wb = w.reshape((-1,) + (1,) * (states.ndim - 1))
    out = y0 + wb * (y1 - y0)
    out[exact] = y1[exact]
    out[0] = states[0]
    return out


class Euler(FixedGridODESolver):
    order = 1

    def _step_func(self, func, t0, dt, t1, y0):
        return euler_step_func(func, t0, dt, t1, y0)


class Midpoint(FixedGridODESolver):
    order = 2

    def _step_func(self, func, t0, dt, t1, y0):
        return midpoint_step_func(func, t0, dt, t1, y0)


class RK4(FixedGridODESolver):
    """torchdiffeq's `method="rk4"`: the Runge-Kutta 3/8 rule."""

    order = 4

    def _step_func(self, func, t0, dt, t1, y0):
        return rk4_alt_step_func(func, t0, dt, t1, y0)


SOLVERS = {"euler": Euler, "midpoint": Midpoint, "rk4": RK4}


def odeint(func, y0, t, method="rk4", step_size=None):
    """Solve `dy/dt = func(t, y)`, `y(t[0]) = y0`, on a fixed grid, like torchdiffeq.

    Example:

    >>> import numpy as np
    >>> y = odeint(lambda t, y: -y, np.ones(2), np.array([0.0, 1.0]), step_size=0.1)
    >>> bool(np.allclose(y[-1], np.exp(-1.0), atol=1e-6))
    True

    Args:
        func: `func(t, y) -> dy/dt`, batched over the leading dims of `y`.
        y0: initial state (array of any shape).
        t: 1-D strictly increasing output times; `t[0]` is the time of `y0`.
        method: `"rk4"` (3/8 rule, torchdiffeq's), `"midpoint"` or `"euler"`.
        step_size: fixed step; `None` steps on the output times only.

    Returns:
        Array of shape `(len(t),) + y0.shape`.

    Raises:
        ValueError: unknown `method`, bad `t` or `step_size`.
    """
    if method not in SOLVERS:
        raise ValueError(
            f"Argument `method` must be one of {sorted(SOLVERS)}. Received: method={method!r}"
        )
    y0 = np.asarray(y0)
    if not np.issubdtype(y0.dtype, np.floating):
        y0 = y0.astype(np.float64)
    t = _check_t(t, dtype=y0.dtype)
    return SOLVERS[method](func, y0, step_size=step_size).integrate(t)


# --- the LODE's vector field: the decode hot path and its JAX twin --------------------
#
# Both run the same 3/8-rule steps as `rk4_alt_step_func`, specialised to the field
# `scale * tanh(MLP(h))` with softplus hidden layers (keras_lode.model.latent_ode).


class FieldKernel:
    """The vector field's RK4 loop with preallocated buffers (the decode hot path).

    Each layer's input buffer carries a trailing column of ones and each weight matrix
    a trailing row holding the bias, so one `matmul` does `x @ W.T + b` with no
    temporaries. The field's `scale` is folded into the RK stage coefficients.
    """

    def __init__(self, layers, scale, batch, dtype):
        self.dtype = dtype
        self.scale = dtype(scale)
        self.aug = [
            np.ascontiguousarray(np.vstack([w.T, b[None, :]]), dtype=dtype) for w, b in layers
        ]
        self.bufs = []
        for a in self.aug:
            buf = np.empty((batch, a.shape[0]), dtype=dtype)
            buf[:, -1] = 1
            self.bufs.append(buf)
        n = layers[-1][0].shape[0]
        self.k = [np.empty((batch, n), dtype=dtype) for _ in range(4)]
        self.scratch = [np.empty((batch, a.shape[1]), dtype=dtype) for a in self.aug[:-1]]
        self.safe = False

    def tanh_mlp(self, out):
        """`tanh(MLP(bufs[0][:, :-1]))` into `out` (softplus hidden layers)."""
        bufs, aug = self.bufs, self.aug
        for i in range(len(aug) - 1):
            dst = bufs[i + 1][:, :-1]
            np.matmul(bufs[i], aug[i], out=dst)
            if self.safe:
                # max(log1p(exp(min(x, 20))), x) is torch's thresholded softplus to
                # within 2e-9 (softplus(x) > x for every x). exp never sees a large
                # argument: overflowing inputs also send NumPy's exp down a slow path.
                scr = self.scratch[i]
                np.minimum(dst, 20, out=scr)
                np.exp(scr, out=scr)
                np.log1p(scr, out=scr)
                np.maximum(dst, scr, out=dst)
            else:
                # Plain log1p(exp(x)): two ufuncs. It overflows only for x > ~88 (float32)
                # or ~709 (float64); the caller then reruns with `safe`.
                np.exp(dst, out=dst)
                np.log1p(dst, out=dst)
        np.matmul(bufs[-1], aug[-1], out=out)
        np.tanh(out, out=out)

    def integrate(self, h0, grid):
        """RK4 over `grid` from `h0`; returns `(states, overflowed)`.

        `overflowed` says a floating-point overflow or invalid operation happened. In
        the fast form that means exp() overflowed in a softplus; the result may then be
        wrong even where finite (tanh squashes an inf to +-1), so the caller reruns.
        """
        states = np.empty((len(grid),) + h0.shape, dtype=self.dtype)
        states[0] = h0
        x = self.bufs[0][:, :-1]
        k1, k2, k3, k4 = self.k
        dts = np.diff(grid)
        third = self.dtype(_ONE_THIRD)
        y = h0
        flags = []
        # NumPy checks the FP status after every ufunc anyway: the callback costs nothing
        # unless something overflowed.
        with np.errstate(
            over="call",
            invalid="call",
            under="ignore",
            divide="ignore",
            call=lambda kind, flag: flags.append(kind),
        ):
            for i, dt in enumerate(dts):
                c = dt * self.scale
                x[...] = y
                self.tanh_mlp(k1)
                np.multiply(k1, c * third, out=x)
                x += y
                self.tanh_mlp(k2)
                np.multiply(k1, -third, out=x)
                x += k2
                x *= c
                x += y
                self.tanh_mlp(k3)
                np.subtract(k1, k2, out=x)
                x += k3
                x *= c
                x += y
                self.tanh_mlp(k4)
                # y1 = y0 + c/8 * (k1 + 3 (k2 + k3) + k4), written into the next state row.
                nxt = states[i + 1]
                np.add(k2, k3, out=nxt)
                nxt *= 3
                nxt += k1
                nxt += k4
                nxt *= c * self.dtype(0.125)
                nxt += y
                y = nxt
        return states, bool(flags)


@functools.cache
def jax_rk4(n_layers, dtype_name):
    """A jitted RK4 (3/8 rule) loop over a given grid, for the vector field, on the CPU.

    jax is imported here, only when asked for. It runs on the CPU device whatever the
    default device is (these arrays are tiny) and in float64 inside a local
    `jax.enable_x64` scope, so the user's global JAX settings are untouched.
    """
    try:
        import jax
        import jax.numpy as jnp
    except ImportError as e:
        raise ImportError(
            "LatentODE.decode(method='jax') needs jax; install with pip install 'keras-lode[jax]'"
        ) from e
    cpu = jax.devices("cpu")[0]
    x64 = dtype_name == "float64"

    def field(layers, scale, h):
        for w, b in layers[:-1]:
            h = jax.nn.softplus(h @ w.T + b)
        w, b = layers[-1]
        return scale * jnp.tanh(h @ w.T + b)

    def run(layers, scale, h0, dts):
        def step(y, dt):
            k1 = field(layers, scale, y)
            k2 = field(layers, scale, y + dt * k1 * (1 / 3))
            k3 = field(layers, scale, y + dt * (k2 - k1 * (1 / 3)))
            k4 = field(layers, scale, y + dt * (k1 - k2 + k3))
            y1 = y + (k1 + 3 * (k2 + k3) + k4) * dt * 0.125
            return y1, y1

        _, ys = jax.lax.scan(step, h0, dts)
        return jnp.concatenate([h0[None], ys])

    jitted = jax.jit(run)

    def call(layers, scale, h0, dts):
        with jax.enable_x64(x64):
            args = jax.device_put((layers, scale, h0, dts), cpu)
            return np.asarray(jitted(*args))

    return call
