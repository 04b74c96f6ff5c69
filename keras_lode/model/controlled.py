"""The controlled latent ODE in NumPy: the learning rate is an input, not a prediction.

The paper's LODE decodes the LR as one of its channels, so a planner can only follow the
LR paths the sweep already took. Here the LR path is a *control*: given a window of the
run so far and a candidate ln-LR path for the rest of it, every member of an ensemble
predicts the training loss and the validation metric under that path:

* encoder: a GRU read over the window in reverse time order, input
  `[t / horizon, loss, ln lr, metric]` (normalized), then a linear map to the ODE state
  `h` at the window's last point;
* dynamics: `dh/dt = scale * tanh(MLP([h, u(t), t / horizon]))` (softplus hidden layers),
  where `u` is the normalized ln-LR path, linear between log points and evaluated at every
  RK4 stage time; fixed-step RK4 exactly as torchdiffeq runs it (`keras_lode.model.integrate`);
* read-out: linear `h -> [loss, metric]`, de-normalized.

Model time is `log point * config["time"]["scale"]` (a run of `horizon` points spans a
fixed length, so the number of RK4 steps does not grow with the run). All members and all
candidate paths are integrated in one batched pass. Torch-free; its twin for training is
`keras_lode.train.member`.

Example:

```python
import numpy as np
import keras_lode

model = keras_lode.load_model("my_controlled.npz")       # model.kind == "controlled"
t = np.arange(30, 50)                                    # the rest of a 50-point run
log_lr = np.log([np.full(20, 1e-3), np.geomspace(1e-3, 1e-5, 20)])   # 2 candidates
y = model.predict(np.arange(21, 31), window, t, log_lr)  # (members, 2, 20, [loss, metric])
```
"""

from __future__ import annotations

import copy

import numpy as np

from keras_lode.model import integrate
from keras_lode.model.config import controlled_config
from keras_lode.model.io import save_model
from keras_lode.model.layers import ConfigViews, check_points, gru_step, softplus
from keras_lode.model.schema import member_weight_shapes
from keras_lode.model.validation import validate

__all__ = ["ControlledODE", "predict_paths", "random_controlled"]


