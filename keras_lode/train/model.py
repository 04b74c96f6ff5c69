"""The PyTorch twin of `keras_lode.model.LatentODE`, integrated with torchdiffeq.

Same architecture, same weight names (this module's `state_dict` names are the model
file's keys), same `encode` / `decode` conventions, so a model trained here and
exported with `.export(path, ...)` decodes identically in NumPy.

Example:

```python
import torch
from keras_lode.train import TorchLatentODE

model = TorchLatentODE(hidden=20, latent=20).double()
model.set_normalization(mean=[2.0, -6.0, 0.5], std=[1.0, 1.5, 0.2])
t = torch.arange(30.0, dtype=torch.float64)
z = model.encode(t, window)                 # window: (B, 30, 3) raw channel values
y, h = model.decode(torch.arange(600.0, dtype=torch.float64), z, return_states=True)
model.export("my_task.npz", points_per_epoch=10, horizon=600)
```
"""

from __future__ import annotations

import numpy as np

from keras_lode import model as ode
from keras_lode._checks import check_int, check_number
from keras_lode.train import require_torch

require_torch()

import torch  # noqa: E402
import torchdiffeq  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

__all__ = ["MLP", "TorchLatentODE", "VectorField"]


class MLP(nn.Module):
    """`depth` hidden layers of `width` units with `activation`, then a linear output.

    Weights are `layers.{i}.weight` / `layers.{i}.bias`, i = 0..depth.
    """

    def __init__(self, n_in, n_out, width, depth, activation, final=None):
        super().__init__()
        dims = [n_in] + [width] * depth + [n_out]
        self.layers = nn.ModuleList(nn.Linear(dims[i], dims[i + 1]) for i in range(depth + 1))
        self.activation = activation
        self.final = final

    def forward(self, x):
        for layer in self.layers[:-1]:
            x = self.activation(layer(x))
        x = self.layers[-1](x)
        return self.final(x) if self.final is not None else x


class VectorField(MLP):
    """`f(t, h) = scale * tanh(MLP(h))` with softplus hidden layers; autonomous."""

    def __init__(self, state, width, depth, scale=1.0):
        super().__init__(state, state, width, depth, F.softplus, torch.tanh)
        self.scale = nn.Parameter(torch.tensor(float(scale)))

    def forward(self, t, h):  # torchdiffeq calls func(t, y)
        return self.scale * super().forward(h)


