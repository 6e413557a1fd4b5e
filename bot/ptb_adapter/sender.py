"""The `Sender` on python-telegram-bot: one Bot API call per method, PTB's exceptions mapped to the
neutral ones in bot.sending (the relay and bot.inbound decide about retries, holds and blocked chats)."""

from __future__ import annotations

import warnings
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TypeVar

from telegram import (
    Bot,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputMediaDocument,
    InputMediaPhoto,
    InputMediaVideo,
    ReplyParameters,
)
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    NetworkError,
    TelegramError,
)
from telegram.error import (
    RetryAfter as PtbRetryAfter,
)
from telegram.warnings import PTBDeprecationWarning

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

# PTB 22 warns, on every 429 it raises, that RetryAfter.retry_after becomes a timedelta in PTB 23;
# bot.pacing reads either.
warnings.filterwarnings("ignore", message=".*retry_after.*", category=PTBDeprecationWarning)
# Likewise Video.duration (bot.translate reads either).
warnings.filterwarnings("ignore", message=".*attribute `duration`.*", category=PTBDeprecationWarning)



def inline_keyboard(buttons: Buttons) -> InlineKeyboardMarkup | None:
    if not buttons:
        return None
    return InlineKeyboardMarkup([[InlineKeyboardButton(b.text, callback_data=b.token) for b in row]
                                 for row in buttons])


