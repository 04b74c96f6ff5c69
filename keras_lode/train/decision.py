"""Offline decision skill of a controlled ensemble, on runs it never saw (NumPy only).

A planner asks "what final metric will this run reach if the LR follows this path from
here?". These functions answer how well a `ControlledODE` answers it on held-out runs:

* `decision_skill`: from windows cut at 25/50/75% of each held-out run, given that run's
  *actual* future LR path: the error of the predicted final metric against two naive
  predictors (`family_mean`: the mean final metric of the training runs of the same
  schedule family; `hold_last`: the metric at the cut) and the sweep's per-config mean;
  the Spearman rank correlation of predicted vs actual finals across runs cut at the same
  point; the coverage of mean +/- 2 sd.
* `calibrate`: split-conformal scaling of the ensemble's spread so that mean +/- 2 sd
  covers `level` of held-out finals; the coverage it reports is cross-fitted (calibrated
  on one half of the runs, measured on the other).
* `counterfactual_skill`: on switched runs (a run re-run from the same seed that changes
  schedule at a cut point), the ranking of the true continuations from one window and the
  regret of picking one, against picking the sweep's best config.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "DEFAULT_FRACTIONS",
    "calibrate",
    "calibrated_sd",
    "fit_spread_calibration",
    "counterfactual_skill",
    "decision_skill",
    "format_skill",
    "spearman",
]

DEFAULT_FRACTIONS = (0.25, 0.5, 0.75)


def spearman(a, b) -> float:
    """Spearman rank correlation (average ranks for ties); NaN for < 3 points or no spread."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.size < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan
    ra, rb = _ranks(a), _ranks(b)
    return float(np.corrcoef(ra, rb)[0, 1])


def _ranks(x):
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(x.size)
    ranks[order] = np.arange(x.size)
    for v in np.unique(x):  # average the ranks of ties
        tie = x == v
        if tie.sum() > 1:
            ranks[tie] = ranks[tie].mean()
    return ranks


def _cut(model, run, fraction):
    y = np.asarray(run.channels(), dtype=np.float64)
    k, w = y.shape[0], model.window
    n = max(int(round(fraction * (k - 1))), w - 1)
    if n >= k - 1:
        return None
    tw = np.arange(n - w + 1, n + 1, dtype=np.float64)
    return n, tw, y[n - w + 1 : n + 1], np.arange(n, k, dtype=np.float64), y


def _finals(model, runs, fractions):
    """Per (run, fraction): member predictions of the final metric and the actual one."""
    out = []
    for i, run in enumerate(runs):
        for f in fractions:
            cut = _cut(model, run, f)
            if cut is None:
                continue
            n, tw, window, t, y = cut
            pred = model.predict(tw, window, t, y[n:, 1][None])  # (M, 1, T, 2)
            out.append(
                {
                    "run": i,
                    "fraction": f,
                    "members": pred[:, 0, -1, 1],
                    "actual": float(y[-1, 2]),
                    "at_cut": float(y[n, 2]),
                }
            )
    return out


def _config_key(run):
    return (str(run.meta.get("schedule")), float(run.meta.get("peak_lr") or math.nan))


def _train_finals(train_runs):
    """Mean final metric of the unswitched training runs per family and per config."""
    by_family, by_config, every = {}, {}, []
    for r in train_runs:
        if r.meta.get("switch"):
            continue
        final = float(np.asarray(r.channels())[-1, 2])
        if not math.isfinite(final):
            continue
        by_family.setdefault(str(r.meta.get("schedule")), []).append(final)
        by_config.setdefault(_config_key(r), []).append(final)
        every.append(final)
    overall = float(np.mean(every)) if every else math.nan
    return (
        {k: float(np.mean(v)) for k, v in by_family.items()},
        {k: float(np.mean(v)) for k, v in by_config.items()},
        overall,
    )


def _target_config(run):
    sw = run.meta.get("switch") or {}
    if sw:
        return (str(sw.get("to_schedule")), float(sw.get("to_peak_lr")))
    return _config_key(run)


def calibrated_sd(sd, cal):
    """The calibrated spread `sd_scale * sqrt(sd**2 + sd_floor**2)`."""
    return cal["sd_scale"] * np.sqrt(sd**2 + cal["sd_floor"] ** 2)


def fit_spread_calibration(residuals, sd, level):
    """`{"sd_scale", "sd_floor"}` so that |residual| <= 2 calibrated sd on `level` of the
    cases (split-conformal; the floor is the median raw sd)."""
    floor = float(np.median(sd)) if np.median(sd) > 0 else 1e-6
    z = np.abs(residuals) / np.sqrt(sd**2 + floor**2)
    n = z.size
    # Split-conformal quantile: the ceil((n + 1) level)-th smallest score.
    k = min(max(int(math.ceil((n + 1) * level)) - 1, 0), n - 1)
    q = float(np.sort(z)[k])
    return {"sd_scale": max(q / 2.0, 1e-6), "sd_floor": floor}


