"""aiogram types -> the core's transport-neutral `Event`."""

from __future__ import annotations

from datetime import UTC, datetime

from aiogram.types import CallbackQuery, Message

from dialogs.io import Event, EventKind, FileRef


def _now() -> datetime:
    return datetime.now(UTC)


def from_message(message: Message, update_id: int) -> Event:
    user = message.from_user
    base = {
        "update_id": update_id,
        "chat_id": message.chat.id,
        "user_id": user.id if user else message.chat.id,
        "at": message.date if message.date else _now(),
        "language_code": user.language_code if user else None,
        "user_name": user.full_name if user else "",
        "message_id": message.message_id,
        "private": message.chat.type == "private",
    }
    text = message.text
    if text is not None:
        if text.startswith("/"):
            head, _, args = text.partition(" ")
            name = head[1:].split("@", 1)[0]
            return Event(kind=EventKind.COMMAND, text=name, args=args.strip(), **base)
        return Event(kind=EventKind.TEXT, text=text, **base)
    if message.photo:
        biggest = message.photo[-1]
        ref = FileRef(biggest.file_id, biggest.file_unique_id, biggest.file_size, "image/jpeg")
        return Event(kind=EventKind.PHOTO, file=ref, **base)
    if message.document:
        doc = message.document
        ref = FileRef(doc.file_id, doc.file_unique_id, doc.file_size, doc.mime_type)
        return Event(kind=EventKind.DOCUMENT, file=ref, **base)
    return Event(kind=EventKind.OTHER, **base)


def from_callback(query: CallbackQuery, update_id: int) -> Event:
    message = query.message
    chat_id = message.chat.id if message is not None else query.from_user.id
    private = message is None or message.chat.type == "private"
    return Event(
        update_id=update_id,
        chat_id=chat_id,
        user_id=query.from_user.id,
        kind=EventKind.BUTTON,
        at=_now(),
        text=query.data or "",
        language_code=query.from_user.language_code,
        user_name=query.from_user.full_name,
        message_id=message.message_id if message is not None else None,
        callback_id=query.id,
        private=private,
    )
