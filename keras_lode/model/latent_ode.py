"""The latent ODE (LODE) in NumPy: encoder, vector field, RK4 decode.

This is the inference side of keras_lode. It imports neither keras nor torch: a model
trained with `keras_lode.train` (PyTorch + torchdiffeq) is exported to one pickle-free
`.npz` file; `load_model` reads it (`keras_lode.model.validation` checks it), and this
module reproduces the torch model's `encode` and `decode` (float64: max abs error
<= 1e-6), batched over many latents at once.

Architecture (docs/design.md; sizes come from the file's config):

* channels `[loss, log_lr, metric]`, standardized with the training runs' mean/std;
* time: log-point index times `config["time"]["scale"]`;
* encoder: a GRU cell read over the window in reverse time order, input
  `[t_scaled, normalized channels]`, then a linear map hidden -> latent;
* decoder: MLP latent -> ODE state (ReLU), vector field `scale * tanh(MLP(h))`
  (softplus hidden activations), fixed-step RK4 (torchdiffeq's 3/8 rule, its grid, its
  linear interpolation), linear ODE state -> channels, de-standardized.

Example:

```python
import numpy as np
import keras_lode

model = keras_lode.load_model("models/fmnist_cnn.npz")
t = np.arange(30.0)
z = model.encode(t, window)            # window: (30, 3) raw [loss, log_lr, metric]
y = model.decode(np.arange(120.0), np.stack([z, z]))   # (2, 120, 3)
```
"""

from __future__ import annotations

import copy
import math
import threading

import numpy as np

from keras_lode.model import integrate
from keras_lode.model.config import default_config
from keras_lode.model.io import save_model
from keras_lode.model.layers import ConfigViews, check_points, gru_step, mlp, relu, softplus
from keras_lode.model.schema import weight_shapes
from keras_lode.model.validation import validate

__all__ = ["DECODE_METHODS", "LatentODE", "random_model"]

DECODE_METHODS = ("fast", "reference", "jax")


