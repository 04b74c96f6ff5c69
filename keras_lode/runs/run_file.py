"""Run files: read one back (`read_run`), load many (`load_runs`); `write_run` is `run`'s.

The format (`docs/runs.md`): a `# keras_lode.run 1.0` line, a `# meta {...}` JSON line, the
header `step,epoch,lr,loss,metric`, one row per log point and a `# end K` trailer written
last. A file without its trailer loads as a `"truncated"` run holding its complete rows.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from keras_lode.runs.run import (
    COLUMNS,
    END_PREFIX,
    FORMAT,
    FORMAT_VERSION,
    MAGIC,
    META_PREFIX,
    RUN_KINDS,
    STATUSES,
    SUFFIX,
    Run,
)

__all__ = ["load_runs", "read_run"]

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------- writing
def read_run(path: str | os.PathLike) -> Run:
    """Reads one run file.

    A file that lost its tail (no `# end K` trailer, or a last line without its
    newline) loads as a run with status `"truncated"` and flag `truncated`, holding
    only its complete rows; a message is logged.

    Raises:
        FileNotFoundError: if `path` does not exist.
        ValueError: if the file is not a keras_lode run file, its metadata is
            cut off or not JSON, a row is malformed before the end of the file,
            or the trailer disagrees with the number of rows.
    """
    path = Path(path)
    lines = _complete_lines(path)
    meta = _read_head(path, lines)
    rows, end = _read_rows(path, lines)
    truncated = end is None
    if end is not None and end != len(rows):
        raise ValueError(
            f"Run file {path}: the end marker says {end} rows but the file holds {len(rows)}."
        )
    cols = np.array(rows, dtype=np.float64).reshape(len(rows), len(COLUMNS)).T
    run = Run(*cols, meta=meta)
    if truncated:
        logger.warning(
            "Run file %s is truncated (no end marker); loaded its %d complete rows and "
            "marked it `truncated`.",
            path,
            len(rows),
        )
        run.meta["status"] = "truncated"
        run.add_flag("truncated")
    return run


def _complete_lines(path: Path) -> list[str]:
    """The file's lines that end in a newline (a last line without one was being written)."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"Run file {path} is not UTF-8 text: {e}") from None
    if not text:
        raise ValueError(f"Run file {path} is empty (0 bytes); expected a `{FORMAT}` file.")
    complete_tail = text.endswith("\n")
    lines = text.split("\n")
    if complete_tail:
        lines = lines[:-1]
    # A final line without its newline was being written when the file was cut.
    partial = None if complete_tail else lines.pop()
    if not lines:
        raise ValueError(
            f"Run file {path} is truncated: it ends inside its first line {partial!r}."
        )
    return lines


def _read_head(path: Path, lines: list[str]) -> dict:
    """The metadata, after checking the format line, the meta line and the header."""
    if not lines[0].startswith(MAGIC):
        raise ValueError(
            f"{path} is not a keras_lode run file: its first line is {lines[0][:60]!r}, "
            f"expected {MAGIC + FORMAT_VERSION!r}."
        )
    version = lines[0][len(MAGIC) :].strip()
    if version.split(".")[0] != FORMAT_VERSION.split(".")[0]:
        raise ValueError(
            f"Run file {path} has format version {version!r}; this keras_lode reads "
            f"{FORMAT_VERSION}."
        )
    if len(lines) < 2:
        raise ValueError(f"Run file {path} is truncated: its metadata line is missing or cut off.")
    if not lines[1].startswith(META_PREFIX):
        raise ValueError(
            f"Run file {path} line 2 must start with {META_PREFIX!r}. Received {lines[1][:60]!r}."
        )
    try:
        meta = json.loads(lines[1][len(META_PREFIX) :])
    except json.JSONDecodeError as e:
        raise ValueError(f"Run file {path}: metadata on line 2 is not valid JSON ({e}).") from None
    if not isinstance(meta, dict):
        raise ValueError(f"Run file {path}: metadata on line 2 must be a JSON object.")
    if len(lines) < 3:
        raise ValueError(f"Run file {path} is truncated: the column header is missing.")
    header = tuple(lines[2].split(","))
    if header != COLUMNS:
        raise ValueError(
            f"Run file {path} line 3 must be the header {','.join(COLUMNS)!r}. "
            f"Received {lines[2]!r}."
        )
    return meta


