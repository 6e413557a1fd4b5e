"""The core's tests run on the in-memory unit of work (tests.fakes): no database, no storage import.
`database` here is a FakeDatabase; tests/storage/test_fakes_contract.py holds it to the SQL one."""

from __future__ import annotations

import pytest

from tests.fakes import FakeDatabase


@pytest.fixture
def database() -> FakeDatabase:
    return FakeDatabase()
