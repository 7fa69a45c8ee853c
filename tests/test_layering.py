"""The package layering: every import (function-local and TYPE_CHECKING ones too) points to a lower floor.

Floors, bottom to top (docs/architecture.md): radio, testbed, adapters, ml, policy, host | edge_node, airlora.
A package may import itself and the floors below it; host and edge_node share a floor and never import each
other. Within a package, no two modules import each other, directly or around a circle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FLOORS: dict[str, int] = {"radio": 1, "testbed": 2, "adapters": 3, "ml": 4, "policy": 5, "host": 6, "edge_node": 6,
                          "airlora": 7}


def module_name(path: Path, root: Path) -> str:
    """Dotted module name of a source file under root (a package's __init__ is the package)."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, root: Path) -> list[tuple[str, int, list[str]]]:
    """(imported module, line, imported names) for every import statement, wherever it stands in the file."""
    name = module_name(path, root)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            found.append((target, node.lineno, [alias.name for alias in node.names]))
    return found


def source_files(root: Path, floors: dict[str, int]) -> list[Path]:
    """Every .py file of the layered packages."""
    return sorted(p for package in floors for p in (root / package).rglob("*.py"))


def upward_imports(root: Path, floors: dict[str, int]) -> list[str]:
    """One line per import that points to a floor at or above its own (other than its own package)."""
    bad = []
    for path in source_files(root, floors):
        own = path.relative_to(root).parts[0]
        for target, line, _ in imports_of(path, root):
            other = target.split(".")[0]
            if other in floors and other != own and floors[other] >= floors[own]:
                where = "above" if floors[other] > floors[own] else "beside"
                bad.append(f"{path.relative_to(root)}:{line}: imports {target} ({other} is {where} {own})")
    return sorted(set(bad))


def module_cycles(root: Path, floors: dict[str, int]) -> list[list[str]]:
    """Circles of modules that import each other (strongly connected components of two or more modules)."""
    modules = {module_name(p, root): p for p in source_files(root, floors)}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        for target, _, names in imports_of(path, root):
            for candidate in [f"{target}.{n}" for n in names] or [target]:  # `from pkg import mod` imports pkg.mod
                while candidate and candidate not in modules:  # `from pkg.mod import func` -> pkg.mod
                    candidate = candidate.rpartition(".")[0]
                if candidate and candidate != name and not name.startswith(candidate + "."):
                    graph[name].add(candidate)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def test_no_package_imports_upward_or_sideways():
    bad = upward_imports(ROOT, FLOORS)
    assert not bad, "imports that break the layering (docs/architecture.md):\n" + "\n".join(bad)


def test_no_import_cycles_between_modules():
    cycles = module_cycles(ROOT, FLOORS)
    assert not cycles, "modules that import each other:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_every_top_level_package_has_a_floor():
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert packages == set(FLOORS), f"packages without a floor or floors without a package: {packages ^ set(FLOORS)}"


# --- the checker itself catches what it should -------------------------------------------------------------------

def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


@pytest.mark.parametrize("source, expected", [
    ("from host.sender import Sender\n", "low/mod.py:1: imports host.sender (host is above low)"),
    ("def f():\n    import host\n", "low/mod.py:2: imports host (host is above low)"),
    ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from host import sender\n",
     "low/mod.py:3: imports host (host is above low)"),
    ("from . import x\nfrom ..host import y\n", "low/mod.py:2: imports host (host is above low)"),
])
def test_checker_names_an_upward_import(tmp_path, source, expected):
    root = _tree(tmp_path, {"low/__init__.py": "", "low/mod.py": source, "host/__init__.py": "",
                            "host/sender.py": "import low.mod\n"})
    bad = upward_imports(root, {"low": 1, "host": 2})
    assert expected in bad and len(bad) == 1


def test_checker_refuses_sideways_imports(tmp_path):
    root = _tree(tmp_path, {"host/__init__.py": "", "host/a.py": "from edge_node import b\n",
                            "edge_node/__init__.py": "", "edge_node/b.py": ""})
    assert upward_imports(root, {"host": 6, "edge_node": 6}) == ["host/a.py:1: imports edge_node (edge_node is beside host)"]


def test_checker_finds_a_module_circle(tmp_path):
    root = _tree(tmp_path, {"p/__init__.py": "", "p/a.py": "from p.b import f\n",
                            "p/b.py": "def f():\n    from p import c\n", "p/c.py": "import p.a\n", "p/d.py": "import p.a\n"})
    assert module_cycles(root, {"p": 1}) == [["p.a", "p.b", "p.c"]]
