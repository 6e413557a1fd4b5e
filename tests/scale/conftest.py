"""Worker processes on a fresh PostgreSQL database against the in-process emulator."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.app import open_database, seed_demo_orders
from tests.conftest import PostgresDatabases
from tests.e2e.conftest import control, customer, emulator, make_config  # noqa: F401 - fixtures
from tests.scale.cluster import Cluster

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture
def pg_url(postgres_databases: PostgresDatabases) -> Iterator[str]:
    name, url = postgres_databases.create()
    yield url
    postgres_databases.drop(name)


@pytest.fixture
async def cluster(emulator, pg_url: str, tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:  # noqa: F811
    """Seed the database, then start workers on it; every cluster started is stopped at teardown (and must stop
    cleanly)."""
    database = await open_database(make_config(tmp_path, pg_url))
    await seed_demo_orders(database)
    await database.dispose()
    started: list[Cluster] = []

    async def start(workers: int = 2, **options: Any) -> Cluster:
        made = Cluster(emulator.base_url, pg_url, workers, tmp_path, **options)
        started.append(made)  # before start(): one that never got ready is stopped too
        return await made.start()

    yield start
    for made in started:
        codes = await made.stop()
        assert all(code == 0 for code in codes), f"exit codes {codes}\n{made.logs()}"
