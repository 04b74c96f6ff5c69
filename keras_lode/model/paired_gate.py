"""When a paired calibration may switch: its gate, by the kind of start the run is in.

A paired calibration (`planner.paired`, `keras_lode.train.counterfactual`) predicts each
candidate continuation's gain over the default and switches on the best lower bound. Whether
it may switch at all is decided on held-out branch groups, never in sample:

- `switch: false` — no rule of the grid realized a gain where it was not fitted: never.
- `starts` — the kinds of start (`START_KINDS`, `start_kind`) on which the cross-fitted
  rule gained on *every* held-out fold (seed or task) that had groups of that kind, with at
  least two such folds (`allowed_starts`). A run
  of another kind keeps its default. A pretrained model learns, for example, that raising
  a run stuck at a constant LR pays on every task it was tested on, while second-guessing a
  schedule someone already tuned does not.
- `trusted: false` — the calibrated spread did not cover the held-out gains as often as its
  target. That only matters when the rule uses the spread (`kappa > 0`, the kappa the
  planner uses: the calibration's unless the call overrides it). A calibration with
  `starts` (gated on realized gains) may switch untrusted when `kappa == 0`; one without
  (older files) never switches untrusted, as before.

NumPy only; the planner and the calibration share these two functions.
"""

from __future__ import annotations

import numpy as np

__all__ = ["START_KINDS", "allowed_starts", "gate_reason", "start_kind"]

#: The kinds of start a decision is made from: the default continuation holds its LR
#: (a constant-LR run, or a plateau the planner already switched to) or changes it.
START_KINDS = ("constant", "schedule")


def start_kind(default_path) -> str:
    """`"constant"` when the default continuation's LRs stay within 1% of each other (or
    there are none), else `"schedule"`."""
    path = np.asarray(default_path, dtype=np.float64)
    if path.size == 0:
        return "constant"
    return "constant" if float(path.max()) <= 1.01 * float(path.min()) else "schedule"


def gate_reason(paired: dict, start: str | None = None, kappa=None) -> str | None:
    """None when `paired` may switch from a start of kind `start` (None: unknown, only the
    calibration's own flags count) with the rule's `kappa` (None: the calibration's);
    else why the planner keeps the default."""
    starts = paired.get("starts")
    kappa = paired.get("kappa", 0.0) if kappa is None else kappa
    if not paired.get("trusted", True) and (starts is None or float(kappa) > 0):
        return (
            "the paired calibration did not reach its coverage on held-out branch groups "
            f"({paired.get('coverage', float('nan')):.2f} < {paired.get('level', 0.85):.2f}): "
            "following the default"
        )
    if not paired.get("switch", True):
        return (
            "on the branch groups it was calibrated on, no switching rule gained over keeping "
            "the default, held out or in sample (planner.paired.switch is false): following "
            "the default"
        )
    if starts is not None and start is not None and start not in starts:
        allowed = ", ".join(starts) or "none"
        now = "a constant LR" if start == "constant" else "a changing schedule"
        return (
            f"the run follows {now}, and the calibration's rule did not gain from such "
            f"starts on every held-out fold (it may switch from: {allowed}): following the "
            "default"
        )
    return None


def allowed_starts(per_fold: list[dict]) -> list[str]:
    """The kinds of start whose held-out groups the cross-fitted rule gained on in every
    fold that had any (at least two such folds): a calibration's `starts`. `per_fold`:
    each fold's `{"by_start": {kind: realized gain}}` (`fit_paired`'s `folds`)."""
    out = []
    for kind in START_KINDS:
        gains = [f["by_start"][kind] for f in per_fold if kind in f.get("by_start", {})]
        if len(gains) >= 2 and min(gains) > 1e-9:
            out.append(kind)
    return out
