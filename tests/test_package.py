"""Package-level behaviour: lazy imports, serialization registration, the CLI entry point."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest


def _python(code: str, backend: str = "tensorflow", cwd=None) -> subprocess.CompletedProcess:
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
    )


def test_import_is_light_and_names_resolve_lazily():
    result = _python(
        """
        import sys
        import keras_lode
        assert "keras" not in sys.modules, "import keras_lode must not import keras"
        assert "torch" not in sys.modules
        from keras_lode import load_model, plan, Run, load_runs
        assert "keras" not in sys.modules, "NumPy-side names must not import keras"
        print("OK", sorted(n for n in dir(keras_lode) if not n.startswith("_"))[:3])
        """
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("OK")


def test_unknown_attribute_raises_attribute_error():
    import keras_lode

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        keras_lode.nope  # noqa: B018


@pytest.mark.backend
def test_saved_model_with_lode_schedule_loads_in_a_fresh_process(tmp_path, backend):
    """`import keras; import keras_lode; keras.saving.load_model(...)` finds LODESchedule
    without the user touching keras_lode.LODESchedule (registration at import)."""
    save = _python(
        f"""
        import keras, numpy as np
        import keras_lode
        s = keras_lode.LODESchedule([1e-3, 2e-3, 3e-3], steps_per_epoch=3, points_per_epoch=1)
        m = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        m.compile(optimizer=keras.optimizers.SGD(s), loss="mse")
        m.fit(np.ones((6, 2)), np.ones((6, 1)), batch_size=2, epochs=1, verbose=0)
        m.save(r"{tmp_path / "m.keras"}")
        """,
        backend,
    )
    assert save.returncode == 0, save.stderr[-3000:]
    load = _python(
        f"""
        import keras
        import keras_lode
        m = keras.saving.load_model(r"{tmp_path / "m.keras"}")
        lr = m.optimizer.learning_rate
        print(type(m.optimizer._learning_rate).__name__, float(keras.ops.convert_to_numpy(lr)))
        """,
        backend,
    )
    assert load.returncode == 0, load.stderr[-3000:]
    name, lr = load.stdout.split()[-2:]
    assert name == "LODESchedule"
    # 3 steps done: step 3 is at log point u = (3 + 1) * 1 / 3 - 1 = 1/3 of the plan, so
    # lr = 1e-3 + (2e-3 - 1e-3) / 3 — the value the optimizer had before saving.
    assert float(lr) == pytest.approx(1e-3 + 1e-3 / 3, rel=1e-6)


def test_cli_help_lists_every_subcommand():
    result = subprocess.run(
        [sys.executable, "-m", "keras_lode", "--help"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    for name in ("sweep", "train", "plan", "compare", "demo"):
        assert name in result.stdout


def test_cli_without_a_command_prints_help_and_fails():
    from keras_lode.cli import main

    assert main([]) == 2
