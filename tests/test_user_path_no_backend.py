"""Issue 16, item 7: with Keras installed but not its backend, the Keras side of keras_lode
and the commands that train fail with an error naming the backend and the install command,
not a bare `ModuleNotFoundError: No module named 'tensorflow'`; NumPy-only work still runs.

A fresh process blocks `import tensorflow` the way a missing package fails (an import hook
raising ModuleNotFoundError), so the test runs where TensorFlow is installed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

BLOCK_TF = """
import sys

class _NoTensorFlow:
    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _NoTensorFlow())
"""


def _without_tensorflow(code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(
        [sys.executable, "-c", BLOCK_TF + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )


def _assert_clear(message: str, what: str) -> None:
    assert what in message, message
    assert "needs a backend" in message, message
    assert "'tensorflow'" in message, message
    assert "pip install tensorflow" in message, message
    assert 'pip install -e ".[tf]"' in message, message
    assert "KERAS_BACKEND=jax" in message, message


def test_lode_schedule_without_backend_names_it_and_the_install_command():
    result = _without_tensorflow(
        """
        import keras_lode
        for get in (lambda: keras_lode.LODESchedule, lambda: keras_lode.LODECallback):
            try:
                get()
            except ModuleNotFoundError as e:
                print("ERROR", e)
            else:
                print("NO ERROR")
        try:
            from keras_lode.schedules import make_schedule
        except ModuleNotFoundError as e:
            print("ERROR", e)
        """
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith("ERROR") for line in lines), lines
    _assert_clear(lines[0], "keras_lode.LODESchedule")
    _assert_clear(lines[1], "keras_lode.LODECallback")
    _assert_clear(lines[2], "keras_lode.schedules")


def test_numpy_side_works_without_backend():
    result = _without_tensorflow(
        """
        import numpy as np
        import keras_lode
        model = keras_lode.load_model("models/fmnist_cnn.npz")
        print("OK", model.horizon)
        """
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("OK")


def test_demo_without_backend_prints_a_clear_error(tmp_path):
    result = _without_tensorflow(
        f"""
        import sys
        from keras_lode.cli import main
        sys.exit(main(["demo", "--quick", "--out", r"{tmp_path / "demo"}"]))
        """
    )
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert result.stderr.startswith("keras-lode demo: error: "), result.stderr
    _assert_clear(result.stderr, "keras-lode demo")
