"""What refundbot needs from a Telegram library: send or edit one message, copy messages, send an
album, open a forum topic, read a chat's name (the notification relay); answer a button press, take a
keyboard off, download a file (the replies to an update, bot.inbound); and failures in Telegram's terms
rather than a library's.

An implementation makes exactly one Bot API call per method call and never retries: the relay and
bot.inbound own retries; bot.pacing owns pacing, and what a 429 (`RetryAfter`) means. There is one per adapter:
bot.aiogram_adapter.sender.AiogramSender and bot.ptb_adapter.sender.PtbSender.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import aiohttp

from dialogs.io import Button
from dialogs.notify import AlbumItem

Buttons = tuple[tuple[Button, ...], ...]
T = TypeVar("T")


class SendError(Exception):
    """A Bot API call that did not deliver; `description` is Telegram's (or the transport's) text."""

    def __init__(self, description: str = "") -> None:
        super().__init__(description)
        self.description = description

    @property
    def code(self) -> str:
        """A short label for counters: 429, 403, 5xx, network, gone, 400..."""
        return "error"


class RetryAfter(SendError):
    """429 Too Many Requests: send nothing to this target (or, in a flood, to anyone) for `seconds`."""

    def __init__(self, seconds: float, description: str = "") -> None:
        super().__init__(description or f"Too Many Requests: retry after {seconds:g}")
        self.seconds = seconds

    @property
    def code(self) -> str:
        return "429"


class Blocked(SendError):
    """403: the user blocked the bot, deleted their account, or the bot left the group. Permanent."""

    @property
    def code(self) -> str:
        return "403"


class Transient(SendError):
    """5xx, a timeout or a network failure: the same call may well work later."""

    def __init__(self, description: str = "", code: str = "5xx") -> None:
        super().__init__(description)
        self._code = code

    @property
    def code(self) -> str:
        return self._code


class MaybeSent(Transient):
    """A timeout or a connection lost after the request went out: Telegram may well have carried the call
    out. Safe to repeat only where a second call changes nothing (an edit); a sendMessage is not repeated
    blindly (bot.inbound keeps the reply to send again later)."""

    def __init__(self, description: str = "", code: str = "network") -> None:
        super().__init__(description, code)


def network_failure(exc: BaseException, description: str) -> Transient:
    """A library's network error (both adapters' HTTP is aiohttp's): `Transient` when the connection was
    never made, so nothing reached Telegram; `MaybeSent` otherwise (a timeout, a broken answer)."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)):
            return Transient(description, "network")
        cause = cause.__cause__ or cause.__context__
    return MaybeSent(description, "network")


class MessageGone(SendError):
    """An edit found no message to edit (deleted, too old, not the bot's): send a new one instead."""

    @property
    def code(self) -> str:
        return "gone"


class NotModified(SendError):
    """An edit that would change nothing: the message already says this. Counts as delivered."""

    @property
    def code(self) -> str:
        return "not_modified"


class TopicGone(SendError):
    """The forum topic is deleted or closed to the bot ("message thread not found", TOPIC_CLOSED...):
    the desk opens a new one; the message never goes to the old one."""

    @property
    def code(self) -> str:
        return "topic_gone"


class NotText(SendError):
    """editMessageText on a message without text (a photo, a document): edit its caption instead."""

    @property
    def code(self) -> str:
        return "not_text"


class WrongFile(SendError):
    """A file id that cannot be sent this way (a document's id as a photo, an id of another bot):
    send the file another way."""

    @property
    def code(self) -> str:
        return "wrong_file"


class Rejected(SendError):
    """Any other 4xx (chat not found, text too long, bad markup...): this message will never go."""

    def __init__(self, description: str = "", code: str = "400") -> None:
        super().__init__(description)
        self._code = code

    @property
    def code(self) -> str:
        return self._code


