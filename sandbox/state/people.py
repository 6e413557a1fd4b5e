"""Who is there: the bot's identity, the users, and the chats (private ones and supergroups) by id.

`People` owns the users and the chat registry; supergroups are put in it by groups.py, messages by
messages.py. A user blocking the bot is told to the bot here, through the update queue.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import ControlError
from ..forum import ForumTopic, Member
from .notifier import now_ts
from .updates import UpdateQueue, UpdateRecord

BOT_USER_ID = 7000000001


@dataclass
class BotIdentity:
    id: int = BOT_USER_ID
    first_name: str = "RefundBot"
    username: str = "refund_demo_bot"
    can_join_groups: bool = True
    can_read_all_group_messages: bool = False
    supports_inline_queries: bool = False

    def to_api(self) -> dict[str, Any]:
        return {"id": self.id, "is_bot": True, "first_name": self.first_name, "username": self.username}

    def get_me(self) -> dict[str, Any]:
        return {
            **self.to_api(),
            "can_join_groups": self.can_join_groups,
            "can_read_all_group_messages": self.can_read_all_group_messages,
            "supports_inline_queries": self.supports_inline_queries,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }


@dataclass
class User:
    id: int
    first_name: str
    last_name: str | None = None
    username: str | None = None
    language_code: str | None = None
    blocked_bot: bool = False  # makes every send to this user fail with 403, like a real block
    started: bool = True  # False until the user writes: bots cannot open a private chat themselves

    def to_api(self) -> dict[str, Any]:
        d: dict[str, Any] = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        for key in ("last_name", "username", "language_code"):
            if getattr(self, key):
                d[key] = getattr(self, key)
        return d


@dataclass
class Chat:
    id: int
    type: str = "private"  # private | supergroup
    title: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    username: str | None = None
    is_forum: bool = False
    next_message_id: int = 1
    message_ids: list[int] = field(default_factory=list)
    members: dict[int, Member] = field(default_factory=dict)  # supergroups: everyone who ever had a status
    topics: dict[int, ForumTopic] = field(default_factory=dict)  # forums: by message_thread_id, deleted kept
    general_closed: bool = False
    general_hidden: bool = False
    general_name: str = "General"

    @property
    def is_group(self) -> bool:
        return self.type in ("group", "supergroup")

    def member(self, user_id: int) -> Member:
        """The user's standing; someone never seen in the group has left it, as getChatMember says."""
        return self.members.get(user_id) or Member(user_id, "left")

    def live_topic(self, thread_id: int | None) -> ForumTopic | None:
        topic = self.topics.get(thread_id) if thread_id is not None else None
        return topic if topic is not None and not topic.deleted else None

    @property
    def chat_instance(self) -> str:
        # Stable per chat, opaque, shaped like Telegram's signed 64-bit value.
        digest = hashlib.sha256(f"chat-instance:{self.id}".encode()).digest()
        return str(int.from_bytes(digest[:8], "big", signed=True))

    def allocate_message_id(self) -> int:
        mid = self.next_message_id
        self.next_message_id += 1
        return mid

    def to_api(self) -> dict[str, Any]:
        d: dict[str, Any] = {"id": self.id, "type": self.type}
        for key in ("title", "first_name", "last_name", "username"):
            if getattr(self, key):
                d[key] = getattr(self, key)
        if self.is_forum:
            d["is_forum"] = True
        return d


class People:
    """The users and every chat by id."""

    def __init__(self, bot: BotIdentity, touch: Callable[[], None], updates: UpdateQueue) -> None:
        self._bot = bot
        self._touch = touch
        self._updates = updates
        self.users: dict[int, User] = {}
        self.chats: dict[int, Chat] = {}

    def add_user(self, user_id: int, first_name: str, last_name: str | None = None, username: str | None = None,
                 language_code: str | None = None, started: bool = True) -> User:
        user = self.users.get(user_id)
        if user is None:
            user = self.users[user_id] = User(user_id, first_name, last_name, username, language_code,
                                              started=started)
        else:  # idempotent, but a re-registration may refresh the profile
            user.first_name = first_name or user.first_name
            user.last_name = last_name if last_name is not None else user.last_name
            user.username = username if username is not None else user.username
            user.language_code = language_code if language_code is not None else user.language_code
        if user_id not in self.chats:
            self.chats[user_id] = Chat(user_id, "private")
        chat = self.chats[user_id]
        chat.first_name, chat.last_name, chat.username = user.first_name, user.last_name, user.username
        self._touch()
        return user

    def require_user(self, user_id: int) -> User:
        user = self.users.get(user_id)
        if user is None:
            raise ControlError(404, f"unknown user {user_id}: POST /control/users first")
        return user

    def set_language(self, user_id: int, language_code: str | None) -> User:
        """The language the user's Telegram app is set to: the language_code of their next updates."""
        user = self.require_user(user_id)
        user.language_code = language_code or None
        self._touch()
        return user

    def chat_to_api(self, chat_id: int) -> dict[str, Any]:
        return self.chats[chat_id].to_api()

    def user_to_api(self, user_id: int) -> dict[str, Any]:
        if user_id == self._bot.id:
            return self._bot.to_api()
        return self.users[user_id].to_api()

    def set_blocked(self, user_id: int, blocked: bool, *, quiet: bool = False) -> UpdateRecord | None:
        """The user blocks (or unblocks) the bot in their private chat: every send to them then fails with
        403 (or works again). Unless `quiet`, the bot hears of it as on Telegram: my_chat_member in the
        private chat, the bot's status going member -> kicked (or kicked -> member). Nothing changes, and
        nothing is said, when the user already stands so."""
        user = self.require_user(user_id)
        if user.blocked_bot == blocked:
            return None
        user.blocked_bot = blocked
        self._touch()
        if quiet:
            return None
        bot = self._bot.to_api()
        old, new = (Member(self._bot.id, a) for a in (("member", "kicked") if blocked else ("kicked", "member")))
        return self._updates.queue_update("my_chat_member", {
            "chat": self.chat_to_api(user_id), "from": user.to_api(), "date": now_ts(),
            "old_chat_member": old.to_api(bot), "new_chat_member": new.to_api(bot)})
