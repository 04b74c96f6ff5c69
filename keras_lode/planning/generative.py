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

import dataclasses
import time
from typing import Any

import numpy as np

from keras_lode._checks import check_int, check_number, config_with_options
from keras_lode.model.defaults import GENERATIVE_DEFAULTS
from keras_lode.planning import common
from keras_lode.planning.plans import Plan
from keras_lode.planning.replans import derive_seed

__all__ = ["DEFAULTS", "GenerativeOptions", "plan_generative"]

#: The paper's defaults, used where neither the call nor the model's
#: `planner_defaults` sets a value.
#: One table for both sides: the model file's planner section starts from the same values.
DEFAULTS: dict[str, Any] = GENERATIVE_DEFAULTS

ANCHOR_RULES = ("max_lr", "nearest")
# How many of the most recent observed losses define the loss band (the paper's 3).
_BAND_POINTS = 3


@dataclasses.dataclass(frozen=True)
class GenerativeOptions:
    """Options of the paper's planner (`plan_generative`).

    Every option left as None takes its value from the model's `planner_defaults`, then
    from `DEFAULTS` (`lr_range`: from the model's `planner_defaults`, then `model.lr_range`;
    `reward_at`: `total_points`).

    Attributes:
        samples: number `S` of perturbed latents (z0 itself is always added).
        sigma: relative noise scale of the perturbation.
        tol: loss-band half-width in units of `max(std(last 3 losses), loss_floor)`.
        loss_floor: lower bound of that unit, in loss units.
        top_k: number of best accepted samples whose LR paths are averaged.
        anchor: `"max_lr"` (largest predicted LR among matches) or `"nearest"`
            (predicted loss closest to the observed mean).
        lr_range: (low, high) clipping range for the plan.
        reward_at: run log point at which the predicted metric is the reward; default
            `total_points` (the end of training: `j + (K - n)`). Must exceed `position`.
    """

    samples: int | None = None
    sigma: float | None = None
    tol: float | None = None
    loss_floor: float | None = None
    top_k: int | None = None
    anchor: str | None = None
    lr_range: Any = None
    reward_at: int | None = None


@dataclasses.dataclass(frozen=True)
class _Rules:
    """The selection rules of one call, resolved and checked."""

    samples: int
    sigma: float
    tol: float
    loss_floor: float
    top_k: int
    anchor: str
    reward_at: int
    lr_range: tuple[float, float]
    sign: float = 1.0  # +1: the metric is maximized; -1: minimized (`model.mode`)


@dataclasses.dataclass
class _Selection:
    """What the selection rules (steps 4 to 7) made of the decoded samples."""

    lr: np.ndarray | None
    rewards: np.ndarray
    anchors: np.ndarray
    chosen: np.ndarray
    accepted: int
    loss_band: tuple[float, float]
    reason: str


