"""Statistics of a comparison: per-method summaries, paired differences, the text table.

The results are the dicts of `keras_lode.experiments.train_one`; a method's score is its
test metric at the epoch of best validation (`"test_at_best_val"`, the paper's rule) or at
the end (`"test_at_end"`).
"""

from __future__ import annotations

import math

import numpy as np

# Two-sided 95% Student-t quantiles; a table keeps scipy out of the dependencies.
_T_975 = {
    1: 12.706,
    2: 4.303,
    3: 3.182,
    4: 2.776,
    5: 2.571,
    6: 2.447,
    7: 2.365,
    8: 2.306,
    9: 2.262,
    10: 2.228,
    11: 2.201,
    12: 2.179,
    13: 2.160,
    14: 2.145,
    15: 2.131,
    16: 2.120,
    17: 2.110,
    18: 2.101,
    19: 2.093,
    20: 2.086,
    25: 2.060,
    30: 2.042,
    40: 2.021,
    60: 2.000,
    120: 1.980,
}


# One-sided 80% Student-t quantiles (the power term of a minimum detectable effect).
_T_80 = {1: 1.376, 2: 1.061, 3: 0.978, 4: 0.941, 5: 0.920, 6: 0.906, 7: 0.896, 8: 0.889,
         9: 0.883, 10: 0.879, 12: 0.873, 15: 0.866, 20: 0.860, 30: 0.854, 60: 0.848,
         120: 0.845}  # fmt: skip


def _table_quantile(table: dict, df: int, limit: float) -> float:
    if df <= 0:
        return float("nan")
    for k in sorted(table):
        if df <= k:
            return table[k]
    return limit


def minimum_detectable_effect(sd: float, n: int) -> float:
    """The paired mean difference a two-sided 5% t-test detects with 80% power.

    `(t_0.975 + t_0.80) * sd / sqrt(n)` with `n - 1` degrees of freedom (the usual
    approximation), for `n` pairs whose differences have standard deviation `sd`.
    """
    if n < 2 or not math.isfinite(sd):
        return float("nan")
    return (t_quantile_975(n - 1) + _table_quantile(_T_80, n - 1, 0.842)) * sd / math.sqrt(n)


def t_quantile_975(df: int) -> float:
    """The two-sided 95% Student-t quantile for `df` degrees of freedom (from a table: the
    next tabulated df at or above `df`, 1.960 past 120; NaN for `df <= 0`)."""
    return _table_quantile(_T_975, df, 1.960)


