#!/usr/bin/env bash
# Leave-one-task-out validation of a zoo design, end to end and resumable (every step skips
# what its output already holds): held-out models, the closed loop from each task's Keras
# default LR (`rescue`) and from its sweep-best schedule (`best`), and the Done-when table.
#
#   bash scripts/zoo_validate.sh ZOO_DIR WORK_DIR [TASK ...]
#
# ZOO_DIR: the zoo's sweeps (scripts/zoo_sweeps.sh); WORK_DIR: models and results of this
# design (both relative to the repository root). Environment: SEEDS (default 100-109;
# validation seeds are 200-204), STARTS (the library's starting multiples, default
# 0.5,1,2,4,8), TRUST=1 to keep the trust region, CEILING_TOLERANCE (the held-out models'
# LR ceilings from the other tasks' near-best peaks within that many seed sd; default: the
# ceiling training writes, from the best peaks).
# The arms that do not depend on the model (the default constant, with ReduceLROnPlateau,
# cosine from it, and the sweep-best schedule when the committed file's best config is this
# zoo's) are copied from the committed files where those hold these seeds (FROM, default
# benchmarks/results/zoo_loto_prior: FROM_{rescue,best}_TASK_cpu.json), or from ARMS_FROM, an
# earlier WORK_DIR of the same zoo (its rescue_TASK.json and best_TASK.json), so that
# mostly the LODE arms run. CPU: about 10 min (MLPs) to 30 min (char LM) per task and
# scenario on 2 cores, plus ~25 min for the held-out models.
set -uo pipefail
cd "$(dirname "$0")/.."
zoo="${1:?usage: bash scripts/zoo_validate.sh ZOO_DIR WORK_DIR [TASK ...]}"
work="${2:?usage: bash scripts/zoo_validate.sh ZOO_DIR WORK_DIR [TASK ...]}"
shift 2
tasks=("$@")
[ ${#tasks[@]} -gt 0 ] || tasks=(digits_mlp fmnist_mlp fmnist_cnn text_gpt charlm)
seeds="${SEEDS:-100-109}"
from="${FROM:-benchmarks/results/zoo_loto_prior}"
export KERAS_BACKEND="${KERAS_BACKEND:-tensorflow}" TF_CPP_MIN_LOG_LEVEL=3
mkdir -p "$work/models"
library=(--starts "${STARTS:-0.5,1,2,4,8}")
[ "${TRUST:-0}" = 1 ] || library+=(--no-trust)
[ -z "${CEILING_TOLERANCE:-}" ] || library+=(--ceiling-tolerance "$CEILING_TOLERANCE")
heldout=$(IFS=,; echo "${tasks[*]}")

echo "=== held-out models $(date -u +%H:%M:%S)"
missing=0
for t in "${tasks[@]}"; do [ -f "$work/models/$t.npz" ] || missing=1; done
if [ $missing = 1 ]; then
    python benchmarks/zoo_loto.py --zoo "$zoo" --features relative --horizon 50 --window 10 \
        --members 3 --workers 2 --prior --heldout "$heldout" "${library[@]}" \
        --extra-groups fmnist_cnn=benchmarks/results/branches_fmnist_cnn_cpu.json \
        text_gpt=benchmarks/results/branches_text_gpt_cpu.json \
        --save-dir "$work/models" --out "$work/loto.json" || exit 1
fi

# Copies the model-independent arms of an earlier file ($1) into a new one ($2), once: the
# default arms always, the sweep-best arm only if the earlier file's best config is the
# zoo's ($3: the task's sweep directory).
seed_arms() {
    python - "$1" "$2" "$seeds" "$3" <<'EOF'
import json, sys
from pathlib import Path
sys.path.insert(0, "benchmarks")
from scenarios import configs_from_runs, parse_seeds
old, new, runs = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[4])
if new.exists() or not old.exists():
    sys.exit(0)
seeds = set(parse_seeds(sys.argv[3]))
payload = json.loads(old.read_text())
same_best = runs.is_dir() and all(
    payload.get("configs", {}).get(k) == v for k, v in configs_from_runs(runs).items())
def keep(method):
    if "lode" in method:
        return False
    return method.startswith("rescue/default:") or same_best
rows = [r for r in payload["results"] if keep(r["method"]) and r["seed"] in seeds]
if not rows:
    sys.exit(0)
out = {"results": rows, "commands": [], "backend": payload.get("backend"),
       "arms_from": {"file": str(old), "methods": sorted({r["method"] for r in rows}),
                     "note": "runs that do not depend on the model, copied from this "
                             "file (same task and seeds; for the sweep-best arm the zoo's "
                             "best config; scenarios.py refuses another backend's file)"}}
new.write_text(json.dumps(out))
print(f"  {len(rows)} runs of {out['arms_from']['methods']} copied from {old}")
EOF
}

summary=()
for t in "${tasks[@]}"; do
    model="$work/models/$t.npz"
    runs=(--runs "$zoo/$t")
    [ -d "$zoo/$t" ] || runs=()
    echo "=== $t: rescue $(date -u +%H:%M:%S)"
    if [ -n "${ARMS_FROM:-}" ]; then
        seed_arms "$ARMS_FROM/rescue_$t.json" "$work/rescue_$t.json" "$zoo/$t"
        seed_arms "$ARMS_FROM/best_$t.json" "$work/best_$t.json" "$zoo/$t"
    else
        seed_arms "${from}_rescue_${t}_cpu.json" "$work/rescue_$t.json" "$zoo/$t"
        seed_arms "${from}_best_${t}_cpu.json" "$work/best_$t.json" "$zoo/$t"
    fi
    python benchmarks/scenarios.py --task "$t" "${runs[@]}" --model "$model" --scenario rescue \
        --seeds "$seeds" --out "$work/rescue_$t.json" \
        --methods default:constant,default:plateau,default:cosine,sweep_best,default:lode \
        || { echo "FAILED: $t rescue"; exit 1; }
    summary+=("$t=$work/rescue_$t.json")
    echo "=== $t: best $(date -u +%H:%M:%S)"
    python benchmarks/scenarios.py --task "$t" "${runs[@]}" --model "$model" --scenario best \
        --seeds "$seeds" --out "$work/best_$t.json" || { echo "FAILED: $t best"; exit 1; }
done
python benchmarks/zoo_loto.py --closed-loop "${summary[@]}" --out "$work/zoo_loto.json"
for t in "${tasks[@]}"; do python benchmarks/scenarios.py --task "$t" --report --out "$work/best_$t.json"; done
