"""The `Sender` on aiogram: one Bot API call per method, aiogram's exceptions mapped to the neutral ones
in bot.sending (the relay and bot.inbound decide about retries, holds and blocked chats)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
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
from aiogram.methods import (
    AnswerCallbackQuery,
    CopyMessage,
    CopyMessages,
    CreateForumTopic,
    EditMessageCaption,
    EditMessageReplyMarkup,
    EditMessageText,
    GetFile,
    SendMediaGroup,
    SendMessage,
)
from aiogram.methods.base import Response
from aiogram.types import (
    FSInputFile,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputMediaDocument,
    InputMediaPhoto,
    InputMediaVideo,
    ReplyParameters,
)

from bot.evidence import TooLarge
from bot.pacing import retry_after_seconds
from bot.sending import (
    DOCUMENT,
    VIDEO,
    AlbumFile,
    Blocked,
    Buttons,
    LibrarySender,
    Rejected,
    RetryAfter,
    Transient,
    bad_request,
    display_name,
    network_failure,
)

T = TypeVar("T")

# aiogram parses every answer as `Response[<return type>]`. pydantic keeps those generic classes
# only weakly, so between garbage collections each one is rebuilt (milliseconds of schema building,
# measured at ~10% of the bot's CPU under load). Holding them keeps pydantic's cache warm.
RESPONSE_TYPES = [
    Response[method.__returning__]  # type: ignore[name-defined]
    for method in (SendMessage, EditMessageText, EditMessageReplyMarkup, EditMessageCaption, AnswerCallbackQuery,
                   GetFile, CopyMessage, CopyMessages, CreateForumTopic, SendMediaGroup)
]



def inline_keyboard(buttons: Buttons) -> InlineKeyboardMarkup | None:
    if not buttons:
        return None
    return InlineKeyboardMarkup(inline_keyboard=[
        [InlineKeyboardButton(text=b.text, callback_data=b.token) for b in row] for row in buttons])


class AiogramSender(LibrarySender):
    """`request_timeout` bounds one call (seconds); a call that takes longer is `Transient`."""

    def __init__(self, bot: Bot, request_timeout: int = 10) -> None:
        self.bot = bot
        self.request_timeout = request_timeout

    async def send(self, chat_id: int, text: str, buttons: Buttons = (), *, thread_id: int | None = None,
                   reply_to: int | None = None) -> int:
        reply = ReplyParameters(message_id=reply_to, allow_sending_without_reply=True) if reply_to else None
        message = await self._call(lambda: self.bot.send_message(
            chat_id, text, message_thread_id=thread_id, reply_parameters=reply,
            reply_markup=inline_keyboard(buttons), request_timeout=self.request_timeout))
        return message.message_id

    async def edit(self, chat_id: int, message_id: int, text: str, buttons: Buttons = ()) -> int:
        await self._edit(lambda: self.bot.edit_message_text(
            text=text, chat_id=chat_id, message_id=message_id, reply_markup=inline_keyboard(buttons),
            request_timeout=self.request_timeout))
        return message_id

    async def edit_caption(self, chat_id: int, message_id: int, caption: str, buttons: Buttons = ()) -> int:
        await self._edit(lambda: self.bot.edit_message_caption(
            chat_id=chat_id, message_id=message_id, caption=caption, reply_markup=inline_keyboard(buttons),
            request_timeout=self.request_timeout))
        return message_id

    async def create_topic(self, chat_id: int, name: str) -> int:
        topic = await self._call(lambda: self.bot.create_forum_topic(chat_id, name,
                                                                     request_timeout=self.topic_timeout))
        return topic.message_thread_id

    async def copy(self, chat_id: int, from_chat_id: int, message_id: int, *, thread_id: int | None = None) -> int:
        copied = await self._call(lambda: self.bot.copy_message(
            chat_id, from_chat_id, message_id, message_thread_id=thread_id, request_timeout=self.request_timeout))
        return copied.message_id

    async def copy_many(self, chat_id: int, from_chat_id: int, message_ids: Sequence[int], *,
                        thread_id: int | None = None) -> list[int]:
        copied = await self._call(lambda: self.bot.copy_messages(
            chat_id, from_chat_id, list(message_ids), message_thread_id=thread_id,
            request_timeout=self.request_timeout))
        return [m.message_id for m in copied]

    async def _send_file(self, chat_id: int, file: AlbumFile, caption: str | None,
                         thread_id: int | None, timeout: int) -> int:
        media = _input(file.media)
        if file.kind == VIDEO:
            thumbnail = FSInputFile(file.thumbnail) if file.thumbnail is not None else None
            one = await self._call(lambda: self.bot.send_video(
                chat_id, media, caption=caption, thumbnail=thumbnail, message_thread_id=thread_id,
                request_timeout=timeout))
            return one.message_id
        send = self.bot.send_document if file.kind == DOCUMENT else self.bot.send_photo
        one = await self._call(lambda: send(chat_id, media, caption=caption, message_thread_id=thread_id,
                                            request_timeout=timeout))
        return one.message_id

    async def _send_group(self, chat_id: int, files: list[AlbumFile], caption: str | None,
                          thread_id: int | None, timeout: int) -> list[int]:
        media: list[InputMediaPhoto | InputMediaVideo | InputMediaDocument] = []
        for n, f in enumerate(files):
            text = caption if n == 0 else None
            if f.kind == VIDEO:
                thumbnail = FSInputFile(f.thumbnail) if f.thumbnail is not None else None
                media.append(InputMediaVideo(media=_input(f.media), caption=text, thumbnail=thumbnail))
            elif f.kind == DOCUMENT:
                media.append(InputMediaDocument(media=_input(f.media), caption=text))
            else:
                media.append(InputMediaPhoto(media=_input(f.media), caption=text))
        sent = await self._call(lambda: self.bot.send_media_group(
            chat_id, media, message_thread_id=thread_id, request_timeout=timeout))  # type: ignore[arg-type]
        return [m.message_id for m in sent]

    async def answer_callback(self, callback_id: str, text: str | None = None) -> None:
        await self._call(lambda: self.bot.answer_callback_query(callback_id, text=text,
                                                                request_timeout=self.request_timeout))

    async def edit_markup(self, chat_id: int, message_id: int) -> None:
        await self._edit(lambda: self.bot.edit_message_reply_markup(
            chat_id=chat_id, message_id=message_id, reply_markup=None, request_timeout=self.request_timeout))

    async def download(self, file_id: str, cap: int) -> bytes:
        file = await self._call(lambda: self.bot.get_file(file_id, request_timeout=self.request_timeout))
        if file.file_size is not None and file.file_size > cap:
            raise TooLarge()
        assert file.file_path is not None
        buffer = await self._call(lambda: self.bot.download_file(file.file_path or "", timeout=self.request_timeout * 3))
        assert buffer is not None
        return buffer.read(cap + 1)

    async def member_status(self, chat_id: int, user_id: int) -> str:
        member = await self._call(lambda: self.bot.get_chat_member(chat_id, user_id, request_timeout=self.request_timeout))
        return str(member.status)

    async def chat_name(self, chat_id: int, *, member_of: int | None = None) -> str:
        if member_of is not None:
            member = await self._call(lambda: self.bot.get_chat_member(member_of, chat_id,
                                                                       request_timeout=self.request_timeout))
            return member.user.full_name
        chat = await self._call(lambda: self.bot.get_chat(chat_id, request_timeout=self.request_timeout))
        return display_name(chat)

    @staticmethod
    async def _call(make: Callable[[], Awaitable[T]]) -> T:
        try:
            return await make()
        except TelegramRetryAfter as exc:
            raise RetryAfter(retry_after_seconds(exc.retry_after), exc.message) from exc
        except TelegramForbiddenError as exc:
            raise Blocked(exc.message) from exc
        except TelegramServerError as exc:
            raise Transient(exc.message, "5xx") from exc
        except TelegramEntityTooLarge as exc:  # a TelegramNetworkError, but it will never fit
            raise Rejected(exc.message, "413") from exc
        except TelegramNetworkError as exc:
            raise network_failure(exc, exc.message) from exc
        except TelegramMigrateToChat as exc:  # the group became a supergroup: a new chat id
            raise Rejected(f"{exc.message} (migrate_to_chat_id={exc.migrate_to_chat_id})", "400") from exc
        except TelegramBadRequest as exc:
            raise bad_request(exc.message) from exc
        except TelegramAPIError as exc:  # 401, 404, 409: the bot's setup, not this message
            raise Transient(exc.message, "api") from exc
        except AiogramError as exc:  # e.g. an answer that is not JSON (a proxy's error page)
            raise Transient(str(exc), "network") from exc


def _input(media: str | Path) -> str | FSInputFile:
    """A stored file is uploaded; a string is a file id."""
    return FSInputFile(media) if isinstance(media, Path) else media
