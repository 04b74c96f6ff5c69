"""Writes the golden files of the torch <-> NumPy parity test (tests/test_ode_parity.py).

For each case (3 sizes x 2 step sizes, one of which does not divide the decoded time
span) a torch `keras_lode.train.LatentODE` with torch's own random init is exported to
`tests/golden/case_<name>.npz` (a normal model file, float64 weights), and its
`encode` / `decode` outputs on fixed inputs, computed by torch + torchdiffeq in float64
and in float32, go to `tests/golden/parity.npz`. The parity test then checks the NumPy
model against these numbers where torch is not installed.

The controlled ensemble (`keras_lode.train.member`) has its own cases: members of odd
sizes and RK4 steps that divide neither the span nor a log-point interval, predicting
non-constant LR paths; they go to `tests/golden/controlled_<name>.npz` and
`tests/golden/controlled_parity.npz`.

Run from the repository root (needs the `train` extra):

    python scripts/make_golden.py               # (re)write every golden file
    python scripts/make_golden.py --controlled  # only the controlled ones
    python scripts/make_golden.py --report      # NumPy vs golden max abs errors (no torch)
"""

from __future__ import annotations

import os
import sys

import numpy as np

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "golden")

# name: (sizes, step_size, time_scale). The decode span is 36 log points (from 2 to 38):
# step 0.7 divides neither 36 nor 18 (time_scale 0.5): the last step is short.
CASES = {
    "tiny_h1": (dict(hidden=4, latent=3, state=5, width=6, depth=1), 1.0, 1.0),
    "tiny_h07": (dict(hidden=4, latent=3, state=5, width=6, depth=1), 0.7, 0.5),
    "mid_h1": (dict(hidden=8, latent=6, state=7, width=11, depth=3), 1.0, 0.5),
    "mid_h07": (dict(hidden=8, latent=6, state=7, width=11, depth=3), 0.7, 1.0),
    "paper_h1": (dict(hidden=20, latent=20, state=20, width=20, depth=2), 1.0, 1.0),
    "paper_h07": (dict(hidden=20, latent=20, state=20, width=20, depth=2), 0.7, 0.5),
}
MEAN = [1.2, -6.0, 0.6]
STD = [0.8, 1.5, 0.25]


def inputs(seed):
    """The fixed encode/decode inputs of a case (also rebuilt by the test)."""
    rng = np.random.default_rng(seed)
    t_window = np.arange(5.0, 17.0)
    window = np.stack(
        [
            rng.normal(MEAN[0], STD[0], size=(3, 12)),
            rng.normal(MEAN[1], STD[1], size=(3, 12)),
            rng.uniform(0.1, 0.95, size=(3, 12)),
        ],
        axis=-1,
    )
    # Starts off zero and has non-integer points: exercises the grid's start and the
    # interpolation between grid points.
    t_decode = np.concatenate([[2.0, 2.25, 3.0, 4.5], np.arange(5.0, 39.0)])
    return t_window, window, t_decode


# name: (member sizes, members, step_size, horizon). span 10 over `horizon` points: the
# steps 0.37 and 0.6 divide neither the span nor the time between two log points.
CONTROLLED_CASES = {
    "tiny": (dict(hidden=3, state=4, width=5, depth=1), 2, 0.37, 43),
    "mid": (dict(hidden=7, state=6, width=9, depth=3), 3, 0.6, 50),
}
CONTROLLED_MEAN = [1.0, -6.0, 0.7]
CONTROLLED_STD = [0.5, 1.5, 0.1]


def controlled_inputs(seed, horizon):
    """Fixed predict inputs of a controlled case: a window, future points, 4 LR paths."""
    rng = np.random.default_rng(seed)
    t_window = np.arange(11.0, 19.0)
    window = np.column_stack(
        [
            np.linspace(1.2, 0.9, 8),
            np.log(np.geomspace(1e-2, 3e-3, 8)),
            np.linspace(0.6, 0.7, 8),
        ]
    )
    t = np.arange(18.0, float(horizon))
    base = np.log(np.geomspace(3e-3, 1e-5, t.size))
    log_lr = np.stack(
        [
            base,
            np.full(t.size, np.log(3e-3)),
            np.where(t < 30, np.log(3e-3), np.log(3e-4)),  # a step mid-run
            base + rng.normal(0.0, 0.5, t.size),
        ]
    )
    return t_window, window, t, log_lr


