"""Every end-to-end scenario runs on both frameworks: one collected for aiogram only (or PTB only) fails
here, so a new test cannot quietly skip one adapter."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from tests.e2e.conftest import FRAMEWORKS

ROOT = Path(__file__).resolve().parent.parent


def collected_e2e_tests() -> list[str]:
    done = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                           "tests/e2e"], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return [line for line in done.stdout.splitlines() if "::" in line]


def test_every_end_to_end_scenario_runs_on_aiogram_and_on_python_telegram_bot() -> None:
    frameworks_of: dict[str, set[str]] = defaultdict(set)
    for node in collected_e2e_tests():
        scenario, _, params = node.partition("[")
        frameworks_of[scenario] |= set(re.split(r"[-\]]", params)) & set(FRAMEWORKS)
    assert len(frameworks_of) > 50, f"only {len(frameworks_of)} end-to-end scenarios collected"
    one_sided = sorted(s for s, found in frameworks_of.items() if found != set(FRAMEWORKS))
    assert not one_sided, f"scenarios not run on both {FRAMEWORKS}: {one_sided}"
