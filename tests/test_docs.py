"""Every file, link and `keras_lode` name the README and the docs cite exists.

A reader follows a path or a dotted name from the docs into the code: after a move, a
stale one is a dead end. Paths under the repository's own folders, relative Markdown
links and `keras_lode.*` names in backticks are checked (the CHANGELOG is history and
may name what no longer exists).
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    *sorted((ROOT / "models").glob("*.md")),
]
TOP = ("keras_lode/", "benchmarks/", "docs/", "tests/", "models/", "examples/", "scripts/", ".ci/")
PATH = re.compile(r"`([A-Za-z0-9_./-]+)`")
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
NAME = re.compile(r"`(keras_lode(?:\.[A-Za-z_][A-Za-z0-9_]*)+)")
# Format identifiers written into files, not importable names.
FORMAT_IDS = {"keras_lode.lode", "keras_lode.run", "keras_lode.callback_state"}


# Example names of the user's own files in the docs.
USER_FILES = {"my_task.py", "my_tasks.py", "file.py"}


def _cited_paths(text: str) -> set[str]:
    """Repository paths cited in backticks, and bare script names (`name.py`) as `**/name.py`."""
    tokens = PATH.findall(text)
    paths = {p.rstrip("/.") for p in tokens if p.startswith(TOP)}
    paths |= {f"**/{p}" for p in tokens if p.endswith(".py") and "/" not in p}
    return {p for p in paths if p.rpartition("/")[2] not in USER_FILES}


def _exists(path: str) -> bool:
    if path.startswith("**/"):
        return any(ROOT.glob(path)) and all(".git" not in p.parts for p in ROOT.glob(path))
    return (ROOT / path).exists()


def _resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return False
        return True
    return False


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_cited_files_and_links_exist(doc):
    text = doc.read_text(encoding="utf-8")
    missing = sorted(p for p in _cited_paths(text) if not _exists(p))
    links = [u for u in LINK.findall(text) if "://" not in u and not u.startswith("mailto:")]
    missing += sorted(u for u in links if not (doc.parent / u).exists())
    assert missing == []


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_cited_keras_lode_names_exist(doc):
    names = set(NAME.findall(doc.read_text(encoding="utf-8"))) - FORMAT_IDS
    assert sorted(n for n in names if not _resolves(n)) == []


def test_the_checks_can_fail():
    cited = _cited_paths("see `keras_lode/nope.py`, `runs/x.csv`, `gone.py` and `my_task.py`")
    assert cited == {"keras_lode/nope.py", "**/gone.py"}
    assert not any(_exists(p) for p in cited) and _exists("**/overhead.py")
    assert not _resolves("keras_lode.callbacks.no_such_thing")
    assert _resolves("keras_lode.callbacks.observer.LogPointObserver")