def _read_rows(path: Path, lines: list[str]) -> tuple[list[list[float]], int | None]:
    """`(rows, end)`: the data rows and the trailer's count (None without a trailer)."""
    rows: list[list[float]] = []
    end = None
    for lineno, line in enumerate(lines[3:], start=4):
        if line.startswith(END_PREFIX):
            if lineno != len(lines):
                raise ValueError(
                    f"Run file {path}: the end marker on line {lineno} is followed by more lines."
                )
            try:
                end = int(line[len(END_PREFIX) :])
            except ValueError:
                raise ValueError(f"Run file {path}: bad end marker {line!r}.") from None
            break
        fields = line.split(",")
        if len(fields) != len(COLUMNS):
            raise ValueError(
                f"Run file {path} line {lineno} has {len(fields)} fields, expected "
                f"{len(COLUMNS)} ({','.join(COLUMNS)}). Received {line!r}."
            )
        try:
            rows.append([float(v) for v in fields])
        except ValueError:
            raise ValueError(
                f"Run file {path} line {lineno} holds a value that is not a number: {line!r}."
            ) from None
    return rows, end


def load_runs(
    path: str | os.PathLike | Iterable[str | os.PathLike],
    *,
    status: str | Iterable[str] | None = None,
    on_error: str = "raise",
    kind: str | None = None,
) -> list[Run]:
    """Loads runs from a run file, a directory of them, or a list of either.

    A directory is searched recursively for `*.run.csv` files, in sorted order.

    Example:

    ```python
    runs = keras_lode.load_runs("sweeps/fmnist", status="complete")
    ```

    Args:
        path: a run file, a directory, or an iterable of files/directories.
        status: keep only runs with this status (or any of these statuses).
        kind: keep only `"grid"` runs (one schedule from start to end), `"switched"` runs
            (a sweep's `--switched` trials) or `"branch"` runs (its `--branches` trials):
            `Run.kind`. Default: all.
        on_error: `"raise"` (default) stops at the first unreadable file;
            `"warn"` skips it with a warning naming the file and the problem.

    Returns:
        A list of `Run`.

    Raises:
        FileNotFoundError: if a given path does not exist.
        ValueError: for an unreadable file (with `on_error="raise"`) or a bad argument.
    """
    if on_error not in ("raise", "warn"):
        raise ValueError(f"Argument `on_error` must be 'raise' or 'warn'. Received: {on_error!r}")
    if kind not in (None, *RUN_KINDS):
        raise ValueError(f"Argument `kind` must be one of {RUN_KINDS} or None. Received: {kind!r}")
    if status is not None:
        wanted = {status} if isinstance(status, str) else set(status)
        unknown = wanted - set(STATUSES)
        if unknown:
            raise ValueError(
                f"Argument `status` must name statuses among {STATUSES}. "
                f"Received: {sorted(unknown)}"
            )
    paths = [path] if isinstance(path, str | os.PathLike) else list(path)
    files: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            files.extend(sorted(f for f in p.rglob(f"*{SUFFIX}") if not f.name.startswith(".")))
        elif p.exists():
            files.append(p)
        else:
            raise FileNotFoundError(f"No run file or directory at {p}.")
    runs = []
    for f in files:
        try:
            run = read_run(f)
        except ValueError as e:
            if on_error == "raise":
                raise
            warnings.warn(f"Skipped unreadable run file {f}: {e}", stacklevel=2)
            continue
        if (status is None or run.status in wanted) and (kind is None or run.kind == kind):
            runs.append(run)
    return runs
