"""Forum topics: where a group message lands (`resolve_thread`), and creating, editing, closing and
deleting topics and General, for the bot (botapi.py) and for people (actions.py) under the same rules.
The topics themselves live on their `Chat` (forum.py's `ForumTopic`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import bad_request
from ..forum import (
    DEFAULT_TOPIC_COLOR,
    GENERAL_TOPIC_ID,
    ForumTopic,
    ThreadError,
    ThreadTarget,
    clean_topic_name,
)
from .groups import Groups
from .messages import Message, MessageStore
from .people import BotIdentity, Chat, People
from .updates import UpdateRecord


class Topics:
    def __init__(self, bot: BotIdentity, people: People, messages: MessageStore, groups: Groups,
                 touch: Callable[[], None]) -> None:
        self._bot = bot
        self._people = people
        self._messages = messages
        self._groups = groups
        self._touch = touch

    def resolve_thread(self, chat: Chat, sender_id: int, thread_id: int | None, reply_to: int | None,
                       *, for_bot: bool = True) -> ThreadTarget:
        """Where a message sent with this message_thread_id / reply lands, or ThreadError as Telegram refuses.

        `reply_to` must already name an existing message of the chat. In a forum, leaving
        message_thread_id out means General, or the topic of the replied message; a bot naming topic 1
        (General) is refused like any unknown topic. A reply outside a topic carries the thread of the reply
        chain (message_thread_id without is_topic_message), as Telegram's supergroup reply threads do.
        """
        if not chat.is_group:
            return ThreadTarget(reply_to_message_id=reply_to)
        get_message = self._messages.get_message
        replied = get_message(chat.id, reply_to) if reply_to is not None else None
        if thread_id == 0:
            thread_id = None
        if not chat.is_forum:
            if thread_id is not None:
                root = get_message(chat.id, thread_id)
                if root is None or root.deleted:
                    raise ThreadError("not_found")
                return ThreadTarget(thread_id, False, reply_to)
            if replied is not None:
                return ThreadTarget(replied.message_thread_id or replied.message_id, False, reply_to)
            return ThreadTarget()
        if thread_id == GENERAL_TOPIC_ID and not for_bot:
            thread_id = None  # a person picks General in the app
        if thread_id is None and replied is not None and replied.is_topic_message:
            thread_id = replied.message_thread_id
        if thread_id is None:
            if chat.general_closed and not self._groups.can_manage_topics(chat, sender_id):
                raise ThreadError("closed")
            if replied is not None:
                return ThreadTarget(replied.message_thread_id or replied.message_id, False, reply_to)
            return ThreadTarget()
        topic = chat.live_topic(thread_id)
        if topic is None:
            raise ThreadError("not_found")
        if replied is not None and not (replied.is_topic_message and replied.message_thread_id == thread_id):
            raise ThreadError("reply_not_found")
        if topic.closed and not self._groups.can_manage_topics(chat, sender_id):
            raise ThreadError("closed")
        return ThreadTarget(thread_id, True, reply_to if reply_to is not None else thread_id, thread_id)

    @staticmethod
    def in_thread(chat: Chat, msg: Message, thread_id: int) -> bool:
        """Whether a message belongs to this topic (GENERAL_TOPIC_ID: General) or reply thread."""
        if chat.is_forum and thread_id == GENERAL_TOPIC_ID:
            return not msg.is_topic_message
        return msg.message_thread_id == thread_id

    def _forum(self, chat_id: int) -> Chat:
        chat = self._people.chats[chat_id]
        if not chat.is_forum:
            raise bad_request("the chat is not a forum")
        return chat

    @staticmethod
    def _changeable_topic(chat: Chat, thread_id: int) -> ForumTopic:
        if thread_id <= 0:
            raise bad_request("invalid message thread identifier specified")
        topic = chat.live_topic(thread_id)
        if topic is None:
            raise bad_request("TOPIC_ID_INVALID")
        return topic

    def create_topic(self, chat_id: int, creator_id: int, name: str | None, icon_color: int | None = None,
                     icon_custom_emoji_id: str | None = None) -> tuple[ForumTopic, Message, UpdateRecord | None]:
        """createForumTopic, for the bot or a person: the topic and its forum_topic_created message."""
        chat = self._forum(chat_id)
        if not self._groups.can_manage_topics(chat, creator_id):
            raise bad_request("not enough rights to create a topic")
        title = clean_topic_name(name)
        if not title:
            raise bad_request("title must be non-empty")
        if icon_color is None:
            icon_color = DEFAULT_TOPIC_COLOR
        elif not 0 <= icon_color <= 0xFFFFFF:
            raise bad_request("invalid icon color specified")
        root = self._messages.add_message(chat.id, creator_id, creator_id == self._bot.id, "service")
        topic = ForumTopic(chat.id, root.message_id, title, icon_color, creator_id, root.date,
                           icon_custom_emoji_id or None)
        chat.topics[topic.message_thread_id] = topic
        root.message_thread_id, root.is_topic_message = root.message_id, True
        root.extra = {"forum_topic_created": topic.created_api()}
        return topic, root, self._groups.announce(chat, root)

    def edit_topic(self, chat_id: int, actor_id: int, thread_id: int, name: str | None,
                   icon_custom_emoji_id: str | None = None) -> UpdateRecord | None:
        """editForumTopic: name and/or icon (icon_custom_emoji_id "" removes it; None leaves it)."""
        chat = self._forum(chat_id)
        topic = self._changeable_topic(chat, thread_id)
        if not self._groups.can_manage_topics(chat, actor_id) and topic.creator_id != actor_id:
            raise bad_request("not enough rights to edit the topic")
        changed: dict[str, Any] = {}
        if name:
            title = clean_topic_name(name)
            if not title:
                raise bad_request("title must be non-empty")
            if title != topic.name:
                changed["name"] = title
        elif icon_custom_emoji_id is None:
            return None  # nothing asked: Telegram answers True and changes nothing
        if icon_custom_emoji_id is not None and (icon_custom_emoji_id or None) != topic.icon_custom_emoji_id:
            changed["icon_custom_emoji_id"] = icon_custom_emoji_id
        if not changed:
            raise bad_request("TOPIC_NOT_MODIFIED")
        topic.name = changed.get("name", topic.name)
        if "icon_custom_emoji_id" in changed:
            topic.icon_custom_emoji_id = changed["icon_custom_emoji_id"] or None
        return self._groups.service_message(chat, actor_id, topic.message_thread_id,
                                            {"forum_topic_edited": changed})[1]

    def set_topic_closed(self, chat_id: int, actor_id: int, thread_id: int, closed: bool) -> UpdateRecord | None:
        """closeForumTopic / reopenForumTopic."""
        chat = self._forum(chat_id)
        topic = self._changeable_topic(chat, thread_id)
        if not self._groups.can_manage_topics(chat, actor_id) and topic.creator_id != actor_id:
            raise bad_request("not enough rights to close or open the topic")
        if topic.closed == closed:
            raise bad_request("TOPIC_NOT_MODIFIED")
        topic.closed = closed
        action = "forum_topic_closed" if closed else "forum_topic_reopened"
        return self._groups.service_message(chat, actor_id, topic.message_thread_id, {action: {}})[1]

    def delete_topic(self, chat_id: int, actor_id: int, thread_id: int) -> int:
        """deleteForumTopic: the topic and every message in it go; nobody gets an update. Returns how many
        messages were deleted."""
        chat = self._forum(chat_id)
        topic = self._changeable_topic(chat, thread_id)
        if not chat.member(actor_id).can("can_delete_messages") and topic.creator_id != actor_id:
            raise bad_request("not enough rights to delete the topic")
        topic.deleted = True
        count = 0
        for msg in self._messages.chat_messages(chat.id):
            if msg.is_topic_message and msg.message_thread_id == thread_id and not msg.deleted:
                msg.deleted = True
                count += 1
        self._touch()
        return count

    def set_general(self, chat_id: int, actor_id: int, *, closed: bool | None = None, hidden: bool | None = None,
                    name: str | None = None) -> UpdateRecord | None:
        """close/reopen/hide/unhide/editGeneralForumTopic. Hiding General also closes it, as on Telegram."""
        chat = self._forum(chat_id)
        if not self._groups.can_manage_topics(chat, actor_id):
            if name is not None:
                raise bad_request("not enough rights to edit the topic")
            raise bad_request("not enough rights to close or open the topic")
        payload: dict[str, Any]
        if name is not None:
            title = clean_topic_name(name)
            if not title:
                raise bad_request("title must be non-empty")
            if title == chat.general_name:
                raise bad_request("TOPIC_NOT_MODIFIED")
            chat.general_name = title
            payload = {"forum_topic_edited": {"name": title}}
        elif hidden is not None:
            if chat.general_hidden == hidden:
                raise bad_request("TOPIC_NOT_MODIFIED")
            chat.general_hidden = hidden
            chat.general_closed = chat.general_closed or hidden
            payload = {"general_forum_topic_hidden" if hidden else "general_forum_topic_unhidden": {}}
        else:
            assert closed is not None
            if chat.general_closed == closed:
                raise bad_request("TOPIC_NOT_MODIFIED")
            chat.general_closed = closed
            payload = {"forum_topic_closed" if closed else "forum_topic_reopened": {}}
        return self._groups.service_message(chat, actor_id, None, payload)[1]