def calibrate(model, heldout_runs, *, level=0.95, fractions=DEFAULT_FRACTIONS) -> dict:
    """Fits `{"sd_scale", "sd_floor"}` so mean +/- 2 sd covers `level` of held-out finals.

    Returns the calibration plus `coverage_2sd_raw` (the uncalibrated spread) and
    `coverage_2sd_calibrated` (cross-fitted over two halves of the runs), `n` cases.
    """
    cases = _finals(model, heldout_runs, fractions)
    if len(cases) < 4:
        return {
            "sd_scale": 1.0,
            "sd_floor": 0.0,
            "n": len(cases),
            "level": level,
            "coverage_2sd_raw": math.nan,
            "coverage_2sd_calibrated": math.nan,
            "note": "too few held-out cases to calibrate; the raw spread is used",
        }
    mean = np.array([c["members"].mean() for c in cases])
    sd = np.array([c["members"].std(ddof=1) if c["members"].size > 1 else 0.0 for c in cases])
    actual = np.array([c["actual"] for c in cases])
    res = actual - mean
    fold = np.array([c["run"] % 2 for c in cases])
    covered = np.zeros(len(cases), dtype=bool)
    for f in (0, 1):
        fit_on, test_on = fold != f, fold == f
        if fit_on.sum() == 0 or test_on.sum() == 0:
            continue
        cal = fit_spread_calibration(res[fit_on], sd[fit_on], level)
        covered[test_on] = np.abs(res[test_on]) <= 2 * calibrated_sd(sd[test_on], cal)
    cal = fit_spread_calibration(res, sd, level)
    return {
        **cal,
        "n": len(cases),
        "level": level,
        "coverage_2sd_raw": float(np.mean(np.abs(res) <= 2 * sd)),
        "coverage_2sd_calibrated": float(np.mean(covered)),
        "member_sd_median": float(np.median(sd)),
        "abs_error_median": float(np.median(np.abs(res))),
    }


def decision_skill(
    model, heldout_runs, train_runs, *, calibration=None, fractions=DEFAULT_FRACTIONS
) -> dict:
    """Final-metric error, rank correlation and coverage on held-out runs (module docstring).

    Errors are RMSEs in the metric's units; `rank_spearman` maps each predictor to its
    rank correlation per cut fraction (and the mean over fractions).
    """
    by_family, by_config, overall = _train_finals(train_runs)
    cases = _finals(model, heldout_runs, fractions)
    preds = {"lode": [], "family_mean": [], "hold_last": [], "config_mean": []}
    actual, fracs = [], []
    for c in cases:
        run = heldout_runs[c["run"]]
        preds["lode"].append(float(c["members"].mean()))
        preds["family_mean"].append(by_family.get(str(run.meta.get("schedule")), overall))
        preds["hold_last"].append(c["at_cut"])
        preds["config_mean"].append(by_config.get(_target_config(run), math.nan))
        actual.append(c["actual"])
        fracs.append(c["fraction"])
    actual, fracs = np.array(actual), np.array(fracs)
    error, rank = {}, {}
    for name, p in preds.items():
        p = np.array(p)
        ok = np.isfinite(p)
        error[name] = float(np.sqrt(np.mean((p[ok] - actual[ok]) ** 2))) if ok.any() else math.nan
        per = {}
        for f in fractions:
            sel = ok & (fracs == f)
            per[str(f)] = spearman(p[sel], actual[sel])
        vals = [v for v in per.values() if math.isfinite(v)]
        per["mean"] = float(np.mean(vals)) if vals else math.nan
        rank[name] = per
    out = {
        "n_runs": len(heldout_runs),
        "n_cases": len(cases),
        "fractions": list(fractions),
        "final_metric_error": error,
        "rank_spearman": rank,
    }
    if calibration is not None:
        out["coverage_2sd"] = {
            "raw": calibration.get("coverage_2sd_raw"),
            "calibrated": calibration.get("coverage_2sd_calibrated"),
        }
    return out


