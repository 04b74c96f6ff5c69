"""Writes the golden files of the torch <-> NumPy parity test (tests/test_ode_parity.py).

For each case (3 sizes x 2 step sizes, one of which does not divide the decoded time
span) a torch `keras_lode.train.LatentODE` with torch's own random init is exported to
`tests/golden/case_<name>.npz` (a normal model file, float64 weights), and its
`encode` / `decode` outputs on fixed inputs, computed by torch + torchdiffeq in float64
and in float32, go to `tests/golden/parity.npz`. The parity test then checks the NumPy
model against these numbers where torch is not installed.

Run from the repository root (needs the `train` extra):

    python scripts/make_golden.py            # (re)write the golden files
    python scripts/make_golden.py --report   # NumPy vs golden max abs errors (no torch)
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
