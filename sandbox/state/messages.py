"""Messages of every chat by (chat id, message id), and how a message looks to the bot (the Bot API's
Message object) and to a test or the web page (the control API's flatter shape)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .files import FileStore
from .notifier import now_ts
from .people import People

MEDIA_KINDS = ("photo", "document", "sticker", "voice", "video", "audio", "animation", "video_note")
CAPTIONED_KINDS = frozenset({"photo", "document", "video", "audio", "animation", "voice"})


@dataclass
class Message:
    chat_id: int
    message_id: int
    from_id: int
    outgoing: bool  # sent by the bot
    date: int
    kind: str = "text"  # text | photo | document | sticker | voice | location | ...
    text: str | None = None
    entities: list[dict[str, Any]] = field(default_factory=list)
    caption: str | None = None
    caption_entities: list[dict[str, Any]] = field(default_factory=list)
    media: Any = None  # the Bot API attachment value: PhotoSize list, Document dict, Location dict...
    file_id: str | None = None  # the main file (largest photo size)
    reply_markup: dict[str, Any] | None = None
    reply_to_message_id: int | None = None
    message_thread_id: int | None = None
    is_topic_message: bool = False  # in a forum topic (not General): message_thread_id names the topic
    media_group_id: str | None = None
    edit_date: int | None = None
    edit_history: list[dict[str, Any]] = field(default_factory=list)
    deleted: bool = False
    parse_mode: str | None = None
    source_text: str | None = None  # text/caption exactly as the bot sent it, before parse_mode
    extra: dict[str, Any] = field(default_factory=dict)  # other Bot API fields (forward_origin...)

    def snapshot(self) -> dict[str, Any]:
        return {
            "text": self.text, "caption": self.caption, "entities": self.entities,
            "caption_entities": self.caption_entities, "reply_markup": self.reply_markup,
            "media": self.media, "file_id": self.file_id,
        }


class MessageStore:
    """Owns the messages; each chat keeps the order of its own message ids."""

    def __init__(self, people: People, files: FileStore, touch: Callable[[], None]) -> None:
        self._people = people
        self._files = files
        self._touch = touch
        self.messages: dict[tuple[int, int], Message] = {}
        self._media_group_counter = random.randint(10**16, 9 * 10**16)

    def add_message(self, chat_id: int, from_id: int, outgoing: bool, kind: str = "text", **fields: Any) -> Message:
        chat = self._people.chats[chat_id]
        msg = Message(chat_id=chat_id, message_id=chat.allocate_message_id(), from_id=from_id, outgoing=outgoing,
                      date=now_ts(), kind=kind, **fields)
        self.messages[(chat_id, msg.message_id)] = msg
        chat.message_ids.append(msg.message_id)
        self._touch()
        return msg

    def get_message(self, chat_id: int, message_id: int) -> Message | None:
        return self.messages.get((chat_id, message_id))

    def chat_messages(self, chat_id: int) -> list[Message]:
        chat = self._people.chats.get(chat_id)
        if chat is None:
            return []
        return [self.messages[(chat_id, mid)] for mid in chat.message_ids]

    def new_media_group_id(self) -> str:
        self._media_group_counter += 1
        return str(self._media_group_counter)

    def message_to_api(self, msg: Message, with_reply: bool = True) -> dict[str, Any]:
        d: dict[str, Any] = {
            "message_id": msg.message_id,
            "from": self._people.user_to_api(msg.from_id),
            "chat": self._people.chat_to_api(msg.chat_id),
            "date": msg.date,
        }
        if msg.message_thread_id is not None:
            d["message_thread_id"] = msg.message_thread_id
        if msg.is_topic_message:
            d["is_topic_message"] = True
        if with_reply and msg.reply_to_message_id is not None:
            replied = self.get_message(msg.chat_id, msg.reply_to_message_id)
            if replied is not None and not replied.deleted:
                d["reply_to_message"] = self.message_to_api(replied, with_reply=False)
        if msg.edit_date is not None:
            d["edit_date"] = msg.edit_date
        if msg.media_group_id is not None:
            d["media_group_id"] = msg.media_group_id
        d.update(msg.extra)
        if msg.text is not None:
            d["text"] = msg.text
            if msg.entities:
                d["entities"] = msg.entities
        if msg.kind != "text" and msg.media is not None:
            d[msg.kind] = msg.media
        if msg.caption:
            d["caption"] = msg.caption
            if msg.caption_entities:
                d["caption_entities"] = msg.caption_entities
        # Only inline keyboards are part of a Message object; reply keyboards live on the client.
        if msg.reply_markup and "inline_keyboard" in msg.reply_markup:
            d["reply_markup"] = msg.reply_markup
        return d

    def message_to_control(self, msg: Message) -> dict[str, Any]:
        d: dict[str, Any] = {
            "message_id": msg.message_id,
            "chat_id": msg.chat_id,
            "from_id": msg.from_id,
            "from_bot": msg.outgoing,
            "date": msg.date,
            "kind": msg.kind,
            "text": msg.text,
            "entities": msg.entities,
            "caption": msg.caption,
            "reply_markup": msg.reply_markup,
            "edits": len(msg.edit_history),
            "edit_history": msg.edit_history,
            "deleted": msg.deleted,
            "parse_mode": msg.parse_mode,
            "source_text": msg.source_text,
            "reply_to_message_id": msg.reply_to_message_id,
        }
        if msg.file_id is not None:
            d["file_id"] = msg.file_id
            f = self._files.files.get(msg.file_id)
            if f is not None:
                d["file_unique_id"] = f.file_unique_id
                d["file_name"] = f.file_name
                d["mime_type"] = f.mime_type
                d["file_size"] = f.size
            if f is not None and f.width and f.height:
                d["width"], d["height"] = f.width, f.height
        if msg.caption_entities:
            d["caption_entities"] = msg.caption_entities
        if msg.edit_date is not None:
            d["edit_date"] = msg.edit_date
        if isinstance(msg.media, dict):
            for key in ("emoji", "duration"):  # a sticker's emoji, a voice note's seconds
                if key in msg.media:
                    d[key] = msg.media[key]
        if msg.kind not in ("text",) and msg.media is not None and msg.kind not in MEDIA_KINDS:
            d[msg.kind] = msg.media  # location, contact...: small enough to show whole
        if msg.media_group_id is not None:
            d["media_group_id"] = msg.media_group_id
        if msg.message_thread_id is not None:
            d["message_thread_id"] = msg.message_thread_id
        if msg.is_topic_message:
            d["is_topic_message"] = True
        if msg.kind == "service":
            d.update(msg.extra)  # forum_topic_created, forum_topic_closed, new_chat_members...
        return d

    def record_edit(self, msg: Message) -> None:
        entry = msg.snapshot()
        entry["edit_date"] = msg.edit_date or msg.date
        msg.edit_history.append(entry)
        msg.edit_date = now_ts()
        self._touch()
