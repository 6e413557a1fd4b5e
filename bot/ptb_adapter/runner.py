"""Run refundbot on python-telegram-bot: polling and webhook as bot.transport shares them (so an update
is confirmed to Telegram only once handled), updates dispatched by a PTB `Application` carrying
refundbot's handlers. PTB's own Updater is not used: its polling confirms updates as soon as they are
fetched, and its webhook server would be a second web server beside the bot's web app."""

from __future__ import annotations

import logging
from typing import Any

from telegram import BotCommand, Update
from telegram.ext import Application, ApplicationBuilder, ContextTypes

from bot.evidence import EvidenceIntake
from bot.inbound import Inbound
from bot.ptb_adapter.handlers import ChatSerialProcessor, build_handlers
from bot.ptb_adapter.request import AiohttpRequest
from bot.ptb_adapter.sender import PtbSender
from bot.transport import ALLOWED_UPDATES, MalformedUpdate, Runner
from dialogs.service import RefundService

log = logging.getLogger(__name__)


def build_application(token: str, api_base: str = "", concurrent_updates: int = 256) -> Application[Any, Any, Any, Any, Any, Any]:
    """A PTB Application on `api_base` (the emulator, or a local Bot API server; "" is Telegram), handling
    up to `concurrent_updates` chats at once, each chat's updates in order."""
    # aiohttp under PTB: its default httpx client cost ~6x the CPU per call (bot/ptb_adapter/request.py).
    builder = ApplicationBuilder().token(token).updater(None).request(AiohttpRequest())
    builder = builder.get_updates_request(AiohttpRequest(connection_limit=1, read_timeout=60))
    if api_base:
        base = api_base.rstrip("/")
        builder = builder.base_url(f"{base}/bot").base_file_url(f"{base}/file/bot")
    builder = builder.application_class(_Application)
    return builder.concurrent_updates(ChatSerialProcessor(concurrent_updates)).build()


class _Application(Application):  # type: ignore[type-arg]
    """PTB 22 notes every chat and user an update came from, for its persistence, even when there is
    none, and never forgets them: memory that grows with every new chat (scripts/bench_memory.py).
    refundbot keeps its state in its own database and gives PTB no persistence."""

    def _mark_for_persistence_update(self, *, update: object | None = None, job: Any = None) -> None:
        if self.persistence is not None:
            super()._mark_for_persistence_update(update=update, job=job)


class UpdateFailed(Exception):
    """A refundbot handler raised: the update is not confirmed, Telegram delivers it again."""


class PtbRunner(Runner):
    def __init__(self, token: str, api_base: str, service: RefundService, intake: EvidenceIntake,
                 default_locale: str = "zh_CN", poll_timeout: int = 25) -> None:
        super().__init__(default_locale, poll_timeout)
        self.application = build_application(token, api_base)
        self.bot = self.application.bot
        self.sender = PtbSender(self.bot)
        self.application.add_handlers(build_handlers(Inbound(service, intake, self.sender)))
        # PTB hands a handler's exception to the error handlers and carries on; the runner must know,
        # so that the update is answered 500 / left unconfirmed and comes again.
        self._failures: dict[int, BaseException] = {}
        self.application.add_error_handler(self._remember_failure)
        self._started = False

    async def start(self) -> None:
        if not self._started:
            await self.application.initialize()
            self._started = True

    async def _remember_failure(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        if isinstance(update, Update) and context.error is not None:
            self._failures[update.update_id] = context.error

    async def feed(self, raw: dict[str, Any]) -> None:
        await self.start()
        try:
            update = Update.de_json(raw, self.bot)
        except Exception as exc:
            raise MalformedUpdate(str(exc)) from exc
        app = self.application
        await app.update_processor.process_update(update, app.process_update(update))
        failure = self._failures.pop(update.update_id, None)
        if failure is not None:
            raise UpdateFailed(f"update {update.update_id}") from failure

    def api_url(self, method: str) -> str:
        return f"{self.bot.base_url}/{method}"

    async def publish_commands(self, menus: list[tuple[str | None, list[tuple[str, str]]]]) -> None:
        await self.start()
        for code, commands in menus:
            await self.bot.set_my_commands([BotCommand(c, d) for c, d in commands], language_code=code)

    async def set_webhook(self, url: str, secret: str) -> None:
        await self.bot.set_webhook(url, secret_token=secret or None, allowed_updates=ALLOWED_UPDATES)

    async def delete_webhook(self) -> None:
        await self.bot.delete_webhook(drop_pending_updates=False)

    async def close(self) -> None:
        if self._started:
            await self.application.shutdown()
        else:
            await self.bot.shutdown()
        await super().close()