class PtbSender(LibrarySender):
    """`request_timeout` bounds one call (seconds); a call that takes longer is `Transient`."""

    def __init__(self, bot: Bot, request_timeout: int = 10) -> None:
        self.bot = bot
        self.request_timeout = request_timeout

    async def send(self, chat_id: int, text: str, buttons: Buttons = (), *, thread_id: int | None = None,
                   reply_to: int | None = None) -> int:
        reply = ReplyParameters(message_id=reply_to, allow_sending_without_reply=True) if reply_to else None
        message = await self._call(lambda: self.bot.send_message(
            chat_id, text, message_thread_id=thread_id, reply_parameters=reply,
            reply_markup=inline_keyboard(buttons), read_timeout=self.request_timeout))
        return message.message_id

    async def edit(self, chat_id: int, message_id: int, text: str, buttons: Buttons = ()) -> int:
        await self._edit(lambda: self.bot.edit_message_text(
            text, chat_id=chat_id, message_id=message_id, reply_markup=inline_keyboard(buttons),
            read_timeout=self.request_timeout))
        return message_id

    async def edit_caption(self, chat_id: int, message_id: int, caption: str, buttons: Buttons = ()) -> int:
        await self._edit(lambda: self.bot.edit_message_caption(
            chat_id=chat_id, message_id=message_id, caption=caption, reply_markup=inline_keyboard(buttons),
            read_timeout=self.request_timeout))
        return message_id

    async def edit_markup(self, chat_id: int, message_id: int) -> None:
        await self._edit(lambda: self.bot.edit_message_reply_markup(
            chat_id=chat_id, message_id=message_id, reply_markup=None, read_timeout=self.request_timeout))

    async def answer_callback(self, callback_id: str, text: str | None = None) -> None:
        await self._call(lambda: self.bot.answer_callback_query(callback_id, text=text,
                                                                read_timeout=self.request_timeout))

    async def download(self, file_id: str, cap: int) -> bytes:
        file = await self._call(lambda: self.bot.get_file(file_id, read_timeout=self.request_timeout))
        if file.file_size is not None and file.file_size > cap:
            raise TooLarge()
        data = await self._call(lambda: file.download_as_bytearray(read_timeout=self.request_timeout * 3))
        return bytes(data[: cap + 1])

    async def create_topic(self, chat_id: int, name: str) -> int:
        topic = await self._call(lambda: self.bot.create_forum_topic(chat_id, name,
                                                                     read_timeout=self.topic_timeout))
        return topic.message_thread_id

    async def copy(self, chat_id: int, from_chat_id: int, message_id: int, *, thread_id: int | None = None) -> int:
        copied = await self._call(lambda: self.bot.copy_message(
            chat_id, from_chat_id, message_id, message_thread_id=thread_id, read_timeout=self.request_timeout))
        return copied.message_id

    async def copy_many(self, chat_id: int, from_chat_id: int, message_ids: Sequence[int], *,
                        thread_id: int | None = None) -> list[int]:
        copied = await self._call(lambda: self.bot.copy_messages(
            chat_id, from_chat_id, list(message_ids), message_thread_id=thread_id,
            read_timeout=self.request_timeout))
        return [m.message_id for m in copied]

    async def _send_file(self, chat_id: int, file: AlbumFile, caption: str | None,
                         thread_id: int | None, timeout: int) -> int:
        if file.kind == VIDEO:
            one = await self._call(lambda: self.bot.send_video(
                chat_id, file.media, caption=caption, thumbnail=file.thumbnail, message_thread_id=thread_id,
                read_timeout=timeout, write_timeout=timeout))
            return one.message_id
        send = self.bot.send_document if file.kind == DOCUMENT else self.bot.send_photo
        one = await self._call(lambda: send(chat_id, file.media, caption=caption, message_thread_id=thread_id,
                                            read_timeout=timeout, write_timeout=timeout))
        return one.message_id

    async def _send_group(self, chat_id: int, files: list[AlbumFile], caption: str | None,
                          thread_id: int | None, timeout: int) -> list[int]:
        media: list[InputMediaPhoto | InputMediaVideo | InputMediaDocument] = []
        for n, f in enumerate(files):
            text, name = caption if n == 0 else None, f.media.name if isinstance(f.media, Path) else None
            if f.kind == VIDEO:
                thumbnail = f.thumbnail.read_bytes() if f.thumbnail is not None else None
                media.append(InputMediaVideo(_content(f.media), caption=text, thumbnail=thumbnail, filename=name))
            elif f.kind == DOCUMENT:
                media.append(InputMediaDocument(_content(f.media), caption=text, filename=name))
            else:
                media.append(InputMediaPhoto(_content(f.media), caption=text, filename=name))
        sent = await self._call(lambda: self.bot.send_media_group(
            chat_id, media, message_thread_id=thread_id, read_timeout=timeout, write_timeout=timeout))
        return [m.message_id for m in sent]

    async def member_status(self, chat_id: int, user_id: int) -> str:
        member = await self._call(lambda: self.bot.get_chat_member(chat_id, user_id, read_timeout=self.request_timeout))
        return str(member.status)

    async def chat_name(self, chat_id: int, *, member_of: int | None = None) -> str:
        if member_of is not None:
            member = await self._call(lambda: self.bot.get_chat_member(member_of, chat_id,
                                                                       read_timeout=self.request_timeout))
            return member.user.full_name
        chat = await self._call(lambda: self.bot.get_chat(chat_id, read_timeout=self.request_timeout))
        return display_name(chat)

    @staticmethod
    async def _call(make: Callable[[], Awaitable[T]]) -> T:
        try:
            return await make()
        except PtbRetryAfter as exc:
            raise RetryAfter(retry_after_seconds(exc.retry_after), exc.message) from exc
        except Forbidden as exc:
            raise Blocked(exc.message) from exc
        except ChatMigrated as exc:  # the group became a supergroup: a new chat id
            raise Rejected(f"{exc.message} (migrate_to_chat_id={exc.new_chat_id})", "400") from exc
        except BadRequest as exc:  # a NetworkError in PTB's hierarchy: caught first
            raise bad_request(exc.message) from exc
        except NetworkError as exc:
            # PTB raises every other HTTP status as a NetworkError whose message ends in "(<status>)".
            if "(413)" in exc.message:
                raise Rejected(exc.message, "413") from exc
            if any(f"({code}" in exc.message for code in ("500", "502", "503", "504")) or \
                    "Bad Gateway" in exc.message:
                raise Transient(exc.message, "5xx") from exc
            raise network_failure(exc, exc.message) from exc
        except TelegramError as exc:  # 401, 404, 409: the bot's setup, not this message
            raise Transient(exc.message, "api") from exc


def _content(media: str | Path) -> str | bytes:
    """A file id, or a stored file's bytes: PTB's InputMedia turns a Path into a file:// URI, which only
    a local Bot API server reads (PTB assumes local mode there)."""
    return media.read_bytes() if isinstance(media, Path) else media
