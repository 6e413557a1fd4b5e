"""The layout's dependency rules and type discipline hold by themselves (README.md, "Layout": the
import-linter contracts in pyproject.toml, mypy --strict on dialogs/ and storage/, ruff, no import
cycles)."""

import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PACKAGES = ("bot", "dialogs", "storage", "sandbox")


def run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)


def test_import_linter_contracts_are_kept():
    result = run(str(BIN / "lint-imports"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.slow
def test_mypy_strict_passes_on_dialogs_and_storage():
    result = run(sys.executable, "-m", "mypy")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_finds_nothing():
    result = run(str(BIN / "ruff"), "check", "bot", "dialogs", "storage", "sandbox", "tests", "scripts")
    assert result.returncode == 0, result.stdout + result.stderr


def import_cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """One shortest cycle per strongly connected group of modules, each as [a, b, ..., a]."""
    imports = {module: graph.find_modules_directly_imported_by(module) for module in graph.modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[set[str]] = []

    def visit(module: str) -> None:  # Tarjan's strongly connected components
        index[module] = low[module] = len(index)
        stack.append(module)
        for imported in imports[module]:
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            group = set()
            while not group or module not in group:
                group.add(stack.pop())
            if len(group) > 1:
                groups.append(group)

    for module in sorted(imports):
        if module not in index:
            visit(module)
    cycles = []
    for group in groups:
        start = min(group)
        chains = [graph.find_shortest_chain(importer=imported, imported=start)
                  for imported in sorted(imports[start] & group)]
        cycles.append([start, *min((chain for chain in chains if chain), key=len)])
    return sorted(cycles)


def test_no_import_cycles():
    # Every import counts: at module level, inside functions and under TYPE_CHECKING alike.
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    cycles = import_cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(cycle) for cycle in cycles)
