"""Where can a planner win? The LODE in three scenarios, each against matched arms and peers.

A planner can only win what its scenario leaves to win (docs/benchmarks.md, protocol v3):

- `best`: the LODE warms up on the best schedule of its sweep (chosen on the sweep's
  validation metric, never on test); paired with that schedule's matched arm.
- `rescue`: it warms up on an untuned default: a constant at Keras' default LR for the
  task's optimizer (AdamW 1e-3, SGD 1e-2), and the sweep's best constant LR. Peers at the
  same start: the constant itself, the constant + `ReduceLROnPlateau`, cosine and linear
  decay from it to ~0 (the one-line fix), and `ScheduleFreeAdamW` at its recommended
  settings; the sweep's best schedule is the reference. Capture = (LODE - default) /
  (sweep best - default).
- `unseen`: a LODE trained on other tasks' runs (`--unseen-model`; or, with `--runs`
  naming a zoo task's sweep directory for the configs, a leave-one-task-out model as
  `--model` in `rescue`), from the optimizer's default LR.
- `headroom` (`--start best|default`): the oracle's share. At the planner's first replan
  point the same seed is re-run with library continuations (trust region off) in place of
  the warm-up's: the model's top 8 by predicted paired gain (averaged over the seeds), 8
  drawn at random, and the default, each through the matched mechanism, so every run of a
  seed shares its prefix exactly. Headroom = the best continuation's paired gain, split
  half (picked on one half of the seeds, scored on the other); realized = the planner's
  paired gain in the start's scenario on the same seeds; capture = realized / headroom;
  skill = rank correlation and RMSE of predicted vs actual paired gains within a seed.

Every schedule a LODE could keep is served through the LODE's own LR mechanism
(`Method(..., model=...)`: `LODECallback(planning=False)`), so a LODE that keeps its warm-up
is bit-identical to its arm; `ReduceLROnPlateau` and `ScheduleFreeAdamW` run as users run
them. Every method of a seed has the same initial weights and batch order. The best
configs come from the sweep summary in the task's protocol-2 results file (`--reference`).
Results are saved after every run and the script resumes; `summary.scenarios` holds the
paired differences `{scenario, method, reference, key, mean, ci95, n}` and
`summary.capture` the captured share of the gap per start.

    python benchmarks/scenarios.py --task text_gpt --scenario rescue --seeds 100-109
    python benchmarks/scenarios.py --task text_gpt --scenario unseen --seeds 100-109 \
        --unseen-model models/fmnist_cnn.npz
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ("best", "rescue", "unseen", "headroom")
HEADROOM_TOP, HEADROOM_RANDOM = 8, 8
DEFAULT_LR = 1e-3  # Keras' Adam/AdamW default: what a user without a sweep starts from
# Keras' default LR of each example-task optimizer (SGD's is 0.01).
DEFAULT_LRS = {"adamw": 1e-3, "sgd": 1e-2}


def default_lr(task) -> float:
    """The LR a user without a sweep starts from: Keras' default for the task's optimizer."""
    name = getattr(getattr(task, "make_optimizer", None), "name", "adamw")
    return DEFAULT_LRS.get(name, DEFAULT_LR)


KEYS = ("test_at_best_val", "test_at_end")


def gain_scale(mode: str | None) -> float:
    """Multiplier from a metric difference to a gain: accuracy in points (x 100); a minimized
    metric (validation bits/char, loss) in its own units, signed so that positive is better."""
    return -1.0 if mode == "min" else 100.0


def _shown(value: float, mode: str | None = None) -> str:
    """A final metric as printed: accuracy in percent, a minimized metric as it is."""
    return f"{value:.4f}" if mode == "min" else f"{100 * value:.2f}"


def gain_units(payload: dict) -> str:
    if payload.get("mode") == "min":
        return f"{payload.get('metric_name') or 'metric'} decrease (positive is better)"
    return "points"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", required=True, help="built-in task name (fmnist_cnn, text_gpt)")
    p.add_argument("--scale", default="cpu")
    p.add_argument("--epochs", type=int, default=None, help="override the task's epochs")
    p.add_argument("--scenario", choices=SCENARIOS, help="the scenario to run")
    p.add_argument("--report", action="store_true",
                   help="print the Markdown tables of the results file and exit")  # fmt: skip
    p.add_argument("--seeds", default="100-109", help="'100-109' or '100,101,...'")
    p.add_argument("--methods", default=None,
                   help="run only these of the scenario's methods (comma-separated labels "
                        "without the scenario, e.g. default:constant,default:lode)")  # fmt: skip
    p.add_argument("--model", default=None, help="the task's LODE (default models/<task>.npz)")
    p.add_argument("--unseen-model", default=None, help="a LODE of another task (`unseen`)")
    p.add_argument(
        "--start",
        default="default",
        choices=("best", "default"),
        help="headroom: from the sweep's best schedule or from the optimizer's default LR",
    )
    p.add_argument("--reference", default=None,
                   help="protocol-2 results file with the sweep summary (default "
                        "benchmarks/results/quality_<task>_<scale>.json)")  # fmt: skip
    p.add_argument("--runs", default=None,
                   help="a sweep directory to take the best configs from, instead of "
                        "--reference (the zoo's tasks)")  # fmt: skip
    p.add_argument(
        "--out",
        default=None,
        help="results file (default benchmarks/results/scenarios_<task>_<scale>.json)",
    )
    return p.parse_args(argv)


def parse_seeds(text: str) -> list[int]:
    if "-" in text and "," not in text:
        lo, hi = (int(v) for v in text.split("-"))
        return list(range(lo, hi + 1))
    return [int(v) for v in text.split(",") if v.strip()]


def best_configs(reference: dict) -> dict:
    """The sweep's best schedule and best constant LR, by the sweep's validation metric."""
    best = reference["best_peak_lr"]
    top = max(best, key=lambda f: best[f]["val"])
    return {"family": top, "peak_lr": best[top]["peak_lr"], "constant": best["constant"]["peak_lr"]}


def configs_from_runs(runs_dir) -> dict:
    """`best_configs` from a sweep directory: the best family and constant by validation."""
    from keras_lode.experiments.best import best_per_family
    from keras_lode.runs import load_runs

    rows = best_per_family(load_runs(runs_dir, kind="grid"))
    constant = [r for r in rows if r["family"] == "constant"]
    if not rows or not constant:
        raise SystemExit(f"{runs_dir}: no complete grid runs with a constant family to rank")
    return {"family": rows[0]["family"], "peak_lr": rows[0]["peak_lr"],
            "constant": constant[0]["peak_lr"]}  # fmt: skip


def scenario_methods(scenario: str, configs: dict, model: str, unseen_model: str | None):
    """`[(Method, label)]` of a scenario; labels are prefixed with the scenario."""
    from keras_lode.experiments import Method

    top, peak = configs["family"], configs["peak_lr"]

    def lode(start_family, lr, m=model):
        return Method("lode", peak_lr=lr, model=m, options={"warmup_family": start_family})

    def arm(family, lr, m=model):  # served through the LODE's mechanism, planning off
        return Method(family, peak_lr=lr, model=m)

    if scenario == "best":
        methods = {f"lode@{top}": lode(top, peak), f"{top}@{peak:g}": arm(top, peak)}
    elif scenario == "rescue":
        methods = {"sweep_best": arm(top, peak)}
        default = configs.get("default_lr", DEFAULT_LR)
        for name, lr in (("default", default), ("best_constant", configs["constant"])):
            methods[f"{name}:constant"] = arm("constant", lr)
            methods[f"{name}:lode"] = lode("constant", lr)
            methods[f"{name}:plateau"] = Method("plateau", peak_lr=lr)
        methods["default:cosine"] = arm("cosine", default)
        methods["default:linear"] = arm("linear", default)
        if schedule_free_works():
            methods["schedulefree"] = Method("schedulefree")
    else:
        if not unseen_model:
            raise SystemExit("--scenario unseen needs --unseen-model (a LODE of another task)")
        start = configs.get("default_lr", DEFAULT_LR)
        methods = {
            "default:constant": arm("constant", start, unseen_model),
            "default:lode": lode("constant", start, unseen_model),
        }
    out = []
    for label, m in methods.items():
        m.label = f"{scenario}/{label}"
        out.append(m)
    return out


SCHEDULE_FREE_BROKEN = (
    "keras.optimizers.ScheduleFreeAdamW (Keras 3.15.1) does not follow its own update rule on "
    "the TensorFlow backend (benchmarks/schedule_free_check.py: 100% off from the first "
    "step; exact on JAX): left out of TensorFlow runs"
)


def schedule_free_works() -> bool:
    """Whether this backend's `ScheduleFreeAdamW` can be a peer (see SCHEDULE_FREE_BROKEN)."""
    import keras

    return keras.backend.backend() != "tensorflow"


