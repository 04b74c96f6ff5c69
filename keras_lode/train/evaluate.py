"""Extrapolation evaluation: can the LODE see the future of a run it has not seen?

For each held-out run and each cut fraction `f` (25%, 50%, 75% of training by
default) the model encodes the `W` log points before the cut, decodes the whole
run from its latent state, and the points after the cut are scored. Two naive
predictors are scored on the same points:

- `hold_last`: the last observed value, held to the end of the run;
- `family_mean`: the mean trajectory of the *training* runs with the same schedule
  family (the mean of all training runs when the family is absent from them).

Errors are root-mean-square errors per channel in units of the training runs'
standard deviation of that channel (so channels are comparable and `mean` is
their average), pooled over the held-out runs and the points after the cut.

Works with the torch model (`keras_lode.train.TorchLatentODE`, batched) and with the
NumPy model (`keras_lode.load_model(path)`), so anyone can rerun it on a model
file:

```python
import keras_lode
from keras_lode.train.evaluate import extrapolation_errors, format_table

model = keras_lode.load_model("model.npz")
result = extrapolation_errors(model, held_out_runs, training_runs)
print(format_table(result))
```
"""

from __future__ import annotations

import numpy as np

from keras_lode.constants import CHANNELS
from keras_lode.train.windows import family_of, prepare_runs

PREDICTORS = ("lode", "hold_last", "family_mean")
DEFAULT_FRACTIONS = (0.25, 0.5, 0.75)


def hold_last(y: np.ndarray, cut: int) -> np.ndarray:
    """Naive predictor: repeat `y[..., cut - 1, :]` for the points `cut..K-1`.

    Args:
        y: (..., K, C) observed trajectories.
        cut: first point to predict, 1 <= cut < K.

    Returns:
        (..., K - cut, C) prediction.
    """
    last = y[..., cut - 1 : cut, :]
    reps = [1] * y.ndim
    reps[-2] = y.shape[-2] - cut
    return np.tile(last, reps)


def family_means(y: np.ndarray, families: list[str]) -> dict[str, np.ndarray]:
    """Mean trajectory per schedule family, plus `"*"` for all runs.

    Args:
        y: (N, K, C) training trajectories.
        families: family of each of the N runs.

    Returns:
        family -> (K, C) mean trajectory.
    """
    means = {"*": y.mean(axis=0)}
    fams = np.asarray(families)
    for fam in sorted(set(families)):
        means[fam] = y[fams == fam].mean(axis=0)
    return means


def _is_torch_model(model) -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency of keras_lode.train
        return False
    return isinstance(model, torch.nn.Module)


def predict_runs(model, y: np.ndarray, cut: int, window: int) -> np.ndarray:
    """Encode the `window` points before `cut` and decode every point of the runs.

    Args:
        model: torch `TorchLatentODE` or NumPy `LatentODE`.
        y: (N, K, C) raw trajectories.
        cut: end (exclusive) of the context window.
        window: context length W; shorter when `cut < W`.

    Returns:
        (N, K, C) float64 prediction in raw units.
    """
    n, k, _ = y.shape
    start = max(0, cut - window)
    t_ctx = np.arange(start, cut, dtype=np.float64)
    t_all = np.arange(k, dtype=np.float64)
    ctx = y[:, start:cut]
    if _is_torch_model(model):
        import torch

        param = next(model.parameters())
        with torch.no_grad():
            tt = torch.as_tensor(t_ctx, dtype=param.dtype)
            z = model.encode(tt, torch.as_tensor(ctx, dtype=param.dtype))
            out = model.decode(torch.as_tensor(t_all, dtype=param.dtype), z)
            if isinstance(out, tuple):
                out = out[0]
        return out.detach().cpu().numpy().astype(np.float64)
    preds = []
    for i in range(n):
        z = model.encode(t_ctx, ctx[i])
        preds.append(np.asarray(model.decode(t_all, z), dtype=np.float64))
    return np.stack(preds)


