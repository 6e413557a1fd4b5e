"""The one Bot API call that delivers a composed notice, made within a timeout, and the other way to
try when Telegram refuses it: a new card for one that is gone, the caption of a message without text,
an album's files sent another way."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from bot.sending import MessageGone, NotModified, NotText, Rejected, Sender, SendError, Transient, WrongFile
from bot.workers.relay_rows import Row
from dialogs.notify import Notice, Sent

log = logging.getLogger(__name__)
T = TypeVar("T")

# How an album's files are tried: by file id as photos, as documents, then the stored files uploaded.
ALBUM_MODES = ("photo", "document", "upload")


async def call_once(sender: Sender, notice: Notice, row: Row) -> Sent:
    """The one Bot API call that delivers `notice`."""
    chat_id = notice.chat_id
    if notice.edit_message_id is not None and not row.force_new:
        message_id = notice.edit_message_id
        try:
            if row.caption_edit:
                await sender.edit_caption(chat_id, message_id, notice.text, notice.buttons)
            else:
                await sender.edit(chat_id, message_id, notice.text, notice.buttons)
        except NotModified:
            pass
        return Sent(message_id, (message_id,), edited=True)
    if notice.album:
        ids = await sender.send_album(chat_id, notice.album, ALBUM_MODES[row.album_mode], caption=notice.text,
                                      thread_id=notice.thread_id)
        return Sent(ids[0] if ids else None, tuple(ids))
    if len(notice.copies) == 1:
        source = notice.copies[0]
        copy_id = await sender.copy(chat_id, source.from_chat_id, source.message_id, thread_id=notice.thread_id)
        return Sent(copy_id, (copy_id,))
    if notice.copies:
        ids = await sender.copy_many(chat_id, notice.copies[0].from_chat_id,
                                     [c.message_id for c in notice.copies], thread_id=notice.thread_id)
        return Sent(ids[0] if ids else None, tuple(ids))
    message_id = await sender.send(chat_id, notice.text, notice.buttons, thread_id=notice.thread_id)
    return Sent(message_id, (message_id,))


async def timed(call: Callable[[], Awaitable[T]], timeout: float) -> T:
    """Make the call within `timeout` seconds; whatever else than bot.sending's errors it raises is
    `Transient` (it may work later)."""
    try:
        async with asyncio.timeout(timeout):
            return await call()
    except TimeoutError:
        raise Transient(f"no answer within {timeout:g}s", "timeout") from None
    except SendError:
        raise
    except Exception as exc:  # whatever else the library raised: assume the call may work later
        raise Transient(repr(exc), "unknown") from exc


def another_way(row: Row, notice: Notice, chat_id: int, exc: MessageGone | NotText | WrongFile) -> Sent | None:
    """After a refused call: set `row` to try the next way and return None; or return what counts as
    delivered (an edit of a copy that is gone: nothing left to edit); or raise Rejected when no way is
    left."""
    if isinstance(exc, MessageGone):
        if not (notice.card_of or notice.desk_card):
            return Sent(None, edited=True)  # the copy to edit is gone: nothing left to edit
        log.info("relay: card %s in chat %s is gone (%s): sending a new one", notice.edit_message_id,
                 chat_id, exc.description)
        row.force_new = True
    elif isinstance(exc, NotText):
        if row.caption_edit:
            raise Rejected("neither text nor caption to edit", "400") from None
        row.caption_edit = True
    else:
        if not notice.album or row.album_mode + 1 >= len(ALBUM_MODES):
            raise Rejected(exc.description, exc.code) from None
        row.album_mode += 1
        if "identifier" in exc.description.lower():  # not this bot's file ids at all
            row.album_mode = len(ALBUM_MODES) - 1
    return None

