"""A failed send says whether Telegram may have carried it out, on both senders: a connection never made
reached nothing (safe to repeat); a timeout after the request went out may have sent the message."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest
from aiogram import Bot
from aiogram.client.telegram import TelegramAPIServer

from bot.aiogram_adapter.sender import AiogramSender
from bot.ptb_adapter.runner import build_application
from bot.ptb_adapter.sender import PtbSender
from bot.sending import MaybeSent, Sender, Transient
from sandbox import Emulator, EmulatorClient
from tests.sandbox.conftest import QuickCloseSession

CUSTOMER = 5001
TOKEN = "7000000009:nowhere"


@pytest.fixture
async def tg(emu: Emulator) -> AsyncIterator[EmulatorClient]:
    async with emu.client() as client:
        await client.create_user(CUSTOMER, "张三", language_code="zh-hans")
        yield client


async def test_a_send_that_times_out_after_going_out_may_have_gone(sender: Sender, tg: EmulatorClient) -> None:
    sender.request_timeout = 1  # type: ignore[attr-defined]
    await tg.add_fault("sendMessage", 0, delay=2.0, answer_late=True)
    with pytest.raises(MaybeSent):
        await sender.send(CUSTOMER, "您好")
    assert [m["text"] for m in await tg.messages(CUSTOMER, timeout=3)] == ["您好"]


@pytest.fixture(params=["aiogram", "ptb"])
async def sender_to_nowhere(request: pytest.FixtureRequest) -> AsyncIterator[Sender]:
    """A sender on a Bot API address where nobody listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{probe.getsockname()[1]}"
    if request.param == "aiogram":
        bot = Bot(TOKEN, session=QuickCloseSession(api=TelegramAPIServer.from_base(nowhere)))
        try:
            yield AiogramSender(bot)
        finally:
            await bot.session.close()
        return
    application = build_application(TOKEN, nowhere)  # not initialized: that would ask getMe
    try:
        yield PtbSender(application.bot)
    finally:
        await application.bot.request.shutdown()  # shutdown() skips a bot never initialized


async def test_a_send_that_finds_no_server_reached_nothing(sender_to_nowhere: Sender) -> None:
    with pytest.raises(Transient) as failure:
        await sender_to_nowhere.send(CUSTOMER, "您好")
    assert not isinstance(failure.value, MaybeSent)
