"""The results of a planning call: `Plan` (paper planner) and `ControlPlan` (control planner)."""

from __future__ import annotations

import dataclasses

import numpy as np

__all__ = ["ControlPlan", "Plan"]


@dataclasses.dataclass
class Plan:
    """The result of one planning call.

    Attributes:
        lr: LR for each remaining log point `position + 1 .. total_points - 1`; finite,
            positive and inside `lr_range`.
        accepted: number of samples with at least one anchor (and finite futures).
        fallback: True when nothing was accepted and `lr` is the current plan (or, without
            one, the current LR held).
        rewards: (S + 1,) predicted metric of each sample at its anchor's reward point;
            NaN for rejected samples.
        anchors: (S + 1,) anchor index `j` (run log points) of each sample; -1 if rejected.
        candidates: (S + 1, M, C) decoded trajectories in raw units; `candidates[s, m]` is
            sample `s` at run log point `m` (model time `m * time_scale`).
        chosen: indices of the top-k accepted samples by reward, best first.
        seed: the seed of this call's noise; `plan(..., seed=plan.seed)` reproduces it.
        position: log point `n` at which the plan was made.
        total_points: number of log points `K` of the run.
        reward_at: run log point at which rewards are read (default `total_points`).
        lr_range: (low, high) clipping range that was applied.
        anchor_rule: `"max_lr"` or `"nearest"`.
        loss_band: (low, high) predicted-loss interval that anchors had to fall in.
        time_scale: model time per run log point (1.0 unless the run was mapped).
        window: the observed (W, 3) window the plan was made from.
        reason: why the plan fell back (empty when it did not).
        timings: seconds spent in `encode`, `decode` and `selection`.
    """

    lr: np.ndarray
    accepted: int
    fallback: bool
    rewards: np.ndarray
    anchors: np.ndarray
    candidates: np.ndarray
    chosen: np.ndarray
    seed: int
    position: int
    total_points: int
    reward_at: int
    lr_range: tuple[float, float]
    anchor_rule: str
    loss_band: tuple[float, float]
    time_scale: float
    window: np.ndarray
    reason: str = ""
    timings: dict[str, float] = dataclasses.field(default_factory=dict)

    @property
    def points(self) -> np.ndarray:
        """Run log points that `lr` covers: `position + 1 .. total_points - 1`."""
        return np.arange(self.position + 1, self.total_points)

    @property
    def accepted_mask(self) -> np.ndarray:
        """(S + 1,) bool: which samples were accepted."""
        return self.anchors >= 0

    def summary(self) -> str:
        """One line for verbose output, e.g. in the callback's replan log."""
        head = (
            f"LODE plan at point {self.position}/{self.total_points}: "
            f"{self.accepted}/{len(self.anchors)} futures accepted"
        )
        if self.fallback:
            return f"{head}; fallback ({self.reason})"
        if len(self.lr) == 0:
            return f"{head}; no points left"
        top = self.rewards[self.chosen]
        return (
            f"{head}; top-{len(self.chosen)} reward {np.mean(top):.4g} "
            f"(best {top[0]:.4g}); lr {self.lr[0]:.3g} -> {self.lr[-1]:.3g} "
            f"[{self.anchor_rule}, seed {self.seed}]"
        )


@dataclasses.dataclass
class ControlPlan:
    """The result of one control-planning call.

    Attributes:
        lr: (R,) LR for each remaining log point `position + 1 .. total_points - 1`.
        names: (C,) candidate names; entry 0 is `"default"`.
        paths: (C, R) each candidate's LRs.
        mean, sd: (C,) predicted final metric (ensemble mean) and its calibrated sd.
        bound: (C,) the rule's score (-inf for a non-finite prediction): the absolute
            rule's `mean - kappa * sd`; the paired rule's lower bound of the gain,
            `gain - kappa * gain_sd` (0 for the default).
        rule: `"paired"` or `"absolute"` (see `keras_lode.planning.control`).
        gain, gain_sd: (C,) the paired rule's predicted gain over the default (member by
            member, then averaged) and its calibrated sd; None under the absolute rule.
        chosen: index of the candidate `lr` follows (0: the default).
        switched: True when the plan left the default.
        reason: why it switched or stayed, in words.
        predictions: (M, C, T, 2) raw `[loss, metric]` per member, candidate and point
            `position .. total_points - 1`.
        rejected: `{name: why}` of library entries outside the LR range or trust region.
        trust: (lowest, highest) ln-LR jump allowed from the current state.
        kappa, margin: the decision rule's settings.
        position, total_points: the log point `n` and the run's length `K`.
        lr_range: (low, high) of the training runs.
        time_scale: model log points per run log point (1.0 unless mapped).
        window: the (W, 3) observed window.
        fallback: True when no prediction was usable and the plan is the default.
        timings: seconds in `library`, `predict` and `selection`.
    """

    lr: np.ndarray
    names: list[str]
    paths: np.ndarray
    mean: np.ndarray
    sd: np.ndarray
    bound: np.ndarray
    chosen: int
    switched: bool
    reason: str
    predictions: np.ndarray
    rejected: dict[str, str]
    trust: tuple[float, float]
    kappa: float
    margin: float
    position: int
    total_points: int
    lr_range: tuple[float, float]
    time_scale: float
    window: np.ndarray
    fallback: bool = False
    timings: dict[str, float] = dataclasses.field(default_factory=dict)
    rule: str = "absolute"
    gain: np.ndarray | None = None
    gain_sd: np.ndarray | None = None

    kind = "controlled"

    @property
    def points(self) -> np.ndarray:
        """Run log points that `lr` covers: `position + 1 .. total_points - 1`."""
        return np.arange(self.position + 1, self.total_points)

    @property
    def chosen_name(self) -> str:
        return self.names[self.chosen]

    def table(self, top: int | None = None) -> list[dict]:
        """Candidates as rows `{name, mean, sd, bound}` (and `gain`, `gain_sd` under the
        paired rule), best bound first."""
        order = np.argsort(-np.nan_to_num(self.bound, nan=-np.inf), kind="stable")
        rows = []
        for i in order[:top]:
            row = {"name": self.names[i], "mean": float(self.mean[i]), "sd": float(self.sd[i])}
            if self.gain is not None:
                row.update(gain=float(self.gain[i]), gain_sd=float(self.gain_sd[i]))
            row["bound"] = float(self.bound[i])
            rows.append(row)
        return rows

    def summary(self) -> str:
        """One line for verbose output, e.g. in the callback's replan log."""
        head = (
            f"LODE control plan at point {self.position}/{self.total_points}: "
            f"{len(self.names)} candidates"
        )
        if self.rejected:
            head += f" ({len(self.rejected)} outside range, trust region or ceiling)"
        d = f"default {self.mean[0]:.4g} +/- {self.sd[0]:.2g}"
        if self.gain is not None and self.switched:
            d += f", gain {self.gain[self.chosen]:+.3g} +/- {self.gain_sd[self.chosen]:.2g}"
        verb = "switched to" if self.switched else "kept"
        return (
            f"{head}; {d}; {verb} {self.chosen_name!r} ({self.reason}); "
            f"lr {self.lr[0]:.3g} -> {self.lr[-1]:.3g}"
        )
