"""Runs: one training trajectory at log points (`Run`), its metadata and its name.

A `Run` is the unit of training data for the latent ODE: at P log points per epoch
it holds the global step, the epoch fraction, the learning rate in effect, the mean
training loss over the steps since the previous log point and the validation metric
measured at that point, plus a metadata dict (task, schedule, peak LR, seed, ...).

On disk a run is one human-readable UTF-8 text file, `<run_id>.run.csv`::

    # keras_lode.run 1.0
    # meta {"task": "fmnist_cnn", "schedule": "cosine", "peak_lr": 0.001, ...}
    step,epoch,lr,loss,metric
    47,0.1,0.000998,1.2034,0.6211
    ...
    # end 120

The `# end K` trailer is written last, and the file is written to a temporary
file and moved into place with `os.replace`, so a crash never leaves a
half-written run that loads as complete. A file that lost its tail anyway (copied
while being written, disk full) loads as a run with status `"truncated"` holding
only its complete rows. `docs/runs.md` is the full reference; `keras_lode.runs.run_file`
reads and writes the files.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from keras_lode._atomic import write_atomic

__all__ = [
    "COLUMNS",
    "FORMAT",
    "FORMAT_VERSION",
    "META_DEFAULTS",
    "STATUSES",
    "SUFFIX",
    "Run",
    "run_name",
    "runs_mode",
    "write_run",
]

FORMAT = "keras_lode.run"
FORMAT_VERSION = "1.0"
#: The lines that open, describe and close a run file (docs/runs.md).
MAGIC = f"# {FORMAT} "
META_PREFIX = "# meta "
END_PREFIX = "# end "
SUFFIX = ".run.csv"
COLUMNS = ("step", "epoch", "lr", "loss", "metric")
STATUSES = ("complete", "running", "diverged", "failed", "truncated")
#: What a sweep recorded a run as (`Run.kind`): a grid point, a switched or a branch trial.
RUN_KINDS = ("grid", "switched", "branch")

#: Metadata keys every run carries (missing ones are filled with these defaults).
META_DEFAULTS: dict[str, Any] = {
    "task": None,
    "model": None,
    "optimizer": None,
    "schedule": None,
    "schedule_args": {},
    "peak_lr": None,
    "seed": None,
    "steps_per_epoch": None,
    "points_per_epoch": None,
    "total_steps": None,
    "epochs": None,
    "status": "complete",
    "test_metric": None,
    "metric_name": "accuracy",
    "flags": [],
}


class Run:
    """One training trajectory sampled at log points, plus its metadata.

    All arrays have one entry per log point (length K). Values are kept as given:
    a non-finite loss or a non-positive learning rate is *flagged* (see `flags`),
    never dropped, so a diverged run stays visible as such. Structural problems
    that would misalign the trajectory (columns of different lengths, repeated or
    decreasing steps) raise instead.

    Example:

    ```python
    run = keras_lode.Run(
        step=[10, 20], epoch=[0.5, 1.0], lr=[1e-3, 1e-3],
        loss=[2.1, 1.7], metric=[0.41, 0.55],
        meta={"task": "demo", "schedule": "constant", "peak_lr": 1e-3, "seed": 0},
    )
    run.save("runs/")            # -> runs/constant-lr0.001-seed0.run.csv
    run.channels()               # (2, 3): [loss, ln lr, metric]
    ```

    Args:
        step: global optimizer step at the end of each interval (integers,
            strictly increasing).
        epoch: epoch fraction at each log point (e.g. 0.1, 0.2, ... for P=10).
        lr: learning rate in effect during each interval.
        loss: mean training loss over the steps of each interval.
        metric: validation metric measured at each log point (NaN where not
            measured).
        meta: metadata dict; missing keys of `META_DEFAULTS` are filled in.
            Values must be JSON-serializable (NumPy scalars are converted).

    Raises:
        ValueError: if the columns have different lengths, a column is not 1-D,
            steps are not integers or not strictly increasing, or `meta["status"]`
            is not one of `STATUSES`.
        TypeError: if `meta` is not a mapping or holds values JSON cannot store.
    """

    def __init__(self, step, epoch, lr, loss, metric, meta: Mapping[str, Any] | None = None):
        columns = {}
        for name, values in zip(COLUMNS, (step, epoch, lr, loss, metric), strict=True):
            try:
                arr = np.asarray(values if values is not None else [], dtype=np.float64)
            except (TypeError, ValueError) as e:
                raise ValueError(f"Run column `{name}` must hold numbers ({e}).") from None
            if arr.ndim != 1:
                raise ValueError(
                    f"Run column `{name}` must be 1-D. Received an array of shape {arr.shape}."
                )
            columns[name] = arr
        lengths = {name: len(arr) for name, arr in columns.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(
                "Run columns must all have the same length (one entry per log point). "
                f"Received lengths {lengths}."
            )
        steps = columns["step"]
        if len(steps) and (not np.all(np.isfinite(steps)) or np.any(steps != np.round(steps))):
            bad = steps[~np.isfinite(steps) | (steps != np.round(steps))][:5]
            raise ValueError(f"Run column `step` must hold integers. Received {bad.tolist()}.")
        self.step = steps.astype(np.int64)
        if len(self.step) > 1:
            diffs = np.diff(self.step)
            if np.any(diffs <= 0):
                i = int(np.argmax(diffs <= 0))
                kind = "duplicate" if diffs[i] == 0 else "decreasing"
                raise ValueError(
                    f"Run column `step` must be strictly increasing; found a {kind} step "
                    f"{int(self.step[i + 1])} at log point {i + 1} after {int(self.step[i])} "
                    f"at log point {i}."
                )
        self.epoch = columns["epoch"]
        self.lr = columns["lr"]
        self.loss = columns["loss"]
        self.metric = columns["metric"]

        if meta is None:
            meta = {}
        if not isinstance(meta, Mapping):
            raise TypeError(f"Run `meta` must be a dict. Received: meta={meta!r}")
        merged = {k: _copy_default(v) for k, v in META_DEFAULTS.items()}
        merged.update(_jsonable(dict(meta), "meta"))
        if merged["status"] not in STATUSES:
            raise ValueError(
                f"Run meta key `status` must be one of {STATUSES}. "
                f"Received: status={merged['status']!r}"
            )
        flags = merged["flags"]
        if isinstance(flags, str) or not isinstance(flags, list):
            raise TypeError(f"Run meta key `flags` must be a list of str. Received: {flags!r}")
        self.meta = merged
        for flag in self._detect_flags():
            self.add_flag(flag)

    # ------------------------------------------------------------------ properties
    def __len__(self) -> int:
        return len(self.step)

    def __repr__(self) -> str:
        return (
            f"Run(run_id={self.run_id!r}, points={len(self)}, status={self.status!r}, "
            f"flags={self.flags!r})"
        )

    @property
    def run_id(self) -> str:
        """Identifier of the run: `meta["run_id"]` or one derived from the grid point."""
        rid = self.meta.get("run_id")
        if rid:
            return str(rid)
        m = self.meta
        if m["schedule"] is not None and m["peak_lr"] is not None and m["seed"] is not None:
            return run_name(m["schedule"], m["peak_lr"], m["seed"])
        digest = hashlib.sha1(
            b"".join(np.ascontiguousarray(a).tobytes() for a in self._arrays())
            + json.dumps(m, sort_keys=True).encode()
        ).hexdigest()
        return f"run-{digest[:12]}"

    @property
    def points_per_epoch(self) -> int | None:
        """Log points per epoch P: from `meta`, else inferred from the epoch column."""
        p = self.meta.get("points_per_epoch")
        if p:
            return int(p)
        if len(self.epoch) >= 2:
            gaps = np.diff(self.epoch)
            gaps = gaps[np.isfinite(gaps) & (gaps > 0)]
            if len(gaps):
                return int(round(1.0 / float(np.median(gaps))))
        return None

    @property
    def status(self) -> str:
        """`complete`, `running`, `diverged`, `failed` or `truncated`."""
        return self.meta["status"]

    @status.setter
    def status(self, value: str) -> None:
        if value not in STATUSES:
            raise ValueError(f"Run status must be one of {STATUSES}. Received: {value!r}")
        self.meta["status"] = value

    @property
    def kind(self) -> str:
        """One of `RUN_KINDS`: `meta["kind"]` where a sweep recorded it (`"branch"` for a
        run that follows a planner-library continuation from a log point on), else
        `"switched"` for a run that changed schedule mid-run (`meta["switch"]`, run files of
        older sweeps) and `"grid"` for the rest."""
        return str(self.meta.get("kind") or ("switched" if self.meta.get("switch") else "grid"))

    @property
    def flags(self) -> list[str]:
        """Data-quality flags, e.g. `nonfinite_loss`, `lr_from_param`, `truncated`."""
        return self.meta["flags"]

    def add_flag(self, flag: str) -> None:
        """Adds `flag` to `flags` once."""
        if flag not in self.meta["flags"]:
            self.meta["flags"].append(flag)

    # ------------------------------------------------------------------ data
    def channels(self) -> np.ndarray:
        """The LODE channels `[loss, ln(lr), metric]` as a float64 array of shape (K, 3).

        A non-positive learning rate gives `-inf`/NaN in the `log_lr` channel (the run
        is flagged `nonpositive_lr`); it is not replaced, so callers see it.
        """
        with np.errstate(divide="ignore", invalid="ignore"):
            log_lr = np.log(self.lr)
        return np.stack([self.loss, log_lr, self.metric], axis=1).reshape(len(self), 3)

    def _arrays(self):
        return (self.step, self.epoch, self.lr, self.loss, self.metric)

    def _detect_flags(self) -> list[str]:
        flags = []
        if len(self) == 0:
            flags.append("empty")
            return flags
        if not np.all(np.isfinite(self.loss)):
            flags.append("nonfinite_loss")
        if not np.all(np.isfinite(self.lr)):
            flags.append("nonfinite_lr")
        elif np.any(self.lr <= 0):
            flags.append("nonpositive_lr")
        if np.all(np.isnan(self.metric)):
            flags.append("no_metric")
        elif np.any(np.isinf(self.metric)):
            flags.append("nonfinite_metric")
        return flags

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable dict of the run (`from_dict` inverts it)."""
        out = {name: _column_list(arr) for name, arr in zip(COLUMNS, self._arrays(), strict=True)}
        out["meta"] = json.loads(json.dumps(self.meta))
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Run:
        """Builds a run from `to_dict()` output."""
        missing = [k for k in (*COLUMNS, "meta") if k not in data]
        if missing:
            raise ValueError(
                f"Run dict is missing keys {missing}. Expected {list(COLUMNS) + ['meta']}."
            )
        return cls(*(data[k] for k in COLUMNS), meta=data["meta"])

    def save(self, path: str | os.PathLike) -> Path:
        """Writes the run atomically; see `keras_lode.runs.write_run`."""
        return write_run(self, path)


