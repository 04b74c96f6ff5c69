"""`keras-lode plan MODEL RUN --at N`: the plan a model would make for a recorded run.

Reads the run's window of W log points ending at point N, plans the rest of the run with
`keras_lode.plan`, and prints the summary line and the planned LR next to the LR the run
actually used (one row per epoch by default); optionally saves a figure and the plan as
JSON. With a controlled model the default candidate is the LR the run actually followed
from N on, and the best-scored candidates are listed with their mean, sd and bound.
Nothing heavy is imported at module level.
"""

from __future__ import annotations

import argparse
import sys
import warnings

HELP = "print (and plot) the plan a LODE model would make for a recorded run at a log point"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL", help="LODE model file (.npz)")
    parser.add_argument("run", metavar="RUN", help="run file (.run.csv) or a directory of runs")
    parser.add_argument(
        "--at", type=int, required=True, metavar="N", help="log point to plan from (0-based)"
    )
    parser.add_argument("--run-id", help="which run, when RUN holds several")
    parser.add_argument("--seed", type=int, default=0, help="seed of the planner's noise")
    parser.add_argument("--plot", metavar="PATH", help="save a figure of the plan (.png, .pdf)")
    parser.add_argument("--json", metavar="PATH", help="write the plan and diagnostics as JSON")
    parser.add_argument(
        "--window", type=int, help="window length W (default: the model's planner setting)"
    )
    parser.add_argument(
        "--total-points",
        type=int,
        help="log points of the whole run (default: epochs x P from the run's metadata, "
        "else its length)",
    )
    parser.add_argument("--samples", type=int, help="perturbed latents S")
    parser.add_argument("--sigma", type=float, help="relative noise of the perturbation")
    parser.add_argument("--tol", type=float, help="loss-band half-width in std units")
    parser.add_argument("--loss-floor", type=float, help="floor of the loss-band unit")
    parser.add_argument("--top-k", type=int, help="number of best futures averaged")
    parser.add_argument("--anchor", choices=("max_lr", "nearest"), help="anchor rule")
    parser.add_argument(
        "--kappa", type=float, help="controlled model: pessimism, score = mean - kappa * sd"
    )
    parser.add_argument(
        "--margin",
        type=float,
        help="controlled model: how much the best bound must beat the default's mean by to switch",
    )
    parser.add_argument(
        "--top", type=int, default=10, help="controlled model: candidates listed (default 10)"
    )
    parser.add_argument(
        "--every", type=int, help="print every E-th planned point (default: one per epoch)"
    )


def _fail(message: str) -> int:
    print(f"keras-lode plan: error: {message}", file=sys.stderr)
    return 2


def _spans(points) -> str:
    """`[11, 12, 13, 17]` as `"11-13, 17"`."""
    out, start = [], points[0]
    for a, b in zip(points, [*points[1:], None], strict=True):
        if b != a + 1:
            out.append(f"{start}-{a}" if a > start else f"{a}")
            start = b
    return ", ".join(out)


def _load_model(path):
    from keras_lode.model import load_model

    return load_model(path)


def _load_run(path, run_id):
    from keras_lode.runs import load_runs

    runs = load_runs(path)
    if not runs:
        raise ValueError(f"no run files (*.run.csv) found at {path}")
    if run_id is not None:
        match = [r for r in runs if r.run_id == run_id]
        if not match:
            ids = ", ".join(r.run_id for r in runs[:10])
            raise ValueError(f"no run with --run-id {run_id!r} at {path}; found: {ids}")
        return match[0]
    if len(runs) > 1:
        ids = ", ".join(r.run_id for r in runs[:10])
        raise ValueError(f"{path} holds {len(runs)} runs; choose one with --run-id ({ids}...)")
    return runs[0]


def _total_points(run, override):
    if override is not None:
        return override
    epochs, p = run.meta.get("epochs"), run.points_per_epoch
    if epochs and p and int(epochs) * int(p) >= len(run):
        return int(epochs) * int(p)
    return len(run)


