"""Where can a planner win? The LODE in three scenarios, each against matched arms and peers.

A planner can only win what its scenario leaves to win (docs/benchmarks.md, protocol v3):

- `best`: the LODE warms up on the best schedule of its sweep (chosen on the sweep's
  validation metric, never on test); paired with that schedule's matched arm.
- `rescue`: it warms up on an untuned default: constant AdamW at Keras' 1e-3, and the
  sweep's best constant LR. Peers at the same start: the constant itself, the constant +
  `ReduceLROnPlateau`, cosine and linear decay from it to ~0 (the one-line fix), and
  `ScheduleFreeAdamW` at its recommended settings; the sweep's best schedule is the
  reference. Capture = (LODE - default) / (sweep best - default).
- `unseen`: a LODE trained on another task's runs (`--unseen-model`), in the rescue setting
  at 1e-3.

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
SCENARIOS = ("best", "rescue", "unseen")
DEFAULT_LR = 1e-3  # Keras' Adam/AdamW default: what a user without a sweep starts from
KEYS = ("test_at_best_val", "test_at_end")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", required=True, help="built-in task name (fmnist_cnn, text_gpt)")
    p.add_argument("--scale", default="cpu")
    p.add_argument("--scenario", required=True, choices=SCENARIOS)
    p.add_argument("--seeds", default="100-109", help="'100-109' or '100,101,...'")
    p.add_argument("--model", default=None, help="the task's LODE (default models/<task>.npz)")
    p.add_argument("--unseen-model", default=None, help="a LODE of another task (`unseen`)")
    p.add_argument("--reference", default=None,
                   help="protocol-2 results file with the sweep summary (default "
                        "benchmarks/results/quality_<task>_<scale>.json)")  # fmt: skip
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
        for name, lr in (("default", DEFAULT_LR), ("best_constant", configs["constant"])):
            methods[f"{name}:constant"] = arm("constant", lr)
            methods[f"{name}:lode"] = lode("constant", lr)
            methods[f"{name}:plateau"] = Method("plateau", peak_lr=lr)
        methods["default:cosine"] = arm("cosine", DEFAULT_LR)
        methods["default:linear"] = arm("linear", DEFAULT_LR)
        methods["schedulefree"] = Method("schedulefree")
    else:
        if not unseen_model:
            raise SystemExit("--scenario unseen needs --unseen-model (a LODE of another task)")
        methods = {
            "default:constant": arm("constant", DEFAULT_LR, unseen_model),
            "default:lode": lode("constant", DEFAULT_LR, unseen_model),
        }
    out = []
    for label, m in methods.items():
        m.label = f"{scenario}/{label}"
        out.append(m)
    return out


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
    for scenario, pairs in PAIRS.items():
        for a, b in pairs(payload["configs"]):
            ma, mb = f"{scenario}/{a}", f"{scenario}/{b}"
            seeds = sorted(set(by.get(ma, {})) & set(by.get(mb, {})))
            if len(seeds) < 2:
                continue
            for key in KEYS:
                d = paired_difference(
                    [100 * by[ma][s][key] for s in seeds], [100 * by[mb][s][key] for s in seeds]
                )
                rows.append({"scenario": scenario, "method": a, "reference": b, "key": key, **d})
    # Capture: the LODE's gain over its start as a share of the sweep best's gain over it,
    # on the seeds where all three ran (the unseen LODE against the rescue runs' references).
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
                 "lode_gain": 100 * float(gain), "gap": 100 * float(gap),
                 "capture": float(gain / gap) if gap != 0 else None}
            )  # fmt: skip
    switched = {
        m: sum(bool(r["lode"] and r["lode"].get("switches")) for r in runs.values())
        for m, runs in by.items()
        if m.endswith("lode") or "/lode@" in m
    }
    return {"scenarios": rows, "capture": capture, "lode_switched_seeds": switched}


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
    configs = best_configs(json.loads(reference_path.read_text()))
    payload = json.loads(out.read_text()) if out.exists() else {"results": [], "commands": []}
    payload.update(
        benchmark="scenarios", task=args.task, scale=args.scale, configs=configs,
        reference=os.path.relpath(reference_path, ROOT), default_lr=DEFAULT_LR,
        machine=f"{platform.machine()} {os.cpu_count()} cores",
    )  # fmt: skip
    import keras

    payload["backend"] = keras.backend.backend()
    command = "python benchmarks/scenarios.py " + " ".join(sys.argv[1:] if argv is None else argv)
    if command not in payload["commands"]:
        payload["commands"].append(command)
    task = get_task(args.task, scale=args.scale)
    data = load_task_data(task, 0)
    methods = scenario_methods(args.scenario, configs, model, args.unseen_model)
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
            print(f"  {m.label:<30} seed {seed}: test@best-val {100 * r['test_at_best_val']:.2f}"
                  f"  test@end {100 * r['test_at_end']:.2f}"
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