# The paired differences each scenario reports: (method, reference) label suffixes.
PAIRS = {
    "best": lambda c: [(f"lode@{c['family']}", f"{c['family']}@{c['peak_lr']:g}")],
    "rescue": lambda c: [
        ("default:lode", "default:constant"),
        ("default:lode", "default:plateau"),
        ("default:lode", "default:cosine"),
        ("default:lode", "default:linear"),
        ("default:lode", "schedulefree"),
        ("default:lode", "sweep_best"),
        ("default:plateau", "default:constant"),
        ("default:cosine", "default:constant"),
        ("default:linear", "default:constant"),
        ("schedulefree", "default:constant"),
        ("sweep_best", "default:constant"),
        ("best_constant:lode", "best_constant:constant"),
        ("best_constant:lode", "best_constant:plateau"),
        ("best_constant:lode", "sweep_best"),
        ("best_constant:plateau", "best_constant:constant"),
        ("sweep_best", "best_constant:constant"),
    ],
    "unseen": lambda c: [("default:lode", "default:constant")],
}


def summarize(payload: dict) -> dict:
    """Paired differences per scenario and the captured share of the gap."""
    import numpy as np

    from keras_lode.experiments import paired_difference

    by: dict = {}
    for r in payload["results"]:
        by.setdefault(r["method"], {})[r["seed"]] = r
    rows, capture = [], []
    scale = gain_scale(payload.get("mode"))
    broken = payload.get("backend") == "tensorflow"
    for scenario, pairs in PAIRS.items():
        for a, b in pairs(payload["configs"]):
            if broken and "schedulefree" in (a, b):
                continue
            ma, mb = f"{scenario}/{a}", f"{scenario}/{b}"
            seeds = sorted(set(by.get(ma, {})) & set(by.get(mb, {})))
            if len(seeds) < 2:
                continue
            for key in KEYS:
                d = paired_difference(
                    [scale * by[ma][s][key] for s in seeds], [scale * by[mb][s][key] for s in seeds]
                )
                rows.append({"scenario": scenario, "method": a, "reference": b, "key": key, **d})
    # Capture: the LODE's gain over its start as a share of the sweep best's gain over it,
    # on the seeds where all three ran (the unseen LODE against its own constant arm).
    for scenario, start in (
        ("rescue", "default"),
        ("rescue", "best_constant"),
        ("unseen", "default"),
    ):
        lode, base = by.get(f"{scenario}/{start}:lode", {}), by.get(f"rescue/{start}:constant", {})
        if scenario == "unseen":
            base = by.get(f"unseen/{start}:constant", {})
        ref = by.get("rescue/sweep_best", {})
        seeds = sorted(set(lode) & set(base) & set(ref))
        for key in KEYS if len(seeds) >= 2 else ():
            gain = np.mean([lode[s][key] - base[s][key] for s in seeds])
            gap = np.mean([ref[s][key] - base[s][key] for s in seeds])
            capture.append(
                {"scenario": scenario, "start": start, "key": key, "n": len(seeds),
                 "lode_gain": scale * float(gain), "gap": scale * float(gap),
                 "capture": float(gain / gap) if gap != 0 else None}
            )  # fmt: skip
    switched = {
        m: sum(bool(r["lode"] and r["lode"].get("switches")) for r in runs.values())
        for m, runs in by.items()
        if m.endswith("lode") or "/lode@" in m
    }
    return {
        "excluded": {"schedulefree": SCHEDULE_FREE_BROKEN} if broken else {},
        "scenarios": rows,
        "capture": capture,
        "headroom": headroom_summary(payload),
        "lode_switched_seeds": switched,
    }