def extrapolation_errors(
    model,
    runs,
    train_runs,
    *,
    window: int | None = None,
    fractions=DEFAULT_FRACTIONS,
    std=None,
) -> dict:
    """Per-channel extrapolation error of the model and of two naive predictors.

    Args:
        model: torch `keras_lode.train.TorchLatentODE` or NumPy `keras_lode.LatentODE`.
        runs: held-out `keras_lode.Run` objects (not used in training).
        train_runs: the training runs (for the family-mean predictor).
        window: context window W; default the model file's planner window, else 30.
        fractions: cut points as fractions of training, each in (0, 1).
        std: per-channel std used as the error unit; default the model's
            normalization (NumPy model: `config["channels"]["std"]`).

    Returns:
        A JSON-ready dict: `fractions`, `window`, `n_runs`, `units`, `by_fraction`
        (`"0.25"` -> predictor -> channel -> error, plus `"mean"` over channels),
        `overall` (the same averaged over fractions) and `family_fallback` (runs
        whose family had no training run).

    Raises:
        ValueError: for fractions outside (0, 1) or runs that do not fit the model.
    """
    config = getattr(model, "config", None)
    if window is None:
        window = int((config or {}).get("planner", {}).get("window", 30))
    if std is None:
        if config is not None:
            std = config["channels"]["std"]
        else:
            raise ValueError("Argument `std` is required for a torch model (the error unit).")
    std = np.asarray(std, dtype=np.float64)
    fractions = tuple(float(f) for f in fractions)
    if not fractions or any(not 0 < f < 1 for f in fractions):
        raise ValueError(
            f"Argument `fractions` must be values in (0, 1). Received: fractions={fractions!r}"
        )
    held = prepare_runs(runs, window=2)
    train = prepare_runs(train_runs, window=2)
    if held.horizon != train.horizon:
        raise ValueError(
            f"Held-out runs have {held.horizon} log points but training runs have "
            f"{train.horizon}; evaluate runs of one horizon."
        )
    k = held.horizon
    means = family_means(train.y, [family_of(r) for r in train.runs])
    fams = [family_of(r) for r in held.runs]
    fallback = sum(f not in means for f in fams)
    fam_pred = np.stack([means.get(f, means["*"]) for f in fams])

    by_fraction = {}
    for f in fractions:
        cut = int(round(f * k))
        if not 2 <= cut <= k - 1:
            raise ValueError(f"Fraction {f} of {k} log points leaves no context or no future.")
        truth = held.y[:, cut:]
        preds = {
            "lode": predict_runs(model, held.y, cut, window)[:, cut:],
            "hold_last": hold_last(held.y, cut),
            "family_mean": fam_pred[:, cut:],
        }
        by_fraction[f"{f:g}"] = {name: _rmse(p, truth, std) for name, p in preds.items()}
    overall = {
        name: {
            ch: float(np.mean([by_fraction[key][name][ch] for key in by_fraction]))
            for ch in (*CHANNELS, "mean")
        }
        for name in PREDICTORS
    }
    return {
        "fractions": list(fractions),
        "window": int(window),
        "n_runs": len(held.runs),
        "units": "RMSE / training std of the channel",
        "by_fraction": by_fraction,
        "overall": overall,
        "family_fallback": int(fallback),
        "skipped": held.skipped,
    }


def _rmse(pred: np.ndarray, truth: np.ndarray, std: np.ndarray) -> dict:
    err = (pred - truth) / std
    per = np.sqrt(np.mean(err**2, axis=(0, 1)))
    out = {ch: float(v) for ch, v in zip(CHANNELS, per, strict=True)}
    out["mean"] = float(np.mean(per))
    return out


def format_table(result: dict) -> str:
    """The evaluation as a plain-text table (one row per cut and predictor)."""
    cols = (*CHANNELS, "mean")
    lines = [
        f"Extrapolation error on {result['n_runs']} held-out run(s), "
        f"window {result['window']} ({result['units']}):",
        f"{'cut':>7}  {'predictor':<12}" + "".join(f"{c:>9}" for c in cols),
    ]
    rows = [(key, table) for key, table in result["by_fraction"].items()]
    rows.append(("all", result["overall"]))
    for key, table in rows:
        label = "all" if key == "all" else f"{float(key):.0%}"
        for name in PREDICTORS:
            lines.append(
                f"{label:>7}  {name:<12}" + "".join(f"{table[name][c]:9.3f}" for c in cols)
            )
    return "\n".join(lines)
