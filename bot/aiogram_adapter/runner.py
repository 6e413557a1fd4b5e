"""Run refundbot on aiogram: long polling that confirms an update only after it was handled, or a
webhook that answers Telegram only after the update is committed (so a crash means redelivery)."""

from __future__ import annotations

import asyncio
import hmac
import logging
from typing import Any

import aiohttp
from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramAPIError, TelegramNetworkError
from aiogram.types import BotCommand, Update
from aiohttp import web

from bot.aiogram_adapter.router import build_router
from bot.evidence import EvidenceIntake
from bot.polling import ConfirmingPoller, Fetched
from dialogs.service import RefundService
from dialogs.texts import Texts

log = logging.getLogger(__name__)

COMMANDS = ("refund", "status", "cancel", "agent", "lang", "help")
ALLOWED_UPDATES = ["message", "edited_message", "callback_query"]
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


def chat_key(raw: dict[str, Any]) -> int:
    for kind in ("message", "edited_message"):
        if kind in raw:
            return int(raw[kind]["chat"]["id"])
    query = raw.get("callback_query")
    if query is not None:
        message = query.get("message")
        return int(message["chat"]["id"] if message else query["from"]["id"])
    return 0


class PollFailed(Exception):
    def __init__(self, description: str, retry_after: float | None = None) -> None:
        super().__init__(description)
        self.retry_after = retry_after


class AiogramRunner:
    def __init__(self, token: str, api_base: str, service: RefundService, intake: EvidenceIntake,
                 default_locale: str = "zh_CN", poll_timeout: int = 25) -> None:
        session = AiohttpSession(api=TelegramAPIServer.from_base(api_base)) if api_base else AiohttpSession()
        self.bot = Bot(token, session=session)
        self.dispatcher = Dispatcher()
        # aiogram logs every handled update at INFO: at hundreds a second that is most of the log
        # volume (and CPU); what goes wrong is still logged.
        logging.getLogger("aiogram.event").setLevel(logging.WARNING)
        self.dispatcher.include_router(build_router(service, intake))
        self.default_locale = default_locale
        self.poll_timeout = poll_timeout
        self.handled = 0
        self._fetch_backoff = 0.25
        self._poll_http: aiohttp.ClientSession | None = None

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
        if self._poll_http is not None:
            await self._poll_http.close()

    # -- polling -------------------------------------------------------------------------------
    async def run_polling(self, stop: asyncio.Event) -> None:
        await self.bot.delete_webhook(drop_pending_updates=False)
        await self.set_commands()
        self.poller = ConfirmingPoller(self._fetch, self._feed, self.poll_timeout)
        await self.poller.run(stop, self._fetch_error_delay)

    async def _fetch(self, offset: int | None, timeout: int) -> list[Fetched[dict[str, Any]]]:
        """getUpdates as raw JSON: while updates are in flight Telegram repeats them in every answer,
        so only the new ones are worth turning into aiogram objects (in `_feed`)."""
        if self._poll_http is None:
            self._poll_http = aiohttp.ClientSession()
        url = self.bot.session.api.api_url(token=self.bot.token, method="getUpdates")
        body = {"timeout": timeout, "allowed_updates": ALLOWED_UPDATES}
        if offset is not None:
            body["offset"] = offset
        async with self._poll_http.post(url, json=body, timeout=aiohttp.ClientTimeout(total=timeout + 30)) as resp:
            answer = await resp.json(content_type=None)
        if not answer.get("ok"):
            retry_after = (answer.get("parameters") or {}).get("retry_after")
            raise PollFailed(answer.get("description", f"HTTP {resp.status}"), retry_after)
        self._fetch_backoff = 0.25
        return [Fetched(raw["update_id"], chat_key(raw), raw) for raw in answer["result"]]

    async def _feed(self, raw: dict[str, Any]) -> None:
        update = Update.model_validate(raw, context={"bot": self.bot})
        await self.dispatcher.feed_update(self.bot, update)
        self.handled += 1

    def _fetch_error_delay(self, exc: Exception) -> float:
        if isinstance(exc, PollFailed) and exc.retry_after:
            return float(exc.retry_after)
        self._fetch_backoff = min(self._fetch_backoff * 2, 30)
        log.warning("getUpdates failed: %s; retrying in %.1fs", exc, self._fetch_backoff)
        return self._fetch_backoff

    # -- webhook -------------------------------------------------------------------------------
    def add_webhook_route(self, app: web.Application, path: str, secret: str) -> None:
        """Telegram's POSTs on `path` of the bot's web app (which also serves the platform API)."""

        async def receive(request: web.Request) -> web.Response:
            given = request.headers.get(SECRET_HEADER, "")
            if secret and not hmac.compare_digest(given.encode(), secret.encode()):
                return web.Response(status=401, text="bad secret token")
            try:
                update = Update.model_validate(await request.json(), context={"bot": self.bot})
            except ValueError:  # bad JSON or not an Update (pydantic's ValidationError is a ValueError)
                return web.Response(status=400, text="malformed update")
            try:
                await self.dispatcher.feed_update(self.bot, update)
            except Exception:
                log.exception("update %s failed; Telegram will deliver it again", update.update_id)
                return web.Response(status=500, text="try again")
            self.handled += 1
            return web.Response(text="ok")

        app.router.add_post(path, receive)

    async def start_webhook(self, url: str, secret: str) -> None:
        await self.set_commands()
        await self.bot.set_webhook(url, secret_token=secret or None, allowed_updates=ALLOWED_UPDATES)
