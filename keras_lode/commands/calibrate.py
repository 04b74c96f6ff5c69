"""`keras-lode calibrate RUNS --model M.npz -o OUT.npz`: calibrate decisions on branch runs.

Reads a sweep's branch runs (`keras-lode sweep --branches N`: grid runs re-run from their
seed that take a library continuation at a replan point) with their base runs, measures the
controlled model's paired decision skill on them, cross-fitted by seed (a task-free model's
by task, as a task it never saw would meet it; `keras_lode.train.counterfactual.fit_paired`),
and writes the model file with the paired
calibration (`planner.paired`): the planner then decides on calibrated paired gains. NumPy
only; nothing heavy is imported.
"""

from __future__ import annotations

import argparse

HELP = "calibrate a controlled LODE's decisions on a sweep's branch runs (paired rule)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "runs",
        metavar="RUNS",
        nargs="+",
        help="run files or directories: branch runs and their base grid runs",
    )
    parser.add_argument("--model", required=True, help="the controlled model file (.npz)")
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="PATH",
        help="the model file to write, with planner.paired",
    )
    parser.add_argument(
        "--level",
        type=float,
        default=0.85,
        help="coverage target of gain +/- 2 sd (default: %(default)s)",
    )
    parser.add_argument(
        "--by",
        choices=("seed", "task"),
        default=None,
        help="what each fold holds out (default: task for a task-free model, else seed)",
    )
    parser.add_argument(
        "--prior",
        action="store_true",
        help="also learn a continuation prior: what each shape of LR continuation gained "
        "on these groups (keras_lode.model.prior; for a task-free model over a zoo)",
    )
    parser.add_argument(
        "--report",
        metavar="JSON",
        default=None,
        help="also write the full result (per seed, coverage, realized) here",
    )


def run(args) -> int:
    from keras_lode.model import load_model
    from keras_lode.model.features import is_task_free
    from keras_lode.runs import load_runs
    from keras_lode.train.counterfactual import (
        branch_groups,
        fit_paired,
        paired_section,
        with_paired_calibration,
    )

    if not 0 < args.level < 1:
        print(f"keras-lode calibrate: --level must lie in (0, 1). Received: {args.level}")
        return 2
    try:
        model = load_model(args.model)
        if getattr(model, "kind", None) != "controlled":
            print(
                f"keras-lode calibrate: {args.model} is a {model.kind} model; the paired "
                "rule is the controlled planner's (train one with `keras-lode train`)"
            )
            return 2
        runs = load_runs(args.runs, on_error="warn")
        groups = branch_groups(runs, int(model.window))
        if not groups:
            print(
                f"keras-lode calibrate: no branch groups in {' '.join(args.runs)} (branch runs "
                "with their base grid runs); record them with `keras-lode sweep --branches N`"
            )
            return 2
        by = args.by or ("task" if is_task_free(model) else "seed")
        result = fit_paired(model, groups, level=args.level, by=by, prior=args.prior)
    except (OSError, ValueError) as e:
        print(f"keras-lode calibrate: {e}")
        return 2
    c, r = result["coverage"], result["realized"]
    rho = "n/a" if result["spearman"] is None else f"{result['spearman']:.2f}"
    held = sorted({str(f[by]) for f in result["folds"]})
    print(
        f"{result['groups']} branch groups ({result['candidates']} continuations) of "
        f"{by}s {', '.join(held)}, each {by} held out in turn:"
    )
    print(f"  predicted vs actual paired gains: Spearman {rho}, RMSE {result['rmse']:.2f} points")
    print(
        f"  coverage of gain +/- 2 sd: raw {c['raw']:.2f}, calibrated {c['calibrated']:.2f} "
        f"(target {c['level']:.2f})"
    )
    print(
        f"  realized gain (points): rule {r['rule']:+.3f}, always default {r['default']:+.3f}, "
        f"oracle {r['oracle']:+.3f}"
    )
    if result.get("prior"):
        kinds = ", ".join(f"{k} {v:+.3f}" for k, v in result["prior_choice"].items())
        print(
            f"  continuation prior: alpha {result['prior']['alpha']:.2f} (0: the shape alone); "
            f"realized by kind: {kinds}"
        )
    _print_rule(result)
    try:
        with_paired_calibration(args.model, paired_section(result), args.output)
    except (OSError, ValueError) as e:
        print(f"keras-lode calibrate: {e}")
        return 2
    print(f"wrote {args.output}")
    if args.report:
        from keras_lode._json import write_json

        write_json(args.report, result)
    return 0


def _print_rule(result: dict) -> None:
    """The calibrated rule and its gate (`keras_lode.model.paired_gate`), in words."""
    from keras_lode.model.paired_gate import gate_reason

    rule = result["rule"]
    starts = rule.get("starts")
    for kind, summary in result["realized"].get("by_start", {}).items():
        folds = [f["by_start"][kind] for f in result["folds"] if kind in f.get("by_start", {})]
        worst = f", worst held-out {result['by']} {min(folds):+.3f}" if folds else ""
        print(f"  from a {kind} start: realized {summary['rule']:+.3f} of oracle "
              f"{summary['oracle']:+.3f} ({summary['groups']} groups{worst})")  # fmt: skip
    section = {**rule, "trusted": result["trusted"], "coverage": result["coverage"]["calibrated"],
               "level": result["coverage"]["level"]}  # fmt: skip
    if not rule.get("switch", True) and len(result["folds"]) < 3:
        print(
            f"  rule: never switch: a gate set held out needs >= 3 {result['by']}s of branch "
            f"groups (these have {len(result['folds'])}); record more"
        )
    elif not rule.get("switch", True):
        print(
            "  rule: never switch (no rule of the grid gained over keeping the default on "
            "these groups, or the rule behind its gate realized no gain on the held-out ones)"
        )
    elif gate_reason(section) is not None:
        print(
            "  NOT trusted: the calibrated coverage fell short of its target and the rule "
            "uses the spread; the planner will keep the default"
        )
    elif starts is not None and not starts:
        print("  rule: never switch (it lost on some held-out fold from every kind of start)")
    else:
        where = f" (from a {' or '.join(starts)} start only)" if starts is not None else ""
        trust = "" if result["trusted"] else "; coverage short of target, spread unused"
        print(f"  rule: switch when gain - {rule['kappa']:g} sd > {rule['margin']:g}{where}{trust}")
