"""The pretrained LODE shipped inside the package: `LODECallback()`'s model when none is given.

`zoo.npz` is a task-free controlled ensemble (its inputs relative to the run's own state, so
it reads a run of any length, LR scale, optimizer and metric direction) trained on the
sweeps of several tasks, with a paired calibration, a continuation prior and a gate fitted on their
branch groups. Its card, with what it was trained on and how it does on tasks it never saw,
is `models/zoo.md` in the repository.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["ZOO_MODEL", "zoo_model_path"]

#: The file of the pretrained zoo model.
ZOO_MODEL = Path(__file__).resolve().with_name("zoo.npz")


def zoo_model_path() -> Path:
    """The pretrained zoo model's file; an error naming the problem if it is missing."""
    if not ZOO_MODEL.is_file():
        raise FileNotFoundError(
            f"The pretrained zoo model {ZOO_MODEL} is missing from this installation of "
            "keras_lode; reinstall the package, or pass a model file to LODECallback"
        )
    return ZOO_MODEL