class TorchLatentODE(nn.Module):
    """The latent ODE in PyTorch: GRU encoder, ODE decoder, built-in normalization.

    The twin of the NumPy `keras_lode.model.LatentODE`; also public as
    `keras_lode.train.LatentODE`.

    Args:
        channels: number of channels (3: loss, log LR, metric).
        hidden: GRU hidden size.
        latent: latent size.
        state: ODE state size.
        width: hidden width of both MLPs.
        depth: number of hidden layers of both MLPs.
        step_size: fixed RK4 step in scaled time.
        time_scale: log-point index -> model time multiplier.
        mean, std: per-channel normalization (default 0 / 1); part of the model,
            settable later with `set_normalization`.
    """

    def __init__(
        self,
        channels=3,
        hidden=20,
        latent=20,
        state=20,
        width=20,
        depth=2,
        step_size=1.0,
        time_scale=1.0,
        mean=None,
        std=None,
    ):
        super().__init__()
        self.channels = check_int("channels", channels)
        self.hidden = check_int("hidden", hidden)
        self.latent = check_int("latent", latent)
        self.state = check_int("state", state)
        self.width = check_int("width", width)
        self.depth = check_int("depth", depth, minimum=0)
        self.step_size = check_number("step_size", step_size, minimum=0, strict=True)
        self.time_scale = check_number("time_scale", time_scale, minimum=0, strict=True)
        self.encoder = nn.GRUCell(channels + 1, hidden)
        self.to_latent = nn.Linear(hidden, latent)
        self.to_state = MLP(latent, state, width, depth, F.relu)
        self.field = VectorField(state, width, depth)
        self.to_channels = nn.Linear(state, channels)
        # Not persistent: normalization lives in the file's config, not among the weights.
        self.register_buffer("mean", torch.zeros(channels), persistent=False)
        self.register_buffer("std", torch.ones(channels), persistent=False)
        if mean is not None or std is not None:
            self.set_normalization(
                mean if mean is not None else np.zeros(channels),
                std if std is not None else np.ones(channels),
            )

    def set_normalization(self, mean, std):
        """Sets the per-channel mean and std used to standardize inputs/outputs."""
        mean = np.asarray(mean, dtype=np.float64).reshape(-1)
        std = np.asarray(std, dtype=np.float64).reshape(-1)
        for name, v in (("mean", mean), ("std", std)):
            if v.shape != (self.channels,) or not np.all(np.isfinite(v)):
                raise ValueError(
                    f"Argument `{name}` must hold {self.channels} finite values. Received: {v}"
                )
        if not np.all(std > 0):
            raise ValueError(f"Argument `std` must be > 0 for every channel. Received: {std}")
        self.mean.copy_(torch.as_tensor(mean, dtype=self.mean.dtype))
        self.std.copy_(torch.as_tensor(std, dtype=self.std.dtype))

    # -- model -----------------------------------------------------------------------------

    def _dtype(self):
        return self.to_latent.weight.dtype

    def _times(self, t):
        t = torch.as_tensor(t)
        if t.dim() != 1 or t.numel() < 1:
            raise ValueError(
                f"Argument `t` must be a 1-D tensor of log-point indices. Received shape "
                f"{tuple(t.shape)}."
            )
        return t.to(device=self.to_latent.weight.device, dtype=self._dtype()) * self.time_scale

    def encode(self, t, y):
        """Encodes windows: `t` (W,), `y` (B, W, C) or (W, C) raw -> (B, L) or (L,)."""
        ts = self._times(t)
        y = torch.as_tensor(y, device=ts.device, dtype=ts.dtype)
        single = y.dim() == 2
        if single:
            y = y.unsqueeze(0)
        if y.dim() != 3 or tuple(y.shape[1:]) != (ts.numel(), self.channels):
            raise ValueError(
                f"Argument `y` must have shape (B, {ts.numel()}, {self.channels}) or "
                f"({ts.numel()}, {self.channels}). Received shape {tuple(y.shape)}."
            )
        yn = (y - self.mean) / self.std
        x = torch.cat([ts[None, :, None].expand(y.shape[0], -1, 1), yn], dim=-1)
        h = torch.zeros(y.shape[0], self.hidden, dtype=ts.dtype, device=ts.device)
        for i in range(ts.numel() - 1, -1, -1):  # reverse time order
            h = self.encoder(x[:, i], h)
        z = self.to_latent(h)
        return z[0] if single else z

    def decode(self, t, z, return_states=False):
        """Decodes latents at `t[0]` into raw trajectories at `t`.

        Args:
            t: (T,) strictly increasing log-point indices.
            z: (B, L) or (L,).
            return_states: also return the ODE states (the latent path).

        Returns:
            (B, T, C) or (T, C) raw channel values; with `return_states`, `(y, h)` with
            `h` (B, T, N) or (T, N).
        """
        ts = self._times(t)
        z = torch.as_tensor(z, device=ts.device, dtype=ts.dtype)
        single = z.dim() == 1
        if single:
            z = z.unsqueeze(0)
        if z.dim() != 2 or z.shape[1] != self.latent:
            raise ValueError(
                f"Argument `z` must have shape (B, {self.latent}) or ({self.latent},). "
                f"Received shape {tuple(z.shape)}."
            )
        h0 = self.to_state(z)
        h = torchdiffeq.odeint(
            self.field, h0, ts, method="rk4", options={"step_size": self.step_size}
        ).transpose(0, 1)
        y = self.to_channels(h) * self.std + self.mean
        if single:
            y, h = y[0], h[0]
        return (y, h) if return_states else y

    def forward(self, t_window, y_window, t):
        """Encode a window, decode over `t`: the training forward pass."""
        return self.decode(t, self.encode(t_window, y_window))

    # -- interchange with the NumPy side -----------------------------------------------------

    def export_config(
        self, *, points_per_epoch, horizon, planner=None, training=None, mode="max", **metadata
    ):
        """The model-file config for this module (see `keras_lode.model.default_config`)."""
        planner = dict(planner or {})
        lr_range = planner.pop("lr_range", (1e-4, 1e-1))
        return ode.default_config(
            channels=self.channels,
            hidden=self.hidden,
            latent=self.latent,
            state=self.state,
            width=self.width,
            depth=self.depth,
            step_size=self.step_size,
            time_scale=self.time_scale,
            points_per_epoch=points_per_epoch,
            horizon=horizon,
            mean=self.mean.detach().cpu().double().numpy(),
            std=self.std.detach().cpu().double().numpy(),
            lr_range=lr_range,
            mode=mode,
            planner=planner,
            training=training,
            metadata=metadata,
        )

    def numpy_weights(self):
        """The weights as NumPy arrays, keyed by `state_dict` name."""
        return {k: v.detach().cpu().numpy().copy() for k, v in self.state_dict().items()}

    def export(
        self,
        path,
        *,
        points_per_epoch,
        horizon,
        planner=None,
        training=None,
        mode="max",
        **metadata,
    ):
        """Writes the pickle-free model file that `keras_lode.load_model` reads.

        Args:
            path: destination `.npz`.
            points_per_epoch: log points per epoch (P) of the training runs.
            horizon: log points per run (K) of the training runs.
            planner: planner defaults to store (any of `window`, `samples`, `sigma`,
                `tol`, `loss_floor`, `top_k`, `replan_every`, `anchor`, `lr_range`).
            training: JSON summary of the training data and errors.
            mode: the metric's direction, `"max"` or `"min"`.
            **metadata: free-form JSON metadata (task, model, ...).

        Returns:
            The NumPy `keras_lode.model.LatentODE` of what was written.
        """
        config = self.export_config(
            points_per_epoch=points_per_epoch,
            horizon=horizon,
            planner=planner,
            training=training,
            mode=mode,
            **metadata,
        )
        ode.save_model(path, config, self.numpy_weights())
        return ode.load_model(path)

    @classmethod
    def from_numpy(cls, np_model):
        """Builds the torch twin of a NumPy `keras_lode.model.LatentODE` (float64 if the NumPy
        one is)."""
        config = np_model.config
        a = config["architecture"]
        model = cls(
            channels=a["channels"],
            hidden=a["hidden"],
            latent=a["latent"],
            state=a["state"],
            width=a["width"],
            depth=a["depth"],
            step_size=config["integrator"]["step_size"],
            time_scale=config["time"]["scale"],
        )
        if np.dtype(np_model.dtype) == np.float64:
            model = model.double()
        model.set_normalization(config["channels"]["mean"], config["channels"]["std"])
        dtype = model._dtype()
        state = {k: torch.as_tensor(np.asarray(v)).to(dtype) for k, v in np_model.weights.items()}
        model.load_state_dict(state)
        return model

    @classmethod
    def load(cls, path, dtype=np.float64):
        """Reads a model file into a torch module (validated, no pickle)."""
        return cls.from_numpy(ode.load_model(path, dtype=dtype))
