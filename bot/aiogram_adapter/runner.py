"""Run refundbot on aiogram: long polling that confirms an update only after it was handled, or a
webhook that answers Telegram only after the update is committed (so a crash means redelivery)."""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections import defaultdict

from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramAPIError, TelegramNetworkError, TelegramRetryAfter
from aiogram.types import BotCommand, Update
from aiohttp import web

from bot.aiogram_adapter.router import build_router
from bot.evidence import EvidenceIntake
from dialogs.service import RefundService
from dialogs.texts import Texts

log = logging.getLogger(__name__)

COMMANDS = ("refund", "status", "cancel", "agent", "lang", "help")
ALLOWED_UPDATES = ["message", "callback_query"]
# An update that keeps failing is skipped after this many batches, so one poison update cannot
# stop the bot; every failure is logged.
MAX_UPDATE_ATTEMPTS = 5
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


def chat_key(update: Update) -> int:
    if update.message is not None:
        return update.message.chat.id
    if update.callback_query is not None:
        query = update.callback_query
        return query.message.chat.id if query.message is not None else query.from_user.id
    return 0


class AiogramRunner:
    def __init__(self, token: str, api_base: str, service: RefundService, intake: EvidenceIntake,
                 default_locale: str = "zh_CN", poll_timeout: int = 25) -> None:
        session = AiohttpSession(api=TelegramAPIServer.from_base(api_base)) if api_base else AiohttpSession()
        self.bot = Bot(token, session=session)
        self.dispatcher = Dispatcher()
        self.dispatcher.include_router(build_router(service, intake))
        self.default_locale = default_locale
        self.poll_timeout = poll_timeout
        self.handled = 0

    async def set_commands(self) -> None:
        """Publish the command menu in both languages; a failure must not keep the bot down."""
        try:
            for code, locale in ((None, self.default_locale), ("zh", "zh_CN"), ("en", "en")):
                t = Texts(locale)
                commands = [BotCommand(command=c, description=t(f"cmd.{c}")) for c in COMMANDS]
                await self.bot.set_my_commands(commands, language_code=code)
        except (TelegramAPIError, TelegramNetworkError) as exc:
            log.warning("setMyCommands failed (%s); continuing without a command menu", exc)

    async def close(self) -> None:
        await self.bot.session.close()

    # -- polling -------------------------------------------------------------------------------
    async def run_polling(self, stop: asyncio.Event) -> None:
        await self.bot.delete_webhook(drop_pending_updates=False)
        await self.set_commands()
        offset: int | None = None
        attempts: dict[int, int] = defaultdict(int)
        backoff = 0.5
        while not stop.is_set():
            try:
                updates = await self._get_updates(offset, stop)
            except TelegramRetryAfter as exc:
                await asyncio.sleep(exc.retry_after)
                continue
            except (TelegramAPIError, TelegramNetworkError) as exc:
                log.warning("getUpdates failed: %s; retrying in %.1fs", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30)
                continue
            backoff = 0.5
            if not updates:
                continue
            failed = await self._handle_batch(updates)
            # Confirm everything handled; stop before the first failure so Telegram gives it again.
            offset = updates[-1].update_id + 1
            if failed is not None:
                attempts[failed] += 1
                if attempts[failed] < MAX_UPDATE_ATTEMPTS:
                    offset = failed
                    await asyncio.sleep(min(0.2 * 2 ** attempts[failed], 5))
                else:
                    log.error("update %s failed %d times; skipping it", failed, attempts[failed])
                    offset = failed + 1
                    del attempts[failed]

    async def _get_updates(self, offset: int | None, stop: asyncio.Event) -> list[Update]:
        fetch = asyncio.ensure_future(
            self.bot.get_updates(offset=offset, timeout=self.poll_timeout, allowed_updates=ALLOWED_UPDATES))
        waiter = asyncio.ensure_future(stop.wait())
        done, _ = await asyncio.wait({fetch, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if fetch not in done:
            fetch.cancel()
            return []
        waiter.cancel()
        return fetch.result()

    async def _handle_batch(self, updates: list[Update]) -> int | None:
        """Chats run in parallel, each chat's updates in order; returns the lowest failed update id."""
        by_chat: dict[int, list[Update]] = defaultdict(list)
        for update in updates:
            by_chat[chat_key(update)].append(update)
        results = await asyncio.gather(*(self._handle_chat(batch) for batch in by_chat.values()))
        failed = [r for r in results if r is not None]
        return min(failed) if failed else None

    async def _handle_chat(self, updates: list[Update]) -> int | None:
        for update in updates:
            try:
                await self.dispatcher.feed_update(self.bot, update)
                self.handled += 1
            except Exception:
                log.exception("update %s failed", update.update_id)
                return update.update_id  # later updates of this chat wait for it
        return None

    # -- webhook -------------------------------------------------------------------------------
    def webhook_app(self, path: str, secret: str) -> web.Application:
        app = web.Application()

        async def receive(request: web.Request) -> web.Response:
            given = request.headers.get(SECRET_HEADER, "")
            if secret and not hmac.compare_digest(given.encode(), secret.encode()):
                return web.Response(status=401, text="bad secret token")
            try:
                update = Update.model_validate(await request.json(), context={"bot": self.bot})
            except Exception:
                return web.Response(status=400, text="malformed update")
            try:
                await self.dispatcher.feed_update(self.bot, update)
            except Exception:
                log.exception("update %s failed; Telegram will deliver it again", update.update_id)
                return web.Response(status=500, text="try again")
            self.handled += 1
            return web.Response(text="ok")

        async def healthz(request: web.Request) -> web.Response:
            return web.json_response({"ok": True})

        app.router.add_post(path, receive)
        app.router.add_get("/healthz", healthz)
        return app

    async def start_webhook(self, url: str, secret: str) -> None:
        await self.set_commands()
        await self.bot.set_webhook(url, secret_token=secret or None, allowed_updates=ALLOWED_UPDATES)
