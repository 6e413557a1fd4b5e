"""Fixtures: a live emulator on loopback, its control client, and a real aiogram Bot pointed at it."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from PIL import Image

from sandbox import Emulator, EmulatorClient, EmulatorState

USER = 1001
OTHER_USER = 2002
UPDATE_BASE = 500_000


class QuickCloseSession(AiohttpSession):
    """aiogram sleeps 250 ms on close for TLS teardown; plain-HTTP loopback needs none."""

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()


def make_bot(emu: Emulator) -> Bot:
    return Bot(emu.token, session=QuickCloseSession(api=TelegramAPIServer.from_base(emu.base_url)))


def png_bytes(width: int = 200, height: int = 100, color: str = "red") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(port=0, state=EmulatorState(update_id_base=UPDATE_BASE)) as emulator:
        yield emulator


@pytest.fixture
async def tg(emu: Emulator) -> AsyncIterator[EmulatorClient]:
    async with emu.client() as client:
        await client.create_user(USER, "Ann", username="ann", language_code="zh-hans")
        await client.create_user(OTHER_USER, "Bob", language_code="en")
        yield client


@pytest.fixture
async def bot(emu: Emulator) -> AsyncIterator[Bot]:
    b = make_bot(emu)
    try:
        yield b
    finally:
        await b.session.close()
