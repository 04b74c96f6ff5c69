"""Does a smaller validation subset make the LODE schedule train worse models?

The callback measures the validation metric on `validation_samples` examples at every log
point; that measurement is nearly all of its cost (`benchmarks/validation_cost.py`). This
script evaluates the LODE arm of the quality benchmark (`benchmarks/quality.py`, stage
`evaluate`, same model, task, warm-up and evaluation seeds) once per subset size, and
reports test accuracy per size with the paired difference (by seed, 95% interval) against
the first size and against the best family of the main quality results.

It needs the quality benchmark's work directory (sweep runs and trained model) first:

    python benchmarks/quality.py --task fmnist_cnn --scale cpu
    python benchmarks/validation_subset.py --sizes 1024,512,256

Each size's evaluation is written to `<work>/eval_lode<size>.json` and resumes from it;
the summary goes to `benchmarks/results/validation_subset_<task>_<scale>.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KEYS = ("test_at_best_val", "test_at_end")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--task", default="fmnist_cnn")
    ap.add_argument("--scale", default="cpu")
    ap.add_argument("--sizes", default="1024,512,256")
    ap.add_argument("--seeds", default="100,101,102,103,104,105,106,107,108,109")
    ap.add_argument("--work", default=None, help="quality work dir (default bench_work/...)")
    ap.add_argument("--output", default=None)
    args = ap.parse_args(argv)

    from keras_lode.compare import paired_difference

    work = Path(args.work or ROOT / "bench_work" / f"{args.task}_{args.scale}")
    main_json = ROOT / "benchmarks" / "results" / f"quality_{args.task}_{args.scale}.json"
    model = work / f"{args.task}.npz"
    if not model.is_file() or not main_json.is_file():
        print(
            f"needs {model} and {main_json}: run benchmarks/quality.py --task {args.task} "
            f"--scale {args.scale} first",
            file=sys.stderr,
        )
        return 2
    sizes = [int(s) for s in args.sizes.split(",")]
    per_size = {}
    for size in sizes:
        out = work / f"eval_lode{size}.json"
        cmd = [
            sys.executable,
            str(ROOT / "benchmarks" / "quality.py"),
            *("--task", args.task, "--scale", args.scale, "--stage", "evaluate"),
            *("--model", str(model), "--methods", "lode", "--eval-seeds", args.seeds),
            *("--lode-validation-samples", str(size), "--out", str(out)),
        ]
        print(f"validation_samples={size}: {' '.join(cmd[1:])}", flush=True)
        subprocess.run(cmd, check=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
        results = json.loads(out.read_text())["results"]
        per_size[size] = {
            key: {r["seed"]: r[key] for r in results if r["method"] == "lode"} for key in KEYS
        }

    main_results = json.loads(main_json.read_text())
    best_family = main_results["summary"]["paired"]["baseline"]
    family = {
        key: {r["seed"]: r[key] for r in main_results["results"] if r["method"] == best_family}
        for key in KEYS
    }
    report = {
        "command": "python benchmarks/validation_subset.py " + " ".join(argv or sys.argv[1:]),
        "task": args.task,
        "scale": args.scale,
        "keys": list(KEYS),
        "sizes": {},
    }
    first = sizes[0]
    for key in KEYS:
        print(f"\n{key}, {args.task} ({args.scale}), LODE by validation subset size:")
        for size in sizes:
            acc = per_size[size][key]
            seeds = sorted(acc)
            values = [acc[s] for s in seeds]
            mean = sum(values) / len(values)
            std = (sum((v - mean) ** 2 for v in values) / max(len(values) - 1, 1)) ** 0.5
            row = {
                "n": len(seeds),
                "mean": mean,
                "std": std,
                "per_seed": dict(zip(map(str, seeds), values, strict=True)),
            }
            line = f"  {size:>5}: {100 * mean:.2f} +/- {100 * std:.2f} (n={len(seeds)})"
            for label, other in ((str(first), per_size[first][key]), (best_family, family[key])):
                both = [s for s in seeds if s in other]
                if (label == str(first) and size == first) or not both:
                    continue
                p = paired_difference([acc[s] for s in both], [other[s] for s in both])
                row[f"vs_{label}"] = p
                line += (
                    f"  vs {label} {100 * p['mean']:+.2f} "
                    f"[{100 * p['ci95'][0]:+.2f}, {100 * p['ci95'][1]:+.2f}]"
                )
            report["sizes"].setdefault(str(size), {})[key] = row
            print(line)
    out = Path(
        args.output
        or ROOT / "benchmarks" / "results" / f"validation_subset_{args.task}_{args.scale}.json"
    )
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
