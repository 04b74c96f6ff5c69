"""The README's quick start runs as written: no error, no LODEWarning, the plan table printed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _quick_start() -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Quick start") :]
    start = section.index("```python") + len("```python")
    return section[start : section.index("```", start)]


def test_readme_quick_start_runs_as_written():
    code = (
        "import warnings, keras_lode\n"
        "warnings.simplefilter('always', keras_lode.LODEWarning)\n" + _quick_start()
    )
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT,
        timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    # No warning from keras_lode: the stand-in data looks like the model's training runs
    # (the callback reports a failed check in the log instead of raising, so read stderr).
    assert "LODEWarning" not in result.stderr, result.stderr[-3000:]
    assert "could not check the run" not in result.stderr, result.stderr[-3000:]
    out = result.stdout
    assert "LR at each of the 50 log points:" in out
    assert "LODE control plan at point" in out  # the shipped model replanned
    assert "validation loss and accuracy:" in out