# Telegram's wording when an edit has nothing to edit (deleted, too old, not the bot's, wrong id).
GONE = ("message to edit not found", "message can't be edited", "message_id_invalid", "message not found")
# ... when a forum topic is deleted, or closed to the bot.
TOPIC_GONE = ("message thread not found", "topic_deleted", "topic_closed", "topic_id_invalid")
# ... when a file id cannot be sent this way (another kind of file, another bot's id).
WRONG_FILE = ("can't use file of type", "type of file mismatch", "wrong file identifier",
              "wrong remote file identifier", "file_reference")


def bad_request(description: str) -> SendError:
    """A 400, by Telegram's description: a topic gone, a file id that does not fit, or plainly refused."""
    lowered = description.lower()
    if any(phrase in lowered for phrase in TOPIC_GONE):
        return TopicGone(description)
    if any(phrase in lowered for phrase in WRONG_FILE):
        return WrongFile(description)
    return Rejected(description, "400")


def edit_refused(exc: Rejected) -> SendError:
    """What a refused edit means: already so, not a text message, or no message to edit."""
    lowered = exc.description.lower()
    if "message is not modified" in lowered:
        return NotModified(exc.description)
    if "there is no text in the message" in lowered:
        return NotText(exc.description)
    if any(phrase in lowered for phrase in GONE):
        return MessageGone(exc.description)
    return exc


PHOTO, VIDEO, DOCUMENT = "photo", "video", "document"


@dataclass(frozen=True)
class AlbumFile:
    """One file of an album as it is sent: a file id or a stored file, and the Bot API kind to send it as."""

    media: str | Path
    kind: str  # photo | video | document
    thumbnail: Path | None = None  # a stored video's poster frame, sent with its upload


def media_kind(mime_type: str) -> str:
    if mime_type.startswith("image/") or not mime_type:  # rows from before videos were taken are pictures
        return PHOTO
    return VIDEO if mime_type.startswith("video/") else DOCUMENT


def album_files(items: Sequence[AlbumItem], mode: str) -> list[AlbumFile]:
    """What an album sends: the stored files ("upload", those still on disk) or the file ids; at most 10
    (Telegram's album size). Each goes as its own kind, except in "document" mode, and when documents
    (a PDF, a chat export) meet photos or videos: Telegram groups documents only with documents."""
    files: list[AlbumFile]
    if mode == "upload":
        files = [AlbumFile(Path(item.path), media_kind(item.mime_type), _poster(item))
                 for item in items if item.path and Path(item.path).is_file()]
    else:
        files = [AlbumFile(item.file_id, DOCUMENT if mode == DOCUMENT else media_kind(item.mime_type))
                 for item in items]
    if not files:
        raise Rejected("none of the album's files is at hand", "400")
    files = files[:10]
    if len({f.kind for f in files}) > 1 and any(f.kind == DOCUMENT for f in files):
        files = [AlbumFile(f.media, DOCUMENT) for f in files]
    return files


def _poster(item: AlbumItem) -> Path | None:
    if not item.mime_type.startswith("video/"):
        return None
    path = Path(item.path).with_suffix(".poster.jpg")  # bot.evidence.poster_path
    return path if path.is_file() else None


def display_name(chat: Any) -> str:
    """A group's title, or a person's name (or username), from either library's Chat."""
    if chat.title:
        return str(chat.title)
    return " ".join(part for part in (chat.first_name, chat.last_name) if part) or (chat.username or "")


