"""The continuation prior: what a change of LR shape tends to be worth, whatever the task.

A paired calibration (`planner.paired`) may carry a prior fitted on the branch groups of
many tasks. It corrects the ensemble's predicted paired gain of each candidate with what
its *shape* of LR continuation realized on the groups of other runs:

    gain = alpha * model_gain + (phi(candidate) - phi(default)) . weights

`phi` reads a continuation relative to the run's current LR, so it means the same at any LR
scale and run length (`SHAPE_FEATURES`): the ln ratio of the next LR, of the mean and of the last
LR of the rest of the run to the current one (floored at `FLOOR`), and those interacted
with how far the run has already decayed (its current ln LR below the highest of the last
fifth of training) and with the fraction of training done. The default's own features are
subtracted, so the default's gain stays 0 and anything that does not depend on the
candidate cancels. `alpha` and `weights` are a regression of the actual paired gains on
`[model_gain, phi]`, ridge on the shape weights (`fit_prior`); `alpha` says how much the
ensemble's own prediction still adds next to the shape (0: the shape alone). NumPy only.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["SHAPE_FEATURES", "FLOOR", "applies", "continuation_features", "fit_prior", "prior_gain"]

#: The prior's inputs, in the order of its weights (model files name them).
SHAPE_FEATURES = (
    "next",
    "mean",
    "end",
    "mean_squared",
    "mean_x_decayed",
    "end_x_decayed",
    "mean_x_fraction",
    "end_x_fraction",
)
#: The lowest ln LR ratio read (e^-8: a continuation that anneals to ~3e-4 of the current LR).
FLOOR = -8.0


def continuation_features(log_lr, paths, position: int, total_points: int) -> np.ndarray:
    """`(C, len(SHAPE_FEATURES))`: each continuation's features minus the default's (row 0's).

    Args:
        log_lr: the run's ln LR at its log points up to `position` (at least the last).
            How far the run has decayed is read over its last `ceil(K / 5)` points, or all
            of them if fewer are given (the planner gives its window; the trainer the same
            window). Any constant offset (a task-free model's ln LR relative to the run's
            reference) is fine.
        paths: `(C, L)` LRs of the continuations after `position`, the default first, on
            the same scale as `exp(log_lr)`.
        position: the current log point `n` (the last of `log_lr`).
        total_points: the run's number of log points `K`.
    """
    log_lr = np.asarray(log_lr, dtype=np.float64).reshape(-1)
    paths = np.asarray(paths, dtype=np.float64)
    if paths.ndim != 2 or paths.shape[1] == 0 or log_lr.size == 0:
        raise ValueError(
            f"continuation_features needs a non-empty ln-LR history and (C, L) paths. Received "
            f"shapes {log_lr.shape} and {paths.shape}"
        )
    current = log_lr[-1]
    recent = log_lr[-max(1, math.ceil(total_points / 5)) :]
    decayed = float(current - recent.max())
    fraction = (position + 1) / total_points
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.maximum(np.log(paths) - current, FLOOR)
    ratio = np.where(np.isfinite(ratio), ratio, FLOOR)
    nxt, mean, end = ratio[:, 0], ratio.mean(axis=1), ratio[:, -1]
    phi = np.stack(
        [nxt, mean, end, mean**2, mean * decayed, end * decayed, mean * fraction, end * fraction],
        axis=1,
    )
    return phi - phi[:1]


def fit_prior(model_gain, features, actual, ridge: float = 10.0, with_model: bool = True) -> dict:
    """The ridge regression of actual paired gains on `[model_gain, features]`.

    Args:
        model_gain: `(N,)` the ensemble's predicted gain of N non-default candidates.
        features: `(N, len(SHAPE_FEATURES))` their `continuation_features`.
        actual: `(N,)` their actual gains.
        ridge: the penalty on the shape weights (their inputs are O(1) ln ratios); `alpha`
            is not penalized.
        with_model: False: `alpha = 0`, the shape alone (for an ensemble without skill on
            the tasks at hand).

    Returns:
        `{"features", "alpha", "weights", "ridge", "candidates"}` (JSON-ready).
    """
    g = np.asarray(model_gain, dtype=np.float64).reshape(-1)
    phi = np.asarray(features, dtype=np.float64)
    y = np.asarray(actual, dtype=np.float64).reshape(-1)
    F = len(SHAPE_FEATURES)
    if phi.shape != (g.size, F) or y.size != g.size or g.size < F + 1:
        raise ValueError(
            f"fit_prior needs N > {F} candidates with N gains, N actual gains and (N, {F}) "
            f"features. Received {g.size}, {y.size} and {phi.shape}"
        )
    design = np.column_stack([g, phi]) if with_model else phi
    penalty = ridge * np.eye(design.shape[1])
    if with_model:
        penalty[0, 0] = 0.0  # the ensemble's own gain is in the gains' units: not shrunk
    coef = np.linalg.solve(design.T @ design + penalty, design.T @ y)
    if not with_model:
        coef = np.concatenate([[0.0], coef])
    return {
        "features": list(SHAPE_FEATURES),
        "alpha": float(coef[0]),
        "weights": [float(w) for w in coef[1:]],
        "ridge": float(ridge),
        "candidates": int(g.size),
    }


def prior_gain(model_gain, features, prior: dict) -> np.ndarray:
    """`alpha * model_gain + features . weights`: the prior-corrected paired gain."""
    return float(prior["alpha"]) * np.asarray(model_gain, dtype=np.float64) + np.asarray(
        features, dtype=np.float64
    ) @ np.asarray(prior["weights"], dtype=np.float64)


def applies(prior: dict, position: int, total_points: int) -> bool:
    """Whether `prior` speaks at point `position` of `total_points`: within the fractions
    of training (`(n + 1) / K`) of the decisions it was fitted on, one point of slack either
    side. Elsewhere it does not extrapolate (a prior without `fractions` applies anywhere)."""
    lo, hi = prior.get("fractions", (0.0, 1.0))
    fraction, slack = (position + 1) / total_points, 1.0 / total_points
    return lo - slack <= fraction <= hi + slack
