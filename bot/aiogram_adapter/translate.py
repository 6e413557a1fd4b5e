"""aiogram types -> the core's transport-neutral `Event`."""

from __future__ import annotations

from datetime import UTC, datetime

from aiogram.types import CallbackQuery, Message

from dialogs.io import Event, EventKind, FileRef


def _now() -> datetime:
    return datetime.now(UTC)


# What a person sends besides text, photos and documents: a desk copies it, the dialog hints. A
# message with none of these (nor text, photo, document) is a service message: a topic was created,
# someone joined, a message was pinned...
_CONTENT = ("sticker", "voice", "video", "video_note", "audio", "animation", "location", "venue", "contact",
            "dice", "poll", "game", "story", "paid_media", "checklist")


def _thread(message: Message) -> int | None:
    """The forum topic the message is in (a reply in General carries a thread id but is in no topic)."""
    return message.message_thread_id if message.is_topic_message else None


def _reply_to(message: Message) -> int | None:
    replied = message.reply_to_message
    if replied is None or replied.forum_topic_created is not None:  # a topic's messages "reply" to its opening
        return None
    return replied.message_id


def _at(message: Message, edited: bool) -> datetime:
    if edited and message.edit_date:
        return datetime.fromtimestamp(message.edit_date, UTC)
    return message.date or _now()


def from_message(message: Message, update_id: int, *, edited: bool = False) -> Event:
    user = message.from_user
    base = {
        "update_id": update_id,
        "chat_id": message.chat.id,
        "user_id": user.id if user else message.chat.id,
        "at": _at(message, edited),
        "language_code": user.language_code if user else None,
        "user_name": user.full_name if user else "",
        "message_id": message.message_id,
        "private": message.chat.type == "private",
        "thread_id": _thread(message),
        "edited": edited,
        "reply_to": _reply_to(message),
    }
    text = message.text
    if edited:  # the new text or caption, as it is: an edit is never a command
        return Event(kind=EventKind.TEXT if text is not None else _kind(message), text=text or message.caption or "",
                     **base)
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
    return Event(kind=_kind(message), **base)


def _kind(message: Message) -> EventKind:
    if message.photo:
        return EventKind.PHOTO
    if message.document:
        return EventKind.DOCUMENT
    if any(getattr(message, name, None) is not None for name in _CONTENT):
        return EventKind.OTHER
    return EventKind.SERVICE


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
        thread_id=_thread(message) if isinstance(message, Message) else None,
    )
