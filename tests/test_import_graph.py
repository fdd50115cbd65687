"""The import graph of ``src/lmfloss``, read with :mod:`ast` (nothing is imported): no cycle
among module-level imports, and no private name imported from another module.

Module-level imports are those that run when the module is imported: at the top, and inside
module-level ``if``/``try``/``with`` blocks and class bodies -- not in function bodies (a
function-level import is deliberate and carries its reason) and not under
``if TYPE_CHECKING:`` (annotations only). ``from lmfloss.a import b`` is an edge to
``lmfloss.a.b`` where ``b`` is a submodule, else to ``lmfloss.a``; importing a module's
parent package implicitly is not an edge (a package's ``__init__`` may import its own
submodules without making every sibling import a cycle).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "lmfloss"


def module_files(src: Path = SRC, package: str = PACKAGE) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file of the package."""
    modules = {}
    for path in sorted((src / package).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def module_level_imports(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    """The import statements run at import time (see the module docstring)."""
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        node = pending.pop(0)
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        elif isinstance(node, ast.If):
            pending += node.orelse if _is_type_checking(node.test) else [*node.body, *node.orelse]
        elif isinstance(node, ast.Try) or type(node).__name__ == "TryStar":
            pending += [*node.body, *(s for h in node.handlers for s in h.body), *node.orelse, *node.finalbody]
        elif isinstance(node, (ast.With, ast.AsyncWith, ast.ClassDef, ast.For, ast.While)):
            pending += [*node.body, *getattr(node, "orelse", [])]


def _base(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module a ``from ... import`` names (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    parts = module.split(".") if is_package else module.split(".")[:-1]
    parts = parts[: len(parts) - (node.level - 1)]
    return ".".join([*parts, node.module] if node.module else parts)


def imported_modules(module: str, is_package: bool, node: ast.Import | ast.ImportFrom,
                     known: set[str]) -> list[tuple[str, str | None]]:
    """``(target module, imported name)`` of one statement, for targets in ``known``; the name
    is ``None`` for a module imported as a whole."""
    if isinstance(node, ast.Import):
        return [(alias.name, None) for alias in node.names if alias.name in known]
    base = _base(module, is_package, node)
    out = []
    for alias in node.names:
        if f"{base}.{alias.name}" in known:
            out.append((f"{base}.{alias.name}", None))  # a submodule
        elif base in known:
            out.append((base, alias.name))
    return out


def every_import(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement but those under ``if TYPE_CHECKING:``, function bodies included."""
    skipped = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and _is_type_checking(node.test)
               for stmt in node.body for n in ast.walk(stmt)}
    return (n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)) and id(n) not in skipped)


def import_graph(modules: dict[str, Path], *, function_level: bool = False) -> dict[str, set[str]]:
    """Module -> the package's modules it imports at module level (``function_level``: in
    function bodies too)."""
    known = set(modules)
    graph = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        is_package = path.name == "__init__.py"
        statements = every_import(tree) if function_level else module_level_imports(tree)
        graph[module] = {target for node in statements
                         for target, _ in imported_modules(module, is_package, node, known) if target != module}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as ``[a, b, ..., a]``, or ``None`` (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in sorted(graph):
        if root in state:
            continue
        path, iterators = [root], [iter(sorted(graph[root]))]
        state[root] = 1
        while path:
            nxt = next(iterators[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                iterators.pop()
            elif state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                iterators.append(iter(sorted(graph.get(nxt, ()))))
    return None


def private_imports(modules: dict[str, Path], src: Path = SRC) -> list[str]:
    """``file:line: module imports _name from other.module`` for every import, at any level
    (function bodies too), of a private name from another of the package's modules (file
    paths relative to ``src``)."""
    known = set(modules)
    found = []
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        is_package = path.name == "__init__.py"
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            for target, name in imported_modules(module, is_package, node, known):
                private = name if name is not None else target.rsplit(".", 1)[-1]
                if target != module and private.startswith("_") and not private.startswith("__"):
                    found.append(f"{path.relative_to(src).as_posix()}:{node.lineno}: {module} imports {private} from {target}")
    return found


# ---- the checks ------------------------------------------------------------------------------
def test_the_package_has_no_import_cycle():
    cycle = find_cycle(import_graph(module_files()))
    assert cycle is None, "import cycle among module-level imports: " + " -> ".join(cycle)


def test_the_report_hides_no_cycle_in_a_function():
    """``lmfloss.report`` needs no function-level import to break a cycle (it had two: aggregate
    and multilabel, build and html): modules that need each other share one below them."""
    report = {m: p for m, p in module_files().items() if m.startswith(f"{PACKAGE}.report.")}
    cycle = find_cycle(import_graph(report, function_level=True))
    assert cycle is None, "import cycle through a function-level import: " + " -> ".join(cycle)


def test_no_private_name_is_imported_from_another_module():
    found = private_imports(module_files())
    assert not found, "private names imported across modules:\n" + "\n".join(found)


# ---- the checker itself, on a small package written here --------------------------------------
def _package(tmp_path: Path, files: dict[str, str]) -> dict[str, Path]:
    for name, text in files.items():
        path = tmp_path / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return module_files(tmp_path, "pkg")


@pytest.mark.parametrize("a_text", [
    "from pkg.b import x\n",
    "from . import b\n",
    "from .b import x\n",
    "import pkg.b\n",
    "try:\n    from pkg.b import x\nexcept ImportError:\n    x = None\n",
])
def test_a_cycle_is_found_and_named(tmp_path, a_text):
    modules = _package(tmp_path, {"__init__.py": "", "a.py": a_text, "b.py": "from pkg.c import y\nx = 1\n",
                                  "c.py": "from pkg import a\ny = 2\n"})
    assert find_cycle(import_graph(modules)) == ["pkg.a", "pkg.b", "pkg.c", "pkg.a"]


def test_function_level_imports_count_only_when_asked(tmp_path):
    modules = _package(tmp_path, {"__init__.py": "", "a.py": "def f():\n    from pkg.b import x\n    return x\n",
                                  "b.py": "from pkg import a\nx = 1\n"})
    assert find_cycle(import_graph(modules)) is None
    assert find_cycle(import_graph(modules, function_level=True)) == ["pkg.a", "pkg.b", "pkg.a"]


@pytest.mark.parametrize("a_text", [
    "def f():\n    from pkg.b import x\n    return x\n",  # a function-level import: deliberate
    "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.b import x\n",  # annotations only
    "import typing\nif typing.TYPE_CHECKING:\n    from pkg.b import x\n",
])
def test_imports_that_do_not_run_at_import_time_are_no_edge(tmp_path, a_text):
    modules = _package(tmp_path, {"__init__.py": "", "a.py": a_text, "b.py": "from pkg import a\nx = 1\n"})
    assert find_cycle(import_graph(modules)) is None


def test_a_package_importing_its_submodules_is_no_cycle(tmp_path):
    modules = _package(tmp_path, {"__init__.py": "from pkg.sub.b import x\n", "sub/__init__.py": "from .b import x\n",
                                  "sub/a.py": "y = 1\n", "sub/b.py": "from pkg.sub.a import y\nx = y\n"})
    graph = import_graph(modules)
    assert graph["pkg.sub.b"] == {"pkg.sub.a"} and graph["pkg"] == {"pkg.sub.b"}
    assert find_cycle(graph) is None


def test_private_names_across_modules_are_found(tmp_path):
    modules = _package(tmp_path, {"__init__.py": "", "a.py": "_x = 1\n__version__ = '1'\nfrom pkg.a import _x as y\n",
                                  "b.py": "from pkg.a import __version__\ndef f():\n    from .a import _x\n",
                                  "c.py": "from pkg import _private\n", "_private.py": ""})
    assert private_imports(modules, tmp_path) == [
        "pkg/b.py:3: pkg.b imports _x from pkg.a",  # inside a function too; a dunder is public
        "pkg/c.py:1: pkg.c imports _private from pkg._private",  # a private module
    ]  # a module using its own private name is fine
