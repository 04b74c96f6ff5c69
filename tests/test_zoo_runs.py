"""The zoo's runs live with the code: packed reproducibly, unpacked before a sweep resumes.

`scripts/zoo_pack.sh` must write the finished run files of a task, byte for byte the same
archive when run twice, leaving out a run still being written; the run files it holds must
read back as the runs they were. The sweep script's unpack step must restore them without
overwriting a run file the zoo directory already has.
"""

from __future__ import annotations

import shutil
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pytest

from keras_lode.runs import load_runs
from keras_lode.runs.run import Run

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(shutil.which("xz") is None, reason="needs xz")


def _zoo(tmp_path) -> Path:
    zoo = tmp_path / "zoo"
    for seed, status in ((0, "complete"), (1, "complete"), (2, "running")):
        t = np.arange(1, 6)
        meta = {"task": "toy", "seed": seed, "schedule": "constant", "peak_lr": 0.01,
                "status": status}  # fmt: skip
        Run(step=t, epoch=t / 5, lr=np.full(5, 0.01), loss=1.0 / t, metric=0.1 * t,
            meta=meta).save(zoo / "toy")  # fmt: skip
    return zoo


def _pack(zoo, out):
    return subprocess.run(["bash", str(ROOT / "scripts/zoo_pack.sh"), str(zoo), "toy"],
                          env={"PATH": "/usr/bin:/bin", "ZOO_RUNS": str(out)},
                          capture_output=True, text=True, check=True)  # fmt: skip


def test_pack_is_reproducible_and_leaves_out_a_run_being_written(tmp_path):
    zoo = _zoo(tmp_path)
    printed = _pack(zoo, tmp_path / "a").stdout
    assert "toy.tar.xz: 2 runs" in printed
    _pack(zoo, tmp_path / "b")
    first = (tmp_path / "a" / "toy.tar.xz").read_bytes()
    assert first == (tmp_path / "b" / "toy.tar.xz").read_bytes()
    with tarfile.open(tmp_path / "a" / "toy.tar.xz") as tar:
        names = sorted(tar.getnames())
        assert len(names) == 2 and all(n.startswith("toy/") for n in names)
        tar.extractall(tmp_path / "restored", filter="data")
    original = {r.run_id: r for r in load_runs(zoo / "toy")}
    restored = load_runs(tmp_path / "restored" / "toy")
    assert {r.run_id for r in restored} == {
        rid for rid, r in original.items() if r.status == "complete"
    }
    for r in restored:
        np.testing.assert_array_equal(r.loss, original[r.run_id].loss)


def test_the_sweep_scripts_unpack_step_keeps_run_files_it_already_has(tmp_path):
    zoo = _zoo(tmp_path)
    _pack(zoo, tmp_path / "packed")
    target = tmp_path / "fresh"
    (target / "toy").mkdir(parents=True)
    kept = target / "toy" / sorted(p.name for p in (zoo / "toy").iterdir())[0]
    kept.write_text("not overwritten")
    # The unpack line of scripts/zoo_sweeps.sh, as it runs there.
    script = (ROOT / "scripts/zoo_sweeps.sh").read_text()
    assert '--skip-old-files -xJf "$archive"' in script
    subprocess.run(["tar", "-C", str(target), "--skip-old-files", "-xJf",
                    str(tmp_path / "packed" / "toy.tar.xz")], check=True)  # fmt: skip
    assert kept.read_text() == "not overwritten"
    assert len(list((target / "toy").iterdir())) == 2