# ----------------------------------------------------------------------------- headroom
class StepTable:
    """A per-step LR table as a warm-up (`step -> lr`, elementwise over an array of steps)."""

    def __init__(self, table):
        import numpy as np

        self.table = np.asarray(table, dtype=np.float64)

    def __call__(self, step):
        import numpy as np

        index = np.clip(np.asarray(step).astype(np.int64), 0, len(self.table) - 1)
        return self.table[index]


def _geometry(task, data):
    import numpy as np

    spe = task.steps_per_epoch(len(data.x_train))
    P, E = task.points_per_epoch, task.epochs
    within = [int(round((k + 1) * spe / P)) for k in range(P)]
    point_steps = (np.arange(E)[:, None] * spe + np.asarray(within)[None, :]).ravel()
    return spe, P, point_steps


def _start(configs, start):
    if start == "best":
        return configs["family"], configs["peak_lr"]
    return "constant", configs.get("default_lr", DEFAULT_LR)


def candidate_arm(task, data, family, lr, n, path, model_path, label):
    """A run that follows the warm-up exactly up to point n, then `path`: the table a
    `LODESchedule` serves after a switch at n, through the matched mechanism."""
    from keras_lode.callbacks.lr_tables import PlanTables
    from keras_lode.experiments import Method
    from keras_lode.schedules import make_schedule

    spe, P, point_steps = _geometry(task, data)
    warm = make_schedule(family, lr, int(point_steps[-1]))
    tables = PlanTables(point_steps, spe, P, warm, schedule=None, per_step=True)
    if path is not None:
        # A real plan made at point n is read a step after it (at once at an epoch's end)
        # and reaches the steps not yet dispatched then: the candidate switches there too.
        read_late = (n + 1) % P != 0
        tables.replace(n + 1, path, first_step=int(point_steps[n]) + int(read_late))
    return Method(family, peak_lr=lr, model=model_path, label=label,
                  options={"warmup": StepTable(tables.step_table)})  # fmt: skip


