"""Read-only views over the whole state: the directory the web page lists (who and where) and the
summary `/control/state` answers. They read the parts they are given and change nothing (they take
parts, not the EmulatorState built from them, so nothing here imports the package back)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from ..forum import GENERAL_TOPIC_ID
from .faults import CallLog
from .messages import MessageStore
from .people import BotIdentity, Chat, People
from .settings import BotSettings
from .updates import UpdateQueue


def directory(bot: BotIdentity, people: People, messages: MessageStore, revision: int) -> dict[str, Any]:
    """Who and where, for the web page: the bot, every user, every supergroup with its present members
    and its forum topics (General first, then by latest message), each topic with a message count and
    a preview of its last message."""
    def display_name(uid: int) -> str:
        if uid == bot.id:
            return bot.first_name
        user = people.users.get(uid)
        return " ".join(p for p in (user.first_name, user.last_name) if p) if user else str(uid)

    groups: list[dict[str, Any]] = []
    membership: dict[int, list[int]] = {}
    for chat in people.chats.values():
        if not chat.is_group:
            continue
        members = []
        for uid, m in chat.members.items():
            if not m.present:
                continue
            membership.setdefault(uid, []).append(chat.id)
            members.append({"user_id": uid, "name": display_name(uid), "status": m.status,
                            "custom_title": m.custom_title, "is_bot": uid == bot.id,
                            "can_manage_topics": m.can("can_manage_topics")})
        groups.append({**chat.to_api(), "members": members, "topics": topic_index(messages, chat)})
    users = [u.to_api() | {"name": display_name(u.id), "started": u.started, "blocked_bot": u.blocked_bot,
                           "groups": membership.get(u.id, []), "messages": len(people.chats[u.id].message_ids)
                           if u.id in people.chats else 0}
             for u in people.users.values()]
    return {"revision": revision, "bot": bot.get_me(), "users": users, "groups": groups}


def topic_index(messages: MessageStore, chat: Chat) -> list[dict[str, Any]]:
    """A forum's topics as its topic list shows them; a plain supergroup is one thread, listed as General."""
    stats: dict[int, dict[str, Any]] = {}
    for msg in messages.chat_messages(chat.id):
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


def summary(updates: UpdateQueue, people: People, settings: BotSettings, calls: CallLog) -> dict[str, Any]:
    webhook = updates.webhook
    return {
        "pending_updates": len(updates.queue),
        "next_update_id": updates.next_update_id,
        "offset": updates.last_offset,
        "allowed_updates": updates.allowed_updates,
        "webhook": None if webhook is None else {
            "url": webhook.url, "max_connections": webhook.max_connections,
            "has_secret": webhook.secret_token is not None,
            "allowed_updates": webhook.allowed_updates,
            "last_error_message": webhook.last_error_message,
        },
        "users": [u.to_api() | {"blocked_bot": u.blocked_bot, "started": u.started} for u in people.users.values()],
        "chats": [c.to_api() | {"messages": len(c.message_ids)} | (
            {"members": sum(m.present for m in c.members.values()),
             "topics": sum(not t.deleted for t in c.topics.values())} if c.is_group else {})
            for c in people.chats.values()],
        "tokens": sorted(settings.tokens),
        "faults": [asdict(f) for f in calls.faults],
        "limits": calls.limits.to_dict(),
    }
