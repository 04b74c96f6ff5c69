"""The paper's planner: imagine futures with a generative latent ODE and follow the best LR path.

Pure, vectorized NumPy (docs/design.md). Nothing here knows about Keras or torch: the
planner talks to any model object with `encode`, `decode`, `config`, `horizon`,
`points_per_epoch`, `lr_range` and `planner_defaults` (the NumPy `LatentODE` of
`keras_lode.model`, or a hand-made stand-in in tests).

At log point `n` of a run with `K` log points, `plan` does:

1. encode the observed window (W, 3) of raw channels `[loss, ln lr, metric]` into `z0`;
2. draw `S` latents `z0 + sigma * |z0| * eps` (eps standard normal, from the call's seed)
   and keep `z0` itself as sample 0; all `S + 1` samples are evaluated;
3. decode every sample from time 0 over the points the rules need (at most `[0, 2K)`);
4. for each sample, the *anchors* are the points `j < K` whose predicted loss lies within
   `tol * max(std(last 3 losses), loss_floor)` of the mean of the last 3 observed losses,
   on **both** sides; a sample with no anchor (or any non-finite value) is rejected;
5. among its anchors a sample keeps the one with the largest predicted LR (`"max_lr"`, the
   paper's rule) or the one whose predicted loss is closest (`"nearest"`);
6. reward = predicted metric at `j + (reward_at - n)` (default `reward_at = K`, the end of
   training);
7. the new plan is the mean LR path `lr[j + 1 : j + K - n]` of the `top_k` accepted
   samples by reward (entry `j` is the current point, already in effect), clipped to
   `lr_range`;
8. if nothing is accepted, the current plan is kept (or, without one, the current LR held).

A run whose length differs from the model's horizon (or whose points per epoch differ from
the model's) is mapped by fraction of training: run point `i` is model time
`i * horizon / total_points`. The planner warns when it does this.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from keras_lode._checks import check_int, check_number
from keras_lode._warnings import warn as _warn
from keras_lode.constants import CHANNELS
from keras_lode.model.defaults import GENERATIVE_DEFAULTS
from keras_lode.planning.plan import Plan, derive_seed

__all__ = ["DEFAULTS", "plan_generative"]

#: The paper's defaults, used where neither the call nor the model's
#: `planner_defaults` sets a value.
#: One table for both sides: the model file's planner section starts from the same values.
DEFAULTS: dict[str, Any] = GENERATIVE_DEFAULTS

ANCHOR_RULES = ("max_lr", "nearest")
# How many of the most recent observed losses define the loss band (the paper's 3).
_BAND_POINTS = 3


def plan_generative(
    model,
    window,
    *,
    position: int,
    total_points: int,
    current_plan=None,
    seed: int | None = None,
    samples: int | None = None,
    sigma: float | None = None,
    tol: float | None = None,
    loss_floor: float | None = None,
    top_k: int | None = None,
    anchor: str | None = None,
    lr_range=None,
    reward_at: int | None = None,
    points_per_epoch: int | None = None,
) -> Plan:
    """Plan the learning rate for the rest of a run with a latent ODE.

    The paper's planner with the reference code's defects fixed (docs/design.md); the
    module docstring states the rules. Every option left as None takes its value from
    `model.planner_defaults`, then from `DEFAULTS`.

    Example:

    ```python
    window = run.channels()[n - 29 : n + 1]          # (30, 3): loss, ln lr, metric
    p = keras_lode.plan(model, window, position=n, total_points=600, seed=0)
    p.lr            # LR for log points n+1 .. 599
    print(p.summary())
    ```

    Args:
        model: a NumPy `LatentODE` (or any object with the same interface).
        window: (W, 3) raw channels `[loss, ln lr, metric]` observed at log points
            `position - W + 1 .. position`. Every value must be finite.
        position: current log point `n` (0-based), `W - 1 <= n < total_points - 1`.
        total_points: number of log points `K` of the whole run.
        current_plan: the plan in effect, kept if nothing is accepted: a `Plan`, or an
            array of LRs for the remaining points (length `total_points - position - 1`)
            or for every point of the run (length `total_points`).
        seed: seed of this call's noise; None draws fresh entropy (recorded in
            `Plan.seed`). Use `derive_seed` for per-call seeds from one base seed.
        samples: number `S` of perturbed latents (z0 itself is always added).
        sigma: relative noise scale of the perturbation.
        tol: loss-band half-width in units of `max(std(last 3 losses), loss_floor)`.
        loss_floor: lower bound of that unit, in loss units.
        top_k: number of best accepted samples whose LR paths are averaged.
        anchor: `"max_lr"` (largest predicted LR among matches) or `"nearest"`
            (predicted loss closest to the observed mean).
        lr_range: (low, high) clipping range for the plan; default the model's
            `planner_defaults["lr_range"]`, then `model.lr_range` (the training runs').
        reward_at: run log point at which the predicted metric is the reward; default
            `total_points` (the end of training: `j + (K - n)`). Must exceed `position`.
        points_per_epoch: the run's log points per epoch, if known; a value different from
            the model's triggers the fraction-of-training mapping warning.

    Returns:
        A `Plan`.

    Raises:
        ValueError: on a window of the wrong shape or with non-finite values, an option
            out of range, or a model output of the wrong shape.
        TypeError: on an argument of the wrong type.
    """
    t_start = time.perf_counter()
    defaults = _model_defaults(model)
    opts = {
        name: _pick(name, value, defaults)
        for name, value in (
            ("samples", samples),
            ("sigma", sigma),
            ("tol", tol),
            ("loss_floor", loss_floor),
            ("top_k", top_k),
            ("anchor", anchor),
        )
    }
    S = check_int("samples", opts["samples"], minimum=0)
    sigma = check_number("sigma", opts["sigma"], minimum=0.0)
    tol = check_number("tol", opts["tol"], minimum=0.0, strict=True)
    loss_floor = check_number("loss_floor", opts["loss_floor"], minimum=0.0, strict=True)
    top_k = check_int("top_k", opts["top_k"], minimum=1)
    anchor = opts["anchor"]
    if anchor not in ANCHOR_RULES:
        raise ValueError(f"Argument `anchor` must be one of {ANCHOR_RULES}. Received: {anchor!r}")
    n, K = _check_position(position, total_points)
    reward_at = K if reward_at is None else check_int("reward_at", reward_at, minimum=0)
    if reward_at <= n:
        raise ValueError(
            f"Argument `reward_at` must be > position={n}. Received: reward_at={reward_at}"
        )
    lr_lo, lr_hi = _resolve_lr_range(lr_range, defaults, model)
    window = _check_window(window, n)
    W = window.shape[0]
    if seed is None:
        seed = derive_seed(None, 0)
    else:
        seed = check_int("seed", seed, minimum=0)
    held = _resolve_current_plan(current_plan, n, K)

    scale = _time_scale(model, K, points_per_epoch)

    # 1. Encode the observed window (log-point indices, mapped to model time).
    t_window = np.arange(n - W + 1, n + 1, dtype=np.float64) * scale
    z0 = np.asarray(model.encode(t_window, window))
    if z0.ndim != 1 or z0.size == 0:
        raise ValueError(f"model.encode must return a latent of shape (L,). Received: {z0.shape}")
    if not np.all(np.isfinite(z0)):
        raise ValueError("model.encode returned a non-finite latent for this window")
    if not np.issubdtype(z0.dtype, np.floating):
        z0 = z0.astype(np.float64)
    t_encoded = time.perf_counter()

    # 2. z0 plus S perturbed latents; the noise is relative to |z0| per coordinate.
    rng = np.random.default_rng(seed)
    eps = rng.standard_normal((S, z0.size)).astype(z0.dtype, copy=False)
    latents = np.empty((S + 1, z0.size), dtype=z0.dtype)
    latents[0] = z0
    latents[1:] = z0 + (sigma * np.abs(z0)) * eps

    # 3. Decode only the points the rules read: anchors j < K, paths up to j + K - n - 1,
    # rewards at j + reward_at - n.
    M = K + max(reward_at - n, K - 1 - n)
    t_decode = np.arange(M, dtype=np.float64) * scale
    cand = np.asarray(model.decode(t_decode, latents))
    if cand.ndim != 3 or cand.shape[0] != S + 1 or cand.shape[1] != M or cand.shape[2] < 3:
        raise ValueError(
            f"model.decode must return shape ({S + 1}, {M}, C>=3) for {S + 1} latents over "
            f"{M} points. Received: {cand.shape}"
        )
    t_decoded = time.perf_counter()

    # 4. Two-sided loss band around the last observed losses.
    recent = window[-_BAND_POINTS:, 0]
    mu = float(np.mean(recent))
    half = tol * max(float(np.std(recent)), loss_floor)
    finite = np.isfinite(cand).all(axis=(1, 2))
    dev = np.abs(cand[:, :K, 0] - mu)
    match = (dev <= half) & finite[:, None]  # NaN deviations compare False
    ok = match.any(axis=1)

    # 5. One anchor per sample.
    if anchor == "max_lr":
        j = np.argmax(np.where(match, cand[:, :K, 1], -np.inf), axis=1)
    else:
        j = np.argmin(np.where(match, dev, np.inf), axis=1)
    anchors = np.where(ok, j, -1)

    # 6. Rewards, 7. top-k average of the LR paths.
    rewards = np.full(S + 1, np.nan)
    idx = np.flatnonzero(ok)
    rewards[idx] = cand[idx, j[idx] + (reward_at - n), 2]
    order = np.argsort(-rewards[idx], kind="stable")
    chosen = idx[order[:top_k]]
    accepted = int(idx.size)

    reason = ""
    lr = None
    if accepted:
        offsets = np.arange(1, K - n)
        paths = cand[chosen[:, None], j[chosen][:, None] + offsets[None, :], 1]
        # A finite but absurd log-LR may overflow exp to inf; clipping below bounds it, and
        # the check after it guards whatever else could slip through.
        with np.errstate(over="ignore"):
            lr = np.clip(np.mean(np.exp(paths.astype(np.float64)), axis=0), lr_lo, lr_hi)
        if not np.all(np.isfinite(lr) & (lr > 0)):
            reason = "the chosen LR paths were not finite"
            lr = None
    else:
        reason = f"no imagined future's loss came within {half:.3g} of the observed {mu:.4g}"
    fallback = lr is None
    if fallback:
        if held is None:
            with np.errstate(over="ignore"):  # clipped below
                lr = np.full(K - 1 - n, np.exp(window[-1, 1]))
            reason += "; holding the current LR"
        else:
            lr = held
            reason += "; keeping the current plan"
        chosen = chosen[:0]
        lr = np.clip(lr, lr_lo, lr_hi)
    t_end = time.perf_counter()

    return Plan(
        lr=lr,
        accepted=accepted,
        fallback=fallback,
        rewards=rewards,
        anchors=anchors,
        candidates=cand,
        chosen=chosen,
        seed=seed,
        position=n,
        total_points=K,
        reward_at=reward_at,
        lr_range=(lr_lo, lr_hi),
        anchor_rule=anchor,
        loss_band=(mu - half, mu + half),
        time_scale=scale,
        window=window,
        reason=reason,
        timings={
            "encode": t_encoded - t_start,
            "decode": t_decoded - t_encoded,
            "selection": t_end - t_decoded,
        },
    )


# --------------------------------------------------------------------------- helpers


def _model_defaults(model) -> dict:
    defaults = getattr(model, "planner_defaults", None) or {}
    if not isinstance(defaults, dict):
        raise TypeError(
            f"model.planner_defaults must be a dict. Received: {type(defaults).__name__}"
        )
    return defaults


def _pick(name: str, value, defaults: dict, table: dict = DEFAULTS):
    """The call's value, else the model's `planner_defaults`, else `table`'s."""
    if value is not None:
        return value
    if defaults.get(name) is not None:
        return defaults[name]
    return table[name]


def _check_position(position, total_points) -> tuple[int, int]:
    """`(n, K)`, checked: a point must remain after `n` to plan."""
    K = check_int("total_points", total_points, minimum=2)
    n = check_int("position", position, minimum=0)
    if n >= K - 1:
        raise ValueError(
            f"Argument `position` must be < total_points - 1 = {K - 1} (a point must remain "
            f"to plan). Received: position={n}"
        )
    return n, K


def _resolve_lr_range(lr_range, defaults: dict, model) -> tuple[float, float]:
    source = "lr_range"
    if lr_range is None:
        lr_range, source = defaults.get("lr_range"), "model.planner_defaults['lr_range']"
    if lr_range is None:
        lr_range, source = getattr(model, "lr_range", None), "model.lr_range"
    if lr_range is None:
        raise ValueError("No LR range: pass `lr_range=(low, high)` (the model defines none)")
    try:
        lo, hi = (float(v) for v in lr_range)
    except (TypeError, ValueError) as e:
        raise ValueError(
            f"`{source}` must be a pair (low, high) of numbers. Received: {lr_range!r}"
        ) from e
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo <= hi):
        raise ValueError(
            f"`{source}` must satisfy 0 < low <= high (finite). Received: ({lo}, {hi})"
        )
    return lo, hi