def predicted_gains(model, history, n, K, P, default_rest, scale=100.0):
    """`(names, paths, gain)`: the library at n (trust region and LR ceiling off) around the
    warm-up's own continuation `default_rest`, and the ensemble's predicted paired gain
    (candidate minus default, final metric, times `scale`: see `gain_scale`) per candidate."""
    import numpy as np

    from keras_lode import plan
    from keras_lode.model.features import is_task_free

    history = np.asarray(history, dtype=float)
    relative = is_task_free(model)
    window = history[: n + 1] if relative else history[n - model.window + 1 : n + 1]
    p = plan(model, window, position=n, total_points=K, current_plan=default_rest,
             points_per_epoch=P, trust=False, margin=1e9, max_lr=float("inf"))  # fmt: skip
    return p.names, p.paths, scale * (p.mean - p.mean[0])


def run_headroom(args, task, data, configs, model_path, payload, out, seeds):
    import numpy as np

    from keras_lode._json import write_json
    from keras_lode.callbacks import lode_options
    from keras_lode.experiments import train_one
    from keras_lode.planning.replans import resolve_cadence

    family, lr = _start(configs, args.start)
    lode, kind = lode_options.resolve_model(model_path)
    spe, P, point_steps = _geometry(task, data)
    K = len(point_steps)
    # The first replan exactly as the callback resolves it for this model and run.
    opts, _ = lode_options.resolve_options(lode, kind, {"points_per_epoch": P})
    n, _ = resolve_cadence(K, opts.window, opts.first_replan, opts.replan_every)
    model = lode
    warm = candidate_arm(task, data, family, lr, n, None, model_path, "").options["warmup"]
    default_rest = warm(point_steps - 1)[n + 1 :]  # the warm-up's own continuation
    prefix = f"headroom-{args.start}"
    done = {(r["method"], r["seed"]): r for r in payload["results"]}

    def run(method, seed):
        if (method.label, seed) not in done:
            r = train_one(task, method, seed=seed, data=data)
            r.pop("points", None)
            payload["results"].append(r)
            done[(method.label, seed)] = r
            write_json(out, payload)
            shown = _shown(r["test_at_end"], task.mode)
            print(f"  {method.label:<40} seed {seed}: test@end {shown}", flush=True)
        return done[(method.label, seed)]

    # 1. The default (the warm-up itself) on every seed: its window at n. The set-up of an
    # earlier invocation (candidates, position, predictions) is kept: a resumed or widened
    # run scores the same candidates, and only new seeds get new predictions.
    setup = (payload.get("headroom_setup") or {}).get(args.start)
    if setup is not None and setup["position"] != n:
        raise SystemExit(
            f"{out}: the headroom set-up from the {args.start} start is at point "
            f"{setup['position']}, this model's first replan is {n}; use --out"
        )
    default_label = f"{prefix}/default"
    predictions = {}
    for seed in seeds:
        arm = candidate_arm(task, data, family, lr, n, None, model_path, default_label)
        r = run(arm, seed)
        history = r["lode"]["history"]
        names, paths, gain = predicted_gains(model, history, n, K, P, default_rest,
                                             gain_scale(task.mode))  # fmt: skip
        predictions[seed] = dict(zip(names, gain, strict=True))
        library = dict(zip(names, paths, strict=True))
    # 2. The candidates: the model's top by mean predicted gain, some at random (chosen once).
    if setup is None:
        others = [c for c in library if c != "default"]
        mean_gain = {c: float(np.mean([predictions[s][c] for s in seeds])) for c in others}
        top = sorted(others, key=lambda c: -mean_gain[c])[:HEADROOM_TOP]
        rest = [c for c in others if c not in top]
        rng = np.random.default_rng(0)
        pick = rng.choice(len(rest), min(HEADROOM_RANDOM, len(rest)), replace=False)
        setup = {"position": int(n), "total_points": int(K), "start": f"{family}@{lr:g}",
                 "candidates": top + sorted(rest[i] for i in pick), "model_top": top,
                 "predicted_gain": {}}  # fmt: skip
    setup["predicted_gain"].update(predictions_json(predictions))
    payload.setdefault("headroom_setup", {})[args.start] = setup
    write_json(out, payload)
    for seed in seeds:
        for c in setup["candidates"]:
            arm = candidate_arm(task, data, family, lr, n, library[c], model_path, f"{prefix}/{c}")
            run(arm, seed)


