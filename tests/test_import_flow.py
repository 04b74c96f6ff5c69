"""The package's imports follow the one-way flow of its data, with no circle.

runs -> train -> model file (`model/`) -> planning -> the Keras side. `train/` and
`planning/` meet only at the model file's contract in `model/`: neither imports the other,
and `model/` imports neither. No module imports a private name of another module, and the
import graph (lazy imports inside functions included) has no circle. Parsed with `ast`,
so the test needs no backend.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import keras_lode

ROOT = Path(keras_lode.__file__).parent
FORBIDDEN = [  # (importer prefix, imported prefix): against the flow
    ("keras_lode.model", "keras_lode.planning"),
    ("keras_lode.model", "keras_lode.train"),
    ("keras_lode.train", "keras_lode.planning"),
    ("keras_lode.planning", "keras_lode.train"),
]


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _is_module(name: str) -> bool:
    return name in MODULES


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _imports(module: str) -> list[tuple[str, str | None, int]]:
    """(imported module, imported name or None, line) of every keras_lode import in `module`."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, None, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = importlib.util.resolve_name("." * node.level + base, package)
            for a in node.names:
                full = f"{base}.{a.name}"
                if _is_module(full):
                    found.append((full, None, node.lineno))
                else:
                    found.append((base, a.name, node.lineno))
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append((node.args[0].value, None, node.lineno))
    return [f for f in found if _under(f[0], "keras_lode")]


def _edges() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for module in MODULES:
        for target, name, _ in _imports(module):
            if name is None and _under(module, target):
                continue  # a module importing its own package: Python's import machinery
            graph[module].add(target)
    return graph


def test_no_import_against_the_flow():
    bad = [
        f"{m} imports {t} (line {line})"
        for m in MODULES
        for t, _, line in _imports(m)
        for src, dst in FORBIDDEN
        if _under(m, src) and _under(t, dst)
    ]
    assert bad == []


def test_no_module_imports_a_private_name_of_another():
    bad = [
        f"{m} imports {t}.{name} (line {line})"
        for m in MODULES
        for t, name, line in _imports(m)
        if (name and name.startswith("_") and not name.startswith("__"))
        # a private module of a subpackage (the top level's `_checks`, `_json`, ... are the
        # package's shared utilities: their public names may be imported)
        or any(p.startswith("_") and not p.startswith("__") for p in t.split(".")[2:])
    ]
    assert bad == []


def test_the_import_graph_has_no_circle():
    graph = _edges()
    state: dict[str, int] = {}
    circles = []

    def visit(node, path):
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if nxt not in graph:
                continue
            if state.get(nxt) == 1:
                circles.append(" -> ".join([*path[path.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert circles == []


def test_the_walker_sees_module_level_and_lazy_imports():
    """The checks above are only as good as the walker: it finds known imports."""
    seen = {t for t, _, _ in _imports("keras_lode.callbacks.lode_callback")}
    assert "keras_lode.callbacks.lr_tables" in seen  # at module level
    assert "keras_lode.callbacks.replanning" in seen  # inside a method
    assert "keras_lode.planning.replans" in _edges()["keras_lode.callbacks.lode_callback"]
