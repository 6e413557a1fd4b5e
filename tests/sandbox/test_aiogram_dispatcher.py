"""aiogram's own Dispatcher, in polling and in webhook mode, against the emulator."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiogram import Bot, Dispatcher, F
from aiogram.filters import CommandObject, CommandStart
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web

from sandbox import Emulator, EmulatorClient

from .conftest import USER


def build_dispatcher() -> Dispatcher:
    dp = Dispatcher()

    @dp.message(CommandStart())
    async def start(message: Message, command: CommandObject) -> None:
        kb = InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text="退款", callback_data="refund")]])
        await message.answer(f"订单 {command.args}", reply_markup=kb)

    @dp.callback_query(F.data == "refund")
    async def refund(query: CallbackQuery) -> None:
        await query.answer("处理中")
        assert isinstance(query.message, Message)
        await query.message.edit_text("退款处理中")

    return dp


async def test_dispatcher_polling(emu: Emulator, bot: Bot, tg: EmulatorClient) -> None:
    dp = build_dispatcher()
    polling = asyncio.create_task(dp.start_polling(bot, handle_signals=False, polling_timeout=1))
    try:
        sent = await tg.send_text(USER, "/start order_42")
        [reply] = await tg.wait_bot_messages(USER, after_message_id=sent["message_id"])
        assert reply["text"] == "订单 order_42"
        pressed = await tg.press(USER, reply["message_id"], button_text="退款")
        await tg.wait_bot_messages(USER, predicate=lambda ms: ms[0]["text"] == "退款处理中")
        [answer] = await tg.callback_answers(pressed["callback_query_id"])
        assert answer["answer"]["text"] == "处理中"
    finally:
        await dp.stop_polling()
        with contextlib.suppress(asyncio.CancelledError):
            await polling


@pytest.fixture
async def webhook_app(bot: Bot) -> AsyncIterator[str]:
    app = web.Application()
    # handle_in_background=False: aiogram answers the webhook with the method as multipart form data.
    SimpleRequestHandler(build_dispatcher(), bot, secret_token="hook-secret",
                         handle_in_background=False).register(app, path="/tg")
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/tg"
    finally:
        await runner.cleanup()


async def test_dispatcher_webhook_with_answer_in_response(bot: Bot, tg: EmulatorClient, webhook_app: str) -> None:
    assert await bot.set_webhook(webhook_app, secret_token="hook-secret")
    sent = await tg.send_text(USER, "/start order_7")
    await tg.wait_confirmed(sent["update_id"], timeout=5)
    [reply] = await tg.bot_messages(USER)
    assert reply["text"] == "订单 order_7" and reply["reply_markup"]["inline_keyboard"][0][0]["text"] == "退款"


async def test_wrong_secret_is_rejected_and_retried(bot: Bot, tg: EmulatorClient, webhook_app: str) -> None:
    assert await bot.set_webhook(webhook_app, secret_token="wrong-secret")
    sent = await tg.send_text(USER, "/start x")
    await asyncio.sleep(0.3)
    status = await tg.update_status(sent["update_id"])
    assert status["status"] == "pending" and "401" in status["last_error"]
    assert await bot.set_webhook(webhook_app, secret_token="hook-secret")
    await tg.wait_confirmed(sent["update_id"], timeout=5)


async def test_form_encoded_json_fields_like_python_telegram_bot(emu: Emulator, tg: EmulatorClient) -> None:
    markup = '{"inline_keyboard": [[{"text": "A", "callback_data": "a"}]]}'
    async with aiohttp.ClientSession() as http, http.post(f"{emu.api_url()}/sendMessage",
                         data={"chat_id": str(USER), "text": "form", "reply_markup": markup}) as resp:
        body = await resp.json()
    assert body["ok"] and body["result"]["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "a"