def predictions_json(predictions):
    return {str(s): {c: float(g) for c, g in d.items()} for s, d in predictions.items()}


def headroom_summary(payload) -> list:
    """Per start: split-half headroom, the planner's realized gain, capture, model skill."""
    import numpy as np

    by = {(r["method"], r["seed"]): r for r in payload["results"]}
    out = []
    for start, setup in (payload.get("headroom_setup") or {}).items():
        prefix = f"headroom-{start}"
        seeds = sorted(s for (m, s) in by if m == f"{prefix}/default")
        cands = [c for c in setup["candidates"] if all((f"{prefix}/{c}", s) in by for s in seeds)]
        if len(seeds) < 4 or not cands:
            continue
        key, scale = "test_at_end", gain_scale(payload.get("mode"))
        base = {s: by[(f"{prefix}/default", s)][key] for s in seeds}
        gain = np.array([[scale * (by[(f"{prefix}/{c}", s)][key] - base[s]) for s in seeds]
                         for c in cands])  # fmt: skip
        half = len(seeds) // 2
        a, b = np.arange(half), np.arange(half, len(seeds))
        scores, ses = [], []
        for pick, score in ((a, b), (b, a)):
            best = int(np.argmax(gain[:, pick].mean(axis=1)))
            scores.append(float(gain[best, score].mean()))
            ses.append(float(gain[best, score].std(ddof=1) / np.sqrt(len(score))))
        pred = np.array([[setup["predicted_gain"][str(s)][c] for s in seeds] for c in cands])
        rho = [float(_spearman(pred[:, j], gain[:, j])) for j in range(len(seeds))]
        rho = [r for r in rho if np.isfinite(r)]
        scenario = "best" if start == "best" else "rescue"
        lode = f"lode@{payload['configs']['family']}" if start == "best" else "default:lode"
        arm = (f"{payload['configs']['family']}@{payload['configs']['peak_lr']:g}"
               if start == "best" else "default:constant")  # fmt: skip
        paired = [
            s for s in seeds if (f"{scenario}/{lode}", s) in by and (f"{scenario}/{arm}", s) in by
        ]
        realized = (float(np.mean([scale * (by[(f"{scenario}/{lode}", s)][key]
                                          - by[(f"{scenario}/{arm}", s)][key]) for s in paired]))
                    if paired else None)  # fmt: skip
        headroom = float(np.mean(scores))
        out.append({
            "scenario": scenario, "start": start, "key": key, "n": len(seeds),
            "candidates": len(cands), "headroom": headroom,
            "headroom_se": float(np.sqrt(np.sum(np.square(ses))) / 2),
            "best_in_hindsight": float(gain.mean(axis=1).max()),
            "realized": realized, "realized_n": len(paired),
            "capture": (realized / headroom) if realized is not None and headroom > 0 else None,
            "spearman": float(np.mean(rho)) if rho else None,
            "rmse": float(np.sqrt(np.mean((pred - gain) ** 2))),
        })  # fmt: skip
    return out


