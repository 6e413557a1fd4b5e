"""An aiogram `Router` carrying refundbot: an operator's existing bot can include it in one call."""

from __future__ import annotations

from dataclasses import replace

from aiogram import Bot, Router
from aiogram.types import CallbackQuery, Message, Update

from bot.aiogram_adapter.render import render
from bot.aiogram_adapter.translate import from_callback, from_message
from bot.evidence import EvidenceIntake, TooLarge
from dialogs.io import Event, EventKind
from dialogs.service import RefundService


def build_router(service: RefundService, intake: EvidenceIntake) -> Router:
    router = Router(name="refundbot")

    async def on_message(message: Message, bot: Bot, event_update: Update) -> None:
        event = from_message(message, event_update.update_id)
        if event.private and event.file is not None:
            event = await _inspect(bot, intake, event)
        outcome = await service.handle(event)
        if not outcome.duplicate:
            await render(bot, event, outcome)

    async def on_edited(message: Message, bot: Bot, event_update: Update) -> None:
        # An edit never answers anything; a copy of the message in a desk topic (or at the customer's)
        # is edited through the outbox.
        await service.handle(from_message(message, event_update.update_id, edited=True))

    async def on_callback(query: CallbackQuery, bot: Bot, event_update: Update) -> None:
        event = from_callback(query, event_update.update_id)
        outcome = await service.handle(event)
        if not outcome.duplicate:
            await render(bot, event, outcome)

    # No aiogram filters: a synchronous filter runs in a worker thread on every update. The core
    # routes by chat (Event.private, the desk's chat id) and ignores the groups that are not the desk.
    router.message.register(on_message)
    router.edited_message.register(on_edited)
    router.callback_query.register(on_callback)
    return router


async def _inspect(bot: Bot, intake: EvidenceIntake, event: Event) -> Event:
    assert event.file is not None

    async def download(file_id: str, cap: int) -> bytes:
        file = await bot.get_file(file_id)
        if file.file_size is not None and file.file_size > cap:
            raise TooLarge()
        assert file.file_path is not None
        buffer = await bot.download_file(file.file_path)
        assert buffer is not None
        return buffer.read(cap + 1)

    inspection = await intake.inspect(event.file, event.kind is EventKind.PHOTO, download)
    return replace(event, file=replace(event.file, inspection=inspection))
