"""The packages' import rules (README, "Packages"), read from the source with ast, lazy imports too.

retrieval imports model_store only; model_store imports nothing of ours; loadtest reads ids
through model_store and talks HTTP; indexer and service share retrieval and model_store and never
import each other; the service never imports torch, the indexer and the core never import
FastAPI; and no modules import each other in a circle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("hashrec", "retrieval", "model_store", "indexer", "service", "loadtest")
#: package -> the packages of ours it may import (besides itself)
MAY_IMPORT = {
    "model_store": set(),
    "retrieval": {"model_store"},
    "indexer": {"retrieval", "model_store"},
    "service": {"retrieval", "model_store"},
    "loadtest": {"model_store"},  # reads real ids from a published version
    "hashrec": {"retrieval", "model_store", "indexer", "service", "loadtest"},
}
#: package -> third-party top-level modules it must never import
NEVER = {
    "service": {"torch"},
    "retrieval": {"torch", "fastapi", "starlette"},
    "model_store": {"torch", "fastapi", "starlette"},
    "indexer": {"fastapi", "starlette", "uvicorn"},
}


def module_name(path: Path) -> str:
    """``hashrec.<folder>.<module>`` as setuptools' package-dir installs the file."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts) if parts[0] == "hashrec" else ".".join(["hashrec", *parts])


def imports_of(path: Path, name: str) -> set[str]:
    """Every module ``path`` imports, at top level or inside functions, relative ones resolved."""
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def sources() -> dict[str, tuple[str, set[str]]]:
    """module name -> (its package folder, what it imports)."""
    out = {}
    for folder in PACKAGES:
        for path in sorted((ROOT / folder).rglob("*.py")):
            name = module_name(path)
            out[name] = (folder, imports_of(path, name))
    return out


SOURCES = sources()


def ours(imported: str) -> str | None:
    """The package folder of one of our modules, else None."""
    parts = imported.split(".")
    if parts[0] != "hashrec":
        return None
    return parts[1] if len(parts) > 1 and parts[1] in PACKAGES else "hashrec"


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_each_module_imports_only_what_its_package_may(name):
    folder, imported = SOURCES[name]
    wrong = {m for m in imported if (p := ours(m)) and p != folder and p not in MAY_IMPORT[folder]}
    assert not wrong, f"{name} ({folder}/) may not import {sorted(wrong)}"
    banned = {m for m in imported if m.split(".")[0] in NEVER.get(folder, set())}
    assert not banned, f"{name} ({folder}/) must never import {sorted(banned)}"


def test_no_modules_import_each_other_in_a_circle():
    graph = {
        name: {m for m in imported if m in SOURCES and m != name} for name, (_, imported) in SOURCES.items()
    }
    # a package's __init__ handing names on is not a circle with its own modules
    graph = {n: {m for m in deps if not n.startswith(m + ".")} for n, deps in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    assert not circles, f"modules importing each other: {circles}"


def test_the_rules_read_real_imports():
    """The reader itself: the service's app does import the core, lazily or not."""
    assert "hashrec.retrieval.recommender" in SOURCES["hashrec.service.state"][1]
    assert any(m.startswith("torch") for m in SOURCES["hashrec.indexer.encoders.models"][1])
