"""Test configuration shared by the whole suite.

One Keras backend per process, chosen by KERAS_BACKEND (default tensorflow). The
suite runs once under tensorflow (everything) and once more under jax and torch
(only tests marked `backend`), see scripts/test.sh.
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest  # noqa: E402


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", default=False, help="run slow tests")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-slow"):
        return
    skip_slow = pytest.mark.skip(reason="slow: opt in with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)


@pytest.fixture
def backend() -> str:
    import keras

    return keras.backend.backend()


# Shared test helpers (e.g. lr_probe.py) live beside the tests; with --import-mode=importlib
# the folder is not on sys.path by itself.
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
