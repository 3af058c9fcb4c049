"""Import layering of ``ome_arrow_dask``: no import cycles, no reach-ins to ``OMEArrow``'s private members.

The module graph is built from the source with :mod:`ast`, without importing anything.

Rules of the graph:

- A node is a module of the package; a package is its ``__init__`` module (importing
  ``ome_arrow_dask.sources`` means ``ome_arrow_dask/sources/__init__.py``).
- Every ``import`` / ``from ... import`` statement is an edge, wherever it is: at module
  level, inside a function, inside ``try``. Only the bodies of ``if TYPE_CHECKING:`` blocks
  are skipped: type-only imports never run.
- An import names one module: ``from .x import y`` is an edge to ``x``, or to ``x.y``
  when ``x.y`` is a submodule; ``import a.b.c`` is an edge to ``a.b.c``. The parent
  packages Python initialises on the way are *not* edges, so a package ``__init__``
  that re-exports its submodules does not put every submodule on a cycle with it.
  An explicit import of a package (``from . import OMEArrow`` from the package root,
  ``from .sources import open_source``) is an edge to that package's ``__init__``.
- Imports of other distributions (numpy, dask, ...) are not nodes.

The intended layering, lowest first: errors/meta/selection/lowering -> sources -> graph ->
core -> entry points (cli, writers, package ``__init__``). A lower module that has to build
a plan receives the plan (``plan.compose(...)``, ``plan.with_source(...)``) instead of
importing :mod:`ome_arrow_dask.core`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = "ome_arrow_dask"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE

# OMEArrow's private members: only core.py may touch them (on objects other than ``self`` / ``cls``).
PRIVATE_PLAN_MEMBERS = frozenset({"_compose", "_steps", "_from_plan", "_init_plan", "_source", "_selection", "_tcz"})
# Classes whose own ``_source`` attribute is theirs to use (a wrapper's wrapped source), by module.
OWN_SOURCE_ATTRIBUTE_MODULES = frozenset({f"{PACKAGE}.core"})


def _module_files() -> dict[str, Path]:
    """Every module of the package by dotted name (packages by their ``__init__``)."""
    modules = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


MODULES = _module_files()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement outside ``if TYPE_CHECKING:`` bodies (``else`` branches run, so they count)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def _package_of(module: str) -> str:
    """The package a module's relative imports are resolved against."""
    is_package = MODULES[module].name == "__init__.py"
    return module if is_package else module.rpartition(".")[0]


