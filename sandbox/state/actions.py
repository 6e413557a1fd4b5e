"""What people do, through the control API: send text, photos, files, stickers, voice notes and
locations, edit their text, press inline buttons, and act on forum topics in the app.

Every user action takes `chat_id` (default: the user's private chat with the bot) and, in a group,
`message_thread_id` (a forum topic; GENERAL_TOPIC_ID or None for General). In a group the user must
be a member; the bot gets an update only for what its privacy mode lets through (Groups.bot_sees), so the
returned UpdateRecord may be None. `UserActions` owns the callback queries the presses open.
"""

from __future__ import annotations

import random
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .. import media
from ..errors import ApiError, ControlError
from ..formatting import command_entities
from ..forum import GENERAL_TOPIC_ID, ForumTopic, ThreadError
from .files import FileStore
from .groups import Groups
from .messages import CAPTIONED_KINDS, Message, MessageStore
from .people import People
from .topics import Topics
from .updates import UpdateQueue, UpdateRecord

T = TypeVar("T")


@dataclass
class CallbackQueryRecord:
    id: str
    user_id: int
    chat_id: int
    message_id: int
    data: str
    created_at: float = field(default_factory=time.time)
    answer: dict[str, Any] | None = None


class UserActions:
    def __init__(self, people: People, messages: MessageStore, files: FileStore, groups: Groups,
                 topics: Topics, updates: UpdateQueue) -> None:
        self._people = people
        self._messages = messages
        self._files = files
        self._groups = groups
        self._topics = topics
        self._updates = updates
        self.callback_queries: dict[str, CallbackQueryRecord] = {}

    def _user_message(self, user_id: int, kind: str, reply_to_message_id: int | None = None,
                      chat_id: int | None = None, message_thread_id: int | None = None,
                      **fields: Any) -> Message:
        get_message, add_message = self._messages.get_message, self._messages.add_message
        user = self._people.require_user(user_id)
        if chat_id is None or chat_id == user_id:
            user.started = True
            if reply_to_message_id is not None and get_message(user_id, reply_to_message_id) is None:
                raise ControlError(404, f"no message {reply_to_message_id} in chat {user_id} to reply to")
            return add_message(user_id, user.id, False, kind, reply_to_message_id=reply_to_message_id, **fields)
        chat = self._groups.require_group(chat_id)
        self._groups.require_present(chat, user_id)
        if reply_to_message_id is not None:
            replied = get_message(chat.id, reply_to_message_id)
            if replied is None or replied.deleted:
                raise ControlError(404, f"no message {reply_to_message_id} in chat {chat.id} to reply to")
        try:
            target = self._topics.resolve_thread(chat, user_id, message_thread_id, reply_to_message_id,
                                                 for_bot=False)
        except ThreadError as exc:
            raise thread_control_error(exc, chat.id, message_thread_id) from None
        return add_message(chat.id, user.id, False, kind, reply_to_message_id=target.reply_to_message_id,
                           message_thread_id=target.message_thread_id, is_topic_message=target.is_topic_message,
                           **fields)

    def _queue_message(self, msg: Message, kind: str = "message") -> UpdateRecord | None:
        chat = self._people.chats[msg.chat_id]
        if chat.is_group:
            return self._groups.announce(chat, msg, kind)
        return self._updates.queue_update(kind, self._messages.message_to_api(msg))

    def user_send_text(self, user_id: int, text: str, reply_to_message_id: int | None = None,
                       chat_id: int | None = None, message_thread_id: int | None = None
                       ) -> tuple[UpdateRecord | None, Message]:
        if not text:
            raise ControlError(400, "text must not be empty")
        msg = self._user_message(user_id, "text", reply_to_message_id, chat_id, message_thread_id, text=text,
                                 entities=command_entities(text))
        return self._queue_message(msg), msg

    def user_send_photo(self, user_id: int, data: bytes, caption: str | None = None,
                        facts: tuple[tuple[int, int] | None, tuple[bytes, int, int] | None] | None = None,
                        chat_id: int | None = None, message_thread_id: int | None = None
                        ) -> tuple[UpdateRecord | None, Message]:
        self._check_sender(user_id, chat_id)
        sizes = self._files.store_photo(data, facts)
        msg = self._user_message(user_id, "photo", None, chat_id, message_thread_id, media=sizes,
                                 file_id=sizes[-1]["file_id"], caption=caption or None)
        return self._queue_message(msg), msg

    def user_send_document(self, user_id: int, data: bytes | None, file_name: str | None, mime_type: str | None,
                           caption: str | None = None, size: int | None = None, chat_id: int | None = None,
                           message_thread_id: int | None = None) -> tuple[UpdateRecord | None, Message]:
        self._check_sender(user_id, chat_id)
        f = self._files.store_file(data, "document", size=size, mime_type=mime_type, file_name=file_name)
        msg = self._user_message(user_id, "document", None, chat_id, message_thread_id,
                                 media=self._files.document_dict(f), file_id=f.file_id,
                                 caption=caption or None)
        return self._queue_message(msg), msg

    def user_send_video(self, user_id: int, data: bytes | None, file_name: str | None, mime_type: str | None,
                        caption: str | None = None, duration: int = 0, width: int = 0, height: int = 0,
                        size: int | None = None, chat_id: int | None = None, message_thread_id: int | None = None
                        ) -> tuple[UpdateRecord | None, Message]:
        """A video message. Its duration, width and height are what the sending client says (as in
        Telegram, where the client fills them in): nothing checks them against the bytes."""
        self._check_sender(user_id, chat_id)
        f = self._files.store_file(data, "video", size=size, mime_type=mime_type or "video/mp4",
                                   file_name=file_name, width=width, height=height)
        video = {**self._files.document_dict(f), "width": width, "height": height, "duration": duration}
        msg = self._user_message(user_id, "video", None, chat_id, message_thread_id, media=video,
                                 file_id=f.file_id, caption=caption or None)
        return self._queue_message(msg), msg

    def user_send_file_ref(self, user_id: int, kind: str, file_size: int, mime_type: str | None = None,
                           file_name: str | None = None, duration: int = 0) -> tuple[UpdateRecord | None, Message]:
        """A photo/document/video that claims a size without bytes (e.g. 30 MB) to exercise getFile's limit."""
        if kind == "photo":
            self._people.require_user(user_id)
            f = self._files.store_file(None, "photo", size=file_size, mime_type=mime_type or "image/jpeg",
                                width=4000, height=3000)
            msg = self._user_message(user_id, "photo", media=[self._files.photo_size(f)], file_id=f.file_id)
            return self._queue_message(msg), msg
        if kind == "document":
            self._people.require_user(user_id)
            return self.user_send_document(user_id, None, file_name or "file.bin",
                                           mime_type or media.guess_mime(file_name), size=file_size)
        if kind == "video":
            self._people.require_user(user_id)
            return self.user_send_video(user_id, None, file_name or "video.mp4", mime_type or "video/mp4",
                                        duration=duration, width=1280, height=720, size=file_size)
        raise ControlError(400, "kind must be photo, document or video")

    def user_send_sticker(self, user_id: int, emoji: str = "\U0001f44d", chat_id: int | None = None,
                          message_thread_id: int | None = None) -> tuple[UpdateRecord | None, Message]:
        self._check_sender(user_id, chat_id)
        f = self._files.store_file(b"RIFF\x00\x00\x00\x00WEBPVP8 sandbox-sticker", "sticker",
                                   mime_type="image/webp")
        sticker = {"file_id": f.file_id, "file_unique_id": f.file_unique_id, "type": "regular", "width": 512,
                   "height": 512, "is_animated": False, "is_video": False, "emoji": emoji, "file_size": f.size}
        msg = self._user_message(user_id, "sticker", None, chat_id, message_thread_id, media=sticker,
                                 file_id=f.file_id)
        return self._queue_message(msg), msg

    def user_send_voice(self, user_id: int, duration: int = 3, chat_id: int | None = None,
                        message_thread_id: int | None = None) -> tuple[UpdateRecord | None, Message]:
        self._check_sender(user_id, chat_id)
        f = self._files.store_file(b"OggS\x00sandbox-voice" + secrets.token_bytes(8), "voice",
                                   mime_type="audio/ogg")
        voice = {"file_id": f.file_id, "file_unique_id": f.file_unique_id, "duration": duration,
                 "mime_type": "audio/ogg", "file_size": f.size}
        msg = self._user_message(user_id, "voice", None, chat_id, message_thread_id, media=voice, file_id=f.file_id)
        return self._queue_message(msg), msg

    def user_send_location(self, user_id: int, latitude: float = 31.2304, longitude: float = 121.4737,
                           chat_id: int | None = None, message_thread_id: int | None = None
                           ) -> tuple[UpdateRecord | None, Message]:
        msg = self._user_message(user_id, "location", None, chat_id, message_thread_id,
                                 media={"latitude": latitude, "longitude": longitude})
        return self._queue_message(msg), msg

    def _check_sender(self, user_id: int, chat_id: int | None) -> None:
        """Refuse an unknown user or a non-member before any file is stored for them."""
        self._people.require_user(user_id)
        if chat_id is not None and chat_id != user_id:
            self._groups.require_present(self._groups.require_group(chat_id), user_id)

    def user_edit_text(self, user_id: int, message_id: int, text: str,
                       chat_id: int | None = None) -> tuple[UpdateRecord | None, Message]:
        """The user edits their own message: the text of a text message, the caption of a media message.
        The bot gets an edited_message update (in a group: if it would have seen the message)."""
        self._people.require_user(user_id)
        chat_id = user_id if chat_id is None else chat_id
        msg = self._messages.get_message(chat_id, message_id)
        if msg is None or msg.outgoing or msg.deleted or msg.from_id != user_id:
            raise ControlError(404, f"no message {message_id} of user {user_id} in chat {chat_id} to edit")
        if msg.kind == "text":
            if not text:
                raise ControlError(400, "text must not be empty")
            self._messages.record_edit(msg)
            msg.text = text
            msg.entities = command_entities(text)
        elif msg.kind in CAPTIONED_KINDS:
            self._messages.record_edit(msg)
            msg.caption = text or None
            msg.caption_entities = []
        else:
            raise ControlError(400, f"a {msg.kind} message has no text or caption to edit")
        return self._queue_message(msg, "edited_message"), msg

    def user_press(self, user_id: int, message_id: int, data: str | None = None,
                   button_text: str | None = None, chat_id: int | None = None
                   ) -> tuple[UpdateRecord, CallbackQueryRecord]:
        user = self._people.require_user(user_id)
        chat_id = user_id if chat_id is None else chat_id
        if chat_id != user_id:
            self._groups.require_present(self._groups.require_group(chat_id), user_id)
        msg = self._messages.get_message(chat_id, message_id)
        if msg is None or not msg.outgoing:
            raise ControlError(404, f"no bot message {message_id} in chat {chat_id}")
        if msg.deleted:
            raise ControlError(409, f"message {message_id} was deleted")
        if data is None:
            if button_text is None:
                raise ControlError(400, "give data or button_text")
            data = find_callback_data(msg.reply_markup, button_text)
            if data is None:
                raise ControlError(404, f"no callback button {button_text!r} on message {message_id}")
        cq_id = str(random.randint(10**18, 9 * 10**18))
        cq = CallbackQueryRecord(cq_id, user_id, chat_id, message_id, data)
        self.callback_queries[cq_id] = cq
        payload = {
            "id": cq_id,
            "from": user.to_api(),
            "message": self._messages.message_to_api(msg),
            "chat_instance": self._people.chats[chat_id].chat_instance,
            "data": data,
        }
        return self._updates.queue_update("callback_query", payload), cq

    def user_create_topic(self, chat_id: int, user_id: int, name: str, icon_color: int | None = None,
                          icon_custom_emoji_id: str | None = None
                          ) -> tuple[ForumTopic, Message, UpdateRecord | None]:
        chat = self._groups.require_group(chat_id)
        self._groups.require_present(chat, user_id)
        topics = self._topics
        return as_control(lambda: topics.create_topic(chat.id, user_id, name, icon_color, icon_custom_emoji_id))

    def user_topic_action(self, chat_id: int, user_id: int, message_thread_id: int, action: str,
                          name: str | None = None, icon_custom_emoji_id: str | None = None
                          ) -> UpdateRecord | None:
        """A person edits, closes, reopens or deletes a topic in the app, with the same rights the bot needs."""
        chat = self._groups.require_group(chat_id)
        self._groups.require_present(chat, user_id)
        topics = self._topics
        if action == "edit":
            return as_control(lambda: topics.edit_topic(chat.id, user_id, message_thread_id, name,
                                                        icon_custom_emoji_id))
        if action in ("close", "reopen"):
            if message_thread_id == GENERAL_TOPIC_ID and chat.is_forum:
                return as_control(lambda: topics.set_general(chat.id, user_id, closed=action == "close"))
            return as_control(lambda: topics.set_topic_closed(chat.id, user_id, message_thread_id,
                                                              action == "close"))
        if action == "delete":
            as_control(lambda: topics.delete_topic(chat.id, user_id, message_thread_id))
            return None
        raise ControlError(400, "action must be edit, close, reopen or delete")


