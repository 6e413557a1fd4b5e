"""Telegram's flood limits in the emulator: real-looking 429s for sends and edits, and the counters a
benchmark reads."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramRetryAfter
from aiogram.types import BufferedInputFile

from sandbox import Emulator, EmulatorClient
from tests.sandbox.conftest import OTHER_USER, USER, png_bytes


async def raw_call(emu: Emulator, method: str, **params: Any) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.post(f"{emu.api_url()}/{method}", json=params) as resp:
        return resp.status, await resp.json()


async def test_a_send_over_the_per_chat_limit_gets_a_real_looking_429(emu: Emulator, tg: EmulatorClient) -> None:
    await tg.set_limits(per_chat_per_s=1)
    assert (await raw_call(emu, "sendMessage", chat_id=USER, text="1"))[0] == 200
    status, body = await raw_call(emu, "sendMessage", chat_id=USER, text="2")
    assert status == 429
    assert body == {"ok": False, "error_code": 429, "description": "Too Many Requests: retry after 1",
                    "parameters": {"retry_after": 1}}


async def test_edits_copies_and_photos_count_against_the_limits(bot: Bot, tg: EmulatorClient) -> None:
    sent = await bot.send_message(USER, "card v1")
    await tg.set_limits(per_chat_per_s=1)
    await bot.send_message(OTHER_USER, "fills the other chat's second")
    for call in (
        lambda: bot.edit_message_text("card v2", chat_id=USER, message_id=sent.message_id),
        lambda: bot.copy_message(USER, USER, sent.message_id),
        lambda: bot.send_photo(USER, BufferedInputFile(png_bytes(), "p.png")),
    ):
        await bot.send_message(USER, "uses this second")
        with pytest.raises(TelegramRetryAfter):
            await call()
        await tg.set_limits(enabled=False)  # forget the window
        await tg.set_limits(per_chat_per_s=1)


async def test_the_global_limit_holds_across_chats(bot: Bot, tg: EmulatorClient) -> None:
    await tg.set_limits(global_per_s=2, per_chat_per_s=5)
    await bot.send_message(USER, "1")
    await bot.send_message(OTHER_USER, "2")
    with pytest.raises(TelegramRetryAfter) as exc:
        await bot.send_message(USER, "3")
    assert exc.value.retry_after == 1


async def test_counters_count_accepted_calls_and_429s_until_reset(bot: Bot, tg: EmulatorClient) -> None:
    await tg.set_limits(per_chat_per_s=1, reset_counters=True)
    await bot.send_message(USER, "1")
    with pytest.raises(TelegramRetryAfter):
        await bot.send_message(USER, "2")
    await tg.add_fault("sendMessage", 429, chat_id=OTHER_USER, retry_after=5)
    with pytest.raises(TelegramRetryAfter):
        await bot.send_message(OTHER_USER, "3")
    await bot.get_me()  # not rate-limited: not counted
    counters = await tg.limits()
    assert (counters["accepted"], counters["throttled"], counters["injected_429"]) == (1, 1, 1)
    assert (await tg.state())["limits"]["throttled"] == 1
    reset = await tg.set_limits(reset_counters=True)
    assert (reset["accepted"], reset["throttled"], reset["injected_429"]) == (0, 0, 0)
