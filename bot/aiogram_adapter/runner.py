"""Run refundbot on aiogram: polling and webhook as bot.transport shares them, updates dispatched by an
aiogram `Dispatcher` carrying refundbot's router."""

from __future__ import annotations

import logging
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import BotCommand, Update
from pydantic import ValidationError

from bot.aiogram_adapter.router import build_router
from bot.aiogram_adapter.sender import AiogramSender
from bot.evidence import EvidenceIntake
from bot.inbound import Inbound
from bot.transport import ALLOWED_UPDATES, MalformedUpdate, Runner
from dialogs.service import RefundService


class AiogramRunner(Runner):
    def __init__(self, token: str, api_base: str, service: RefundService, intake: EvidenceIntake,
                 default_locale: str = "zh_CN", poll_timeout: int = 25) -> None:
        super().__init__(default_locale, poll_timeout)
        session = AiohttpSession(api=TelegramAPIServer.from_base(api_base)) if api_base else AiohttpSession()
        self.bot = Bot(token, session=session)
        self.sender = AiogramSender(self.bot)
        # No FSM: refundbot keeps its state in its own database. aiogram's default memory storage would add
        # a record for every chat it ever saw (~450 B each, never freed: scripts/bench_memory.py).
        self.dispatcher = Dispatcher(disable_fsm=True)
        # aiogram logs every handled update at INFO: at hundreds a second that is most of the log
        # volume (and CPU); what goes wrong is still logged.
        logging.getLogger("aiogram.event").setLevel(logging.WARNING)
        self.dispatcher.include_router(build_router(Inbound(service, intake, self.sender)))

    async def feed(self, raw: dict[str, Any]) -> None:
        try:
            update = Update.model_validate(raw, context={"bot": self.bot})
        except ValidationError as exc:
            raise MalformedUpdate(str(exc)) from exc
        await self.dispatcher.feed_update(self.bot, update)

    def api_url(self, method: str) -> str:
        return self.bot.session.api.api_url(token=self.bot.token, method=method)

    async def publish_commands(self, menus: list[tuple[str | None, list[tuple[str, str]]]]) -> None:
        for code, commands in menus:
            await self.bot.set_my_commands([BotCommand(command=c, description=d) for c, d in commands],
                                           language_code=code)

    async def set_webhook(self, url: str, secret: str) -> None:
        await self.bot.set_webhook(url, secret_token=secret or None, allowed_updates=ALLOWED_UPDATES)

    async def delete_webhook(self) -> None:
        await self.bot.delete_webhook(drop_pending_updates=False)

    async def close(self) -> None:
        await self.bot.session.close()
        await super().close()