def thread_control_error(exc: ThreadError, chat_id: int, thread_id: int | None) -> ControlError:
    """A person's send refused by the topics, said for a test's failure message."""
    if exc.reason == "closed":
        return ControlError(403, f"TOPIC_CLOSED: topic {thread_id or 'General'} of chat {chat_id} is closed; "
                                 "only administrators with can_manage_topics can write there")
    if exc.reason == "reply_not_found":
        return ControlError(404, f"the replied message is not in topic {thread_id} of chat {chat_id}")
    return ControlError(404, f"message thread not found: no topic {thread_id} in chat {chat_id} (deleted?)")


def as_control(action: Callable[[], T]) -> T:
    """Run a Bot API rule for a person: Telegram's refusal becomes a control API error with its words."""
    try:
        return action()
    except ApiError as exc:
        text = exc.description.removeprefix("Bad Request: ")
        status = 403 if "not enough rights" in text else 404 if text == "TOPIC_ID_INVALID" else exc.error_code
        raise ControlError(status, text) from None


def iter_buttons(markup: dict[str, Any] | None) -> Iterable[dict[str, Any]]:
    if not markup:
        return
    for row in markup.get("inline_keyboard") or markup.get("keyboard") or []:
        for button in row:
            yield button if isinstance(button, dict) else {"text": str(button)}


def find_callback_data(markup: dict[str, Any] | None, button_text: str) -> str | None:
    for button in iter_buttons(markup):
        if button.get("text") == button_text and "callback_data" in button:
            return str(button["callback_data"])
    return None
