#!/usr/bin/env bash
# Packs the zoo's sweeps into models/zoo_runs/TASK.tar.xz (the run files only, byte-for-byte
# reproducible archives), so that the runs the zoo model is trained on live with the code.
# scripts/zoo_sweeps.sh unpacks them before it resumes, so a new machine starts from them.
#
#   bash scripts/zoo_pack.sh ZOO_DIR [TASK ...]     # default: every task directory in ZOO_DIR
#
# ZOO_RUNS (default models/zoo_runs, relative to the repository root) is where they go.
set -euo pipefail
zoo="$(cd "${1:?usage: bash scripts/zoo_pack.sh ZOO_DIR [TASK ...]}" && pwd)"
shift
cd "$(dirname "$0")/.."
out="${ZOO_RUNS:-models/zoo_runs}"
mkdir -p "$out"
tasks=("$@")
if [ ${#tasks[@]} -eq 0 ]; then
    for d in "$zoo"/*/; do [ -d "$d" ] && tasks+=("$(basename "$d")"); done
    [ ${#tasks[@]} -gt 0 ] || { echo "no task directories in $zoo" >&2; exit 1; }
fi
trap 'rm -f "$out"/*.tar.xz.tmp' EXIT
for t in "${tasks[@]}"; do
    [ -d "$zoo/$t" ] || { echo "no such task directory: $zoo/$t" >&2; exit 1; }
    # A run still being written ("running") is left out: the sweep reruns it.
    mapfile -t files < <(cd "$zoo" && grep -L '"status": "running"' "$t"/*.run.csv | LC_ALL=C sort)
    [ ${#files[@]} -gt 0 ] || { echo "no finished run files in $zoo/$t" >&2; exit 1; }
    tar -C "$zoo" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
        --mode=a+rX,u+w,go-w -cf - "${files[@]}" | xz -9 -T1 > "$out/$t.tar.xz.tmp"
    mv "$out/$t.tar.xz.tmp" "$out/$t.tar.xz"
    echo "$out/$t.tar.xz: ${#files[@]} runs, $(du -k "$out/$t.tar.xz" | cut -f1) KB"
done
