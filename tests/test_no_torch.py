"""Inference never imports torch (issue 2, Done-when 4), and keras_lode.train says how to
install torch when it is missing. Each check runs in a fresh interpreter.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

GOLDEN = os.path.join(os.path.dirname(__file__), "golden", "case_paper_h07.npz")


def _run(code, backend, extra_env=None):
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    env.update(extra_env or {})
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("backend", ["jax", "tensorflow"])
def test_inference_leaves_torch_unimported(backend):
    code = f"""
        import sys
        import numpy as np
        import keras  # the user's Keras, on the chosen backend
        import keras_lode
        model = keras_lode.load_model({GOLDEN!r})
        z = model.encode(np.arange(12.0), np.tile([1.0, -6.0, 0.6], (12, 1)))
        y = model.decode(np.arange(0.0, 50.0), np.stack([z, z]))
        assert y.shape == (2, 50, 3) and np.isfinite(y).all()
        assert keras.backend.backend() == {backend!r}, keras.backend.backend()
        leaked = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
        print("TORCH_MODULES", leaked)
    """
    result = _run(code, backend)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "TORCH_MODULES []" in result.stdout, result.stdout


def test_train_without_torch_raises_install_hint():
    # sys.modules[name] = None makes `import name` raise ImportError: torch "not installed".
    code = """
        import sys
        sys.modules["torch"] = None
        import keras_lode.train as train
        try:
            train.LatentODE
        except ImportError as e:
            print("MESSAGE", e)
            print("CAUSE", isinstance(e.__cause__, ImportError))
        else:
            raise SystemExit("no ImportError")
    """
    result = _run(code, "tensorflow")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "pip install 'keras-lode[train]'" in result.stdout
    assert "CAUSE True" in result.stdout


def test_importing_the_torch_module_directly_gives_the_hint():
    code = """
        import sys
        sys.modules["torchdiffeq"] = None
        try:
            import keras_lode.train.model
        except ImportError as e:
            print("MESSAGE", e)
    """
    result = _run(code, "tensorflow")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "pip install 'keras-lode[train]'" in result.stdout


def test_train_fit_is_the_function_after_importing_the_trainer_module():
    pytest.importorskip("torch")
    pytest.importorskip("torchdiffeq")
    code = """
        import keras_lode.train.trainer  # the module is named apart from the function
        from keras_lode.train import LatentODE, fit
        print("FIT", callable(fit), type(fit).__name__)
        print("MODEL", LatentODE.__name__)
    """
    result = _run(code, "tensorflow")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "FIT True function" in result.stdout and "MODEL TorchLatentODE" in result.stdout
