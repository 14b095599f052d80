"""The rooms of DESIGN.md: a package per stage, engines free of Dagster wiring, no import circle."""

import ast
from pathlib import Path

import networkx as nx

from tests.conftest import REPO

PACKAGES = ("assets", "pipelines", "resources", "sensors")
STAGES = ("ingest", "dedup", "scrub", "train", "release")
"""resources/screen is no stage: ingest screens at the door with it, and rescreen is a job."""


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Project modules a file imports, at any depth (function-level imports count too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def project_graph() -> nx.DiGraph:
    files = [p for package in PACKAGES for p in (REPO / package).rglob("*.py")]
    modules = {module_name(p): p for p in files}
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for name, path in modules.items():
        for target in imports(path) & set(modules):
            if target != name and not name.startswith(f"{target}."):
                graph.add_edge(name, target)
    return graph


def test_resources_holds_only_packages():
    assert [p.name for p in (REPO / "resources").glob("*.py")] == ["__init__.py"]
    for stage in STAGES:
        assert (REPO / "resources" / stage / "config.py").is_file(), stage
        assert (REPO / "resources" / stage / "stage.py").is_file(), stage


def test_engines_never_import_the_wiring():
    graph = project_graph()
    for module in graph:
        if module.startswith("resources"):
            wiring = [t for t in graph.successors(module) if not t.startswith("resources")]
            assert not wiring, f"{module} imports {wiring}"


def test_no_import_circle():
    cycles = list(nx.simple_cycles(project_graph()))
    assert not cycles, cycles


def test_every_stage_has_one_run():
    for stage in STAGES:
        tree = ast.parse((REPO / "resources" / stage / "stage.py").read_text(encoding="utf-8"))
        runs = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "run"]
        assert len(runs) == 1, stage
        params = [a.arg for a in runs[0].args.args]
        assert params[:4] == ["config", "ledger", "run_id", "corpus"], (stage, params)