# ---------------------------------------------------------------------- naming
def run_name(schedule: str, peak_lr: float, seed: int) -> str:
    """The run id of one grid point of a sweep, e.g. `"cosine-lr0.001-seed3"`."""
    return f"{schedule}-lr{float(peak_lr):.4g}-seed{int(seed)}"


# ---------------------------------------------------------------------- helpers
def _column_list(arr: np.ndarray) -> list:
    if arr.dtype.kind in "iu":
        return [int(v) for v in arr]
    return [None if math.isnan(v) else float(v) for v in arr]


def _copy_default(value):
    if isinstance(value, list | dict):
        return type(value)(value)
    return value


def _jsonable(value, where: str):
    """Converts NumPy scalars/arrays to Python values; rejects what JSON cannot store."""
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"Run {where} keys must be str. Received key {k!r}.")
            out[k] = _jsonable(v, f"{where}[{k!r}]")
        return out
    if isinstance(value, list | tuple):
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist(), where)
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(
        f"Run {where} must be JSON-serializable (str, number, bool, None, list, dict). "
        f"Received a {type(value).__name__}: {value!r}"
    )


def runs_mode(runs) -> str:
    """The direction of the runs' metric: `"max"` (the default) or `"min"` (`meta["mode"]`,
    e.g. from `RunRecorder(mode="min")`).

    Raises:
        ValueError: runs whose metrics go in different directions.
    """
    modes = {str(r.meta.get("mode") or "max") for r in runs}
    bad = modes - {"max", "min"}
    if bad:
        raise ValueError(f"Run metadata `mode` must be 'max' or 'min'. Received: {sorted(bad)}")
    if len(modes) > 1:
        raise ValueError(
            "The runs mix a maximized and a minimized metric (meta 'mode'); a LODE is trained "
            "on runs of one metric."
        )
    return modes.pop() if modes else "max"


