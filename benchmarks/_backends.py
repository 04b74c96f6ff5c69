"""Shared by the benchmark scripts: one worker process per Keras backend, one JSON report.

Keras fixes its backend at import, so a script that compares backends runs itself once per
backend with `--worker BACKEND` (and `KERAS_BACKEND` set); the worker prints its result as
one JSON line, last on stdout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path


def run_workers(script: str, argv: list[str], backends: str, report: dict) -> Iterator:
    """Runs `script argv --worker B` for each backend B of the comma list `backends`.

    Stores each worker's result (or `{"error": ...}` if it failed, which is also printed)
    in `report["backends"][B]`, and yields `(B, result)` for the ones that succeeded.
    """
    report.setdefault("backends", {})
    for backend in [b.strip() for b in backends.split(",") if b.strip()]:
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
        proc = subprocess.run(
            [sys.executable, script, *argv, "--worker", backend],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        if proc.returncode != 0:
            report["backends"][backend] = {"error": f"worker exited with {proc.returncode}"}
            print(f"{backend}: worker failed ({proc.returncode})", file=sys.stderr)
            continue
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        report["backends"][backend] = result
        yield backend, result


def machine_info() -> dict:
    """Where a benchmark ran: platform, CPU count, load, and the GPUs `nvidia-smi` lists."""
    import platform
    import shutil

    gpus = []
    if shutil.which("nvidia-smi"):
        proc = subprocess.run(["nvidia-smi", "-L"], stdout=subprocess.PIPE, text=True)
        gpus = [line for line in proc.stdout.splitlines() if line.strip()]
    return {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_avg_at_start": os.getloadavg(),
        "gpus": gpus,
        "note": "timings are noisy on shared machines: read the per-round ratios",
    }


def report_header(script: str, argv: list[str] | None, **fields) -> dict:
    """The start of a benchmark's JSON report: the command that ran, the machine, `fields`.

    `argv` is the script's arguments (None: `sys.argv[1:]`).
    """
    args = list(argv if argv is not None else sys.argv[1:])
    return {
        "command": f"python benchmarks/{Path(script).name} " + " ".join(args),
        "machine": machine_info(),
        **fields,
    }


def paper_lode(points_per_epoch: int, horizon: int):
    """A random NumPy LODE of the paper's sizes (hidden 20, latent 20), LRs 1e-4..1e-2, seed 0."""
    from keras_lode.model import random_model

    return random_model(
        seed=0,
        hidden=20,
        latent=20,
        points_per_epoch=points_per_epoch,
        horizon=horizon,
        lr_range=(1e-4, 1e-2),
    )


def compile_adamw(model, learning_rate):
    """Compiles `model` as the CNN benchmarks train it: AdamW (weight decay 1e-2) with
    `learning_rate` (a float or a schedule), sparse cross-entropy, accuracy."""
    import keras

    model.compile(
        optimizer=keras.optimizers.AdamW(learning_rate, weight_decay=1e-2),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def no_tf_autotune():
    """`tf.data.Options` with autotuning off.

    On TensorFlow 2.21 (this machine, 2 CPUs) destroying a tf.data iterator sometimes waits
    for the autotuning model thread to leave a timed wait: fits from NumPy arrays stall
    ~2.5 s at an epoch's start or at the end of `fit` (docs/benchmarks.md, "TensorFlow
    stalls"). With autotuning off there is no model thread.
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return options


def patch_array_adapter_no_autotune() -> None:
    """Keras builds the tf.data pipeline of NumPy inputs itself: turn autotuning off in it.

    Benchmarks only (it patches a private Keras class); affects the TensorFlow backend,
    the only one that feeds NumPy inputs through tf.data.
    """
    from keras.src.trainers.data_adapters import array_data_adapter

    cls = array_data_adapter.ArrayDataAdapter
    if getattr(cls.get_tf_dataset, "_no_autotune", False):
        return
    build = cls.get_tf_dataset

    def get_tf_dataset(self):
        return build(self).with_options(no_tf_autotune())

    get_tf_dataset._no_autotune = True
    cls.get_tf_dataset = get_tf_dataset


def write_report(report: dict, output: str | os.PathLike) -> Path:
    """Writes `report` as indented JSON to `output` (parents created) and says where."""
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return out
