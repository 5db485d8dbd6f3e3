"""The import direction of the house, read from the source with ``ast`` (no imports run):

- ``addgp/`` (the core: config, contracts, metrics) and ``storage/`` import nothing of
  ``tasks`` or ``flows``;
- no stage imports ``flows``;
- a stage imports only itself and the stages before it: ingest → degrade → demo_corpus → embed
  → train → evaluate → report, with the nightly loop on top;
- no cycle among the stages, whatever their names (a stage not in the order is held to this).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("addgp", "configs", "flows", "storage", "tasks")
# demo_corpus writes ingest's ASVspoof 2019 layout and may use degrade's transforms; it runs
# before ingest in a flow, but in the import order it comes after both.
STAGE_ORDER = ("ingest", "degrade", "demo_corpus", "embed", "train", "evaluate", "report", "nightly")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_in(source: str, module: str, is_package: bool = False) -> set[str]:
    """Absolute names of every module ``source`` (of ``module``) imports, at top level or inside functions."""
    package = module if is_package else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            prefix = node.module or ""
            if node.level:
                parts = package.split(".")
                prefix = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            found.add(prefix)
            found.update(f"{prefix}.{alias.name}" for alias in node.names)
    return {name for name in found if name.split(".")[0] in PACKAGES}


def project_imports() -> dict[str, set[str]]:
    graph = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            graph[module_name(path)] = imports_in(path.read_text(), module_name(path), path.name == "__init__.py")
    return graph


def stage_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "tasks" and len(parts) > 1 else None


def violations(graph: dict[str, set[str]]) -> list[str]:
    found = []
    for module, imported in sorted(graph.items()):
        top = module.split(".")[0]
        for name in sorted(imported):
            target = name.split(".")[0]
            if top in ("addgp", "storage") and target in ("tasks", "flows"):
                found.append(f"{module} imports {name}: {top}/ imports nothing of tasks/ or flows/")
            if top == "tasks" and target == "flows":
                found.append(
                    f"{module} imports {name}: no stage imports flows/ (flows compose stages, not the reverse)"
                )
            mine, theirs = stage_of(module), stage_of(name)
            if mine in STAGE_ORDER and theirs in STAGE_ORDER and STAGE_ORDER.index(theirs) > STAGE_ORDER.index(mine):
                found.append(
                    f"{module} imports {name}: stage {mine} may not import the later stage {theirs} ({' → '.join(STAGE_ORDER)})"
                )
    return found


def stage_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    edges: dict[str, set[str]] = {}
    for module, imported in graph.items():
        mine = stage_of(module)
        if mine is None:
            continue
        edges.setdefault(mine, set()).update(s for s in map(stage_of, imported) if s is not None and s != mine)
    cycles, state = [], {}

    def visit(stage: str, path: list[str]) -> None:
        state[stage] = "open"
        for nxt in sorted(edges.get(stage, ())):
            if state.get(nxt) == "open":
                cycles.append(path[path.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[stage] = "done"

    for stage in sorted(edges):
        if stage not in state:
            visit(stage, [stage])
    return cycles


def test_the_house_import_rules_hold():
    assert violations(project_imports()) == []


def test_no_cycle_among_stages():
    assert stage_cycles(project_imports()) == []


@pytest.mark.parametrize(
    "module, source, rule",
    [
        ("storage.bad", "from tasks.ingest.common import finalize", "storage/ imports nothing"),
        ("tasks.embed.bad", "def f():\n    from flows.cluster import dask_cluster", "no stage imports flows"),
        ("tasks.train.bad", "from tasks.evaluate import scoring", "may not import the later stage evaluate"),
        ("tasks.ingest.bad", "from ..report import build", "may not import the later stage report"),
    ],
)
def test_the_checker_catches_each_rule(module, source, rule):
    found = violations({module: imports_in(source, module)})
    assert any(rule in v for v in found), found


def test_a_stage_cycle_is_found():
    graph = {"tasks.alpha.x": {"tasks.beta.y"}, "tasks.beta.y": {"tasks.alpha.x"}}
    assert stage_cycles(graph) == [["alpha", "beta", "alpha"]]
