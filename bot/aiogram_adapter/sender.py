"""The relay's `Sender` on aiogram: one Bot API call per attempt, aiogram's exceptions mapped to the
neutral ones in bot.sending (the relay decides about retries, holds and blocked chats)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiogram import Bot
from aiogram.exceptions import (
    AiogramError,
    TelegramAPIError,
    TelegramBadRequest,
    TelegramEntityTooLarge,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from bot.sending import Blocked, Buttons, MessageGone, NotModified, Rejected, RetryAfter, Transient

T = TypeVar("T")

# Telegram's wording when an edit has nothing to edit (deleted, too old, not the bot's, wrong id).
GONE = ("message to edit not found", "message can't be edited", "message_id_invalid", "message not found")


def inline_keyboard(buttons: Buttons) -> InlineKeyboardMarkup | None:
    if not buttons:
        return None
    return InlineKeyboardMarkup(inline_keyboard=[
        [InlineKeyboardButton(text=b.text, callback_data=b.token) for b in row] for row in buttons])


class AiogramSender:
    """`request_timeout` bounds one call (seconds); a call that takes longer is `Transient`."""

    def __init__(self, bot: Bot, request_timeout: int = 10) -> None:
        self.bot = bot
        self.request_timeout = request_timeout

    async def send(self, chat_id: int, text: str, buttons: Buttons = ()) -> int:
        message = await self._call(lambda: self.bot.send_message(
            chat_id, text, reply_markup=inline_keyboard(buttons), request_timeout=self.request_timeout))
        return message.message_id

    async def edit(self, chat_id: int, message_id: int, text: str, buttons: Buttons = ()) -> int:
        try:
            await self._call(lambda: self.bot.edit_message_text(
                text=text, chat_id=chat_id, message_id=message_id, reply_markup=inline_keyboard(buttons),
                request_timeout=self.request_timeout))
        except Rejected as exc:
            lowered = exc.description.lower()
            if "message is not modified" in lowered:
                raise NotModified(exc.description) from exc
            if any(phrase in lowered for phrase in GONE):
                raise MessageGone(exc.description) from exc
            raise
        return message_id

    @staticmethod
    async def _call(make: Callable[[], Awaitable[T]]) -> T:
        try:
            return await make()
        except TelegramRetryAfter as exc:
            raise RetryAfter(exc.retry_after, exc.message) from exc
        except TelegramForbiddenError as exc:
            raise Blocked(exc.message) from exc
        except TelegramServerError as exc:
            raise Transient(exc.message, "5xx") from exc
        except TelegramEntityTooLarge as exc:  # a TelegramNetworkError, but it will never fit
            raise Rejected(exc.message, "413") from exc
        except TelegramNetworkError as exc:
            raise Transient(exc.message, "network") from exc
        except TelegramMigrateToChat as exc:  # the group became a supergroup: a new chat id
            raise Rejected(f"{exc.message} (migrate_to_chat_id={exc.migrate_to_chat_id})", "400") from exc
        except TelegramBadRequest as exc:
            raise Rejected(exc.message, "400") from exc
        except TelegramAPIError as exc:  # 401, 404, 409: the bot's setup, not this message
            raise Transient(exc.message, "api") from exc
        except AiogramError as exc:  # e.g. an answer that is not JSON (a proxy's error page)
            raise Transient(str(exc), "network") from exc
