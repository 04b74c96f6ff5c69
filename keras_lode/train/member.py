"""The controlled latent ODE in PyTorch + torchdiffeq: the twin of `keras_lode.model.controlled`.

One `ControlledMember` is one member of the ensemble: a reverse GRU encodes a window of a
run into the ODE state at the window's last point; the state evolves under
`dh/dt = scale * tanh(MLP([h, u(t), t / horizon]))` with `u` the normalized ln-LR path
(linear between log points, read at every RK4 stage time); a linear read-out gives the
normalized `[loss, metric]`. `predict` computes exactly what the NumPy model computes;
training integrates many (run, cut point) pairs at once in *local* time (time since the
cut), which is the same ODE on the same relative RK4 grid.

Training data are (window, the run's actual future LR path, its future loss and metric to
the end of the run) at every cut point of every run: different LR paths from similar
states — across the sweep's schedules and peak LRs, and in switched runs that change
schedule mid-run — are what teach the model the LR's effect.
"""

from __future__ import annotations

import numpy as np

from keras_lode._checks import check_int, check_number
from keras_lode.model.config import controlled_config
from keras_lode.model.schema import member_weight_shapes
from keras_lode.train import require_torch

require_torch()

import torch  # noqa: E402
import torchdiffeq  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from keras_lode.train.model import MLP  # noqa: E402

__all__ = ["ControlledField", "ControlledMember", "control_at"]


def control_at(knots, u, t):
    """The control at time `t`: `u` `(B, L)` linear between `knots` `(L,)`, held outside.

    The same rule as the NumPy model's: the interval is the last knot <= t.
    """
    last = knots.shape[0] - 1
    if last == 0:
        return u[:, 0]
    i = torch.searchsorted(knots, t.reshape(1).to(knots.dtype), right=True) - 1
    i = i.clamp(0, last - 1)
    k0, k1 = knots[i], knots[i + 1]
    frac = ((t - k0) / (k1 - k0)).clamp(0.0, 1.0)
    u0, u1 = u[:, i].squeeze(-1), u[:, i + 1].squeeze(-1)
    return u0 + frac * (u1 - u0)


class ControlledField(MLP):
    """`f(t, h) = scale * tanh(MLP([h, u(t), (offset + t) / span]))`, softplus hidden layers.

    The control (`knots`, `u`) and the per-sample time offset are set with `drive` before
    each integration.
    """

    def __init__(self, state, width, depth, scale=1.0):
        super().__init__(state + 2, state, width, depth, F.softplus, torch.tanh)
        self.scale = nn.Parameter(torch.tensor(float(scale)))
        self._drive = None

    def drive(self, knots, u, offset, span):
        self._drive = (knots, u, offset, float(span))

    def forward(self, t, h):  # torchdiffeq calls func(t, y)
        knots, u, offset, span = self._drive
        ut = control_at(knots, u, t)
        s = (offset + t) / span
        x = torch.cat([h, ut[:, None], s[:, None]], dim=-1)
        return self.scale * super().forward(x)


