"""The best configs of a sweep: per schedule family, the peak LR with the best validation metric.

A config is a (family, peak LR) of the grid; its score is the mean over seeds of the run's
final validation metric (the last finite one), over the complete grid runs only: a switched
run (`Run.kind == "switched"`) follows another schedule after its switch, so it is no run of
its base config. The best is the highest metric, or the lowest for runs recorded with
`mode="min"` (`keras_lode.runs.runs_mode`). `keras-lode sweep` prints these at its end, and
`keras-lode compare --runs` takes its baselines from them.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["best_per_family", "branch_bases", "config_scores", "final_validation", "format_best"]


def final_validation(run) -> float:
    """The run's last finite validation metric (NaN when it has none)."""
    m = np.asarray(run.metric, dtype=float)
    m = m[np.isfinite(m)]
    return float(m[-1]) if len(m) else float("nan")


def best_per_family(runs) -> list[dict]:
    """Per family, the config of the complete grid runs with the best mean final validation.

    Returns:
        Dicts `{"family", "peak_lr", "val", "n", "label"}` (label as `compare --methods`
        takes it, e.g. `"wsd@0.006"`), best first.
    """
    sign, scores = config_scores(runs)
    best: dict[str, dict] = {}
    for (family, peak), vals in scores.items():
        row = {"family": family, "peak_lr": peak, "val": float(np.mean(vals)), "n": len(vals)}
        if family not in best or sign * row["val"] > sign * best[family]["val"]:
            best[family] = row
    rows = sorted(best.values(), key=lambda r: -sign * r["val"])
    for row in rows:
        row["label"] = f"{row['family']}@{row['peak_lr']:g}"
    return rows


def config_scores(runs) -> tuple[float, dict[tuple[str, float], list[float]]]:
    """The metric's sign (1: higher is better) and the final validation metrics per config
    of the complete grid runs."""
    from keras_lode.runs import runs_mode

    sign = 1.0 if runs_mode([r for r in runs if r.kind == "grid"]) == "max" else -1.0
    scores: dict[tuple[str, float], list[float]] = {}
    for r in runs:
        family, peak = r.meta.get("schedule"), r.meta.get("peak_lr")
        if r.kind != "grid" or r.status != "complete" or family is None or peak is None:
            continue
        v = final_validation(r)
        if math.isfinite(v):
            scores.setdefault((str(family), float(peak)), []).append(v)
    return sign, scores


def branch_bases(runs) -> tuple[list[tuple[str, float]], tuple[float, float]]:
    """The configs a sweep's branch trials start from, and the LR range they may take.

    Bases: the best config by validation (the warm-up a user of the sweep starts from),
    then the constant-LR configs, best first (the warm-ups users without a sweep start
    from). The range is the LRs the complete grid runs visited: the range a LODE trained
    on them plans in.

    Returns:
        `(bases, (low, high))`; no bases (and a NaN range) without a complete grid run.
    """
    sign, scores = config_scores(runs)
    if not scores:
        return [], (math.nan, math.nan)
    ranked = sorted(scores, key=lambda c: -sign * float(np.mean(scores[c])))
    bases = ranked[:1] + [c for c in ranked[1:] if c[0] == "constant"]
    lrs = np.concatenate([np.asarray(r.lr, dtype=float) for r in runs
                          if r.kind == "grid" and r.status == "complete"])  # fmt: skip
    lrs = lrs[np.isfinite(lrs) & (lrs > 0)]
    return bases, (float(lrs.min()), float(lrs.max()))


def format_best(rows, metric_name: str = "validation metric") -> str:
    """Lines for the console: the best config per family, best first."""
    if not rows:
        return "no complete grid run with a finite validation metric: no best config to name"
    lines = [f"Best config per family (mean final {metric_name} over seeds, grid runs):"]
    for i, r in enumerate(rows):
        mark = "  <- best" if i == 0 else ""
        lines.append(
            f"  {r['family']:<9} peak LR {r['peak_lr']:<8g} {r['val']:.4f} "
            f"({r['n']} seed{'s' if r['n'] != 1 else ''}){mark}"
        )
    return "\n".join(lines)
