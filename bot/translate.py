"""A Telegram message, callback query or my_chat_member -> the core's transport-neutral `Event`.

aiogram's and python-telegram-bot's types mirror the Bot API field for field (`chat.id`, `from_user`,
`photo`, `is_topic_message`...), so one translation reads both; the only difference it minds is that
aiogram gives `edit_date` as a Unix time and PTB as a datetime. Each adapter passes its own objects.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from dialogs.clock import utcnow
from dialogs.io import Event, EventKind, FileRef

# What a person sends besides text, photos, documents and videos: a desk copies it, the dialog hints. A
# message with none of these (nor text, photo, document, video) is a service message: a topic was
# created, someone joined, a message was pinned...
_CONTENT = ("sticker", "voice", "video_note", "audio", "animation", "location", "venue", "contact",
            "dice", "poll", "game", "story", "paid_media", "checklist")


def _when(value: datetime | int | None) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromtimestamp(value, UTC) if value else None


def _seconds(value: int | timedelta | None) -> int | None:
    """A duration as aiogram gives it (seconds) or PTB 23 will (a timedelta)."""
    return int(value.total_seconds()) if isinstance(value, timedelta) else value


def _thread(message: Any) -> int | None:
    """The forum topic the message is in (a reply in General carries a thread id but is in no topic)."""
    return message.message_thread_id if getattr(message, "is_topic_message", None) else None


def _reply_to(message: Any) -> int | None:
    replied = message.reply_to_message
    if replied is None or replied.forum_topic_created is not None:  # a topic's messages "reply" to its opening
        return None
    return int(replied.message_id)


def _reply_to_user(message: Any) -> int | None:
    replied = message.reply_to_message if _reply_to(message) is not None else None
    return int(replied.from_user.id) if replied is not None and replied.from_user is not None else None


def from_message(message: Any, update_id: int, *, edited: bool = False) -> Event:
    user = message.from_user
    at = (_when(message.edit_date) if edited else None) or _when(message.date) or utcnow()
    base = {
        "update_id": update_id,
        "chat_id": message.chat.id,
        "user_id": user.id if user else message.chat.id,
        "at": at,
        "language_code": user.language_code if user else None,
        "user_name": user.full_name if user else "",
        "message_id": message.message_id,
        "private": message.chat.type == "private",
        "thread_id": _thread(message),
        "edited": edited,
        "reply_to": _reply_to(message),
        "reply_to_user": _reply_to_user(message),
        "forum": bool(getattr(message.chat, "is_forum", False)),
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
    if message.video:  # the duration is the sender's claim: the evidence intake reads the file's own
        video = message.video
        ref = FileRef(video.file_id, video.file_unique_id, video.file_size, video.mime_type,
                      duration=_seconds(video.duration))
        return Event(kind=EventKind.VIDEO, file=ref, **base)
    return Event(kind=_kind(message), **base)


def _kind(message: Any) -> EventKind:
    if message.photo:
        return EventKind.PHOTO
    if message.document:
        return EventKind.DOCUMENT
    if message.video:
        return EventKind.VIDEO
    if any(getattr(message, name, None) for name in _CONTENT):
        return EventKind.OTHER
    return EventKind.SERVICE


def from_member_update(updated: Any, update_id: int) -> Event:
    """my_chat_member: the bot's own standing in a chat changed (a private chat: "kicked" when the user
    blocked the bot, "member" when they unblocked it; a group: "left"/"kicked", "member"/"administrator")."""
    return Event(
        update_id=update_id,
        chat_id=updated.chat.id,
        user_id=updated.from_user.id,
        kind=EventKind.MEMBER,
        at=_when(updated.date) or utcnow(),
        text=str(updated.new_chat_member.status),
        private=updated.chat.type == "private",
    )


def from_callback(query: Any, update_id: int) -> Event:
    """A button press. `query.message` may be missing (an inline message) or inaccessible (too old):
    then the press counts as in the presser's private chat, without a message to edit."""
    message = query.message
    accessible = message is not None and type(message).__name__ != "InaccessibleMessage"  # same name in both
    chat_id = message.chat.id if message is not None else query.from_user.id
    return Event(
        update_id=update_id,
        chat_id=chat_id,
        user_id=query.from_user.id,
        kind=EventKind.BUTTON,
        at=utcnow(),
        text=query.data or "",
        language_code=query.from_user.language_code,
        user_name=query.from_user.full_name,
        message_id=message.message_id if message is not None else None,
        callback_id=query.id,
        private=message is None or message.chat.type == "private",
        thread_id=_thread(message) if accessible else None,
    )
