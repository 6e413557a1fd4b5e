"""Read-only views over the whole state: the directory the web page lists (who and where) and the
summary `/control/state` answers. They read EmulatorState's public names and change nothing."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from ..forum import GENERAL_TOPIC_ID
from .people import Chat

if TYPE_CHECKING:
    from . import EmulatorState


def directory(state: EmulatorState) -> dict[str, Any]:
    """Who and where, for the web page: the bot, every user, every supergroup with its present members
    and its forum topics (General first, then by latest message), each topic with a message count and
    a preview of its last message."""
    def display_name(uid: int) -> str:
        if uid == state.bot.id:
            return state.bot.first_name
        user = state.users.get(uid)
        return " ".join(p for p in (user.first_name, user.last_name) if p) if user else str(uid)

    groups: list[dict[str, Any]] = []
    membership: dict[int, list[int]] = {}
    for chat in state.chats.values():
        if not chat.is_group:
            continue
        members = []
        for uid, m in chat.members.items():
            if not m.present:
                continue
            membership.setdefault(uid, []).append(chat.id)
            members.append({"user_id": uid, "name": display_name(uid), "status": m.status,
                            "custom_title": m.custom_title, "is_bot": uid == state.bot.id,
                            "can_manage_topics": m.can("can_manage_topics")})
        groups.append({**chat.to_api(), "members": members, "topics": topic_index(state, chat)})
    users = [u.to_api() | {"name": display_name(u.id), "started": u.started, "blocked_bot": u.blocked_bot,
                           "groups": membership.get(u.id, []), "messages": len(state.chats[u.id].message_ids)
                           if u.id in state.chats else 0}
             for u in state.users.values()]
    return {"revision": state.revision, "bot": state.bot.get_me(), "users": users, "groups": groups}


def topic_index(state: EmulatorState, chat: Chat) -> list[dict[str, Any]]:
    """A forum's topics as its topic list shows them; a plain supergroup is one thread, listed as General."""
    stats: dict[int, dict[str, Any]] = {}
    for msg in state.chat_messages(chat.id):
        if msg.deleted:
            continue
        key = msg.message_thread_id if (chat.is_forum and msg.is_topic_message) else GENERAL_TOPIC_ID
        entry = stats.setdefault(int(key or GENERAL_TOPIC_ID), {"messages": 0, "last": None})
        entry["messages"] += 1
        entry["last"] = {"message_id": msg.message_id, "from_id": msg.from_id, "kind": msg.kind,
                         "date": msg.date, "text": msg.text if msg.text is not None else msg.caption}
    general = {"message_thread_id": GENERAL_TOPIC_ID, "name": chat.general_name, "is_general": True,
               "icon_color": None, "closed": chat.general_closed, "hidden": chat.general_hidden,
               **stats.get(GENERAL_TOPIC_ID, {"messages": 0, "last": None})}
    topics = [{**t.to_control(), "is_general": False, "hidden": False,
               **stats.get(t.message_thread_id, {"messages": 0, "last": None})}
              for t in chat.topics.values() if not t.deleted] if chat.is_forum else []
    topics.sort(key=lambda t: -(t["last"]["message_id"] if t["last"] else t["message_thread_id"]))
    return [general, *topics]


def summary(state: EmulatorState) -> dict[str, Any]:
    webhook = state.webhook
    return {
        "pending_updates": len(state.queue),
        "next_update_id": state.next_update_id,
        "offset": state.last_offset,
        "allowed_updates": state.allowed_updates,
        "webhook": None if webhook is None else {
            "url": webhook.url, "max_connections": webhook.max_connections,
            "has_secret": webhook.secret_token is not None,
            "allowed_updates": webhook.allowed_updates,
            "last_error_message": webhook.last_error_message,
        },
        "users": [u.to_api() | {"blocked_bot": u.blocked_bot, "started": u.started} for u in state.users.values()],
        "chats": [c.to_api() | {"messages": len(c.message_ids)} | (
            {"members": sum(m.present for m in c.members.values()),
             "topics": sum(not t.deleted for t in c.topics.values())} if c.is_group else {})
            for c in state.chats.values()],
        "tokens": sorted(state.tokens),
        "faults": [asdict(f) for f in state.faults],
        "limits": state.limits.to_dict(),
    }
