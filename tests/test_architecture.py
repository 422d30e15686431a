"""The shape of the engine, checked from its imports (docs/architecture.md).

* no two modules import each other, directly or round a circle (imports inside
  functions and under ``TYPE_CHECKING`` count: they only hide a circle);
* the core imports no runtime, ingress, source or ops module;
* a runtime's modules are imported only inside that runtime, and from outside
  only through the runtime package itself, by the few places that choose a
  runtime (the CLI commands, the public API, the demo).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "platypus"

CORE = [
    "platypus.core",
    "platypus.deadletter",
    "platypus.envelope",
    "platypus.exceptions",
    "platypus.expression",
    "platypus.flow",
    "platypus.partitioning",
    "platypus.records",
    "platypus.redaction",
    "platypus.retry",
    "platypus.schema",
    "platypus.validation",
]
OUTSIDE_THE_CORE = (
    "platypus.runtime",
    "platypus.ingress",
    "platypus.web",
    "platypus.sources",
    "platypus.ops",
)
RUNTIMES = ("platypus.runtime.embedded", "platypus.runtime.kafka")
# The modules that pick a runtime to run: they may import a runtime package.
CHOOSERS = {
    "platypus",
    "platypus.cli",
    "platypus.demo",
    "platypus.ops.cli",
    "platypus.sources.pollers.cli",
}


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _resolve(name: str) -> str:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def _imports(module: str) -> Iterator[str]:
    """Every platypus module ``module`` imports, wherever the import statement is."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join([*base, *([node.module] if node.module else [])])
            else:
                name = node.module or ""
            if name.startswith("platypus"):
                for alias in node.names:
                    yield _resolve(f"{name}.{alias.name}") or _resolve(name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("platypus"):
                    yield _resolve(alias.name)


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for module in MODULES:
        for target in _imports(module):
            if not target or target == module:
                continue
            graph[module].add(target)
            # Importing a.b.c runs a.b's __init__ first (the root package excepted:
            # it is the public API, which everything is under).
            parts = target.split(".")
            for cut in range(2, len(parts)):
                parent = ".".join(parts[:cut])
                if parent in MODULES and not module.startswith(parent + "."):
                    graph[module].add(parent)
    return graph


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                group.append(top)
                if top == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_modules_import_each_other() -> None:
    assert _circles(_graph()) == []


def test_the_core_imports_no_runtime_ingress_source_or_ops_module() -> None:
    offending = {
        (module, target)
        for module in MODULES
        if any(module == c or module.startswith(c + ".") for c in CORE)
        for target in _imports(module)
        if target.startswith(OUTSIDE_THE_CORE)
    }
    assert offending == set()


def test_a_runtime_is_imported_only_inside_it_or_through_its_package_by_a_chooser() -> None:
    offending = set()
    for module in MODULES:
        for target in _imports(module):
            runtime = next((r for r in RUNTIMES if target.startswith(r)), None)
            if runtime is None or module.startswith(runtime):
                continue
            if module in CHOOSERS and target == runtime:
                continue
            offending.add((module, target))
    assert offending == set()


def test_the_checks_see_imports_in_functions_and_relative_ones() -> None:
    # The rules above are only as good as the import reader: it must see the
    # imports that hide inside functions, and resolve relative imports.
    assert "platypus.runtime.kafka" in set(_imports("platypus.cli"))
    assert "platypus.sources.pollers.sources" in set(
        _imports("platypus.sources.pollers.checkpoint")
    )
