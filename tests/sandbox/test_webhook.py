"""Webhook delivery to a small aiohttp receiver on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiogram import Bot
from aiohttp import web

from sandbox import EmulatorClient

from .conftest import OTHER_USER, USER

Reply = Callable[[dict[str, Any], int], Awaitable[web.StreamResponse]]


class Receiver:
    """Records what the emulator POSTs; `reply` decides each answer (default 200 {})."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, Any], str | None]] = []
        self.reply: Reply | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        update = await request.json()
        self.received.append((update, request.headers.get("X-Telegram-Bot-Api-Secret-Token")))
        if self.reply is not None:
            return await self.reply(update, len(self.received))
        return web.json_response({})


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/hook", rec.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    rec.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    try:
        yield rec
    finally:
        await runner.cleanup()


async def test_delivery_with_secret_and_retry_after_500(bot: Bot, tg: EmulatorClient, receiver: Receiver) -> None:
    async def fail_first(update: dict[str, Any], n: int) -> web.StreamResponse:
        return web.Response(status=500) if n == 1 else web.json_response({})

    receiver.reply = fail_first
    assert await bot.set_webhook(receiver.url, secret_token="s3cret-token")
    sent = await tg.send_text(USER, "/start")
    confirmed = await tg.wait_confirmed(sent["update_id"], timeout=5)
    assert confirmed["attempts"] == 2
    assert [u["update_id"] for u, _ in receiver.received] == [sent["update_id"]] * 2
    assert {secret for _, secret in receiver.received} == {"s3cret-token"}
    assert receiver.received[1][0]["message"]["text"] == "/start"
    info = await bot.get_webhook_info()
    assert info.last_error_message == "Wrong response from the webhook: 500 Internal Server Error"
    assert info.pending_update_count == 0


async def test_per_chat_order_and_cross_chat_concurrency(bot: Bot, tg: EmulatorClient, receiver: Receiver) -> None:
    in_flight: dict[int, int] = {}
    peak = {"chat": 0, "total": 0}
    order: dict[int, list[int]] = {}

    async def slow(update: dict[str, Any], n: int) -> web.StreamResponse:
        chat = update["message"]["chat"]["id"]
        in_flight[chat] = in_flight.get(chat, 0) + 1
        peak["chat"] = max(peak["chat"], in_flight[chat])
        peak["total"] = max(peak["total"], sum(in_flight.values()))
        await asyncio.sleep(0.05)
        order.setdefault(chat, []).append(update["update_id"])
        in_flight[chat] -= 1
        return web.json_response({})

    receiver.reply = slow
    ids: dict[int, list[int]] = {USER: [], OTHER_USER: []}
    for i in range(4):
        for user in (USER, OTHER_USER):
            ids[user].append((await tg.send_text(user, f"{user}-{i}"))["update_id"])
    assert await bot.set_webhook(receiver.url)  # updates queued before the webhook are delivered too
    for user in ids:
        await tg.wait_confirmed(ids[user][-1], timeout=5)
    assert order == ids
    assert peak["chat"] == 1 and peak["total"] == 2


async def test_retries_until_deleted_then_polling_takes_over(bot: Bot, tg: EmulatorClient,
                                                             receiver: Receiver) -> None:
    async def always_fail(update: dict[str, Any], n: int) -> web.StreamResponse:
        return web.Response(status=502)

    receiver.reply = always_fail
    assert await bot.set_webhook(receiver.url)
    sent = await tg.send_text(USER, "stuck")
    for _ in range(50):
        if len(receiver.received) >= 3:
            break
        await asyncio.sleep(0.1)
    assert len(receiver.received) >= 3  # 0.2 s, 0.4 s... backoff keeps retrying
    assert await bot.delete_webhook()
    [update] = await bot.get_updates(timeout=1)
    assert update.update_id == sent["update_id"]


async def test_method_in_webhook_answer_is_executed(bot: Bot, tg: EmulatorClient, receiver: Receiver) -> None:
    async def answer_inline(update: dict[str, Any], n: int) -> web.StreamResponse:
        chat = update["message"]["chat"]["id"]
        return web.json_response({"method": "sendMessage", "chat_id": chat, "text": "您好"})

    receiver.reply = answer_inline
    assert await bot.set_webhook(receiver.url, drop_pending_updates=True)
    sent = await tg.send_text(USER, "hi")
    await tg.wait_confirmed(sent["update_id"], timeout=5)
    [msg] = await tg.bot_messages(USER)
    assert msg["text"] == "您好"


async def test_unreachable_webhook_is_retried(bot: Bot, tg: EmulatorClient) -> None:
    assert await bot.set_webhook("http://127.0.0.1:9/hook")  # discard port: nothing listens
    sent = await tg.send_text(USER, "x")
    await asyncio.sleep(0.5)
    status = await tg.update_status(sent["update_id"])
    assert status["status"] == "pending" and status["attempts"] >= 2
    assert status["last_error"] == "Connection refused"
    assert await bot.delete_webhook(drop_pending_updates=True)
    assert (await tg.update_status(sent["update_id"]))["status"] == "confirmed"
