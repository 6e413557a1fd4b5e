"""Transport-neutral input and output of the core: one `Event` in, an `Outcome` out."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class EventKind(StrEnum):
    COMMAND = "command"  # text = command name without slash, args = the rest
    TEXT = "text"
    BUTTON = "button"  # text = the opaque callback token
    PHOTO = "photo"
    DOCUMENT = "document"
    VIDEO = "video"  # a Telegram video message (a video sent as a file is a DOCUMENT)
    OTHER = "other"  # sticker, voice, video note, location...: anything we do not take
    SERVICE = "service"  # a group's service message (topic created, member joined...): never answered
    MEMBER = "member"  # Telegram's my_chat_member: the bot's own standing in the chat; text = its new status


@dataclass(frozen=True, slots=True)
class FileInspection:
    """What the adapter's evidence intake found after downloading and sniffing the bytes."""

    ok: bool
    # too_large | not_image | too_many_pixels | unreadable | download_failed, and for other kinds
    # (bot/evidence_media.py): not_video | not_supported | video_too_large | video_too_long |
    # pdf_too_large | text_too_large
    problem: str | None = None
    path: str = ""
    sha256: str = ""
    mime_type: str = ""
    width: int = 0
    height: int = 0
    size: int = 0
    seconds: float = 0.0  # a video's length, from its own mvhd box
    pages: int = 0  # a PDF's page count when it could be counted cheaply (0: unknown)


@dataclass(frozen=True, slots=True)
class FileRef:
    file_id: str
    file_unique_id: str
    size: int | None = None
    mime_type: str | None = None  # as the sender claimed it: never trusted
    inspection: FileInspection | None = None
    duration: int | None = None  # a video's length as the sender claimed it: only an early refusal


@dataclass(frozen=True, slots=True)
class Event:
    update_id: int
    chat_id: int
    user_id: int
    kind: EventKind
    at: datetime
    text: str = ""
    args: str = ""
    language_code: str | None = None
    user_name: str = ""
    message_id: int | None = None  # the user's message, or the bot message a button sits on
    callback_id: str | None = None
    file: FileRef | None = None
    private: bool = True
    # The forum topic the message (or the message a button sits on) is in; None: General or no forum.
    thread_id: int | None = None
    edited: bool = False  # an edited_message: `text` is the new text (or caption)
    reply_to: int | None = None  # the message this one answers (not the topic's opening message)
    reply_to_user: int | None = None  # who wrote the message this one answers
    forum: bool = False  # the chat is a forum supergroup (topics)


@dataclass(frozen=True, slots=True)
class Button:
    text: str
    token: str  # opaque callback data, <= 64 bytes, checked by the core against the state


@dataclass(frozen=True, slots=True)
class Reply:
    text: str
    buttons: tuple[tuple[Button, ...], ...] = ()
    # True: replace the text/keyboard of the bot message the pressed button sits on.
    edit: bool = False


@dataclass(frozen=True, slots=True)
class Outcome:
    replies: tuple[Reply, ...] = ()
    toast: str | None = None  # answer to a button press (answerCallbackQuery)
    duplicate: bool = False  # the update was seen before; nothing was done
    # The replies that are not edits are recorded as unconfirmed: tell RefundService.settle_replies which
    # of them Telegram took, or they go again (on a repeat of the update, or with the chat's next answer).
    unconfirmed: bool = False
    step: str = ""
    locale: str = ""
    extra: dict[str, str] = field(default_factory=dict)
