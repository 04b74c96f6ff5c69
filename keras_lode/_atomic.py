"""Atomic file writes: a temporary file in the destination's directory, then a rename.

One owner for the three files keras_lode writes in place (run files, model files, JSON
results and callback state): a crash never leaves a half-written file at the destination, and
the file gets the usual mode (0666 less the umask), as a file `open` creates would.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO


def usual_mode() -> int:
    """0666 less the process's umask: the mode `open` gives a new file."""
    return 0o666 & ~_umask()


def _umask() -> int:
    """The process's umask, read without changing it where the OS allows (Linux); else
    set and restored at once (os.umask is the only portable way to read it)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def write_atomic(
    path: str | os.PathLike, write: Callable[[IO], None], *, binary: bool = False
) -> Path:
    """Calls `write(f)` on a temporary file beside `path`, syncs it, and renames it to `path`.

    The temporary name is hidden (`.<name>.<random>.tmp`), so directory scans that read
    only `*.run.csv` or `*.npz` files never pick it up, and it is removed if `write` raises.

    Args:
        path: the destination (its directory must exist).
        write: writes the content to the open file object it is given.
        binary: open the temporary file in binary mode (else UTF-8 text, `\\n` newlines).

    Returns:
        `path` as a `Path`.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        mode = "wb" if binary else "w"
        kwargs = {} if binary else {"encoding": "utf-8", "newline": "\n"}
        with os.fdopen(fd, mode, **kwargs) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        try:  # mkstemp creates the file 0600; best effort where chmod is refused
            os.chmod(tmp, usual_mode())
        except OSError:
            pass
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path