def _check_window(window, n: int) -> np.ndarray:
    try:
        arr = np.asarray(window, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"Argument `window` must be a numeric (W, 3) array: {e}") from e
    if arr.ndim != 2 or arr.shape[1] != 3 or arr.shape[0] < 1:
        raise ValueError(
            "Argument `window` must have shape (W, 3) with columns [loss, ln lr, metric] and "
            f"W >= 1. Received: shape {arr.shape}"
        )
    if arr.shape[0] > n + 1:
        raise ValueError(
            f"Argument `window` has {arr.shape[0]} rows but only position + 1 = {n + 1} log "
            "points exist (rows are points position - W + 1 .. position)"
        )
    for c, name in enumerate(CHANNELS):
        bad = np.flatnonzero(~np.isfinite(arr[:, c]))
        if bad.size:
            raise ValueError(
                f"Argument `window` has non-finite {name} (column {c}) at {bad.size} row(s) "
                f"{bad[:5].tolist()}{'...' if bad.size > 5 else ''}: every value must be finite"
            )
    return arr


def _resolve_current_plan(current_plan, n: int, K: int) -> np.ndarray | None:
    if current_plan is None:
        return None
    if isinstance(current_plan, Plan) or all(
        hasattr(current_plan, a) for a in ("lr", "position", "total_points")
    ):  # a Plan or a ControlPlan
        if current_plan.total_points != K or current_plan.position > n:
            raise ValueError(
                "Argument `current_plan` is a Plan for another run or a later point "
                f"(position {current_plan.position}, total_points {current_plan.total_points});"
                f" expected total_points {K} and position <= {n}"
            )
        arr = np.asarray(current_plan.lr, dtype=np.float64)[n - current_plan.position :]
    else:
        try:
            arr = np.asarray(current_plan, dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise ValueError(f"Argument `current_plan` must be numeric: {e}") from e
        if arr.ndim != 1 or arr.shape[0] not in (K, K - 1 - n):
            raise ValueError(
                f"Argument `current_plan` must be 1-D with {K - 1 - n} (remaining points) or "
                f"{K} (whole run) LRs. Received: shape {arr.shape}"
            )
        if arr.shape[0] == K:
            arr = arr[n + 1 :]
    if not np.all(np.isfinite(arr) & (arr > 0)):
        raise ValueError("Argument `current_plan` must hold finite, positive LRs")
    return arr.copy()


def _time_scale(model, K: int, points_per_epoch) -> float:
    horizon = getattr(model, "horizon", None)
    model_p = getattr(model, "points_per_epoch", None)
    if horizon is None:
        return 1.0
    horizon = check_int("model.horizon", horizon, minimum=1)
    p_differs = (
        points_per_epoch is not None
        and model_p is not None
        and int(points_per_epoch) != int(model_p)
    )
    if K == horizon and not p_differs:
        return 1.0
    scale = horizon / K
    detail = f"{K} log points" + (
        f" at {points_per_epoch} per epoch" if points_per_epoch is not None else ""
    )
    _warn(
        f"The run ({detail}) differs from the model's horizon ({horizon} log points"
        + (f" at {model_p} per epoch" if model_p is not None else "")
        + f"): mapping by fraction of training, run point i -> model time i * {scale:.6g}."
    )
    return scale