class LatentODE(ConfigViews):
    """The NumPy latent ODE: `encode` a window of a run, `decode` a latent into a run.

    Usually obtained from `load_model(path)`; `random_model()` builds one with random
    weights for tests.

    Args:
        config: a model-file config (see `default_config`, docs/model-format.md).
        weights: dict name -> array, torch `state_dict` names.
        dtype: compute dtype, `np.float64` or `np.float32`.

    Raises:
        ValueError: invalid config or weights, or an unsupported dtype.
    """

    kind = "generative"

    def __init__(self, config, weights, dtype=np.float64, *, _validated=False):
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise ValueError(f"Argument `dtype` must be float32 or float64. Received: {dtype}")
        weights = {k: np.asarray(v) for k, v in weights.items()}
        if not _validated:  # load_model has checked the file already
            validate(config, weights)
        self._config = copy.deepcopy(config)
        self.dtype = dtype.type
        self.weights = {k: v.astype(dtype) for k, v in weights.items()}
        a = config["architecture"]
        self.channels, self.latent, self.state = a["channels"], a["latent"], a["state"]
        self.step_size = float(config["integrator"]["step_size"])
        self.time_scale = float(config["time"]["scale"])
        self.mean = np.asarray(config["channels"]["mean"], dtype=dtype)
        self.std = np.asarray(config["channels"]["std"], dtype=dtype)
        w = self.weights
        self._to_state = self._layers("to_state", a["depth"])
        self._field = self._layers("field", a["depth"])
        self._scale = w["field.scale"]
        self._kernels = {}
        self._lock = threading.Lock()
        self._safe = False
        self.decode_method = "fast"

    def _layers(self, prefix, depth):
        return [
            (self.weights[f"{prefix}.layers.{i}.weight"], self.weights[f"{prefix}.layers.{i}.bias"])
            for i in range(depth + 1)
        ]

    @property
    def channel_names(self):
        return list(self._config["channels"]["names"])

    def __repr__(self):
        a = self._config["architecture"]
        return (
            f"LatentODE(hidden={a['hidden']}, latent={a['latent']}, state={a['state']}, "
            f"width={a['width']}, depth={a['depth']}, step_size={self.step_size}, "
            f"dtype={np.dtype(self.dtype).name})"
        )

    # -- pieces ----------------------------------------------------------------------------

    def _times(self, t, name="t"):
        return check_points(t, name, self.dtype) * self.dtype(self.time_scale)

    def normalize(self, y):
        """Raw channel values -> standardized."""
        return (np.asarray(y, dtype=self.dtype) - self.mean) / self.std

    def denormalize(self, y):
        """Standardized channel values -> raw."""
        return np.asarray(y, dtype=self.dtype) * self.std + self.mean

    def encode(self, t, y):
        """Encodes a window of a run into a latent state.

        The GRU reads the window from its last point to its first, with the scaled
        log-point index as an extra input. What `z` represents is what the model was
        trained for: keras_lode.train decodes it from `t = 0` of the run, so
        `decode(np.arange(K), z)` reconstructs the whole run.

        Args:
            t: `(W,)` log-point indices of the window, strictly increasing.
            y: `(W, C)` raw channel values `[loss, log_lr, metric]`, or `(B, W, C)`.

        Returns:
            `(L,)`, or `(B, L)` for batched `y`.

        Raises:
            ValueError: shapes that do not fit, non-finite values.
        """
        ts = self._times(t)
        y = np.asarray(y)
        batched = y.ndim == 3
        if y.ndim not in (2, 3) or y.shape[-2:] != (ts.size, self.channels):
            raise ValueError(
                f"Argument `y` must have shape (W, C) = ({ts.size}, {self.channels}) or "
                f"(B, {ts.size}, {self.channels}) to match `t`. Received shape {y.shape}."
            )
        if not np.issubdtype(y.dtype, np.number):
            raise TypeError(f"Argument `y` must be numeric. Received dtype {y.dtype}.")
        yn = self.normalize(y)
        if not np.all(np.isfinite(yn)):
            raise ValueError(
                "Argument `y` holds NaN/inf values; the encoder needs finite "
                "[loss, log_lr, metric] at every point of the window (fill or drop them)."
            )
        if not batched:
            yn = yn[None]
        b = yn.shape[0]
        w = self.weights
        wih, whh = w["encoder.weight_ih"], w["encoder.weight_hh"]
        bih, bhh = w["encoder.bias_ih"], w["encoder.bias_hh"]
        hid = whh.shape[1]
        x = np.concatenate([np.broadcast_to(ts[None, :, None], (b, ts.size, 1)), yn], axis=-1)
        # Input projections of all points at once; only the recurrence is sequential.
        gi_all = x @ wih.T + bih
        h = np.zeros((b, hid), dtype=self.dtype)
        for i in range(ts.size - 1, -1, -1):
            h = gru_step(gi_all[:, i], h @ whh.T + bhh, h)
        z = h @ w["to_latent.weight"].T + w["to_latent.bias"]
        return z if batched else z[0]

    def initial_state(self, z):
        """Latent `(..., L)` -> ODE state `(..., N)` (the ReLU MLP)."""
        return mlp(self._to_state, np.asarray(z, dtype=self.dtype), relu)

    def field(self, t, h):
        """The vector field `scale * tanh(MLP(h))`; autonomous, `t` is ignored."""
        return self._scale * mlp(self._field, h, softplus, np.tanh)

    def _integrate_reference(self, h0, ts):
        return integrate.odeint(self.field, h0, ts, method="rk4", step_size=self.step_size)

    def _integrate_fast(self, h0, ts):
        grid = integrate.make_grid(ts, self.step_size)
        s = h0.shape[0]
        # The kernel's buffers are shared state: a decode running in another thread
        # gets a private kernel instead of racing on them.
        owned = self._lock.acquire(blocking=False)
        try:
            kernel = self._kernels.get(s) if owned else None
            if kernel is None:
                kernel = integrate.FieldKernel(self._field, self._scale, s, self.dtype)
                if owned:
                    if len(self._kernels) > 8:  # bounded: a few batch sizes are typical
                        self._kernels.clear()
                    self._kernels[s] = kernel
            kernel.safe = self._safe
            states, overflowed = kernel.integrate(h0, grid)
            if overflowed and not kernel.safe:
                # The two-ufunc softplus overflowed (huge pre-activations): redo it
                # safely, and stay safe for this model (its dynamics reach that range).
                self._safe = kernel.safe = True
                states, _ = kernel.integrate(h0, grid)
        finally:
            if owned:
                self._lock.release()
        if len(ts) == 1:
            return states[:1]
        return integrate.interpolate(states, grid, ts)

    def _integrate_jax(self, h0, ts):
        grid = integrate.make_grid(ts, self.step_size)
        if len(grid) == 1:
            return h0[None].copy()
        run = integrate.jax_rk4(len(self._field), np.dtype(self.dtype).name)
        states = run(self._field, self._scale, h0, np.diff(grid))
        if len(ts) == 1:
            return states[:1]
        return integrate.interpolate(states, grid, ts)

    def decode(self, t, z, *, return_states=False, method=None):
        """Decodes latent states into channel trajectories at times `t`.

        `z` is the latent state at `t[0]` (torchdiffeq's `odeint` convention); the ODE
        state is integrated with fixed-step RK4 on the scaled times, exactly as the
        torch twin does, and mapped back to raw channel units.

        Args:
            t: `(T,)` strictly increasing log-point indices.
            z: `(L,)` or `(S, L)` latent states.
            return_states: also return the ODE states `(T, N)` / `(S, T, N)`.
            method: how to integrate; `None` uses `self.decode_method` (default
                `"fast"`). `"fast"`: NumPy, fused and preallocated (the default);
                `"reference"`: the generic `keras_lode.model.integrate.odeint`; `"jax"`: the
                same RK4 steps as one jitted `lax.scan` on the CPU (needs jax; the first
                call per output length compiles). All agree with torch to rounding.

        Returns:
            `(T, C)` or `(S, T, C)` raw `[loss, log_lr, metric]`; with
            `return_states`, a tuple `(y, states)`.

        Raises:
            ValueError: bad shapes or values, unknown `method`.
        """
        if method is None:
            method = self.decode_method
        if method not in DECODE_METHODS:
            raise ValueError(
                f"Argument `method` must be one of {DECODE_METHODS}. Received: method={method!r}"
            )
        ts = self._times(t)
        z = np.asarray(z)
        if z.ndim not in (1, 2) or z.shape[-1] != self.latent:
            raise ValueError(
                f"Argument `z` must have shape (L,) or (S, L) with L = {self.latent}. "
                f"Received shape {z.shape}."
            )
        z = z.astype(self.dtype)
        if not np.all(np.isfinite(z)):
            raise ValueError("Argument `z` holds NaN/inf values.")
        single = z.ndim == 1
        h0 = self.initial_state(z[None] if single else z)
        if method == "fast":
            states = self._integrate_fast(h0, ts)
        elif method == "jax":
            states = self._integrate_jax(h0, ts)
        else:
            states = self._integrate_reference(h0, ts)
        states = np.swapaxes(states, 0, 1)  # (S, T, N)
        w = self.weights
        y = self.denormalize(states @ w["to_channels.weight"].T + w["to_channels.bias"])
        if single:
            y, states = y[0], states[0]
        return (y, states) if return_states else y

    # Copies and pickles (deepcopy, multiprocessing, Ray) carry the weights and config;
    # the lock and the scratch buffers are rebuilt.
    def __getstate__(self):
        state = self.__dict__.copy()
        state["_kernels"] = {}
        del state["_lock"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()

    # -- file ------------------------------------------------------------------------------

    def save(self, path):
        """Writes this model to a pickle-free `.npz` file (see `save_model`)."""
        save_model(path, self._config, self.weights)


def random_model(seed=0, *, dtype=np.float64, field_scale=1.0, **config_args):
    """A `LatentODE` with random weights (torch-like uniform init), NumPy only.

    For tests and demos: decodes to smooth, non-trivial trajectories.

    Args:
        seed: random seed.
        dtype: compute dtype.
        field_scale: initial value of the vector field's `scale`.
        **config_args: options of `keras_lode.model.config.default_config` (`hidden`,
            `latent`, `state`, `width`, `depth`, `step_size`, `time_scale`,
            `points_per_epoch`, `horizon`, `mean`, `std`, `lr_range`, `channels`, ...).

    Returns:
        A `LatentODE`.
    """
    config = default_config(**config_args)
    hidden = config["architecture"]["hidden"]
    rng = np.random.default_rng(seed)
    weights = {}
    for name, shape in weight_shapes(config).items():
        if name == "field.scale":
            weights[name] = np.asarray(field_scale, dtype=np.float64)
            continue
        if name.startswith("encoder."):
            fan_in = hidden
        else:
            layer = name.rsplit(".", 1)[0]
            fan_in = weight_shapes(config)[layer + ".weight"][1]
        bound = 1.0 / math.sqrt(fan_in)
        weights[name] = rng.uniform(-bound, bound, size=shape)
    return LatentODE(config, weights, dtype=dtype)
