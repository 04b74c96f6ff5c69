#!/usr/bin/env bash
# The zoo's sweeps, for one LODE over many tasks: every task's grid (6 families x 5 peak LRs x
# seeds 0-2) with 22 switched runs, then 48 on-policy branch runs per task (12 groups of 4).
# The byte GPT's and the CNN's own grids have 3 peak LRs; here they get 5 (one below, one
# above), so that every task's sweep shows where its best peak LR lies (the LR ceiling).
# Each sweep resumes where it stopped, so rerun this script after an interruption; it first
# unpacks the runs already in models/zoo_runs/TASK.tar.xz (scripts/zoo_pack.sh writes them;
# ZOO_RUNS names another folder), never over a run file ZOO_DIR already has.
#
#   bash scripts/zoo_sweeps.sh ZOO_DIR [TASK ...]     # default: every zoo task, cheapest first
#
# Wall time seen here, two sweeps side by side on 2 cores: digits_mlp 13 min, fmnist_mlp
# 18 min, text_gpt 43 min, fmnist_cnn 63 min, charlm about 1.6 h (grid 56 min).
set -uo pipefail
cd "$(dirname "$0")/.."
zoo="${1:?usage: bash scripts/zoo_sweeps.sh ZOO_DIR [TASK ...]}"
shift
tasks=("$@")
[ ${#tasks[@]} -gt 0 ] || tasks=(digits_mlp fmnist_mlp fmnist_cnn charlm text_gpt fmnist_resnet)
export KERAS_BACKEND="${KERAS_BACKEND:-tensorflow}" TF_CPP_MIN_LOG_LEVEL=3
mkdir -p "$zoo"
for t in "${tasks[@]}"; do
    archive="${ZOO_RUNS:-models/zoo_runs}/$t.tar.xz"
    [ -f "$archive" ] || continue
    before=$(ls "$zoo/$t" 2>/dev/null | wc -l)
    tar -C "$zoo" --skip-old-files -xJf "$archive" || { echo "cannot unpack $archive" >&2; exit 1; }
    echo "=== $t: $(($(ls "$zoo/$t" | wc -l) - before)) runs unpacked from $archive"
done
status=0
for stage in grid branches; do
    for t in "${tasks[@]}"; do
        extra=()
        [ "$stage" = branches ] && extra=(--branches 48)
        case "$t" in text_gpt | fmnist_cnn) extra+=(--lrs 3e-4,1e-3,3e-3,1e-2,3e-2) ;; esac
        echo "=== $t ($stage) $(date -u +%H:%M:%S)"
        keras-lode sweep --task "$t" --scale cpu --seeds 0,1,2 --switched 22 "${extra[@]}" \
            --out "$zoo/$t" -q || { echo "FAILED: $t ($stage)"; status=1; }
    done
done
exit $status
