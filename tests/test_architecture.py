"""The shape of the package: data flows one way (no import cycle, the core never imports the
report), and every module stays small enough to read in one sitting."""

from __future__ import annotations

import ast
from pathlib import Path

SEARCH = Path(__file__).resolve().parent.parent / "search"
MAX_LINES = 500
# The core: what trains and stores a study. The report reads studies; the core never needs it.
CORE = ("search.data", "search.model", "search.training", "search.pruning", "search.run")


def _modules() -> dict[str, Path]:
    modules = {}
    for path in SEARCH.rglob("*.py"):
        parts = path.relative_to(SEARCH.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    return modules


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node that can run: what sits under `if TYPE_CHECKING:` is read by type checkers
    only, so an import there is no import at run time."""
    found: list[ast.AST] = []
    pending = [tree]
    while pending:
        node = pending.pop()
        found.append(node)
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            pending.extend(node.orelse)
            continue
        pending.extend(ast.iter_child_nodes(node))
    return found


def _imports(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the package modules it imports, at the top or inside a function alike."""
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in _runtime_nodes(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found = {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                # `from pkg import submodule` imports the submodule, not the package's names
                found = {
                    f"{node.module}.{alias.name}"
                    if f"{node.module}.{alias.name}" in modules
                    else node.module
                    for alias in node.names
                }
            else:
                continue
            graph[name] |= {target for target in found if target in modules and target != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                other = stack.pop()
                component.append(other)
                if other == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_of_the_package_takes_part_in_an_import_cycle() -> None:
    assert _cycles(_imports(_modules())) == []


def test_the_core_never_imports_the_report() -> None:
    graph = _imports(_modules())
    leaks = {
        module: sorted(t for t in targets if t.startswith("search.report"))
        for module, targets in graph.items()
        if module.startswith(CORE)
    }
    assert {m: t for m, t in leaks.items() if t} == {}


def test_training_does_not_import_the_worker_launcher() -> None:
    assert "search.workers" not in _imports(_modules())["search.training"]


def test_every_module_reads_in_one_sitting() -> None:
    long = {
        name: lines
        for name, path in _modules().items()
        if (lines := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}
