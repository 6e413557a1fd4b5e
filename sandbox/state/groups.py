"""Supergroups and their members: creating a group, changing someone's standing (and telling the bot),
and what the bot gets to see there (privacy mode), including the service messages a group posts.

`Groups` puts the supergroups in People's chat registry; each group's members live on its `Chat`.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from typing import Any

from ..errors import ControlError
from ..forum import DEFAULT_ADMIN_RIGHTS, DEFAULT_BOT_RIGHTS, MEMBER_STATUSES, Member, clean_rights
from .messages import Message, MessageStore
from .notifier import now_ts
from .people import BotIdentity, Chat, People
from .updates import UpdateQueue, UpdateRecord


class Groups:
    def __init__(self, bot: BotIdentity, people: People, messages: MessageStore, updates: UpdateQueue,
                 touch: Callable[[], None]) -> None:
        self._bot = bot
        self._people = people
        self._messages = messages
        self._updates = updates
        self._touch = touch
        self._group_counter = random.randint(1_000_000_000, 8_999_999_999)

    def create_group(self, title: str, chat_id: int | None = None, *, is_forum: bool = True,
                     username: str | None = None, creator_id: int | None = None,
                     bot_status: str = "administrator", bot_rights: dict[str, Any] | None = None,
                     members: Iterable[dict[str, Any]] = ()) -> Chat:
        """A supergroup that exists before the test starts: setting it up queues no updates."""
        if not title.strip():
            raise ControlError(400, "title must not be empty")
        if chat_id is None:
            self._group_counter += 1
            chat_id = -(10**12 + self._group_counter)  # -100xxxxxxxxxx, like Telegram's supergroup ids
        if chat_id >= 0:
            raise ControlError(400, "a supergroup id is negative, like -1001234567890")
        if chat_id in self._people.chats:
            raise ControlError(409, f"chat {chat_id} already exists")
        # Message 1 of a supergroup is its creation, and topic 1 is General: topics start at 2.
        chat = Chat(chat_id, "supergroup", title=title, username=username, is_forum=is_forum, next_message_id=2)
        specs = [{"user_id": self._bot.id, "status": bot_status, "rights": bot_rights}, *members]
        if creator_id is not None:
            specs.insert(0, {"user_id": creator_id, "status": "creator"})
        for spec in specs:
            uid = int(spec["user_id"])
            if uid != self._bot.id:
                self._people.require_user(uid)
            member = self._new_member(uid, str(spec.get("status") or "member"), spec.get("rights"),
                                      spec.get("custom_title"))
            if member.status == "creator" and any(m.status == "creator" for m in chat.members.values()):
                raise ControlError(409, "a group has one creator")
            chat.members[uid] = member
        self._people.chats[chat_id] = chat
        self._touch()
        return chat

    def _new_member(self, user_id: int, status: str, rights: dict[str, Any] | None = None,
                    custom_title: str | None = None) -> Member:
        if status not in MEMBER_STATUSES:
            raise ControlError(400, f"status must be one of {', '.join(MEMBER_STATUSES)}")
        if status != "administrator":
            if rights:
                raise ControlError(400, "rights are for status administrator only")
            return Member(user_id, status, custom_title=custom_title if status == "creator" else None)
        defaults = DEFAULT_BOT_RIGHTS if user_id == self._bot.id else DEFAULT_ADMIN_RIGHTS
        try:
            cleaned = clean_rights(rights, defaults)
        except ValueError as exc:
            raise ControlError(400, str(exc)) from None
        return Member(user_id, status, cleaned, custom_title)

    def require_group(self, chat_id: int) -> Chat:
        chat = self._people.chats.get(chat_id)
        if chat is None or not chat.is_group:
            raise ControlError(404, f"unknown group {chat_id}: POST /control/groups first")
        return chat

    @staticmethod
    def require_present(chat: Chat, user_id: int) -> Member:
        member = chat.member(user_id)
        if not member.present:
            raise ControlError(403, f"user {user_id} is not a member of chat {chat.id} (status {member.status})")
        return member

    def member_to_api(self, chat: Chat, user_id: int) -> dict[str, Any]:
        return chat.member(user_id).to_api(self._people.user_to_api(user_id))

    def set_member(self, chat_id: int, user_id: int, status: str, rights: dict[str, Any] | None = None,
                   custom_title: str | None = None, by_user_id: int | None = None,
                   quiet: bool = False) -> tuple[Member, list[UpdateRecord]]:
        """Change someone's standing as a person would in the app. Unless `quiet`, the bot hears of it as
        on Telegram: my_chat_member (its own status) or chat_member (others; only when asked for in
        allowed_updates), and a new_chat_members / left_chat_member service message in General."""
        chat = self.require_group(chat_id)
        if user_id != self._bot.id:
            self._people.require_user(user_id)
        if by_user_id is not None and by_user_id != self._bot.id:
            self._people.require_user(by_user_id)
        old = chat.member(user_id)
        new = self._new_member(user_id, status, rights, custom_title)
        if new.status == "creator" and any(m.status == "creator" and uid != user_id
                                           for uid, m in chat.members.items()):
            raise ControlError(409, "a group has one creator")
        chat.members[user_id] = new
        self._touch()
        if quiet:
            return new, []
        creator = next((uid for uid, m in chat.members.items() if m.status == "creator"), None)
        actor = by_user_id if by_user_id is not None else (creator if creator is not None else user_id)
        user_api = self._people.user_to_api(user_id)
        recs = [self._updates.queue_update("my_chat_member" if user_id == self._bot.id else "chat_member", {
            "chat": chat.to_api(), "from": self._people.user_to_api(actor), "date": now_ts(),
            "old_chat_member": old.to_api(user_api), "new_chat_member": new.to_api(user_api)})]
        if not old.present and new.present:
            service: dict[str, Any] | None = {"new_chat_members": [user_api]}
        elif old.present and not new.present:
            service = {"left_chat_member": user_api}
        else:
            service = None
        if service is not None:
            rec = self.service_message(chat, actor, None, service)[1]
            if rec is not None:
                recs.append(rec)
        return new, recs

    @staticmethod
    def can_manage_topics(chat: Chat, user_id: int) -> bool:
        return chat.member(user_id).can("can_manage_topics")

    def bot_sees(self, chat: Chat, msg: Message) -> bool:
        """Whether the bot gets an update for this group message: privacy mode as on Telegram."""
        me = chat.member(self._bot.id)
        if not me.present:
            return False
        if me.status in ("creator", "administrator") or self._bot.can_read_all_group_messages:
            return True  # administrators and bots with privacy mode off see everything
        if msg.kind == "service":
            return True
        if (msg.text or msg.caption or "").startswith("/"):
            return True  # commands
        if msg.reply_to_message_id is not None and not (
                msg.is_topic_message and msg.reply_to_message_id == msg.message_thread_id):
            replied = self._messages.get_message(chat.id, msg.reply_to_message_id)
            return replied is not None and replied.outgoing  # replies to the bot's messages
        return False

    def announce(self, chat: Chat, msg: Message, kind: str = "message") -> UpdateRecord | None:
        """Queue a person's group message for the bot, if privacy mode lets it through."""
        if msg.outgoing or not self.bot_sees(chat, msg):
            return None
        return self._updates.queue_update(kind, self._messages.message_to_api(msg))

    def service_message(self, chat: Chat, actor_id: int, topic_id: int | None,
                        payload: dict[str, Any]) -> tuple[Message, UpdateRecord | None]:
        """A service message (forum_topic_closed, new_chat_members...) in a topic or in General."""
        in_topic = topic_id is not None
        msg = self._messages.add_message(chat.id, actor_id, actor_id == self._bot.id, "service",
                                         extra=payload, message_thread_id=topic_id, is_topic_message=in_topic,
                                         reply_to_message_id=topic_id)
        return msg, self.announce(chat, msg)
