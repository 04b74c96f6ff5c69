"""`keras-lode sweep`: train a grid of schedules x peak LRs x seeds and record every run."""

from __future__ import annotations

HELP = "run a sweep (schedule families x peak LRs x seeds), recording one run file per trial"


def add_arguments(parser) -> None:
    from keras_lode.constants import FAMILIES

    parser.add_argument(
        "task_pos",
        nargs="?",
        metavar="TASK",
        help="same as --task",
    )
    parser.add_argument(
        "--task",
        help="task spec: 'module:attr', 'path/to/file.py:attr', 'keras_lode.tasks:NAME:SCALE' "
        "or an example-task name (fmnist_cnn, ...)",
    )
    parser.add_argument("--scale", default=None, help="scale of an example task: quick, cpu, full")
    parser.add_argument("--out", "-o", required=True, help="directory for the run files")
    parser.add_argument(
        "--schedules",
        "--families",
        dest="families",
        default=None,
        help="comma-separated schedule families, some of "
        f"{','.join(FAMILIES)} (default: the task's, all {len(FAMILIES)} unless it names fewer)",
    )
    parser.add_argument("--lrs", default=None, help="comma-separated peak LRs; default: task's")
    parser.add_argument("--seeds", default=None, help="comma-separated seeds; default: task's")
    parser.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="where trials run: local (this machine, in this process or --workers "
        "subprocesses) or ray (Ray Tune, on --address or a local Ray; needs keras_lode[ray]) "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--address", default=None, help="Ray cluster address (ray engine; default: local Ray)"
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="trials at once (local: subprocesses)"
    )
    parser.add_argument(
        "--isolate", action="store_true", help="run each local trial in its own subprocess"
    )
    parser.add_argument(
        "--timeout", type=float, default=None, help="seconds per isolated local trial"
    )
    parser.add_argument("--cpus-per-trial", type=float, default=1, help="Ray CPUs per trial")
    parser.add_argument("--gpus-per-trial", type=float, default=0, help="Ray GPUs per trial")
    parser.add_argument(
        "--no-retry-failed",
        dest="retry_failed",
        action="store_false",
        help="leave trials recorded as failed alone on a rerun",
    )
    parser.add_argument(
        "--switched",
        type=int,
        default=0,
        metavar="N",
        help="also run N switched trials: grid points re-run from the same seed that switch "
        "to another config mid-run, which teach a controlled LODE what an LR change does "
        "(default 0: only the controlled LODE uses them; ~1 per 4 grid runs is a good start)",
    )
    parser.add_argument(
        "--switch-targets",
        type=int,
        default=3,
        help="continuations per (base run, switch point) group of switched trials (default 3)",
    )
    parser.add_argument(
        "--branches",
        type=int,
        default=0,
        metavar="N",
        help="after the grid, run N branch trials: the best config and the constant LRs re-run "
        "from the same seed that follow, from a replan point on, continuations of the control "
        "planner's library, in groups sharing everything before it (what `keras-lode "
        "calibrate` needs; default 0)",
    )
    parser.add_argument(
        "--branch-candidates",
        type=int,
        default=4,
        help="continuations per (base run, branch point) group of branch trials (default 4)",
    )
    parser.add_argument(
        "--branch-window",
        type=int,
        default=10,
        help="window of the LODE the branch runs are for: they branch at its replan points, "
        "from max(20%% of the run, window - 1) on (default 10, as `train --window`)",
    )
    parser.add_argument("--dry-run", action="store_true", help="list the grid and what is done")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar")


def _floats(text, name):
    if text is None:
        return None
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"--{name} must be comma-separated numbers. Received: {text!r}") from None


def _ints(text, name):
    if text is None:
        return None
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"--{name} must be comma-separated ints. Received: {text!r}") from None


def run(args) -> int:
    import logging

    from keras_lode._backend import import_keras
    from keras_lode.experiments import sweep, sweep_status

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    spec = args.task or args.task_pos
    if not spec:
        print("keras-lode sweep: give the task (--task module:attr or an example-task name).")
        return 2
    families = [f.strip() for f in args.families.split(",") if f.strip()] if args.families else None
    try:
        lrs = _floats(args.lrs, "lrs")
        seeds = _ints(args.seeds, "seeds")
        if args.engine == "local":  # Ray's workers may have a backend the driver lacks
            # Imported here, quietly: TensorFlow's start-up lines hidden as in `demo`.
            import_keras("keras-lode sweep", quiet=True)
        if args.dry_run:
            task, grid = sweep_status(
                spec,
                args.out,
                families=families or None,
                peak_lrs=lrs or None,
                seeds=seeds or None,
                retry_failed=args.retry_failed,
                scale=args.scale,
                switched=args.switched,
                switch_targets=args.switch_targets,
            )
            for t, status in grid:
                print(f"{t.run_id}\t{status}")
            print(
                f"{len(grid)} trials for task {task.name!r} (P={task.points_per_epoch}, "
                f"{task.epochs} epochs)"
            )
            if args.branches:
                print(f"+ {args.branches} branch trials once the grid is done (their bases "
                      "come from its results)")  # fmt: skip
            return 0
        results = sweep(
            spec,
            args.out,
            families=families,
            peak_lrs=lrs,
            seeds=seeds,
            engine=args.engine,
            address=args.address,
            workers=args.workers,
            isolate=args.isolate,
            retry_failed=args.retry_failed,
            scale=args.scale,
            cpus_per_trial=args.cpus_per_trial,
            gpus_per_trial=args.gpus_per_trial,
            timeout=args.timeout,
            progress=not args.quiet,
            switched=args.switched,
            switch_targets=args.switch_targets,
            branches=args.branches,
            branch_candidates=args.branch_candidates,
            branch_window=args.branch_window,
        )
    except (ValueError, TypeError, ImportError) as e:
        print(f"keras-lode sweep: {e}")
        return 2
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    skipped = sum(r.skipped for r in results)
    ran = [r for r in results if not r.skipped]
    for r in ran:
        if r.status == "failed":
            print(f"FAILED {r.run_id}: {r.error}")
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    print(
        f"{len(results)} trials ({summary}); {skipped} skipped as already done; "
        f"run files in {args.out}"
    )
    _print_best(results, args.out)
    # Failed trials are recorded and the sweep goes on; only a sweep in which every
    # trial that ran failed (usually a broken task) exits non-zero.
    return 1 if ran and all(r.status == "failed" for r in ran) else 0


def _print_best(results, out) -> None:
    """The best config per family of this sweep's complete grid runs, by validation."""
    from keras_lode.experiments.best import best_per_family, format_best
    from keras_lode.runs import load_runs

    ids = {r.run_id for r in results if r.status == "complete"}
    try:
        runs = [r for r in load_runs(out, kind="grid", on_error="warn") if r.run_id in ids]
    except (OSError, ValueError) as e:
        print(f"note: could not read the runs back to rank them: {e}")
        return
    metric = next((r.meta.get("metric_name") for r in runs), None) or "metric"
    print(format_best(best_per_family(runs), f"validation {metric}"))
