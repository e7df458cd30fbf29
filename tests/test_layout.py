"""The package layout keeps its promises: no import cycle anywhere (imports inside functions
count too: a cycle hidden in a function is still a cycle), and imports go one way —
catalog → analysis → adapters (providers, processes, OGC web services) → the web application.
"""

from __future__ import annotations

import ast
import collections
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: import name → folder, as pyproject.toml maps them
PACKAGES = {"sentinelle": "sentinelle", "sentinelle.catalog": "catalog",
            "sentinelle.analysis": "analysis", "sentinelle.providers": "providers",
            "sentinelle.processes": "processes"}
#: a module of the key's package may not import any of these
FORBIDDEN = {
    "sentinelle.catalog": ("sentinelle.analysis", "sentinelle.providers",
                           "sentinelle.processes", "sentinelle.ows", "sentinelle.web"),
    "sentinelle.analysis": ("sentinelle.providers", "sentinelle.processes", "sentinelle.ows",
                            "sentinelle.web"),
    "sentinelle.providers": ("sentinelle.web", "sentinelle.processes"),
    "sentinelle.processes": ("sentinelle.web", "sentinelle.ows"),
    "sentinelle.ows": ("sentinelle.web",),
}


def modules() -> dict[str, Path]:
    found = {}
    for package, folder in PACKAGES.items():
        for path in (REPO / folder).rglob("*.py"):
            parts = [p for p in path.relative_to(REPO / folder).with_suffix("").parts
                     if p != "__init__"]
            found[".".join([package, *parts])] = path
    return found


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    graph: dict[str, set[str]] = collections.defaultdict(set)
    for name, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module \
                    and node.module.startswith("sentinelle"):
                if node.module in mods:
                    graph[name].add(node.module)
                for alias in node.names:
                    if f"{node.module}.{alias.name}" in mods:
                        graph[name].add(f"{node.module}.{alias.name}")
            elif isinstance(node, ast.Import):
                graph[name].update(a.name for a in node.names if a.name in mods)
        graph[name].discard(name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def test_no_import_cycle():
    graph = import_graph()
    assert len(graph) > 50  # the walk found the package
    assert cycles(graph) == []


def test_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]


def test_imports_go_one_way():
    wrong = []
    for module, targets in import_graph().items():
        for package, forbidden in FORBIDDEN.items():
            if module == package or module.startswith(package + "."):
                wrong += [f"{module} imports {t}" for t in targets
                          if any(t == f or t.startswith(f + ".") for f in forbidden)]
    assert wrong == []
