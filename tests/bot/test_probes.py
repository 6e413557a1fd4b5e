"""Liveness and readiness over real HTTP: /livez answers while the event loop does; /readyz answers 200 only
while the database answers within its timeout and the process is not draining, else 503 with the reason."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.api import PlatformApi, add_api_routes
from storage.uow import Database
from tests.bot.test_api import SECRET, WORKFLOW


def probed(database: Database, **options: Any) -> tuple[TestClient[Any, Any], PlatformApi]:
    app = web.Application()
    api = PlatformApi(database.uow, WORKFLOW, secret=SECRET, **options)
    add_api_routes(app, api)
    return TestClient(TestServer(app)), api


async def answer(client: TestClient[Any, Any], path: str) -> tuple[int, Any]:
    response = await client.get(path)
    assert response.content_type == "application/json"
    return response.status, await response.json()


@pytest.fixture
async def silent_server() -> AsyncIterator[int]:
    """A port that accepts connections and never says a word: a database that hangs."""
    writers: list[asyncio.StreamWriter] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        await reader.read()

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for writer in writers:
            writer.close()
        await server.wait_closed()


async def test_livez_and_readyz_are_200_while_the_database_answers(database: Database) -> None:
    client, _ = probed(database)
    async with client:
        assert await answer(client, "/livez") == (200, {"ok": True})
        assert await answer(client, "/readyz") == (200, {"ok": True})


async def test_readyz_is_503_once_draining_began_while_livez_and_healthz_stay_200(database: Database) -> None:
    client, api = probed(database)
    async with client:
        api.begin_drain()
        assert api.draining
        assert await answer(client, "/readyz") == (503, {"ok": False, "error": "draining"})
        assert await answer(client, "/livez") == (200, {"ok": True})
        assert await answer(client, "/healthz") == (200, {"ok": True})


@pytest.mark.parametrize("where", ["postgres-closed-port", "sqlite-missing-directory"])
async def test_readyz_is_503_when_the_database_is_unreachable_and_livez_stays_200(where: str, tmp_path: Path) -> None:
    url = ("postgresql://postgres@127.0.0.1:1/nowhere" if where == "postgres-closed-port"
           else f"sqlite:///{tmp_path}/missing/refundbot.db")
    unreachable = Database.from_url(url)
    client, _ = probed(unreachable)
    try:
        async with client:
            assert await answer(client, "/readyz") == (503, {"ok": False, "error": "database unreachable"})
            assert await answer(client, "/livez") == (200, {"ok": True})
    finally:
        await unreachable.dispose()


async def test_readyz_is_503_when_the_database_does_not_answer_in_time(silent_server: int) -> None:
    hanging = Database.from_url(f"postgresql://postgres@127.0.0.1:{silent_server}/refundbot")
    client, _ = probed(hanging, ready_timeout=0.3)
    try:
        async with client:
            started = asyncio.get_running_loop().time()
            status, body = await answer(client, "/readyz")
            assert (status, body) == (503, {"ok": False, "error": "database did not answer within 0.3 s"})
            assert asyncio.get_running_loop().time() - started < 2
    finally:
        await hanging.dispose()

