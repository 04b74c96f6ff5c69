#!/usr/bin/env bash
# The test command (README "Tests"): installs what the suite needs, then runs it once
# lints (ruff check + ruff format --check), then runs the suite once under TensorFlow
# (every test) and again under JAX and torch (tests marked `backend`).
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1

export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}" TF_CPP_MIN_LOG_LEVEL=3
status=0
echo "=== ruff check, ruff format --check ==="
python -m ruff check . || status=1
python -m ruff format --check . || status=1
echo "=== KERAS_BACKEND=tensorflow: full suite ==="
KERAS_BACKEND=tensorflow python -m pytest -q "$@" || status=1
for b in jax torch; do
    echo "=== KERAS_BACKEND=$b: backend tests ==="
    KERAS_BACKEND=$b python -m pytest -q -m backend "$@" || status=1
done
exit $status
