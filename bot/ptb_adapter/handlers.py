"""refundbot as python-telegram-bot handlers: an operator's existing `Application` adds them in one call
(`application.add_handlers(build_handlers(inbound), group=...)`), and `ChatSerialProcessor` keeps the
updates of one chat in order when the Application handles updates concurrently."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable
from typing import Any

from telegram import Update
from telegram.ext import (
    BaseHandler,
    BaseUpdateProcessor,
    CallbackQueryHandler,
    ChatMemberHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot.inbound import EventSink
from bot.translate import from_callback, from_member_update, from_message


def build_handlers(inbound: EventSink) -> list[BaseHandler[Any, Any, Any]]:
    """Every message, edit, button press and my_chat_member these handlers see goes to the core. In a group of its own
    after the operator's: the operator's handlers that answered an update end it with
    `raise ApplicationHandlerStop` (PTB's way), the rest falls through to refundbot."""

    async def on_message(update: Update, _: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None
        await inbound.handle(from_message(update.message, update.update_id))

    async def on_edited(update: Update, _: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.edited_message is not None
        await inbound.handle(from_message(update.edited_message, update.update_id, edited=True))

    async def on_callback(update: Update, _: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.callback_query is not None
        await inbound.handle(from_callback(update.callback_query, update.update_id))

    async def on_my_member(update: Update, _: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.my_chat_member is not None
        await inbound.handle(from_member_update(update.my_chat_member, update.update_id))

    return [
        MessageHandler(filters.UpdateType.MESSAGE, on_message),
        MessageHandler(filters.UpdateType.EDITED_MESSAGE, on_edited),
        CallbackQueryHandler(on_callback),
        ChatMemberHandler(on_my_member, ChatMemberHandler.MY_CHAT_MEMBER),
    ]


def chat_of(update: object) -> int | None:
    if isinstance(update, Update) and update.effective_chat is not None:
        return update.effective_chat.id
    return None


class ChatSerialProcessor(BaseUpdateProcessor):
    """Up to `max_concurrent_updates` updates at once, but one chat's strictly one after another, in the
    order they arrived (PTB's own SimpleUpdateProcessor would interleave a chat's updates)."""

    def __init__(self, max_concurrent_updates: int = 256) -> None:
        super().__init__(max_concurrent_updates)
        self._tails: dict[int, asyncio.Future[None]] = {}

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        chat = chat_of(update)
        if chat is None:
            await coroutine
            return
        before = self._tails.get(chat)
        mine: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._tails[chat] = mine
        try:
            if before is not None:
                try:
                    await asyncio.shield(before)
                except BaseException:  # cancelled while waiting its turn: the update never ran
                    if inspect.iscoroutine(coroutine):
                        coroutine.close()
                    raise
            await coroutine
        finally:
            mine.set_result(None)
            if self._tails.get(chat) is mine:
                del self._tails[chat]  # nobody queued behind: forget the chat

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass
