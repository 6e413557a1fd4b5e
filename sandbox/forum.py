"""Supergroups as Telegram has them: members with statuses and administrator rights, forum topics.

Plain data and the rules that need no state: who may do what, and the Bot API shapes
(ChatMember*, ForumTopic). EmulatorState keeps these objects; botapi.py and the control API
enforce the rules with Telegram's words.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Telegram's General topic is topic 1 inside the server; bots address it by leaving message_thread_id out.
GENERAL_TOPIC_ID = 1
MAX_TOPIC_NAME = 128  # longer names are cut, as TDLib's clean_name does
# The six colours the Bot API documents for createForumTopic; the first is what Telegram picks when none is given.
TOPIC_ICON_COLORS = (7322096, 16766590, 13338331, 9367192, 16749490, 16478047)
DEFAULT_TOPIC_COLOR = TOPIC_ICON_COLORS[0]

MEMBER_STATUSES = ("creator", "administrator", "member", "left", "kicked")
PRESENT_STATUSES = frozenset({"creator", "administrator", "member"})
# ChatMemberAdministrator's boolean fields for a supergroup: the required ones, then the optional supergroup ones.
ADMIN_RIGHTS = (
    "can_manage_chat", "can_delete_messages", "can_manage_video_chats", "can_restrict_members",
    "can_promote_members", "can_change_info", "can_invite_users", "can_post_stories", "can_edit_stories",
    "can_delete_stories", "can_send_welcome_messages", "can_pin_messages", "can_manage_topics",
)
# What a bot usually gets when a person adds it as administrator of a support group.
DEFAULT_BOT_RIGHTS: dict[str, bool] = {
    "can_manage_chat": True, "can_delete_messages": True, "can_manage_video_chats": False,
    "can_restrict_members": True, "can_promote_members": False, "can_change_info": True,
    "can_invite_users": True, "can_post_stories": False, "can_edit_stories": False, "can_delete_stories": False,
    "can_send_welcome_messages": False, "can_pin_messages": True, "can_manage_topics": True,
}
# A person promoted in the app with the defaults it proposes.
DEFAULT_ADMIN_RIGHTS: dict[str, bool] = {**DEFAULT_BOT_RIGHTS, "can_post_stories": True,
                                         "can_edit_stories": True, "can_delete_stories": True}


def clean_rights(rights: dict[str, Any] | None, defaults: dict[str, bool]) -> dict[str, bool]:
    """Administrator rights with every known key present; unknown keys are refused."""
    out = dict(defaults)
    for key, value in (rights or {}).items():
        if key not in ADMIN_RIGHTS:
            raise ValueError(f"unknown administrator right {key!r}; known: {', '.join(ADMIN_RIGHTS)}")
        out[key] = bool(value)
    return out


@dataclass
class Member:
    """One user's (or the bot's) standing in a group."""

    user_id: int
    status: str  # creator | administrator | member | left | kicked
    rights: dict[str, bool] = field(default_factory=dict)  # administrators only
    custom_title: str | None = None
    until_date: int = 0  # kicked: 0 means for ever

    @property
    def present(self) -> bool:
        return self.status in PRESENT_STATUSES

    def can(self, right: str) -> bool:
        if self.status == "creator":
            return True
        return self.status == "administrator" and self.rights.get(right, False)

    def to_api(self, user: dict[str, Any], *, can_be_edited: bool = False) -> dict[str, Any]:
        """The ChatMember object (ChatMemberOwner, ChatMemberAdministrator, ...) of the Bot API."""
        d: dict[str, Any] = {"status": self.status, "user": user}
        if self.status == "creator":
            d["is_anonymous"] = False
            if self.custom_title:
                d["custom_title"] = self.custom_title
        elif self.status == "administrator":
            d["can_be_edited"] = can_be_edited
            d["is_anonymous"] = False
            for right in ADMIN_RIGHTS:
                d[right] = self.rights.get(right, False)
            if self.custom_title:
                d["custom_title"] = self.custom_title
        elif self.status == "kicked":
            d["until_date"] = self.until_date
        return d


@dataclass
class ForumTopic:
    chat_id: int
    message_thread_id: int  # the id of the forum_topic_created service message
    name: str
    icon_color: int
    creator_id: int
    created_at: int
    icon_custom_emoji_id: str | None = None
    closed: bool = False
    deleted: bool = False

    def to_api(self) -> dict[str, Any]:
        """The ForumTopic object createForumTopic returns."""
        d: dict[str, Any] = {"message_thread_id": self.message_thread_id, "name": self.name,
                             "icon_color": self.icon_color}
        if self.icon_custom_emoji_id:
            d["icon_custom_emoji_id"] = self.icon_custom_emoji_id
        return d

    def created_api(self) -> dict[str, Any]:
        """The ForumTopicCreated object of the service message that opens the topic."""
        d: dict[str, Any] = {"name": self.name, "icon_color": self.icon_color}
        if self.icon_custom_emoji_id:
            d["icon_custom_emoji_id"] = self.icon_custom_emoji_id
        return d

    def to_control(self) -> dict[str, Any]:
        return {**self.to_api(), "chat_id": self.chat_id, "creator_id": self.creator_id,
                "created_at": self.created_at, "closed": self.closed, "deleted": self.deleted}


@dataclass(frozen=True)
class ThreadTarget:
    """Where a new message lands: what its message_thread_id / is_topic_message / reply say."""

    message_thread_id: int | None = None
    is_topic_message: bool = False
    reply_to_message_id: int | None = None  # the explicit reply, else the topic's opening message
    topic_root: int | None = None  # for album items after the first: they reply to the root only


class ThreadError(Exception):
    """A send the chat's topics refuse; `reason` is one of not_found, closed, reply_not_found."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def clean_topic_name(name: str | None) -> str:
    """Line breaks become spaces, the ends are trimmed, the rest is cut at 128 characters."""
    return " ".join((name or "").splitlines()).strip()[:MAX_TOPIC_NAME]


__all__ = [
    "ADMIN_RIGHTS", "DEFAULT_ADMIN_RIGHTS", "DEFAULT_BOT_RIGHTS", "DEFAULT_TOPIC_COLOR", "GENERAL_TOPIC_ID",
    "MEMBER_STATUSES", "TOPIC_ICON_COLORS", "ForumTopic", "Member", "ThreadError", "ThreadTarget",
    "clean_rights", "clean_topic_name",
]
