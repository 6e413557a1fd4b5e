"""The core's tests need no database: tests/dialogs passes with storage and every SQL library unimportable."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

BLOCKED = ("storage", "sqlalchemy", "alembic", "asyncpg", "aiosqlite", "psycopg")

# A meta-path finder that refuses the blocked packages, installed before pytest imports anything.
PROGRAM = f"""
import sys

class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {BLOCKED!r}:
            raise ImportError("the core's tests must not import " + name)

sys.meta_path.insert(0, Refuse())
import pytest
sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", "tests/dialogs"]))
"""


def test_the_core_suite_passes_with_storage_and_sql_unimportable():
    result = subprocess.run([sys.executable, "-c", PROGRAM], cwd=ROOT, capture_output=True, text=True,
                            timeout=300, check=False)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "error" not in result.stdout.splitlines()[-1]