def controlled_main():
    import torch

    from keras_lode.model.io import save_model
    from keras_lode.train.member import ControlledMember, ensemble_config, ensemble_weights

    out = {}
    for i, (name, (sizes, members, step, horizon)) in enumerate(CONTROLLED_CASES.items()):
        torch.manual_seed(200 + i)
        ens = [
            ControlledMember(
                step_size=step,
                horizon=horizon,
                span=10.0,
                mean=CONTROLLED_MEAN,
                std=CONTROLLED_STD,
                **sizes,
            ).double()
            for _ in range(members)
        ]
        for m in ens:
            with torch.no_grad():
                m.field.scale.fill_(1.3)
        config = ensemble_config(ens, window=10, lr_range=(1e-5, 1e-1), points_per_epoch=10)
        save_model(os.path.join(GOLDEN, f"controlled_{name}.npz"), config, ensemble_weights(ens))
        args = controlled_inputs(i, horizon)
        for tag, dtype in (("f64", torch.float64), ("f32", torch.float32)):
            with torch.no_grad():
                ys = [
                    m.to(dtype).predict(*(torch.tensor(a, dtype=dtype) for a in args)).numpy()
                    for m in ens
                ]
            out[f"{name}/{tag}/y"] = np.stack(ys)
    with open(os.path.join(GOLDEN, "controlled_parity.npz"), "wb") as f:
        np.savez(f, **out)
    print(f"wrote {len(CONTROLLED_CASES)} controlled model files and controlled_parity.npz")
    return 0


def torch_outputs(model, t_window, window, t_decode, z):
    import torch

    dtype = model.to_latent.weight.dtype
    with torch.no_grad():
        zt = model.encode(torch.tensor(t_window, dtype=dtype), torch.tensor(window, dtype=dtype))
        y, h = model.decode(
            torch.tensor(t_decode, dtype=dtype), torch.tensor(z, dtype=dtype), return_states=True
        )
    return zt.numpy(), y.numpy(), h.numpy()


def report():
    """Prints the max abs error of the NumPy model vs the stored torch outputs, per case."""
    from keras_lode.model import load_model

    with np.load(os.path.join(GOLDEN, "parity.npz"), allow_pickle=False) as f:
        golden = {k: f[k] for k in f.files}
    worst = {"f64": 0.0, "f32": 0.0}
    for i, name in enumerate(CASES):
        t_window, window, t_decode = inputs(i)
        line = [f"{name:10s}"]
        for tag, dtype in (("f64", np.float64), ("f32", np.float32)):
            model = load_model(os.path.join(GOLDEN, f"case_{name}.npz"), dtype=dtype)
            err_z = np.abs(model.encode(t_window, window) - golden[f"{name}/{tag}/z"]).max()
            y = model.decode(t_decode, golden[f"{name}/z_in"])
            err_y = np.abs(y - golden[f"{name}/{tag}/y"]).max()
            worst[tag] = max(worst[tag], err_z, err_y)
            line.append(f"{tag}: encode {err_z:.1e} decode {err_y:.1e}")
        print("  ".join(line))
    print(f"max abs error, all cases: float64 {worst['f64']:.1e}, float32 {worst['f32']:.1e}")
    return 0


def main():
    if "--report" in sys.argv[1:]:
        return report()
    if "--controlled" in sys.argv[1:]:
        return controlled_main()
    import torch

    from keras_lode.train import LatentODE

    os.makedirs(GOLDEN, exist_ok=True)
    out = {}
    for i, (name, (sizes, step, scale)) in enumerate(CASES.items()):
        torch.manual_seed(100 + i)
        model = LatentODE(step_size=step, time_scale=scale, mean=MEAN, std=STD, **sizes).double()
        with torch.no_grad():
            model.field.scale.fill_(0.8)
        model.export(
            os.path.join(GOLDEN, f"case_{name}.npz"),
            points_per_epoch=4,
            horizon=36,
            golden=name,
        )
        t_window, window, t_decode = inputs(i)
        # Decode from latents of real encodings and from a few spread-out ones.
        rng = np.random.default_rng(1000 + i)
        z64, _, _ = torch_outputs(model, t_window, window, t_decode, np.zeros(sizes["latent"]))
        z = np.concatenate([z64, rng.normal(size=(2, sizes["latent"]))])
        for tag, dtype in (("f64", torch.float64), ("f32", torch.float32)):
            # In place: the float64 outputs are taken before the cast to float32.
            ze, y, h = torch_outputs(model.to(dtype), t_window, window, t_decode, z)
            out[f"{name}/{tag}/z"] = ze
            out[f"{name}/{tag}/y"] = y
            out[f"{name}/{tag}/h"] = h
        out[f"{name}/z_in"] = z
    with open(os.path.join(GOLDEN, "parity.npz"), "wb") as f:
        np.savez(f, **out)
    print(f"wrote {len(CASES)} model files and parity.npz to {os.path.normpath(GOLDEN)}")
    return controlled_main()


if __name__ == "__main__":
    sys.exit(main())