def _spearman(x, y):
    """Spearman's rank correlation (ties share their average rank; NaN if a side is flat)."""
    from scipy.stats import spearmanr

    return spearmanr(x, y).statistic


def _cell(rows, scenario, method, reference, key="test_at_end"):
    for r in rows:
        if (r["scenario"], r["method"], r["reference"], r["key"]) == (
            scenario, method, reference, key
        ):  # fmt: skip
            lo, hi = r["ci95"]
            return f"{r['mean']:+.2f} [{lo:+.2f}, {hi:+.2f}] (n={r['n']})"
    return "not run"


def markdown(payload) -> str:
    """The README's table: per scenario, headroom, the LODE's paired gain, capture, peers."""
    c, summary = payload["configs"], payload["summary"]
    rows, best_arm = summary["scenarios"], f"{c['family']}@{c['peak_lr']:g}"
    capture = {
        (x["scenario"], x["start"]): x for x in summary["capture"] if x["key"] == "test_at_end"
    }
    headroom = {h["start"]: h for h in summary.get("headroom", [])}

    def cell(scenario, method, reference):
        return _cell(rows, scenario, method, reference)

    def cap(scenario, start):
        x = capture.get((scenario, start))
        if not x or x["capture"] is None:
            return "-"
        if x["gap"] <= 0:  # the start is as good as the sweep best: nothing to capture
            return f"no gap ({x['gap']:+.2f})"
        return f"{100 * x['capture']:.0f}% of {x['gap']:+.2f}"

    def room(start):
        h = headroom.get(start)
        return f"{h['headroom']:+.2f} +/- {h['headroom_se']:.2f}" if h else "not run"

    lode_best = f"lode@{c['family']}"
    start = f"{payload.get('default_lr', DEFAULT_LR):g}"
    table = [
        ("best (warm-up " + best_arm + ")", room("best"), cell("best", lode_best, best_arm),
         "-", "-"),
        (f"rescue from constant {start}", room("default"),
         cell("rescue", "default:lode", "default:constant"), cap("rescue", "default"),
         "plateau " + cell("rescue", "default:plateau", "default:constant")
         + "; cosine " + cell("rescue", "default:cosine", "default:constant")
         + "; linear " + cell("rescue", "default:linear", "default:constant")
         + "; sweep best " + cell("rescue", "sweep_best", "default:constant")),
        (f"rescue from constant@{c['constant']:g}", "-",
         cell("rescue", "best_constant:lode", "best_constant:constant"),
         cap("rescue", "best_constant"),
         "plateau " + cell("rescue", "best_constant:plateau", "best_constant:constant")
         + "; sweep best " + cell("rescue", "sweep_best", "best_constant:constant")),
        (f"unseen (another task's LODE) from {start}", "-",
         cell("unseen", "default:lode", "default:constant"), cap("unseen", "default"), "-"),
    ]  # fmt: skip
    lines = [
        f"Test metric at the end ({gain_units(payload)}), paired by seed: {payload['task']} at "
        f"{payload['scale']} scale, {payload['backend']}; sweep best {best_arm}, best "
        f"constant constant@{c['constant']:g}.",
        "",
        "| scenario | oracle headroom | LODE - its start | capture of the gap to the sweep "
        "best | peers (peer - start) |",
        "|---|---|---|---|---|",
        *("| " + " | ".join(r) + " |" for r in table),
    ]
    switched = summary.get("lode_switched_seeds", {})
    lines += ["", "Seeds on which the LODE left its start: "
              + ", ".join(f"{k} {v}" for k, v in sorted(switched.items())) + "."]  # fmt: skip
    for name, why in summary.get("excluded", {}).items():
        lines += ["", f"Left out: {name}: {why}."]
    for h in summary.get("headroom", []):
        at = payload["headroom_setup"][h["start"]]["position"]
        realized = "not run" if h["realized"] is None else f"{h['realized']:+.2f}"
        lines += [
            "",
            f"Headroom from the {h['start']} start at point {at}: {h['candidates']} "
            f"continuations x {h['n']} seeds; the best continuation (split half) "
            f"{h['headroom']:+.2f} +/- {h['headroom_se']:.2f} (in hindsight "
            f"{h['best_in_hindsight']:+.2f}); the planner's realized gain {realized}; model "
            f"skill: Spearman {h['spearman']:.2f}, RMSE {h['rmse']:.2f} points.",
        ]
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    from keras_lode._json import write_json
    from keras_lode.experiments import load_task_data, train_one
    from keras_lode.tasks import get_task

    reference_path = Path(
        args.reference or ROOT / f"benchmarks/results/quality_{args.task}_{args.scale}.json"
    ).resolve()
    out = Path(args.out or ROOT / f"benchmarks/results/scenarios_{args.task}_{args.scale}.json")
    model = args.model or str(ROOT / "models" / f"{args.task}.npz")
    if args.report:
        payload = json.loads(out.read_text())
        payload["summary"] = summarize(payload)
        print(markdown(payload))
        return 0
    if args.scenario is None:
        raise SystemExit("--scenario is required (or --report)")
    task = get_task(args.task, scale=args.scale, **({"epochs": args.epochs} if args.epochs else {}))
    if args.runs:
        configs, reference_path = configs_from_runs(args.runs), Path(args.runs).resolve()
    else:
        configs = best_configs(json.loads(reference_path.read_text()))
    configs["default_lr"] = default_lr(task)
    payload = json.loads(out.read_text()) if out.exists() else {"results": [], "commands": []}
    import keras

    if payload.get("backend", keras.backend.backend()) != keras.backend.backend():
        raise SystemExit(
            f"{out} holds {payload['backend']} runs; this is {keras.backend.backend()}: "
            "pairs across backends are not matched. Use --out for a new file."
        )
    payload.update(
        benchmark="scenarios", task=args.task, scale=args.scale, configs=configs,
        reference=os.path.relpath(reference_path, ROOT), default_lr=configs["default_lr"],
        machine=f"{platform.machine()} {os.cpu_count()} cores", mode=task.mode,
        metric_name=task.metric_name,
    )  # fmt: skip
    payload["units"] = gain_units(payload)
    payload["backend"] = keras.backend.backend()
    command = "python benchmarks/scenarios.py " + " ".join(sys.argv[1:] if argv is None else argv)
    if command not in payload["commands"]:
        payload["commands"].append(command)
    data = load_task_data(task, 0)
    if args.scenario == "headroom":
        run_headroom(args, task, data, configs, model, payload, out, parse_seeds(args.seeds))
        payload["summary"] = summarize(payload)
        write_json(out, payload)
        for row in payload["summary"]["headroom"]:
            print(json.dumps(row))
        return 0
    methods = scenario_methods(args.scenario, configs, model, args.unseen_model)
    if args.methods:
        wanted = {f"{args.scenario}/{m.strip()}" for m in args.methods.split(",") if m.strip()}
        unknown = sorted(wanted - {m.label for m in methods})
        if unknown:
            raise SystemExit(f"--methods: {unknown} are not methods of this scenario; it has "
                             f"{[m.label for m in methods]}")  # fmt: skip
        methods = [m for m in methods if m.label in wanted]
    done = {(r["method"], r["seed"]) for r in payload["results"]}
    for seed in parse_seeds(args.seeds):
        for m in methods:
            if (m.label, seed) in done:
                continue
            t0 = time.perf_counter()
            r = train_one(task, m, seed=seed, data=data)
            r.pop("points", None)
            payload["results"].append(r)
            payload["summary"] = summarize(payload)
            write_json(out, payload)
            switched = (r["lode"] or {}).get("switches")
            at_best, at_end = (_shown(r[k], task.mode) for k in ("test_at_best_val", "test_at_end"))
            print(f"  {m.label:<30} seed {seed}: test@best-val {at_best}  test@end {at_end}"
                  f"{'  switched' if switched else ''}  ({time.perf_counter() - t0:.0f} s)",
                  flush=True)  # fmt: skip
    payload["summary"] = summarize(payload)
    write_json(out, payload)
    for row in payload["summary"]["scenarios"]:
        if row["key"] == "test_at_end":
            lo, hi = row["ci95"]
            print(f"{row['scenario']:<7} {row['method']:>20} - {row['reference']:<22} "
                  f"{row['mean']:+.2f} [{lo:+.2f}, {hi:+.2f}] n={row['n']}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