def write_run(run: Run, path: str | os.PathLike) -> Path:
    """Writes `run` to `path` atomically (temporary file + `os.replace`).

    Args:
        run: the run to write.
        path: a file path ending in `.csv` (`.run.csv` by convention, so that
            `load_runs` finds it), or a directory (any other path; created if needed),
            in which case the file is `<dir>/<run.run_id>.run.csv`.

    Returns:
        The path written.
    """
    if not isinstance(run, Run):
        raise TypeError(f"write_run expects a keras_lode.Run. Received: {type(run).__name__}")
    path = Path(path)
    if path.is_dir() or not path.name.endswith(".csv"):
        path = path / f"{run.run_id}{SUFFIX}"
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        f"{MAGIC}{FORMAT_VERSION}",
        META_PREFIX + json.dumps(run.meta, sort_keys=True, allow_nan=True),
        ",".join(COLUMNS),
    ]
    for row in zip(run.step, run.epoch, run.lr, run.loss, run.metric, strict=True):
        lines.append(",".join([str(int(row[0]))] + [_fmt(v) for v in row[1:]]))
    lines.append(f"{END_PREFIX}{len(run)}")
    text = "\n".join(lines) + "\n"
    # Hidden temp name in the same directory: os.replace is atomic only within one
    # filesystem, and `load_runs` never picks up a dot-file that does not end in SUFFIX.
    write_atomic(path, lambda f: f.write(text))
    return path


# ---------------------------------------------------------------------- reading


def _fmt(value: float) -> str:
    # repr of a Python float round-trips exactly and writes nan/inf/-inf readably.
    return repr(float(value))