def counterfactual_skill(model, heldout_runs, train_runs, *, kappa=1.0) -> dict:
    """Ranking and regret among true continuations from one window (switched runs).

    A group is a held-out base run and the held-out switched runs re-run from its seed
    that change schedule at the same point (`meta["switch"]` names the base run and the
    point); all share the window up to the switch. For each group the ensemble predicts
    every continuation's final metric from that window at once.

    Returns per-group details and means: `spearman` (ensemble vs config-mean predictor),
    `regret` of the pick by ensemble mean, by mean - kappa sd, by the sweep-best config,
    and of a random pick, in the metric's units.
    """
    _, by_config, _ = _train_finals(train_runs)
    by_id = {r.run_id: r for r in heldout_runs if not r.meta.get("switch")}
    groups = {}
    for r in heldout_runs:
        sw = r.meta.get("switch")
        if sw and sw.get("base") in by_id:
            groups.setdefault((sw["base"], int(sw["at_point"])), []).append(r)
    details = []
    for (base_id, n), switched in sorted(groups.items()):
        base = by_id[base_id]
        conts = [base, *switched]
        ys = [np.asarray(r.channels(), dtype=np.float64) for r in conts]
        if any(y.shape != ys[0].shape or not np.all(np.isfinite(y)) for y in ys):
            continue
        w = model.window
        if n < w - 1 or n >= ys[0].shape[0] - 1:
            continue
        tw = np.arange(n - w + 1, n + 1, dtype=np.float64)
        t = np.arange(n, ys[0].shape[0], dtype=np.float64)
        paths = np.stack([y[n:, 1] for y in ys])
        pred = model.predict(tw, ys[0][n - w + 1 : n + 1], t, paths)[:, :, -1, 1]  # (M, C)
        mean, sd = model.spread(pred)
        actual = np.array([y[-1, 2] for y in ys])
        cfg = np.array([by_config.get(_target_config(r), math.nan) for r in conts])
        # In the metric's good direction: a minimized metric (model.mode "min") is negated,
        # so that "best" and "regret" read the same for both (regret >= 0).
        sign = 1.0 if getattr(model, "mode", "max") == "max" else -1.0
        mean, actual, cfg = sign * mean, sign * actual, sign * cfg
        best = actual.max()
        pick_cfg = int(np.nanargmax(cfg)) if np.isfinite(cfg).any() else 0
        details.append(
            {
                "base": base_id,
                "at_point": n,
                "continuations": len(conts),
                "spearman_lode": spearman(mean, actual),
                "spearman_config_mean": spearman(cfg, actual)
                if np.isfinite(cfg).all()
                else math.nan,
                "regret_lode_mean": float(best - actual[int(np.argmax(mean))]),
                "regret_lode_lcb": float(best - actual[int(np.argmax(mean - kappa * sd))]),
                "regret_sweep_best": float(best - actual[pick_cfg]),
                "regret_random": float(best - actual.mean()),
            }
        )

    def avg(key):
        v = [d[key] for d in details if math.isfinite(d[key])]
        return float(np.mean(v)) if v else math.nan

    keys = (
        "spearman_lode",
        "spearman_config_mean",
        "regret_lode_mean",
        "regret_lode_lcb",
        "regret_sweep_best",
        "regret_random",
    )
    return {"groups": len(details), "kappa": kappa, **{k: avg(k) for k in keys}, "details": details}


def skill_verdict(skill: dict) -> str:
    """One line: does the model predict held-out final metrics better than the sweep's own
    per-config means? If not, its plans have nothing to go on that the sweep lacks."""
    e = skill["final_metric_error"]
    lode, mean = e["lode"], e["config_mean"]
    if not lode < mean:  # NaN included
        return (
            f"verdict: NO BETTER than the sweep's per-config means (final-metric RMSE "
            f"{lode:.4f} vs {mean:.4f}): this model does not know more than the sweep's "
            "averages, so do not expect its plans to beat the sweep's best config; sweep "
            "more seeds or add switched runs (keras-lode sweep --switched N) and retrain."
        )
    return (
        f"verdict: better than the sweep's per-config means (final-metric RMSE {lode:.4f} vs "
        f"{mean:.4f}, {1 - lode / mean:.0%} lower)."
    )


def format_skill(skill: dict, calibration: dict | None = None) -> str:
    """A few lines for the console: errors, rank correlations, coverage."""
    e, r = skill["final_metric_error"], skill["rank_spearman"]
    names = ("lode", "config_mean", "family_mean", "hold_last")
    lines = [
        f"Decision skill on {skill['n_runs']} held-out runs ({skill['n_cases']} cuts at "
        f"{', '.join(f'{f:.0%}' for f in skill['fractions'])}):",
        "  final-metric RMSE: " + ", ".join(f"{n} {e[n]:.4f}" for n in names),
        "  Spearman (mean over cuts): " + ", ".join(f"{n} {r[n]['mean']:.2f}" for n in names),
    ]
    lines.append("  " + skill_verdict(skill))
    if calibration is not None:
        lines.append(
            f"  coverage of mean +/- 2 sd: raw {calibration['coverage_2sd_raw']:.2f}, "
            f"calibrated {calibration['coverage_2sd_calibrated']:.2f} (cross-fitted; "
            f"sd_scale {calibration['sd_scale']:.2f}, sd_floor {calibration['sd_floor']:.4f})"
        )
    return "\n".join(lines)
