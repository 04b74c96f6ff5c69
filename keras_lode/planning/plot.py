"""Figures of a plan: the paper planner's imagined futures, or the control planner's candidates.

Needs matplotlib (`pip install 'keras-lode[plot]'`); it is imported only when a figure is
made, and only its object-oriented API is used (no pyplot), so plotting never changes the
user's matplotlib backend or global state.
"""

from __future__ import annotations

import os

import numpy as np

__all__ = ["plot_plan"]

_REJECTED = "#b0b0b0"
_ACCEPTED = "#9ecae1"
_CHOSEN = "#08519c"
_ANCHOR = "#ff7f0e"
_PLAN = "#d62728"
_OBSERVED = "black"
_RECORDED = "#31a354"


def _figure_class():
    try:
        from matplotlib.figure import Figure
    except ImportError as e:
        raise ImportError(
            "Plotting a plan needs matplotlib: install it with pip install 'keras-lode[plot]'"
        ) from e
    return Figure


def plot_plan(plan, path, *, observed=None, title=None):
    """Saves a figure of one planning call.

    Left column, the imagined futures in the model's own time (run log points from 0):
    every decoded sample (grey if rejected, light blue if accepted, dark blue if among the
    top-k), the loss band that anchors must fall in (for `j < K`), and each accepted
    sample's anchor (orange). Right column, the run's time: the observed window (black),
    the chosen futures shifted so their anchor sits at the current point, the planned LR
    (red), and optionally the whole recorded run (green, dashed). Rows: loss, LR (log
    scale), metric.

    Example:

    ```python
    p = keras_lode.plan(model, window, position=120, total_points=600, seed=0)
    keras_lode.planning.plot.plot_plan(p, "plan.png")
    ```

    Args:
        plan: a `keras_lode.planning.Plan`, or a `ControlPlan` (then: the candidate LR
            paths with the default and the chosen one, the predicted metric under both with
            the members' range, and every candidate's final metric, mean +/- sd, best
            bounds first).
        path: output file; the format follows the suffix (`.png`, `.pdf`, `.svg`, ...).
        observed: optional (K', 3) raw channels `[loss, ln lr, metric]` of the recorded
            run from log point 0 (e.g. `run.channels()`), drawn for comparison.
        title: figure title; default `plan.summary()`.

    Returns:
        The path written, as a string.

    Raises:
        ImportError: if matplotlib is not installed.
        ValueError: if `observed` is not a (K', 3) array.
    """
    Figure = _figure_class()
    if observed is not None:
        observed = np.asarray(observed, dtype=np.float64)
        if observed.ndim != 2 or observed.shape[1] != 3:
            raise ValueError(
                "Argument `observed` must have shape (K, 3) [loss, ln lr, metric]. "
                f"Received: shape {observed.shape}"
            )
    if getattr(plan, "kind", None) == "controlled":
        return _plot_control(Figure, plan, path, observed, title)
    return _plot_generative(Figure, plan, path, observed, title)


