"""The import rules of docs/architecture.md, checked on the source: imports run one way (the contract at the
bottom, core above it, the processors above core, the wiring on top), sibling processors do not import each
other, and there is no import cycle between modules."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

from core.settings import PROJECT_ROOT

# package (longest prefix wins) -> layer; a module may import its own layer and the ones below
LAYERS: dict[str, int] = {
    "events": 0,                                               # the contract
    "core": 1,                                                 # settings, errors, metrics, topic admin
    "events.tools": 2, "events.simulator": 2, "streams": 2, "consumers": 2,  # processors and tools
    "infra": 3, "bench": 3,                                    # the wiring: main job, local services, ops
}
# within a layer, these packages may not import each other (each may import only what is listed here)
SIBLINGS_MAY_IMPORT: dict[str, set[str]] = {
    "events.tools": set(),
    "events.simulator": {"events.tools"},  # the universities' producer settings
    "streams": set(),
    "consumers": set(),
    "infra": set(),
    "bench": {"infra"},
}
PACKAGES = ("events", "core", "streams", "consumers", "infra", "bench")


def _modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in (PROJECT_ROOT / package).rglob("*.py"):
            parts = path.relative_to(PROJECT_ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules ``path`` imports (module level or inside functions), as module names."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # "from pkg import mod" imports the module pkg.mod when it exists, else names of pkg
            names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                     for a in node.names]
        found.update(n for n in names if n.split(".")[0] in PACKAGES)
    return found


def _package(module: str) -> str:
    return max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len)


def test_imports_run_one_way_and_siblings_stay_apart() -> None:
    modules = _modules()
    climbing, sideways = [], []
    for name, path in sorted(modules.items()):
        own = _package(name)
        for target in sorted(_imports(path, modules)):
            other = _package(target)
            if LAYERS[other] > LAYERS[own]:
                climbing.append(f"{name} -> {target}")
            elif LAYERS[other] == LAYERS[own] and other != own and other not in SIBLINGS_MAY_IMPORT[own]:
                sideways.append(f"{name} -> {target}")
    assert not climbing, "imports that climb a layer:\n" + "\n".join(climbing)
    assert not sideways, "imports between sibling packages:\n" + "\n".join(sideways)


def test_no_import_cycles() -> None:
    modules = _modules()
    graph = {name: {t for t in _imports(path, modules) if t in modules and t != name}
             for name, path in modules.items()}
    # Tarjan's strongly connected components
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
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
    assert not cycles, f"import cycles: {cycles}"


def test_the_rules_see_the_real_graph() -> None:
    """The checks above are only worth something if they read real edges: a few known ones."""
    modules = _modules()
    edges = defaultdict(set)
    for name, path in modules.items():
        edges[name] = _imports(path, modules)
    assert "events.base" in edges["streams.ingest"]
    assert "core.settings" in edges["streams.app"]
    assert "consumers.migrate" in edges["infra.run"]
    assert _package("events.tools.cli") == "events.tools" and _package("events.codec") == "events"


def test_the_oracle_is_independent_of_the_code_it_checks() -> None:
    """infra.oracle computes what every aggregate must be from the published records: it may use the
    contract, never the stream processors, the read model or anything built on them."""
    modules = _modules()
    imported = _imports(modules["infra.oracle"], modules)
    assert imported and all(_package(m) == "events" for m in imported), imported