def run(args) -> int:
    import numpy as np

    from keras_lode.planning import plan

    try:
        model = _load_model(args.model)
    except (OSError, ValueError) as e:
        return _fail(f"cannot load MODEL {args.model}: {e}")
    try:
        rec = _load_run(args.run, args.run_id)
    except (OSError, ValueError) as e:
        return _fail(f"cannot load RUN {args.run}: {e}")

    defaults = getattr(model, "planner_defaults", None) or {}
    controlled = getattr(model, "kind", "generative") == "controlled"
    if args.window is not None:
        W = args.window
    else:
        W = int(model.window) if controlled else int(defaults.get("window", 30))
    channels = rec.channels()
    K = _total_points(rec, args.total_points)
    n = args.at
    if W < 1:
        return _fail(f"--window must be >= 1. Received: {W}")
    last = min(len(rec) - 1, K - 2)  # a recorded point, with one left to plan after it
    if not W - 1 <= n <= last:
        return _fail(
            f"--at must be a log point from {W - 1} to {last}: the window ends at N and has "
            f"W = {W} points (pass a shorter --window to start earlier), and at least the "
            f"run's last point, {K - 1}, must be left to plan. Received: --at {n}"
        )
    if args.every is not None and args.every < 1:
        return _fail(f"--every must be >= 1. Received: {args.every}")

    window = channels[n - W + 1 : n + 1]
    bad = [n - W + 1 + int(i) for i in np.flatnonzero(~np.all(np.isfinite(window), axis=1))]
    if bad:  # named by the run's log points (and channel), not the window's rows
        rows = [np.flatnonzero(~np.isfinite(c)) + n - W + 1 for c in window.T]
        what = "; ".join(
            f"non-finite {name} at log points {_spans([int(i) for i in r])}"
            for name, r in zip(("loss", "LR", "metric"), rows, strict=True)
            if len(r)
        )
        hint = f"; the first --at after them is {bad[-1] + W}" if bad[-1] + W <= last else ""
        return _fail(
            f"--at {n}: the window (log points {n - W + 1} to {n}) has {what}{hint}. "
            f"Received: --at {n}"
        )
    current = None
    if controlled:
        options = {"kappa": args.kappa, "margin": args.margin}
        generative_only = ("samples", "sigma", "tol", "loss_floor", "top_k", "anchor")
        given = [
            f"--{o.replace('_', '-')}" for o in generative_only if getattr(args, o) is not None
        ]
        if given:
            return _fail(f"{', '.join(given)} apply to a generative model; this one is controlled")
        if len(rec) == K:  # the default candidate: what the run actually did from here
            current = rec.lr[n + 1 :]
    else:
        options = {
            "samples": args.samples,
            "sigma": args.sigma,
            "tol": args.tol,
            "loss_floor": args.loss_floor,
            "top_k": args.top_k,
            "anchor": args.anchor,
        }
        if args.kappa is not None or args.margin is not None:
            return _fail("--kappa and --margin apply to a controlled model")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            p = plan(
                model,
                window,
                position=n,
                total_points=K,
                current_plan=current,
                seed=args.seed,
                points_per_epoch=rec.points_per_epoch,
                **options,
            )
        except (TypeError, ValueError) as e:
            return _fail(str(e))
    from keras_lode.planning.plausibility import implausible

    problems = implausible(model, channels, task=rec.meta.get("task"))
    if problems:
        print(
            f"warning: run {rec.run_id!r} does not look like the model's training runs: "
            + "; ".join(problems),
            file=sys.stderr,
        )
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)

    P = rec.points_per_epoch
    print(f"model: {args.model} (horizon {model.horizon} log points, P={model.points_per_epoch})")
    print(f"run:   {rec.run_id} ({len(rec)} of {K} log points recorded, P={P}, {rec.status})")
    print(p.summary())
    if controlled:
        print(f"{'candidate':<24} {'mean':>8} {'sd':>8} {'bound':>8}")
        for row in p.table(args.top):
            mark = " <- plan" if row["name"] == p.chosen_name else ""
            print(
                f"{row['name']:<24} {row['mean']:8.4f} {row['sd']:8.4f} {row['bound']:8.4f}{mark}"
            )
        if p.rejected:
            print(f"{len(p.rejected)} candidates left out (LR range or trust region)")
    every = args.every or (P if P else max(1, (K - n - 1) // 20))
    print(f"{'point':>6} {'epoch':>7} {'planned lr':>11} {'recorded lr':>12}")
    points = p.points
    rows = [i for i, pt in enumerate(points) if (pt + 1) % every == 0 or pt == points[-1]]
    for i in rows:
        pt = int(points[i])
        epoch = f"{(pt + 1) / P:7.2f}" if P else f"{'-':>7}"
        recorded = f"{rec.lr[pt]:12.4g}" if pt < len(rec) else f"{'-':>12}"
        print(f"{pt:6d} {epoch} {p.lr[i]:11.4g} {recorded}")

    if args.json and controlled:
        out = {
            "model": args.model,
            "run": rec.run_id,
            "kind": "controlled",
            "position": p.position,
            "total_points": p.total_points,
            "chosen": p.chosen_name,
            "switched": p.switched,
            "fallback": p.fallback,
            "reason": p.reason,
            "kappa": p.kappa,
            "margin": p.margin,
            "candidates": p.table(),
            "rejected": p.rejected,
            "trust": list(p.trust),
            "lr_range": list(p.lr_range),
            "points": p.points.tolist(),
            "lr": p.lr.tolist(),
            "summary": p.summary(),
        }
    elif args.json:
        out = {
            "model": args.model,
            "run": rec.run_id,
            "position": p.position,
            "total_points": p.total_points,
            "seed": p.seed,
            "fallback": p.fallback,
            "reason": p.reason,
            "accepted": p.accepted,
            "chosen": p.chosen.tolist(),
            "anchors": p.anchors.tolist(),
            "rewards": [None if not np.isfinite(r) else float(r) for r in p.rewards],
            "lr_range": list(p.lr_range),
            "points": p.points.tolist(),
            "lr": p.lr.tolist(),
            "summary": p.summary(),
        }
    if args.json:
        from keras_lode._json import write_json

        write_json(args.json, out, indent=1)  # strict JSON: a non-finite value is null
        print(f"wrote {args.json}")
    if args.plot:
        try:
            from keras_lode.planning.plot import plot_plan

            plot_plan(p, args.plot, observed=channels)
        except ImportError as e:
            return _fail(str(e))
        print(f"wrote {args.plot}")
    return 0