class ControlledODE(ConfigViews):
    """An ensemble of controlled latent ODEs; `predict` scores candidate LR paths.

    Usually obtained from `keras_lode.load_model(path)` for a file whose config has
    `"kind": "controlled"`.

    Args:
        config: a controlled model-file config (`keras_lode.model.config.controlled_config`).
        weights: dict `member{i}.<name>` -> array.
        dtype: compute dtype, `np.float64` or `np.float32`.

    Raises:
        ValueError: invalid config or weights, or an unsupported dtype.
    """

    kind = "controlled"

    def __init__(self, config, weights, dtype=np.float64, *, _validated=False):
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise ValueError(f"Argument `dtype` must be float32 or float64. Received: {dtype}")
        weights = {k: np.asarray(v) for k, v in weights.items()}
        if not _validated:
            validate(config, weights)
        self._config = copy.deepcopy(config)
        self.dtype = dtype.type
        a = config["architecture"]
        self.members = int(config["members"])
        self.state = int(a["state"])
        self.window = int(a["window"])
        self.step_size = float(config["integrator"]["step_size"])
        self.time_scale = float(config["time"]["scale"])
        self.mean = np.asarray(config["channels"]["mean"], dtype=dtype)
        self.std = np.asarray(config["channels"]["std"], dtype=dtype)
        # Every weight stacked over members: (M, *shape).
        self.weights = {
            name: np.stack([weights[f"member{i}.{name}"] for i in range(self.members)]).astype(
                dtype
            )
            for name in member_weight_shapes(config)
        }
        w, n = self.weights, self.state
        depth = int(a["depth"])
        first = w["field.layers.0.weight"]  # (M, width, N + 2): [h, u, s] inputs
        self._first = (
            np.ascontiguousarray(np.swapaxes(first[:, :, :n], 1, 2)),  # (M, N, width)
            first[:, None, :, n],  # (M, 1, width): weight of u
            first[:, None, :, n + 1],  # (M, 1, width): weight of t / horizon
            w["field.layers.0.bias"][:, None, :],
        )
        self._rest = [
            (
                np.ascontiguousarray(np.swapaxes(w[f"field.layers.{i}.weight"], 1, 2)),
                w[f"field.layers.{i}.bias"][:, None, :],
            )
            for i in range(1, depth + 1)
        ]
        self._scale = w["field.scale"][:, None, None]

    @property
    def calibration(self):
        """`{"sd_scale", "sd_floor"}` of the ensemble's spread (see `spread`)."""
        return dict(self._config["calibration"])

    def __repr__(self):
        a = self._config["architecture"]
        return (
            f"ControlledODE(members={self.members}, hidden={a['hidden']}, state={a['state']}, "
            f"width={a['width']}, depth={a['depth']}, window={self.window}, "
            f"step_size={self.step_size}, dtype={np.dtype(self.dtype).name})"
        )

    # -- the model ------------------------------------------------------------------------

    def encode(self, t_window, window):
        """The ODE state of every member at the window's last point: `(M, N)`.

        Args:
            t_window: `(W,)` log points of the window, strictly increasing.
            window: `(W, 3)` raw `[loss, ln lr, metric]` at those points.
        """
        tw = check_points(t_window, "t_window", self.dtype)
        y = np.asarray(window)
        if y.shape != (tw.size, 3):
            raise ValueError(
                f"Argument `window` must have shape (W, 3) = ({tw.size}, 3) to match "
                f"`t_window`. Received shape {y.shape}."
            )
        if not np.issubdtype(y.dtype, np.number):
            raise TypeError(f"Argument `window` must be numeric. Received dtype {y.dtype}.")
        yn = (y.astype(self.dtype) - self.mean) / self.std
        if not np.all(np.isfinite(yn)):
            raise ValueError(
                "Argument `window` holds NaN/inf values; the encoder needs finite "
                "[loss, ln lr, metric] at every point of the window."
            )
        x = np.concatenate([(tw / self.dtype(self.horizon))[:, None], yn], axis=1)  # (W, 4)
        w = self.weights
        wih, whh = w["encoder.weight_ih"], w["encoder.weight_hh"]  # (M, 3H, 4), (M, 3H, H)
        hid = whh.shape[2]
        gi_all = np.einsum("wi,mgi->mwg", x, wih) + w["encoder.bias_ih"][:, None, :]
        whh_t = np.swapaxes(whh, 1, 2)
        bhh = w["encoder.bias_hh"]
        h = np.zeros((self.members, hid), dtype=self.dtype)
        for i in range(tw.size - 1, -1, -1):
            h = gru_step(gi_all[:, i], np.einsum("mh,mhg->mg", h, whh_t) + bhh, h)
        return np.einsum("mh,msh->ms", h, w["to_state.weight"]) + w["to_state.bias"]

    def _field(self, knots, u, span, safe):
        """`func(t, h)` for the integrator: h `(M, C, N)`, the control `u` `(C, T)`."""
        wh, wu, ws, b0 = self._first
        rest, scale = self._rest, self._scale
        last = len(knots) - 1

        def func(t, h):
            if last == 0:
                ut = u[:, 0]
            else:
                i = min(max(int(np.searchsorted(knots, t, side="right")) - 1, 0), last - 1)
                frac = min(max((t - knots[i]) / (knots[i + 1] - knots[i]), 0.0), 1.0)
                ut = u[:, i] + self.dtype(frac) * (u[:, i + 1] - u[:, i])
            x = np.matmul(h, wh)
            x += ut[None, :, None] * wu
            x += self.dtype(t / span) * ws + b0
            for wt, b in rest:
                if safe:
                    x = softplus(x)
                else:
                    # log1p(exp(x)) in place: two ufuncs, torch's softplus to ~2e-9. An
                    # overflow (x > ~88 in float32) raises, and predict reruns safely.
                    np.exp(x, out=x)
                    np.log1p(x, out=x)
                x = np.matmul(x, wt)
                x += b
            np.tanh(x, out=x)
            x *= scale
            return x

        return func

    def predict(self, t_window, window, t, log_lr):
        """Predicts `[loss, metric]` under each candidate LR path, for every member.

        Args:
            t_window: `(W,)` log points of the observed window.
            window: `(W, 3)` raw `[loss, ln lr, metric]` at `t_window`.
            t: `(T,)` future log points, strictly increasing, `t[0]` the window's last
                point (the prediction at `t[0]` is the encoded state's read-out).
            log_lr: `(C, T)` candidate paths of ln LR at `t` (or `(T,)` for one); the LR
                between log points is linear in ln LR.

        Returns:
            `(M, C, T, 2)` raw `[loss, metric]`: member, candidate, point.

        Raises:
            ValueError: shapes that do not fit, non-finite values, `t[0]` not the last
                window point.
        """
        tw = check_points(t_window, "t_window", self.dtype)
        tt = check_points(t, "t", self.dtype)
        if tt[0] != tw[-1]:
            raise ValueError(
                f"Argument `t` must start at the window's last point {float(tw[-1])}. "
                f"Received t[0]={float(tt[0])}."
            )
        lr = np.asarray(log_lr)
        single = lr.ndim == 1
        lr = lr[None] if single else lr
        if lr.ndim != 2 or lr.shape[1] != tt.size or lr.shape[0] < 1:
            raise ValueError(
                f"Argument `log_lr` must have shape (C, T) with T = {tt.size}. "
                f"Received shape {np.asarray(log_lr).shape}."
            )
        lr = lr.astype(self.dtype)
        if not np.all(np.isfinite(lr)):
            raise ValueError("Argument `log_lr` holds NaN/inf values.")
        h0 = self.encode(tw, window)
        c = lr.shape[0]
        h0 = np.broadcast_to(h0[:, None, :], (self.members, c, self.state)).copy()
        u = (lr - self.mean[1]) / self.std[1]
        knots = tt * self.dtype(self.time_scale)
        span = self.time_scale * self.horizon
        try:
            with np.errstate(over="raise", invalid="raise"):
                func = self._field(knots, u, span, safe=False)
                grid, states = integrate.RK4(func, h0, step_size=self.step_size).integrate_grid(
                    knots
                )
        except FloatingPointError:
            func = self._field(knots, u, span, safe=True)
            grid, states = integrate.RK4(func, h0, step_size=self.step_size).integrate_grid(knots)
        # states: (G, M, C, N) at the G grid points.
        # The read-out is linear, so reading out the few grid states and interpolating
        # the outputs equals torchdiffeq's interpolate-then-read-out, at a fraction of
        # the memory traffic (G is ~20-40, T up to the run's length).
        w = self.weights
        g = np.matmul(states, np.swapaxes(w["readout.weight"], 1, 2)[None])
        g += w["readout.bias"][None, :, None, :]
        g = g * self.std[[0, 2]] + self.mean[[0, 2]]  # (G, M, C, 2) raw units
        # torchdiffeq's linear interpolation at the output times, as one (T, G) matrix:
        # a row has the weights of the two grid points around its output time.
        interp = integrate.interpolate(np.eye(len(grid), dtype=self.dtype), grid, knots)
        out = np.matmul(np.moveaxis(g, 0, -1), interp.T)  # (M, C, 2, T)
        return np.swapaxes(out, 2, 3)

    def spread(self, members_values):
        """Ensemble mean and calibrated sd over the member axis (axis 0).

        The calibrated sd is `sd_scale * sqrt(sd**2 + sd_floor**2)`, the calibration
        fitted on runs held out by seed when the ensemble was trained.
        """
        v = np.asarray(members_values, dtype=np.float64)
        mean = v.mean(axis=0)
        sd = v.std(axis=0, ddof=1) if v.shape[0] > 1 else np.zeros_like(mean)
        cal = self._config["calibration"]
        return mean, cal["sd_scale"] * np.sqrt(sd**2 + cal["sd_floor"] ** 2)

    def save(self, path):
        """Writes this ensemble to a pickle-free `.npz` file."""
        flat = {
            f"member{i}.{name}": value[i]
            for name, value in self.weights.items()
            for i in range(self.members)
        }
        save_model(path, self._config, flat)


