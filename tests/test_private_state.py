"""No module reads another module's private state: ``obj._name`` is used only in the module that defines it.

A name is private to the module that defines it (``def _x``, ``self._x = …``, ``_x = …``, a class
attribute ``_x``). Any other module that reads ``something._x``, or imports ``_x``, reaches into that
module's state and breaks the seam; this test names each such place.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "diffview"


def _defined_private_names(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


def _modules() -> dict[Path, ast.AST]:
    return {p: ast.parse(p.read_text(), str(p)) for p in sorted(PACKAGE.rglob("*.py"))}


def private_reads() -> list[str]:
    modules = _modules()
    defined_in = {p: _defined_private_names(t) for p, t in modules.items()}
    ours = set().union(*defined_in.values())
    found = []
    for path, tree in modules.items():
        own = defined_in[path]
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in ours and node.attr not in own:
                if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                    continue  # an attribute of the class itself, set in a base class elsewhere
                found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: reads .{node.attr}")
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("diffview"):
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: imports {alias.name}")
    return found


def test_no_module_reads_another_modules_private_state():
    assert private_reads() == []


def test_the_check_sees_a_private_read(tmp_path, monkeypatch):
    """The checker itself can fail: a module that reads another's ``_hidden`` is named."""
    pkg = tmp_path / "diffview"
    pkg.mkdir()
    (pkg / "a.py").write_text("class A:\n    def __init__(self):\n        self._hidden = 1\n")
    (pkg / "b.py").write_text("from diffview.a import A\n\ndef peek(a: A):\n    return a._hidden\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", pkg)
    assert private_reads() == ["diffview/b.py:4: reads ._hidden"]