class ControlledMember(nn.Module):
    """One member of a controlled ensemble (same sizes and weight names as the file).

    Args:
        hidden, state, width, depth: GRU hidden size, ODE state size, field width, field
            hidden layers.
        step_size: RK4 step in model time.
        horizon: log points K of the training runs.
        span: model time of a whole run (`time_scale = span / horizon`).
        mean, std: normalization of `[loss, ln lr, metric]`.
    """

    def __init__(
        self,
        hidden=24,
        state=24,
        width=32,
        depth=2,
        *,
        step_size=0.5,
        horizon=50,
        span=10.0,
        mean=None,
        std=None,
    ):
        super().__init__()
        self.hidden = check_int("hidden", hidden)
        self.state = check_int("state", state)
        self.width = check_int("width", width)
        self.depth = check_int("depth", depth, minimum=0)
        self.step_size = check_number("step_size", step_size, minimum=0, strict=True)
        self.horizon = check_int("horizon", horizon, minimum=2)
        self.span = check_number("span", span, minimum=0, strict=True)
        self.time_scale = self.span / self.horizon
        self.encoder = nn.GRUCell(4, self.hidden)
        self.to_state = nn.Linear(self.hidden, self.state)
        self.field = ControlledField(self.state, self.width, self.depth)
        self.readout = nn.Linear(self.state, 2)
        self.register_buffer("mean", torch.zeros(3), persistent=False)
        self.register_buffer("std", torch.ones(3), persistent=False)
        if mean is not None or std is not None:
            self.set_normalization(
                np.zeros(3) if mean is None else mean, np.ones(3) if std is None else std
            )

    def set_normalization(self, mean, std):
        self.mean = torch.as_tensor(np.asarray(mean, dtype=np.float64)).to(self.mean)
        self.std = torch.as_tensor(np.asarray(std, dtype=np.float64)).to(self.std)

    # -- pieces ---------------------------------------------------------------------------

    def encode(self, t_window, y_window):
        """ODE state at the last window point: `t_window` `(B, W)`, raw `y_window` `(B, W, 3)`."""
        yn = (y_window - self.mean) / self.std
        x = torch.cat([(t_window / self.horizon)[..., None], yn], dim=-1)
        h = torch.zeros(x.shape[0], self.hidden, dtype=x.dtype, device=x.device)
        for i in range(x.shape[1] - 1, -1, -1):
            h = self.encoder(x[:, i], h)
        return self.to_state(h)

    def integrate(self, h0, knots, u, offset):
        """Normalized `[loss, metric]` at `knots` `(L,)`: `(L, B, 2)`.

        Args:
            h0: `(B, N)` state at `knots[0]`.
            knots: `(L,)` model times (shared by the batch).
            u: `(B, L)` normalized ln LR at the knots.
            offset: `(B,)` model time to add to `knots` for the `t / horizon` input.
        """
        self.field.drive(knots, u, offset, self.span)
        if knots.shape[0] == 1:
            h = h0[None]
        else:
            h = torchdiffeq.odeint(
                self.field, h0, knots, method="rk4", options={"step_size": self.step_size}
            )
        return self.readout(h)

    def predict(self, t_window, window, t, log_lr):
        """What the NumPy model's `predict` gives for this member: raw `(C, T, 2)`.

        Args:
            t_window: `(W,)` log points of the window; `window`: `(W, 3)` raw channels.
            t: `(T,)` future log points, `t[0]` the window's last point.
            log_lr: `(C, T)` candidate ln-LR paths at `t`.
        """
        c = log_lr.shape[0]
        h0 = self.encode(t_window[None], window[None]).expand(c, -1)
        u = (log_lr - self.mean[1]) / self.std[1]
        knots = t * self.time_scale
        out = self.integrate(h0, knots, u, torch.zeros(c, dtype=h0.dtype))
        out = out * self.std[[0, 2]] + self.mean[[0, 2]]
        return out.transpose(0, 1)

    def numpy_weights(self) -> dict:
        """The state dict as float64 NumPy arrays (names as in the model file)."""
        return {k: v.detach().cpu().double().numpy() for k, v in self.state_dict().items()}


def ensemble_config(members, *, window, lr_range, points_per_epoch, calibration=None, **extra):
    """The model-file config of a list of trained `ControlledMember`s whose encoder was
    trained on windows of `window` log points (the planner reads as many)."""
    m = members[0]
    return controlled_config(
        members=len(members),
        window=window,
        hidden=m.hidden,
        state=m.state,
        width=m.width,
        depth=m.depth,
        step_size=m.step_size,
        horizon=m.horizon,
        span=m.span,
        mean=m.mean.double().cpu().numpy(),
        std=m.std.double().cpu().numpy(),
        lr_range=lr_range,
        points_per_epoch=points_per_epoch,
        calibration=calibration,
        **extra,
    )


def ensemble_weights(members) -> dict:
    """`member{i}.<name>` -> array for the model file."""
    out = {}
    for i, m in enumerate(members):
        for name, value in m.numpy_weights().items():
            out[f"member{i}.{name}"] = value
    return out


def check_weight_names(member, config) -> None:
    """A member's state dict must have exactly the file's names and shapes."""
    want = member_weight_shapes(config)
    got = {k: tuple(v.shape) for k, v in member.state_dict().items()}
    if got != {k: tuple(v) for k, v in want.items()}:
        raise AssertionError(f"state_dict {got} does not match the file layout {want}")