def predict_paths(model, window, paths, position: int, time_scale: float = 1.0) -> np.ndarray:
    """(M, C, R + 1, 2): every member's `[loss, metric]` at points `position .. K - 1`
    under each LR path, from the observed window (the planners' one batched call).

    Args:
        model: a controlled model (any object with `predict`).
        window: (W, 3) raw `[loss, ln lr, metric]` at points `position - W + 1 .. position`.
        paths: (C, R) LR per remaining point `position + 1 .. K - 1` of each path.
        position: the current log point `n`.
        time_scale: model log points per run log point (run point i is model time
            `i * time_scale`).

    Raises:
        ValueError: `model.predict` returned another shape.
    """
    window = np.asarray(window, dtype=np.float64)
    paths = np.asarray(paths, dtype=np.float64)
    W, (C, R) = window.shape[0], paths.shape
    n = int(position)
    t_window = np.arange(n - W + 1, n + 1, dtype=np.float64) * time_scale
    t = np.arange(n, n + R + 1, dtype=np.float64) * time_scale
    log_lr = np.empty((C, R + 1))
    log_lr[:, 0] = window[-1, 1]
    log_lr[:, 1:] = np.log(paths)
    pred = np.asarray(model.predict(t_window, window, t, log_lr))
    if pred.ndim != 4 or pred.shape[1:] != (C, R + 1, 2):
        raise ValueError(
            f"model.predict must return shape (M, {C}, {R + 1}, 2). Received: {pred.shape}"
        )
    return pred


def random_controlled(seed=0, *, dtype=np.float64, field_scale=1.0, **config_args):
    """A `ControlledODE` with random weights (torch-like uniform init), for tests.

    Args:
        seed: random seed.
        dtype: compute dtype.
        field_scale: initial value of every member's field `scale`.
        **config_args: arguments of `keras_lode.model.config.controlled_config`.
    """
    config = controlled_config(**config_args)
    rng = np.random.default_rng(seed)
    shapes = member_weight_shapes(config)
    weights = {}
    for i in range(config["members"]):
        for name, shape in shapes.items():
            if name == "field.scale":
                weights[f"member{i}.{name}"] = np.asarray(field_scale, dtype=np.float64)
                continue
            if name.startswith("encoder."):
                fan_in = config["architecture"]["hidden"]
            else:
                fan_in = shapes[name.rsplit(".", 1)[0] + ".weight"][1]
            bound = 1.0 / np.sqrt(fan_in)
            weights[f"member{i}.{name}"] = rng.uniform(-bound, bound, size=shape)
    return ControlledODE(config, weights, dtype=dtype)