def _targets(module: str, node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    """The package modules one import statement executes (see the module docstring for the rules)."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name in MODULES:
                yield alias.name
        return
    if node.level:
        base = _package_of(module)
        for _ in range(node.level - 1):
            base = base.rpartition(".")[0]
        name = f"{base}.{node.module}" if node.module else base
    else:
        name = node.module or ""
    if name not in MODULES:
        return
    imported_modules = [f"{name}.{alias.name}" for alias in node.names if f"{name}.{alias.name}" in MODULES]
    yield from imported_modules
    if len(imported_modules) < len(node.names):  # some names come from ``name`` itself
        yield name


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports at run time."""
    graph: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        graph[module] = {target for node in _runtime_imports(tree) for target in _targets(module, node)}
        graph[module].discard(module)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path ``[a, b, ..., a]``, or None (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in sorted(graph):
        if state.get(start):
            continue
        path = [start]
        iters = [iter(sorted(graph[start]))]
        state[start] = 1
        while iters:
            nxt = next(iters[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                iters.pop()
            elif state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                iters.append(iter(sorted(graph.get(nxt, ()))))
    return None


def import_cycles(graph: dict[str, set[str]]) -> list[tuple[list[str], list[str]]]:
    """``(one cycle, every module on a cycle with it)`` per strongly connected group of modules.

    The graph is small, so reachability sets suffice.
    """
    reach = {}
    for start in graph:
        seen, todo = {start}, [start]
        while todo:
            for nxt in graph.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        reach[start] = seen
    cycles, done = [], set()
    for module in sorted(graph):
        group = {other for other in reach[module] if module in reach.get(other, ())}
        if module in done or not (len(group) > 1 or module in graph[module]):
            continue
        done |= group
        cycles.append((find_cycle({m: graph[m] & group for m in group}) or [], sorted(group)))
    return cycles


def _private_plan_accesses(path: Path) -> Iterator[tuple[int, str]]:
    """``obj._compose`` & co. on anything but ``self`` / ``cls`` / ``super()``: (line, source text)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Attribute) and node.attr in PRIVATE_PLAN_MEMBERS):
            continue
        owner = node.value
        if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
            continue
        if isinstance(owner, ast.Call) and isinstance(owner.func, ast.Name) and owner.func.id == "super":
            continue
        yield node.lineno, ast.unparse(node)


# ----------------------------------------------------------------------------- the graph builder itself


def test_graph_resolves_relative_package_and_submodule_imports():
    graph = import_graph()
    assert f"{PACKAGE}.core" in graph[PACKAGE]  # ``from .core import OMEArrow`` in the package root
    assert f"{PACKAGE}.sources" in graph[f"{PACKAGE}.core"]  # ``from .sources import open_source``
    assert f"{PACKAGE}.sources.base" in graph[f"{PACKAGE}.core"]  # ``from .sources.base import ...``
    assert f"{PACKAGE}.errors" in graph[f"{PACKAGE}.sources.base"]  # ``from ..errors import ...``


def test_graph_counts_function_level_imports_and_skips_type_checking():
    code = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from .b import B\n"
        "else:\n"
        "    from . import c\n"
        "def f():\n"
        "    from .d import x\n"
    )
    tree = ast.parse(code)
    names = sorted(node.module or "." for node in _runtime_imports(tree) if isinstance(node, ast.ImportFrom))
    assert names == [".", "d", "typing"]


def test_find_cycle_reports_the_path():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"a"}}) == ["a", "a"]


# ----------------------------------------------------------------------------- the package


def test_import_cycles_finds_one_cycle_per_group():
    graph = {"a": {"b"}, "b": {"a", "c"}, "c": {"d"}, "d": {"c"}, "e": {"a"}}
    assert import_cycles(graph) == [(["a", "b", "a"], ["a", "b"]), (["c", "d", "c"], ["c", "d"])]
    assert import_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    graph = import_graph()
    cycles = [
        " -> ".join(cycle) + "".join(f"\n    {m} imports {sorted(graph[m] & set(group))}" for m in group)
        for cycle, group in import_cycles(graph)
    ]
    assert not cycles, "import cycles (function-level imports count):\n" + "\n".join(cycles)


@pytest.mark.parametrize(
    ("low", "high"),
    [
        ("errors", "core"),
        ("meta", "core"),
        ("selection", "core"),
        ("lowering", "core"),
        ("sources.base", "core"),
        ("graph", "core"),
        ("tensor", "core"),
        ("render", "core"),
        ("preview", "core"),
        ("cache", "core"),
    ],
)
def test_lower_modules_do_not_reach_core(low, high):
    """``low`` must not import ``high``, directly or through other modules (type-only imports aside)."""
    graph = import_graph()
    start, goal = f"{PACKAGE}.{low}", f"{PACKAGE}.{high}"
    seen, todo, parent = {start}, [start], {start: ""}
    while todo:
        module = todo.pop()
        for nxt in sorted(graph[module]):
            if nxt not in seen:
                seen.add(nxt)
                parent[nxt] = module
                todo.append(nxt)
    if goal in seen:
        chain = [goal]
        while parent[chain[-1]]:
            chain.append(parent[chain[-1]])
        pytest.fail(f"{low} imports {high} at run time: " + " -> ".join(reversed(chain)))


def test_only_core_touches_private_plan_members():
    found = [
        f"{path.relative_to(ROOT.parent)}:{line}: {text}"
        for module, path in MODULES.items()
        if module not in OWN_SOURCE_ATTRIBUTE_MODULES
        for line, text in _private_plan_accesses(path)
    ]
    assert not found, "private OMEArrow members used outside core.py:\n" + "\n".join(found)
