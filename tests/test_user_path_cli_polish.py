"""Issue 16, item 9: `keras-lode sweep` is as quiet as `demo` (no TensorFlow start-up lines),
writes run files with the usual mode (umask applied, not mkstemp's 0600), and the help texts
say what `--engine` does and what every `train` option defaults to."""

from __future__ import annotations

import argparse
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

TINY_TASK = """
import keras
import numpy as np

from keras_lode.experiments import Task, TaskData


def build(seed=0):
    keras.utils.set_random_seed(int(seed))
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])


def data(seed=0):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int64") + (x[:, 1] > 0)
    return TaskData(x[:64], y[:64], x[64:80], y[64:80], x[80:], y[80:])


TASK = Task(
    "tiny", build, data, epochs=2, batch_size=16, points_per_epoch=2, validation_samples=16,
    peak_lrs=(1e-2,), seeds=(0,), families=("constant",),
)
"""

# What TensorFlow >= 2.20 prints at start-up unless it is hidden.
TF_NOISE = ("absl::InitializeLog", "cudart_stub.cc", "port.cc:", "cpu_feature_guard.cc")


def _subparser(name: str) -> argparse.ArgumentParser:
    from keras_lode.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


def test_sweep_hides_tensorflow_noise_and_writes_run_files_0644(tmp_path):
    (tmp_path / "tiny_task.py").write_text(TINY_TASK)
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env.update(KERAS_BACKEND="tensorflow", PYTHONPATH=os.pathsep.join([str(ROOT), *sys.path]))
    result = subprocess.run(
        [sys.executable, "-m", "keras_lode", "sweep", "--task", "tiny_task.py:TASK"]
        + ["--out", "runs", "--quiet"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
        preexec_fn=lambda: os.umask(0o022),
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert "1 trials (1 complete)" in result.stdout
    for marker in TF_NOISE:
        assert marker not in result.stderr, result.stderr
    files = list((tmp_path / "runs").glob("*.run.csv"))
    assert len(files) == 1
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o644


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o002])
def test_run_files_respect_the_umask(tmp_path, umask):
    from keras_lode.runs import Run, write_run

    run = Run([1, 2], [0.5, 1.0], [1e-3, 1e-3], [2.0, 1.5], [0.1, 0.2], meta={"run_id": "r"})
    old = os.umask(umask)
    try:
        path = write_run(run, tmp_path / "r.run.csv")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_every_file_writer_respects_the_umask_and_leaves_nothing_on_failure(tmp_path, umask):
    """Model files and JSON share the run files' atomic writer (keras_lode._atomic)."""
    from keras_lode._json import write_json
    from keras_lode.model.controlled import random_controlled

    old = os.umask(umask)
    try:
        write_json(tmp_path / "a.json", {"x": 1.0})
        random_controlled(0, members=1, hidden=2, state=2, width=2, depth=1).save(
            tmp_path / "m.npz"
        )
        paths = [tmp_path / "a.json", tmp_path / "m.npz"]
    finally:
        os.umask(old)
    for p in paths:
        assert stat.S_IMODE(os.stat(p).st_mode) == 0o666 & ~umask, p
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "m.npz"]  # no temp left

    from keras_lode._atomic import write_atomic

    def fail(f):
        f.write("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_atomic(tmp_path / "a.json", fail)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "m.npz"]
    assert (tmp_path / "a.json").read_text() == '{\n "x": 1.0\n}\n'  # the old file stands


def test_hide_tensorflow_noise_keeps_other_stderr_lines():
    code = textwrap.dedent(
        """
        import os, sys
        from keras_lode._backend import hide_tensorflow_noise
        with hide_tensorflow_noise():
            os.write(2, b"I0000 00:00:1 123 port.cc:153] oneDNN custom operations are on\\n")
            os.write(2, b"a real problem\\n")
        print("done")
        """
    )
    env = dict(os.environ, KERAS_BACKEND="tensorflow")
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "done"
    assert result.stderr == "a real problem\n"


def test_sweep_engine_has_a_help_text():
    parser = _subparser("sweep")
    for action in parser._actions:
        if action.option_strings and action.dest != "help":
            assert action.help, f"sweep {action.option_strings} has no help text"
    engine = next(a for a in parser._actions if "--engine" in a.option_strings)
    text = engine.help % {"default": engine.default}
    assert "local" in text and "ray" in text.lower() and "default: local" in text


def test_train_help_shows_every_default():
    parser = _subparser("train")
    for action in parser._actions:
        if not action.option_strings or action.dest == "help":
            continue
        if action.default is None and action.dest in ("synthetic", "task", "report", "output"):
            continue  # no default: nothing is done unless given
        if action.default is False or action.default is argparse.SUPPRESS:
            continue  # a flag
        assert "default" in (action.help or ""), f"train {action.option_strings}: {action.help}"
    assert "default: 20 generative, 24 controlled" in " ".join(parser.format_help().split())
