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


class _Usage(Exception):
    """A bad argument: `run` prints it as the command's error and returns 2."""


def run(args) -> int:
    from keras_lode.planning import plan

    try:
        model = _load_model(args.model)
    except (OSError, ValueError) as e:
        return _fail(f"cannot load MODEL {args.model}: {e}")
    try:
        rec = _load_run(args.run, args.run_id)
    except (OSError, ValueError) as e:
        return _fail(f"cannot load RUN {args.run}: {e}")

    controlled = getattr(model, "kind", "generative") == "controlled"
    channels = rec.channels()
    K = _total_points(rec, args.total_points)
    n = args.at
    try:
        W = _window_size(args, model, controlled, len(rec), K)
        _check_window(channels, args.at, W, min(len(rec) - 1, K - 2))
        options, current = _planner_options(args, controlled, rec, K)
    except _Usage as e:
        return _fail(str(e))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            # A task-free model reads the whole run so far (its first point is the reference).
            from keras_lode.model.features import is_task_free

            relative = is_task_free(model)
            p = plan(
                model,
                channels[: n + 1] if relative else channels[n - W + 1 : n + 1],
                position=n,
                total_points=K,
                current_plan=current,
                seed=args.seed,
                points_per_epoch=rec.points_per_epoch,
                **({"mode": rec.meta.get("mode") or "max"} if relative else {}),
                **options,
            )
        except (TypeError, ValueError) as e:
            return _fail(str(e))
    _print_warnings(model, channels, rec, caught)
    _print_plan(args, model, rec, p, controlled)
    if args.json:
        from keras_lode._json import write_json

        out = _plan_json(args, rec, p, controlled)
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


def _window_size(args, model, controlled: bool, recorded: int, K: int) -> int:
    """The window length W, after checking `--window`, `--at` and `--every` in CLI terms."""
    defaults = getattr(model, "planner_defaults", None) or {}
    if args.window is not None:
        W = args.window
    else:
        W = int(model.window) if controlled else int(defaults.get("window", 30))
        if controlled:  # a task-free model's window is on its own grid: in the run's points
            from keras_lode.model.features import run_window

            W = run_window(model, W, K)
    n = args.at
    if W < 1:
        raise _Usage(f"--window must be >= 1. Received: {W}")
    last = min(recorded - 1, K - 2)  # a recorded point, with one left to plan after it
    if not W - 1 <= n <= last:
        raise _Usage(
            f"--at must be a log point from {W - 1} to {last}: the window ends at N and has "
            f"W = {W} points (pass a shorter --window to start earlier), and at least the "
            f"run's last point, {K - 1}, must be left to plan. Received: --at {n}"
        )
    if args.every is not None and args.every < 1:
        raise _Usage(f"--every must be >= 1. Received: {args.every}")
    return W


def _check_window(channels, n: int, W: int, last: int) -> None:
    """A non-finite window, named by the run's log points (and channel), not its rows."""
    import numpy as np

    window = channels[n - W + 1 : n + 1]
    bad = [n - W + 1 + int(i) for i in np.flatnonzero(~np.all(np.isfinite(window), axis=1))]
    if not bad:
        return
    rows = [np.flatnonzero(~np.isfinite(c)) + n - W + 1 for c in window.T]
    what = "; ".join(
        f"non-finite {name} at log points {_spans([int(i) for i in r])}"
        for name, r in zip(("loss", "LR", "metric"), rows, strict=True)
        if len(r)
    )
    hint = f"; the first --at after them is {bad[-1] + W}" if bad[-1] + W <= last else ""
    raise _Usage(f"--at {n}: the window (log points {n - W + 1} to {n}) has {what}{hint}. "
                 f"Received: --at {n}")  # fmt: skip


_GENERATIVE_ONLY = ("samples", "sigma", "tol", "loss_floor", "top_k", "anchor")


def _planner_options(args, controlled: bool, rec, K: int):
    """`(options, current_plan)` for `keras_lode.plan`, from the model's kind's flags."""
    if not controlled:
        if args.kappa is not None or args.margin is not None:
            raise _Usage("--kappa and --margin apply to a controlled model")
        return {o: getattr(args, o) for o in _GENERATIVE_ONLY}, None
    given = [f"--{o.replace('_', '-')}" for o in _GENERATIVE_ONLY if getattr(args, o) is not None]
    if given:
        raise _Usage(f"{', '.join(given)} apply to a generative model; this one is controlled")
    # The default candidate: what the run actually did from here.
    current = rec.lr[args.at + 1 :] if len(rec) == K else None
    # The run's optimizer picks the model's LR ceiling (keras_lode.model.lr_ceiling).
    optimizer = rec.meta.get("optimizer")
    return {"kappa": args.kappa, "margin": args.margin, "optimizer": optimizer}, current


def _print_warnings(model, channels, rec, caught) -> None:
    """The plausibility check's findings and the planner's warnings, on stderr."""
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


def _print_plan(args, model, rec, p, controlled: bool) -> None:
    """The summary, the candidates (controlled) and the planned next to the recorded LR."""
    P = rec.points_per_epoch
    K, n = p.total_points, p.position
    print(f"model: {args.model} (horizon {model.horizon} log points, P={model.points_per_epoch})")
    print(f"run:   {rec.run_id} ({len(rec)} of {K} log points recorded, P={P}, {rec.status})")
    print(p.summary())
    ceiling = (getattr(model, "planner_defaults", None) or {}).get("lr_ceiling")
    if controlled and ceiling:
        from keras_lode.model.lr_ceiling import ceiling_for

        print(ceiling_for(ceiling, rec.meta.get("optimizer"))[1])
    if controlled:
        paired = p.gain is not None
        extra = f" {'gain':>8} {'gain sd':>8}" if paired else ""
        print(f"{'candidate':<24} {'mean':>8} {'sd':>8}{extra} {'bound':>8}  ({p.rule} rule)")
        for row in p.table(args.top):
            mark = " <- plan" if row["name"] == p.chosen_name else ""
            extra = f" {row['gain']:+8.4f} {row['gain_sd']:8.4f}" if paired else ""
            print(
                f"{row['name']:<24} {row['mean']:8.4f} {row['sd']:8.4f}{extra} "
                f"{row['bound']:8.4f}{mark}"
            )
        if p.rejected:
            print(f"{len(p.rejected)} candidates left out (LR range, trust region or LR ceiling)")
    every = args.every or (P if P else max(1, (K - n - 1) // 20))
    print(f"{'point':>6} {'epoch':>7} {'planned lr':>11} {'recorded lr':>12}")
    points = p.points
    rows = [i for i, pt in enumerate(points) if (pt + 1) % every == 0 or pt == points[-1]]
    for i in rows:
        pt = int(points[i])
        epoch = f"{(pt + 1) / P:7.2f}" if P else f"{'-':>7}"
        recorded = f"{rec.lr[pt]:12.4g}" if pt < len(rec) else f"{'-':>12}"
        print(f"{pt:6d} {epoch} {p.lr[i]:11.4g} {recorded}")


def _plan_json(args, rec, p, controlled: bool) -> dict:
    """The plan and its diagnostics, as written by `--json`."""
    import numpy as np

    if controlled:
        return {
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
    return {
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
