"""The core's `Outcome` -> Bot API calls, with Telegram's flood and failure rules."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiogram import Bot
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.methods import (
    AnswerCallbackQuery,
    DeleteWebhook,
    EditMessageReplyMarkup,
    EditMessageText,
    GetFile,
    SendMessage,
    SetMyCommands,
    SetWebhook,
)
from aiogram.methods.base import Response
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from dialogs.io import Event, Outcome, Reply

log = logging.getLogger(__name__)
T = TypeVar("T")

# aiogram parses every answer as `Response[<return type>]`. pydantic keeps those generic classes
# only weakly, so between garbage collections each one is rebuilt (milliseconds of schema building,
# measured at ~10% of the bot's CPU under load). Holding them keeps pydantic's cache warm.
RESPONSE_TYPES = [
    Response[method.__returning__]  # type: ignore[name-defined]
    for method in (SendMessage, EditMessageText, EditMessageReplyMarkup, AnswerCallbackQuery, GetFile,
                   SetMyCommands, SetWebhook, DeleteWebhook)
]

# A reply waits out a 429 this long at most; longer holds are the relay's business.
MAX_INLINE_RETRY_AFTER = 30
ATTEMPTS = 4


def keyboard(reply: Reply) -> InlineKeyboardMarkup | None:
    if not reply.buttons:
        return None
    return InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text=b.text, callback_data=b.token) for b in row]
                         for row in reply.buttons]
    )


async def call(make: Callable[[], Awaitable[T]]) -> T | None:
    """Run one Bot API call: wait out 429s, back off on 5xx and network errors, give up on 403."""
    for attempt in range(ATTEMPTS):
        try:
            return await make()
        except TelegramRetryAfter as exc:
            if exc.retry_after > MAX_INLINE_RETRY_AFTER:
                log.warning("reply dropped: retry_after %ss is too long to wait inline", exc.retry_after)
                return None
            await asyncio.sleep(exc.retry_after)
        except (TelegramServerError, TelegramNetworkError) as exc:
            log.warning("Bot API error (%s), attempt %d", type(exc).__name__, attempt + 1)
            await asyncio.sleep(0.2 * 2**attempt)
        except TelegramForbiddenError:
            log.info("chat blocked the bot; reply not delivered")
            return None
    return None


async def render(bot: Bot, event: Event, outcome: Outcome) -> None:
    if event.callback_id is not None:
        await call(lambda: bot.answer_callback_query(event.callback_id, text=outcome.toast))
    for reply in outcome.replies:
        if reply.edit:
            await _edit(bot, event, reply)
        else:
            await call(lambda r=reply: bot.send_message(event.chat_id, r.text, reply_markup=keyboard(r)))


async def _edit(bot: Bot, event: Event, reply: Reply) -> None:
    if event.message_id is None:
        return
    try:
        if reply.text:
            await call(lambda: bot.edit_message_text(
                text=reply.text, chat_id=event.chat_id, message_id=event.message_id, reply_markup=keyboard(reply)))
        else:
            await call(lambda: bot.edit_message_reply_markup(
                chat_id=event.chat_id, message_id=event.message_id, reply_markup=None))
    except TelegramBadRequest as exc:
        # "message is not modified" or a message too old to edit: nothing the customer needs to see.
        log.debug("edit skipped: %s", exc.message)
