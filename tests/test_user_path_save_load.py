"""Issue 16, item 5: a model saved with `LODESchedule` loads in a fresh process whatever the
import order of keras and keras_lode (the user touches nothing but `import keras_lode`)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest


def _python(code: str, backend: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    path = tmp_path_factory.mktemp("saved") / "m.keras"
    # keras_lode first here too: the order of the saving process must not matter either.
    save = _python(
        f"""
        import keras_lode
        import keras, numpy as np
        s = keras_lode.LODESchedule([1e-3, 2e-3, 3e-3], steps_per_epoch=3, points_per_epoch=1)
        c = keras_lode.schedules.OneCycle(3e-3, total_steps=9)
        m = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1), keras.layers.Dense(1)])
        m.compile(optimizer=keras.optimizers.SGD(s), loss="mse")
        m.fit(np.ones((6, 2)), np.ones((6, 1)), batch_size=2, epochs=1, verbose=0)
        m.save(r"{path}")
        m2 = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        m2.compile(optimizer=keras.optimizers.SGD(c), loss="mse")
        m2.save(r"{path.with_name("c.keras")}")
        """,
        backend,
    )
    assert save.returncode == 0, save.stderr[-3000:]
    return path


@pytest.mark.backend
@pytest.mark.parametrize(
    "imports", ["import keras_lode\nimport keras", "import keras\nimport keras_lode"]
)
def test_saved_lode_schedule_loads_in_a_fresh_process_in_either_import_order(
    saved_model, backend, imports
):
    load = _python(
        imports
        + f"""
import sys
m = keras.saving.load_model(r"{saved_model}")
c = keras.saving.load_model(r"{saved_model.with_name("c.keras")}")
lr = float(keras.ops.convert_to_numpy(m.optimizer.learning_rate))
print(type(m.optimizer._learning_rate).__name__, type(c.optimizer._learning_rate).__name__, lr)
""",
        backend,
    )
    assert load.returncode == 0, load.stderr[-3000:]
    name, baseline, lr = load.stdout.split()[-3:]
    assert (name, baseline) == ("LODESchedule", "OneCycle")
    # 3 steps done: the optimizer continues at the LR it had before saving (1/3 into the plan).
    assert float(lr) == pytest.approx(1e-3 + 1e-3 / 3, rel=1e-6)


def test_import_keras_lode_still_does_not_import_keras():
    result = _python(
        """
        import sys
        import keras_lode
        from keras_lode import load_model, plan
        assert "keras" not in sys.modules
        print("OK")
        """,
        "tensorflow",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "OK"
