"""An aiogram `Router` carrying refundbot: an operator's existing bot can include it in one call."""

from __future__ import annotations

from aiogram import Router
from aiogram.types import CallbackQuery, ChatMemberUpdated, Message, Update

from bot.inbound import EventSink
from bot.translate import from_callback, from_member_update, from_message


def build_router(inbound: EventSink) -> Router:
    """Every message, edit, button press and my_chat_member that reaches this router goes to the core: include it after
    the operator's own routers (aiogram offers an update to the next router only while none handled it)."""
    router = Router(name="refundbot")

    async def on_message(message: Message, event_update: Update) -> None:
        await inbound.handle(from_message(message, event_update.update_id))

    async def on_edited(message: Message, event_update: Update) -> None:
        await inbound.handle(from_message(message, event_update.update_id, edited=True))

    async def on_callback(query: CallbackQuery, event_update: Update) -> None:
        await inbound.handle(from_callback(query, event_update.update_id))

    async def on_my_member(updated: ChatMemberUpdated, event_update: Update) -> None:
        await inbound.handle(from_member_update(updated, event_update.update_id))

    # No aiogram filters: a synchronous filter runs in a worker thread on every update. The core
    # routes by chat (Event.private, the desk's chat id) and ignores the groups that are not the desk.
    router.message.register(on_message)
    router.edited_message.register(on_edited)
    router.callback_query.register(on_callback)
    router.my_chat_member.register(on_my_member)
    return router
