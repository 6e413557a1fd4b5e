"""The emulator, an aiogram Bot on it, and a `Sender` on each framework, for the relay's and the desk
delivery's tests (what reaches Telegram must be the same whichever library sends it)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from bot.aiogram_adapter.sender import AiogramSender
from bot.ptb_adapter.runner import build_application
from bot.ptb_adapter.sender import PtbSender
from bot.sending import Sender
from sandbox import Emulator, EmulatorState
from tests.sandbox.conftest import bot, make_bot  # noqa: F401 - bot: the aiogram Bot fixture, on this emu


@pytest.fixture
async def prefix(redis_url: str) -> AsyncIterator[str]:
    """A Redis key prefix of the test's own; its keys are deleted afterwards (they would expire anyway)."""
    name = f"refundbot-test:{uuid.uuid4().hex[:10]}"
    yield name
    client = Redis.from_url(redis_url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{name}:*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(port=0, state=EmulatorState(update_id_base=1)) as emulator:
        yield emulator


@pytest.fixture(params=["aiogram", "ptb"])
async def sender(request: pytest.FixtureRequest, emu: Emulator) -> AsyncIterator[Sender]:
    if request.param == "aiogram":
        b = make_bot(emu)
        try:
            yield AiogramSender(b)
        finally:
            await b.session.close()
        return
    application = build_application(emu.token, emu.base_url)
    await application.bot.initialize()
    try:
        yield PtbSender(application.bot)
    finally:
        await application.bot.shutdown()
