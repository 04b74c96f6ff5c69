"""The package stays readable in pieces: modules, functions and the LODE callback's size.

No module over 500 lines, no function over 100 lines or 12 parameters (a config dataclass
where options are many), and `LODECallback` within 250 lines (its jobs live in their own
modules: options, LR tables, replanning, resumable state). Parsed with `ast`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import keras_lode

ROOT = Path(keras_lode.__file__).parent
MAX_MODULE, MAX_FUNCTION, MAX_PARAMS, MAX_CALLBACK = 500, 100, 12, 250


def _shapes():
    for path in sorted(ROOT.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        yield path, len(text.splitlines()), ast.parse(text)


def _params(fn: ast.FunctionDef) -> int:
    a = fn.args
    names = [p.arg for p in (*a.posonlyargs, *a.args, *a.kwonlyargs)]
    return len(names) - (1 if names[:1] in (["self"], ["cls"]) else 0)


def test_no_module_function_or_signature_too_large():
    too_big = []
    for path, lines, tree in _shapes():
        name = path.relative_to(ROOT.parent)
        if lines > MAX_MODULE:
            too_big.append(f"{name}: {lines} lines")
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION or _params(node) > MAX_PARAMS:
                    too_big.append(f"{name}:{node.lineno} {node.name}: {length} lines, "
                                   f"{_params(node)} parameters")  # fmt: skip
    assert too_big == []


def test_the_lode_callback_class_is_lean():
    tree = ast.parse((ROOT / "callbacks" / "lode_callback.py").read_text(encoding="utf-8"))
    (cls,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "LODECallback"]
    assert cls.end_lineno - cls.lineno + 1 <= MAX_CALLBACK


def test_the_parameter_count_skips_self_only():
    fn = ast.parse("def f(self, a, *, b, c=1): pass").body[0]
    assert _params(fn) == 3
    fn = ast.parse("def g(a, b): pass").body[0]
    assert _params(fn) == 2
