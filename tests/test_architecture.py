"""The shape of the code the README's "How it works" describes: the layers import only downwards, no module imports
back into one that imports it, only synthesis/engines/ names an engine, no module passes 450 lines, each states its
role, and no module reaches into another's private names. Read from the code itself (grimp, ast), not from a list
kept by hand."""

import ast
import subprocess
import sys
from pathlib import Path

import grimp

from synthesis.engines import ENGINE_NAMES

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("synthesis", "barksite")


def project_modules() -> dict[str, Path]:
    """Every module of the app and the project (migrations aside), by dotted name."""
    modules = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            modules[name] = path
    return modules


def import_cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """The groups of modules that import each other, directly or not (Tarjan's strongly connected components),
    counting imports inside functions too."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in graph.modules:
                continue
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return cycles


def test_the_layers_import_only_downwards_and_no_sibling_packages_import_each_other():
    # The contracts in pyproject.toml: the README's layers, and no cycle between sibling packages or modules.
    result = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout[-3000:]
    assert "2 kept, 0 broken" in result.stdout


def test_no_module_imports_a_module_that_imports_it_back():
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)

    assert import_cycles(graph) == []


def test_only_synthesis_engines_names_an_engine():
    # Help texts and examples naming a voice ("v2/en_speaker_6") are fine; code that picks an engine by its name is
    # not. (barksite/settings.py lists the values BARK_DEFAULT_ENGINE takes, as configuration.)
    naming = []
    for name, path in project_modules().items():
        if name.startswith("synthesis.engines") or name == "barksite.settings":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in ENGINE_NAMES:
                naming.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.value!r}")

    assert naming == []


def test_no_module_is_over_450_lines_and_each_states_its_role_first():
    too_long, unstated = [], []
    paths = [*project_modules().values(), *(ROOT / "bench").glob("*.py")]
    for path in paths:
        source = path.read_text()
        if len(source.splitlines()) > 450:
            too_long.append(f"{path.relative_to(ROOT)} ({len(source.splitlines())} lines)")
        docstring = ast.get_docstring(ast.parse(source))
        if source.strip() and not (docstring and docstring.splitlines()[0].strip()):
            unstated.append(str(path.relative_to(ROOT)))

    assert too_long == []
    assert unstated == [], "each module's docstring starts with the one role it has"


def test_no_module_imports_another_modules_private_names():
    # The job lifecycle (requeue, fail, send a task) is public in synthesis/jobs/lifecycle.py; nothing reaches into
    # another module for an `_underscored` helper.
    private = []
    for name, path in project_modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(PACKAGES):
                private += [f"{name}: {node.module}.{alias.name}" for alias in node.names if alias.name.startswith("_")]

    assert private == []