def plan_generative(
    model,
    window,
    *,
    position: int,
    total_points: int,
    current_plan=None,
    seed: int | None = None,
    points_per_epoch: int | None = None,
    config: GenerativeOptions | None = None,
    **options,
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
        points_per_epoch: the run's log points per epoch, if known; a value different from
            the model's triggers the fraction-of-training mapping warning.
        config: a `GenerativeOptions`; None for one with every option unset.
        **options: fields of `GenerativeOptions` (`samples`, `sigma`, `tol`, `loss_floor`,
            `top_k`, `anchor`, `lr_range`, `reward_at`), overriding `config`'s.

    Returns:
        A `Plan`.

    Raises:
        ValueError: on a window of the wrong shape or with non-finite values, an option
            out of range, or a model output of the wrong shape.
        TypeError: on an argument of the wrong type or an unknown option.
    """
    t_start = time.perf_counter()
    opts = config_with_options(GenerativeOptions, config, options, "plan_generative")
    defaults = common.model_defaults(model)
    n, K, rules = _resolve_rules(opts, defaults, model, position, total_points)
    window = common.check_window(window, n)
    seed = derive_seed(None, 0) if seed is None else check_int("seed", seed, minimum=0)
    held = common.resolve_current_plan(current_plan, n, K)
    scale = common.time_scale(model, K, points_per_epoch)

    # 1. Encode the observed window (log-point indices, mapped to model time).
    z0 = _encode(model, window, n, scale)
    t_encoded = time.perf_counter()
    # 2. z0 plus S perturbed latents; 3. decode them.
    latents = _perturb(z0, rules.samples, rules.sigma, seed)
    cand = _decode(model, latents, n, K, rules.reward_at, scale)
    t_decoded = time.perf_counter()
    # 4.-7. Anchors, rewards, the top-k average; 8. the fallback.
    sel = _select(cand, window, n, K, rules)
    fallback = sel.lr is None
    lr, reason, chosen = sel.lr, sel.reason, sel.chosen
    if fallback:
        lr, reason, chosen = _fall_back(sel, held, window, n, K, rules.lr_range)
    t_end = time.perf_counter()

    return Plan(
        lr=lr,
        accepted=sel.accepted,
        fallback=fallback,
        rewards=sel.rewards,
        anchors=sel.anchors,
        candidates=cand,
        chosen=chosen,
        seed=seed,
        position=n,
        total_points=K,
        reward_at=rules.reward_at,
        lr_range=rules.lr_range,
        anchor_rule=rules.anchor,
        loss_band=sel.loss_band,
        time_scale=scale,
        window=window,
        reason=reason,
        timings={
            "encode": t_encoded - t_start,
            "decode": t_decoded - t_encoded,
            "selection": t_end - t_decoded,
        },
    )


# --------------------------------------------------------------------------- steps


def _resolve_rules(
    opts: GenerativeOptions, defaults: dict, model, position, total_points
) -> tuple[int, int, _Rules]:
    """`(n, K, rules)`: the position and the options checked, in the order the call reads them."""

    def pick(name):
        return common.pick(name, getattr(opts, name), defaults, DEFAULTS)

    samples = check_int("samples", pick("samples"), minimum=0)
    sigma = check_number("sigma", pick("sigma"), minimum=0.0)
    tol = check_number("tol", pick("tol"), minimum=0.0, strict=True)
    loss_floor = check_number("loss_floor", pick("loss_floor"), minimum=0.0, strict=True)
    top_k = check_int("top_k", pick("top_k"), minimum=1)
    anchor = pick("anchor")
    if anchor not in ANCHOR_RULES:
        raise ValueError(f"Argument `anchor` must be one of {ANCHOR_RULES}. Received: {anchor!r}")
    n, K = common.check_position(position, total_points)
    reward_at = opts.reward_at
    reward_at = K if reward_at is None else check_int("reward_at", reward_at, minimum=0)
    if reward_at <= n:
        raise ValueError(
            f"Argument `reward_at` must be > position={n}. Received: reward_at={reward_at}"
        )
    lr_range = common.resolve_lr_range(opts.lr_range, defaults, model)
    rules = _Rules(samples, sigma, tol, loss_floor, top_k, anchor, reward_at, lr_range,
                   common.metric_sign(model))  # fmt: skip
    return n, K, rules


def _encode(model, window: np.ndarray, n: int, scale: float) -> np.ndarray:
    """Step 1: the latent `z0` of the window (points `n - W + 1 .. n` in model time)."""
    W = window.shape[0]
    t_window = np.arange(n - W + 1, n + 1, dtype=np.float64) * scale
    z0 = np.asarray(model.encode(t_window, window))
    if z0.ndim != 1 or z0.size == 0:
        raise ValueError(f"model.encode must return a latent of shape (L,). Received: {z0.shape}")
    if not np.all(np.isfinite(z0)):
        raise ValueError("model.encode returned a non-finite latent for this window")
    if not np.issubdtype(z0.dtype, np.floating):
        z0 = z0.astype(np.float64)
    return z0


def _perturb(z0: np.ndarray, S: int, sigma: float, seed: int) -> np.ndarray:
    """Step 2: z0 plus S perturbed latents; the noise is relative to |z0| per coordinate."""
    rng = np.random.default_rng(seed)
    eps = rng.standard_normal((S, z0.size)).astype(z0.dtype, copy=False)
    latents = np.empty((S + 1, z0.size), dtype=z0.dtype)
    latents[0] = z0
    latents[1:] = z0 + (sigma * np.abs(z0)) * eps
    return latents


def _decode(model, latents, n: int, K: int, reward_at: int, scale: float) -> np.ndarray:
    """Step 3: decode only the points the rules read.

    Those are the anchors j < K, the paths up to j + K - n - 1 and the rewards at
    j + reward_at - n.
    """
    S1 = latents.shape[0]
    M = K + max(reward_at - n, K - 1 - n)
    t_decode = np.arange(M, dtype=np.float64) * scale
    cand = np.asarray(model.decode(t_decode, latents))
    if cand.ndim != 3 or cand.shape[0] != S1 or cand.shape[1] != M or cand.shape[2] < 3:
        raise ValueError(
            f"model.decode must return shape ({S1}, {M}, C>=3) for {S1} latents over "
            f"{M} points. Received: {cand.shape}"
        )
    return cand


def _select(cand: np.ndarray, window: np.ndarray, n: int, K: int, rules: _Rules) -> _Selection:
    """Steps 4 to 7: loss band, one anchor per sample, rewards, top-k average of LR paths."""
    S1 = cand.shape[0]
    # 4. Two-sided loss band around the last observed losses.
    recent = window[-_BAND_POINTS:, 0]
    mu = float(np.mean(recent))
    half = rules.tol * max(float(np.std(recent)), rules.loss_floor)
    finite = np.isfinite(cand).all(axis=(1, 2))
    dev = np.abs(cand[:, :K, 0] - mu)
    match = (dev <= half) & finite[:, None]  # NaN deviations compare False
    ok = match.any(axis=1)

    # 5. One anchor per sample.
    if rules.anchor == "max_lr":
        j = np.argmax(np.where(match, cand[:, :K, 1], -np.inf), axis=1)
    else:
        j = np.argmin(np.where(match, dev, np.inf), axis=1)
    anchors = np.where(ok, j, -1)

    # 6. Rewards, 7. top-k average of the LR paths.
    rewards = np.full(S1, np.nan)
    idx = np.flatnonzero(ok)
    rewards[idx] = cand[idx, j[idx] + (rules.reward_at - n), 2]
    order = np.argsort(-rules.sign * rewards[idx], kind="stable")  # best reward first
    chosen = idx[order[: rules.top_k]]
    accepted = int(idx.size)

    reason = ""
    lr = None
    if accepted:
        offsets = np.arange(1, K - n)
        paths = cand[chosen[:, None], j[chosen][:, None] + offsets[None, :], 1]
        # A finite but absurd log-LR may overflow exp to inf; clipping below bounds it, and
        # the check after it guards whatever else could slip through.
        with np.errstate(over="ignore"):
            lr = np.clip(np.mean(np.exp(paths.astype(np.float64)), axis=0), *rules.lr_range)
        if not np.all(np.isfinite(lr) & (lr > 0)):
            reason = "the chosen LR paths were not finite"
            lr = None
    else:
        reason = f"no imagined future's loss came within {half:.3g} of the observed {mu:.4g}"
    return _Selection(lr, rewards, anchors, chosen, accepted, (mu - half, mu + half), reason)


def _fall_back(sel: _Selection, held, window: np.ndarray, n: int, K: int, lr_range):
    """Step 8: `(lr, reason, chosen)` keeping the current plan, or holding the current LR."""
    if held is None:
        with np.errstate(over="ignore"):  # clipped below
            lr = np.full(K - 1 - n, np.exp(window[-1, 1]))
        reason = sel.reason + "; holding the current LR"
    else:
        lr = held
        reason = sel.reason + "; keeping the current plan"
    return np.clip(lr, *lr_range), reason, sel.chosen[:0]
