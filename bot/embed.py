"""refundbot inside an operator's existing bot, on the operator's own aiogram `Bot` / `Dispatcher` or
python-telegram-bot `Application`: one call each.

    # aiogram: include it after your own routers; it starts and stops with your dispatcher.
    dp.include_router(refundbot_router(load_config("refundbot.toml")))

    # python-telegram-bot: a handler group after yours; it starts and stops with run_polling/run_webhook.
    add_refundbot(application, load_config("refundbot.toml"), group=1)

Either way refundbot brings its whole self: the database, the customer conversation, the agents' desk,
the notification relay and the workers, sending through the operator's Bot, and the platform API on
[telegram] listen_host/listen_port. The operator's bot keeps receiving updates its own way; refundbot
gets those that no handler of the operator's took (aiogram: the first router that handles an update
ends it; PTB: `raise ApplicationHandlerStop` in the operator's handler ends it).
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Any

from bot.app import opened_core, running_workers, start_web
from bot.config import AppConfig
from bot.inbound import Inbound
from bot.sending import Sender
from dialogs.io import Event

if TYPE_CHECKING:
    from aiogram import Router
    from telegram.ext import Application

log = logging.getLogger(__name__)


class EmbeddedRefundbot:
    """The core, its workers and its web app, started on the operator's Bot (`start`) and stopped with
    it (`stop`). Until started, an update is refused with an error (the operator's framework logs it)."""

    def __init__(self, config: AppConfig) -> None:
        self.config = config
        self.handled = 0
        self.web_url = ""
        self._inbound: Inbound | None = None
        self._stack = contextlib.AsyncExitStack()

    @property
    def started(self) -> bool:
        return self._inbound is not None

    async def start(self, sender: Sender) -> None:
        if self.started:
            return
        try:
            core, gateways = await self._stack.enter_async_context(opened_core(self.config))
            self.workers = await self._stack.enter_async_context(
                running_workers(core, gateways, self.config, sender, lambda: self.handled))
            web, self.web_url = await start_web(self.workers.api, self.config)
            self._stack.push_async_callback(web.cleanup)
        except BaseException:
            await self._stack.aclose()
            raise
        self.core = core
        self._inbound = Inbound(core.service, core.intake, sender)
        log.info("refundbot started inside the operator's bot; platform API on %s", self.web_url)

    async def handle(self, event: Event) -> None:
        if self._inbound is None:
            raise RuntimeError("refundbot has not started: start the operator's bot through its framework "
                               "(dispatcher startup / Application post_init), or call start() first")
        await self._inbound.handle(event)
        self.handled += 1

    async def stop(self) -> None:
        self._inbound = None
        await self._stack.aclose()


def refundbot_router(config: AppConfig) -> Router:
    """An aiogram Router carrying refundbot; it starts on the dispatcher's startup (with the Bot the
    dispatcher runs) and stops on its shutdown."""
    from aiogram import Bot

    from bot.aiogram_adapter import AiogramSender, build_router

    refunds = EmbeddedRefundbot(config)
    router = build_router(refunds)

    async def on_startup(bot: Bot) -> None:
        await refunds.start(AiogramSender(bot))

    async def on_shutdown() -> None:
        await refunds.stop()

    router.startup.register(on_startup)
    router.shutdown.register(on_shutdown)
    return router


def add_refundbot(application: Application[Any, Any, Any, Any, Any, Any], config: AppConfig,
                  group: int = 1) -> EmbeddedRefundbot:
    """Add refundbot's handlers to a PTB Application in `group` and chain its start and stop onto the
    Application's post_init / post_shutdown (which run_polling and run_webhook call). An operator who
    drives the Application by hand calls `await refunds.start(PtbSender(application.bot))` and
    `await refunds.stop()` instead."""
    from bot.ptb_adapter import PtbSender, build_handlers

    refunds = EmbeddedRefundbot(config)
    application.add_handlers(build_handlers(refunds), group=group)
    before_init, before_shutdown = application.post_init, application.post_shutdown

    async def post_init(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
        if before_init is not None:
            await before_init(app)
        await refunds.start(PtbSender(app.bot))

    async def post_shutdown(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
        await refunds.stop()
        if before_shutdown is not None:
            await before_shutdown(app)

    application.post_init = post_init
    application.post_shutdown = post_shutdown
    return refunds
