"""The layout's dependency rules and type discipline hold by themselves (DESIGN.md)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


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