class LibrarySender(ABC):
    """What both adapters' senders share once their library's exceptions are mapped (`_call`)."""

    @staticmethod
    @abstractmethod
    async def _call(make: Callable[[], Awaitable[T]]) -> T:
        """Make one call; raise its failure as one of this module's errors."""

    request_timeout: int

    @property
    def topic_timeout(self) -> int:
        """createForumTopic is not idempotent: its answer is waited for much longer than other calls'
        (bot.workers.relay waits for that one call rather than make a second topic)."""
        return self.request_timeout * 6

    async def _edit(self, make: Callable[[], Awaitable[object]]) -> None:
        try:
            await self._call(make)
        except Rejected as exc:
            raise edit_refused(exc) from exc

    async def send_album(self, chat_id: int, items: Sequence[AlbumItem], mode: str, *, caption: str = "",
                         thread_id: int | None = None) -> list[int]:
        """One file goes as a photo or document, more as a media group; the caption on the first. An upload
        gets three times the usual time."""
        files = album_files(items, mode)
        timeout = self.request_timeout * (3 if mode == "upload" else 1)
        text = caption or None
        if len(files) == 1:
            return [await self._send_file(chat_id, files[0], text, thread_id, timeout)]
        return await self._send_group(chat_id, files, text, thread_id, timeout)

    @abstractmethod
    async def _send_file(self, chat_id: int, file: AlbumFile, caption: str | None,
                         thread_id: int | None, timeout: int) -> int:
        """sendPhoto, sendVideo or sendDocument of a file id or a stored file; returns the message id."""

    @abstractmethod
    async def _send_group(self, chat_id: int, files: list[AlbumFile], caption: str | None,
                          thread_id: int | None, timeout: int) -> list[int]:
        """sendMediaGroup, the caption on the first; returns the message ids."""


class Sender(Protocol):
    async def send(self, chat_id: int, text: str, buttons: Buttons = (), *, thread_id: int | None = None,
                   reply_to: int | None = None) -> int:
        """sendMessage with an inline keyboard of `buttons` rows (into forum topic `thread_id`, as a reply
        to `reply_to` when that message still exists); returns the new message's id."""
        ...

    async def edit(self, chat_id: int, message_id: int, text: str, buttons: Buttons = ()) -> int:
        """editMessageText (the keyboard goes with it: no buttons, no keyboard); returns message_id."""
        ...

    async def edit_caption(self, chat_id: int, message_id: int, caption: str, buttons: Buttons = ()) -> int:
        """editMessageCaption of a media message; returns message_id."""
        ...

    async def create_topic(self, chat_id: int, name: str) -> int:
        """createForumTopic; returns the new topic's message_thread_id."""
        ...

    async def copy(self, chat_id: int, from_chat_id: int, message_id: int, *, thread_id: int | None = None) -> int:
        """copyMessage; returns the copy's message id."""
        ...

    async def copy_many(self, chat_id: int, from_chat_id: int, message_ids: Sequence[int], *,
                        thread_id: int | None = None) -> list[int]:
        """copyMessages (ids strictly increasing, at most 100): one call; returns the copies' ids in order
        (Telegram skips messages it cannot copy, so there may be fewer)."""
        ...

    async def send_album(self, chat_id: int, items: Sequence[AlbumItem], mode: str, *, caption: str = "",
                         thread_id: int | None = None) -> list[int]:
        """The files as one album (sendMediaGroup; one file: sendPhoto / sendDocument), the caption on the
        first. `mode`: "photo" (by file id, each as its kind: photo, video or document) or "document" (by
        file id, all as documents) or "upload" (the stored files, each as its kind).
        Returns the messages' ids."""
        ...

    async def answer_callback(self, callback_id: str, text: str | None = None) -> None:
        """answerCallbackQuery, with `text` as a toast."""
        ...

    async def edit_markup(self, chat_id: int, message_id: int) -> None:
        """editMessageReplyMarkup without a keyboard: the buttons come off, the text stays."""
        ...

    async def download(self, file_id: str, cap: int) -> bytes:
        """getFile and the file's bytes, at most `cap` + 1 of them (raises bot.evidence.TooLarge when
        Telegram already says the file is bigger than `cap`)."""
        ...

    async def member_status(self, chat_id: int, user_id: int) -> str:
        """getChatMember(chat_id, user_id).status: "creator", "administrator", "member", "left"..."""
        ...

    async def chat_name(self, chat_id: int, *, member_of: int | None = None) -> str:
        """A person's or group's display name: getChat, or getChatMember(member_of, chat_id) for a member
        of a group who may never have written to the bot."""
        ...