def _plot_generative(Figure, plan, path, observed, title):
    """The paper planner's figure: imagined futures (left), the run's time (right)."""
    cand = np.asarray(plan.candidates, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        cand_lr = np.exp(cand[:, :, 1])
        win_lr = np.exp(plan.window[:, 1])
    # inf (exp overflow) breaks autoscaling on a log axis; leave a gap instead.
    cand_lr[~np.isfinite(cand_lr)] = np.nan

    fig = Figure(figsize=(13, 9), layout="constrained")
    axes = fig.subplots(3, 2, sharex="col")
    _draw_futures(axes[:, 0], plan, cand, cand_lr)
    obs_lr = _draw_run(axes[:, 1], plan, cand, cand_lr, win_lr, observed)

    for row, name in enumerate(("loss", "learning rate", "metric")):
        axes[row, 0].set_ylabel(name)
        for col in range(2):
            axes[row, col].grid(alpha=0.3)
    for col in range(2):
        axes[1, col].set_yscale("log")
    # Imagined LRs can span dozens of decades; keep the plan and the clip range readable.
    shown = np.concatenate([plan.lr, win_lr, np.asarray(plan.lr_range, dtype=np.float64)])
    if obs_lr is not None:
        shown = np.concatenate([shown, obs_lr])
    shown = shown[np.isfinite(shown) & (shown > 0)]
    if shown.size:
        axes[1, 1].set_ylim(shown.min() / 3, shown.max() * 3)
    for v in plan.lr_range:
        axes[1, 1].axhline(v, color=_PLAN, ls=":", lw=0.8)
    suptitle(fig, plan.summary() if title is None else title, fontsize=10)

    path = os.fspath(path)
    fig.savefig(path, dpi=110)
    return path


def _draw_futures(axes, plan, cand, cand_lr):
    """Left column: every decoded sample in model time, the loss band and the anchors."""
    S = cand.shape[0]
    K = plan.total_points
    accepted = plan.accepted_mask
    chosen = set(int(s) for s in plan.chosen)
    t_imag = np.arange(cand.shape[1])
    # Drawn rejected first so the accepted ones stay visible.
    order = sorted(range(S), key=lambda s: (s in chosen, bool(accepted[s])))
    for s in order:
        if s in chosen:
            style = {"color": _CHOSEN, "lw": 1.4, "alpha": 0.9, "zorder": 3}
        elif accepted[s]:
            style = {"color": _ACCEPTED, "lw": 0.9, "alpha": 0.8, "zorder": 2}
        else:
            style = {"color": _REJECTED, "lw": 0.7, "alpha": 0.5, "zorder": 1}
        for row, y in enumerate((cand[s, :, 0], cand_lr[s], cand[s, :, 2])):
            axes[row].plot(t_imag, y, **style)
    lo, hi = plan.loss_band
    axes[0].fill_between([0, K - 1], lo, hi, color=_ANCHOR, alpha=0.15, lw=0,
                         label="loss band (anchors j < K)")  # fmt: skip
    idx = np.flatnonzero(accepted)
    if idx.size:
        j = plan.anchors[idx]
        axes[0].scatter(j, cand[idx, j, 0], color=_ANCHOR, s=18, zorder=4, label="anchors")
        axes[1].scatter(j, cand_lr[idx, j], color=_ANCHOR, s=18, zorder=4)
    for ax in axes:
        ax.axvline(K - 1, color="k", ls=":", lw=0.8)
    axes[0].plot([], [], color=_REJECTED, label=f"rejected ({S - plan.accepted})")
    axes[0].plot([], [], color=_ACCEPTED, label=f"accepted ({plan.accepted})")
    axes[0].plot([], [], color=_CHOSEN, label=f"top-{len(chosen)}")
    axes[0].legend(loc="best", fontsize=8)
    axes[0].set_title("imagined futures (model time)")
    axes[2].set_xlabel("imagined log point")


def _draw_run(axes, plan, cand, cand_lr, win_lr, observed):
    """Right column: the run's time; returns the recorded run's LRs (None without one)."""
    n, K = plan.position, plan.total_points
    W = plan.window.shape[0]
    chosen = set(int(s) for s in plan.chosen)
    obs_lr = None
    if observed is not None:
        t_obs = np.arange(observed.shape[0])
        with np.errstate(over="ignore", invalid="ignore"):
            obs = (observed[:, 0], np.exp(observed[:, 1]), observed[:, 2])
        for row, y in enumerate(obs):
            axes[row].plot(t_obs, y, color=_RECORDED, ls="--", lw=1, label="recorded run")
        obs_lr = obs[1]
    offsets = np.arange(0, K - n)
    for s in np.flatnonzero(plan.accepted_mask):
        jj = plan.anchors[s] + offsets
        style = (
            {"color": _CHOSEN, "lw": 1.2, "alpha": 0.9}
            if int(s) in chosen
            else {"color": _ACCEPTED, "lw": 0.7, "alpha": 0.6}
        )
        for row, y in enumerate((cand[s, jj, 0], cand_lr[s, jj], cand[s, jj, 2])):
            axes[row].plot(n + offsets, y, **style)
    t_win = np.arange(n - W + 1, n + 1)
    for row, y in enumerate((plan.window[:, 0], win_lr, plan.window[:, 2])):
        axes[row].plot(t_win, y, color=_OBSERVED, lw=2, label="observed window")
    label = "plan (fallback)" if plan.fallback else "plan"
    axes[1].plot(plan.points, plan.lr, color=_PLAN, lw=2.2, label=label, zorder=5)
    for ax in axes:
        ax.axvline(n, color="k", ls=":", lw=0.8)
    axes[0].legend(loc="best", fontsize=8)
    axes[1].legend(loc="best", fontsize=8)
    axes[0].set_title(f"plan from log point {n} of {K}")
    axes[2].set_xlabel("run log point")
    return obs_lr


def _plot_control(Figure, plan, path, observed, title, top=20):
    """The control planner's figure: candidate LRs, predicted metric, final-metric bounds."""
    n, K = plan.position, plan.total_points
    W = plan.window.shape[0]
    t_win = np.arange(n - W + 1, n + 1)
    t_fut = np.arange(n, K)
    pred = np.asarray(plan.predictions, dtype=np.float64)  # (M, C, T, 2)
    fig = Figure(figsize=(14, 5), layout="constrained")
    ax_lr, ax_m, ax_c = fig.subplots(1, 3)

    for c in range(1, len(plan.names)):
        ax_lr.plot(plan.points, plan.paths[c], color=_ACCEPTED, lw=0.7, alpha=0.6)
    ax_lr.plot(plan.points, plan.paths[0], color=_OBSERVED, ls="--", lw=1.5, label="default")
    ax_lr.plot(plan.points, plan.lr, color=_PLAN, lw=2.2, label=f"plan: {plan.chosen_name}")
    ax_lr.plot(t_win, np.exp(plan.window[:, 1]), color=_OBSERVED, lw=2, label="observed")
    if observed is not None:
        ax_lr.plot(np.arange(len(observed)), np.exp(observed[:, 1]), color=_RECORDED, ls=":",
                   lw=1, label="recorded run")  # fmt: skip
    ax_lr.set_yscale("log")
    ax_lr.set_title(f"{len(plan.names)} candidates ({len(plan.rejected)} outside trust)")
    ax_lr.set_xlabel("run log point")
    ax_lr.set_ylabel("learning rate")
    ax_lr.legend(fontsize=8)

    ax_m.plot(t_win, plan.window[:, 2], color=_OBSERVED, lw=2, label="observed")
    if observed is not None:
        ax_m.plot(np.arange(len(observed)), observed[:, 2], color=_RECORDED, ls=":", lw=1)
    for c, color, label in ((0, _OBSERVED, "default"), (plan.chosen, _PLAN, "plan")):
        m = pred[:, c, :, 1]
        ax_m.fill_between(t_fut, m.min(axis=0), m.max(axis=0), color=color, alpha=0.15, lw=0)
        ax_m.plot(t_fut, m.mean(axis=0), color=color, lw=1.5, label=f"{label} (members' range)")
        if c == plan.chosen:
            break
    ax_m.set_title("predicted metric")
    ax_m.set_xlabel("run log point")
    ax_m.legend(fontsize=8)

    rows = plan.table(top)
    y = np.arange(len(rows))[::-1]
    means = np.array([r["mean"] for r in rows])
    sds = np.array([r["sd"] for r in rows])
    colors = [
        _PLAN
        if r["name"] == plan.chosen_name
        else (_OBSERVED if r["name"] == "default" else _CHOSEN)
        for r in rows
    ]
    ax_c.errorbar(means, y, xerr=plan.kappa * sds, fmt="none", ecolor=colors, lw=1.2)
    ax_c.scatter(means, y, c=colors, s=18, zorder=3)
    ax_c.axvline(plan.mean[0] + plan.margin, color=_OBSERVED, ls=":", lw=0.8,
                 label="default mean + margin")  # fmt: skip
    ax_c.set_yticks(y, [r["name"] for r in rows], fontsize=7)
    ax_c.set_title(f"final metric, mean +/- {plan.kappa:g} sd (top {len(rows)} bounds)")
    ax_c.legend(fontsize=8)
    for ax in (ax_lr, ax_m, ax_c):
        ax.grid(alpha=0.3)
    suptitle(fig, plan.summary() if title is None else title, fontsize=9)
    path = os.fspath(path)
    fig.savefig(path, dpi=110)
    return path


def suptitle(fig, text: str, fontsize: float = 10):
    """`fig.suptitle(text)` wrapped to the figure's width (its constrained layout makes room
    for the lines): a plan's summary line is longer than the figure is wide."""
    import textwrap

    chars = max(20, int(fig.get_figwidth() * 72 / (0.6 * fontsize)))  # ~0.6 em per char
    lines = [part for line in str(text).splitlines() for part in textwrap.wrap(line, chars)]
    return fig.suptitle("\n".join(lines) or str(text), fontsize=fontsize)