def paired_difference(a, b) -> dict:
    """Mean paired difference `a - b` with a 95% t-interval (pairs matched by position).

    Returns `{"mean", "std", "n", "ci95", "mde80"}`; `mde80` is the smallest true mean
    difference these `n` pairs would detect at 80% power (`minimum_detectable_effect`).
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError(
            f"paired_difference needs two 1-D arrays of equal non-zero length; got shapes "
            f"{a.shape} and {b.shape}."
        )
    d = a - b
    n = len(d)
    mean = float(d.mean())
    if n < 2:
        nan = float("nan")
        return {"mean": mean, "std": nan, "n": n, "ci95": [nan, nan], "mde80": nan}
    sd = float(d.std(ddof=1))
    half = t_quantile_975(n - 1) * sd / math.sqrt(n)
    return {
        "mean": mean,
        "std": sd,
        "n": n,
        "ci95": [mean - half, mean + half],
        "mde80": minimum_detectable_effect(sd, n),
    }


def summarize(
    results: list[dict],
    reference: str | None = None,
    key="test_at_best_val",
    baseline: str | None = None,
):
    """Per-method mean/std of `key` and the paired difference of every method vs `reference`.

    Args:
        results: dicts from `train_one`.
        reference: method label to compare against (e.g. `"lode"`).
        key: `"test_at_best_val"` or `"test_at_end"`.
        baseline: method label of the paired difference's baseline (for the LODE, the
            baseline it warmed up on: the two runs differ only in what the LODE planned);
            None: the best other method by mean. A baseline not in `results` gives no
            paired difference.

    Returns:
        `{"rows": [...], "paired": {...} or None}`; rows sorted by mean, best first.
    """
    by_method: dict[str, dict[int, float]] = {}
    for r in results:
        by_method.setdefault(r["method"], {})[r["seed"]] = r[key]
    rows = []
    for m, per_seed in by_method.items():
        v = np.array(list(per_seed.values()), dtype=float)
        rows.append(
            {
                "method": m,
                "n": len(v),
                "mean": float(v.mean()),
                "std": float(v.std(ddof=1)) if len(v) > 1 else float("nan"),
            }
        )
    rows.sort(key=lambda r: -r["mean"])
    paired = None
    if reference is not None and reference in by_method:
        others = [r["method"] for r in rows if r["method"] != reference]
        if baseline is not None:
            others = [baseline] if baseline in others else []
        if others:
            base = others[0]
            seeds = sorted(set(by_method[reference]) & set(by_method[base]))
            if seeds:
                paired = paired_difference(
                    [by_method[reference][s] for s in seeds],
                    [by_method[base][s] for s in seeds],
                )
                paired.update({"reference": reference, "baseline": base, "key": key})
    return {"key": key, "rows": rows, "paired": paired}


def format_table(
    results: list[dict], reference: str | None = None, baseline: str | None = None
) -> str:
    """A plain-text table of the test metric (at best validation and at the end) per method,
    and the paired difference `reference - baseline` (`summarize`).

    Accuracy is shown in percent and differences in points; another metric as it is, with
    its direction (`mode` "min": lower is better) said in the paired line.
    """
    a = summarize(results, reference, "test_at_best_val", baseline)
    b = {r["method"]: r for r in summarize(results, reference, "test_at_end")["rows"]}
    wall = {}
    for r in results:
        wall.setdefault(r["method"], []).append(r["wall_s"])
    percent = all(r.get("accuracy", True) for r in results)
    k, unit = (100, " (%)") if percent else (1, "")
    lines = [
        f"{'method':<20} {'n':>3}  {'test@best-val' + unit:>18}  {'test@end' + unit:>15}"
        f"  {'s/run':>6}",
    ]
    for r in a["rows"]:
        e = b[r["method"]]
        lines.append(
            f"{r['method']:<20} {r['n']:>3}  {k * r['mean']:>9.2f} +/- {_num(r['std'], k):>5}"
            f"  {k * e['mean']:>6.2f} +/- {_num(e['std'], k):>5}"
            f"  {np.median(wall[r['method']]):>6.1f}"
        )
    p = a["paired"]
    if p is not None:
        lo, hi = p["ci95"]
        lower = any(r.get("mode") == "min" for r in results)
        lines.append(
            f"paired {p['reference']} - {p['baseline']} (test@best-val, n={p['n']}): "
            f"{k * p['mean']:+.2f}{' points' if percent else ''}, 95% CI "
            f"[{_num(lo, k, sign=True)}, {_num(hi, k, sign=True)}]"
            f"{' (lower is better)' if lower else ''}"
        )
    return "\n".join(lines)


def lode_results(results: list[dict]) -> list[dict]:
    """The results of LODE runs: a matched baseline arm carries the LODE's LR mechanism
    with planning off (its `lode` record), but is no LODE."""
    return [r for r in results if r.get("lode") and "lode" in str(r.get("method", ""))]


def format_lode_runs(results: list[dict], warmup: str | None = None) -> str:
    """Per seed, what the LODE did: whether and where it switched, or why it never planned.

    Args:
        results: dicts from `train_one` (those of the `lode` method are read).
        warmup: label of the schedule the LODE warmed up on (e.g. `"wsd@6e-03"`).
    """
    warm = warmup or "its warm-up schedule"
    lines = []
    for r in sorted(lode_results(results), key=lambda r: r["seed"]):
        s = r["lode"]
        plans, fallbacks = int(s.get("plans") or 0), int(s.get("fallbacks") or 0)
        if plans == 0:
            what = (
                f"never planned (its window of {s.get('window')} log points is not shorter "
                f"than the run's {s.get('total_points')}): it followed {warm} throughout"
            )
        elif "switches" in s and not s["switches"]:
            what = f"never switched: its {plans} plan(s) all kept {warm}"
        elif "switches" in s:
            where = ", ".join(f"log point {n} to {name}" for n, name in s["switches"].items())
            what = f"switched {len(s['switches'])} time(s) after {warm}: at {where}"
        else:
            what = f"followed its own plans after {warm} ({plans} plans, {fallbacks} fell back)"
        lines.append(f"  seed {r['seed']}: {what}")
    return "\n".join(["what the LODE did:", *lines]) if lines else ""


def _num(x, k=100, sign=False):
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{k * x:+.2f}" if sign else f"{k * x:.2f}"
