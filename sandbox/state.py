"""The in-memory world of the emulated Telegram: users, chats, messages, updates, files, webhook, faults.

Everything lives in one `EmulatorState`; the HTTP layer (server.py, botapi.py) only translates
requests into calls on it. The state is driven from the emulator's event loop; `Notifier` lets
long polls and the webhook deliverer sleep until something changes.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import math
import random
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

from . import media
from .errors import ApiError, ControlError, bad_request
from .formatting import command_entities, utf16_len
from .forum import (
    DEFAULT_ADMIN_RIGHTS,
    DEFAULT_BOT_RIGHTS,
    DEFAULT_TOPIC_COLOR,
    GENERAL_TOPIC_ID,
    MEMBER_STATUSES,
    ForumTopic,
    Member,
    ThreadError,
    ThreadTarget,
    clean_rights,
    clean_topic_name,
)

BOT_USER_ID = 7000000001
GETFILE_MAX_BYTES = 20 * 1024 * 1024  # the cloud Bot API refuses getFile above 20 MB
CALL_LOG_MAX = 20_000
# Telegram leaves these out unless a bot asks for them in allowed_updates.
NOT_DEFAULT_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
MEDIA_KINDS = ("photo", "document", "sticker", "voice", "video", "audio", "animation", "video_note")
FILE_ID_PREFIX = {
    "photo": "AgAC", "document": "BQAC", "sticker": "CAAC", "voice": "AwAC", "video": "BAAC",
    "audio": "CQAC", "animation": "CgAC", "video_note": "DQAC",
}
CAPTIONED_KINDS = frozenset({"photo", "document", "video", "audio", "animation", "voice"})
T = TypeVar("T")
FILE_FOLDER = {
    "photo": "photos", "document": "documents", "sticker": "stickers", "voice": "voice", "video": "videos",
    "audio": "music", "animation": "animations", "video_note": "video_notes",
}


def now_ts() -> int:
    return int(time.time())


class Notifier:
    """Wakes every coroutine waiting for 'something changed'; safe to poke from another thread."""

    def __init__(self) -> None:
        self._waiters: set[asyncio.Future[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.version = 0

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def notify(self) -> None:
        self.version += 1
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._wake()
        else:
            loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, set()
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    async def wait(self, timeout: float) -> None:
        """Return at the next change or after `timeout` seconds, whichever comes first."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        fut: asyncio.Future[None] = loop.create_future()
        self._waiters.add(fut)
        try:
            await asyncio.wait_for(fut, max(timeout, 0.0))
        except TimeoutError:
            pass
        finally:
            self._waiters.discard(fut)

    async def wait_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            await self.wait(remaining)
        return True


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


@dataclass
class StoredFile:
    file_id: str
    file_unique_id: str
    kind: str
    size: int
    data: bytes | None  # None for a claimed-size reference: download yields zero bytes of that size
    mime_type: str | None = None
    file_name: str | None = None
    width: int = 0
    height: int = 0
    file_path: str | None = None  # assigned by getFile, as on the real server

    def content(self) -> bytes:
        return self.data if self.data is not None else bytes(self.size)


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


@dataclass
class UpdateRecord:
    update_id: int
    payload: dict[str, Any]
    kind: str
    chat_key: str  # webhook delivery is serialized per key
    status: str = "pending"  # pending | delivered | confirmed
    attempts: int = 0
    queued_at: float = field(default_factory=time.time)
    confirmed_at: float | None = None
    last_error: str | None = None
    in_flight: bool = False

    def to_control(self) -> dict[str, Any]:
        return {
            "update_id": self.update_id, "type": self.kind, "status": self.status, "attempts": self.attempts,
            "last_error": self.last_error, "confirmed_at": self.confirmed_at,
        }


@dataclass
class CallbackQueryRecord:
    id: str
    user_id: int
    chat_id: int
    message_id: int
    data: str
    created_at: float = field(default_factory=time.time)
    answer: dict[str, Any] | None = None


@dataclass
class ApiCall:
    seq: int
    method: str
    token: str
    params: dict[str, Any]
    at: float
    status: int = 200
    description: str | None = None


@dataclass
class FaultRule:
    id: int
    method: str  # lower-case Bot API method name, or "*"
    error_code: int  # 0 = no error, only `delay`
    count: int = 1
    chat_id: str | None = None
    retry_after: int | None = None
    description: str | None = None
    delay: float = 0.0
    # The call takes effect, then its answer waits `delay` seconds: a client that gave up on it
    # (timeout) does not know it went through — what Telegram does under load.
    answer_late: bool = False

    def matches(self, method: str, chat_id: Any) -> bool:
        if self.method not in ("*", method.lower()):
            return False
        return self.chat_id is None or str(chat_id) == self.chat_id


@dataclass
class WebhookConfig:
    url: str
    token: str
    secret_token: str | None = None
    max_connections: int = 40
    allowed_updates: list[str] | None = None
    set_at: int = field(default_factory=now_ts)
    last_error_date: int | None = None
    last_error_message: str | None = None


@dataclass
class Limits:
    """Optional flood control: sends and edits beyond these rates answer 429 with a retry_after.

    Sliding windows, as a bot meets them: at most `global_per_s` in any second over all chats,
    `per_chat_per_s` in any second to one private chat, `per_group_per_min` in any minute to one group
    (negative chat id), whatever topic of it a message goes to. The counters cover every rate-limited call,
    limits on or off, until reset.
    """

    enabled: bool = False
    per_chat_per_s: int = 1
    per_group_per_min: int = 20
    global_per_s: int = 30
    accepted: int = 0  # rate-limited calls that got past the limits (answered by the method itself)
    throttled: int = 0  # 429s answered because of these limits
    injected_429: int = 0  # 429s answered by a fault rule (/control/faults)
    _global: deque[float] = field(default_factory=deque, repr=False)
    _per_chat: dict[int, deque[float]] = field(default_factory=dict, repr=False)

    def _windows(self, chat_id: int | None) -> list[tuple[deque[float], int, float]]:
        windows: list[tuple[deque[float], int, float]] = [(self._global, self.global_per_s, 1.0)]
        if chat_id is not None:
            chat_q = self._per_chat.setdefault(chat_id, deque())
            if chat_id < 0:
                windows.append((chat_q, self.per_group_per_min, 60.0))
            else:
                windows.append((chat_q, self.per_chat_per_s, 1.0))
        return windows

    def check(self, chat_id: int | None, now: float) -> int | None:
        """Seconds to wait before this send would be allowed, or None when it may go now."""
        if not self.enabled:
            return None
        wait = 0.0
        for q, limit, span in self._windows(chat_id):
            while q and q[0] <= now - span:
                q.popleft()
            if len(q) >= limit:
                oldest = q[len(q) - limit] if limit > 0 else now
                wait = max(wait, oldest + span - now)
        return max(1, math.ceil(wait)) if wait > 0 else None

    def record(self, chat_id: int | None, now: float) -> None:
        if not self.enabled:
            return
        self._global.append(now)
        if chat_id is not None:
            self._per_chat.setdefault(chat_id, deque()).append(now)

    def forget(self) -> None:
        """Drop the sliding windows (switching the limits off does)."""
        self._global.clear()
        self._per_chat.clear()

    def reset_counters(self) -> None:
        self.accepted = self.throttled = self.injected_429 = 0

    def to_dict(self) -> dict[str, Any]:
        return {"enabled": self.enabled, "per_chat_per_s": self.per_chat_per_s,
                "per_group_per_min": self.per_group_per_min, "global_per_s": self.global_per_s,
                "accepted": self.accepted, "throttled": self.throttled, "injected_429": self.injected_429}


def _chat_key(update: dict[str, Any]) -> str:
    for key, value in update.items():
        if key == "update_id" or not isinstance(value, dict):
            continue
        if isinstance(value.get("chat"), dict):
            return f"chat:{value['chat'].get('id')}"
        msg = value.get("message")
        if isinstance(msg, dict) and isinstance(msg.get("chat"), dict):
            return f"chat:{msg['chat'].get('id')}"
        if isinstance(value.get("from"), dict):
            return f"chat:{value['from'].get('id')}"
    return f"update:{update.get('update_id')}"


def _update_kind(update: dict[str, Any]) -> str:
    return next((k for k in update if k != "update_id"), "unknown")


class EmulatorState:
    def __init__(self, bot: BotIdentity | None = None, update_id_base: int | None = None) -> None:
        self.bot = bot or BotIdentity()
        self.changed = Notifier()
        # Bumped (by touch) when something a person would see changes: a message, an edit, a deletion, a
        # topic, a member, a user; not by polling or confirmations. The web page's live feed follows it.
        self.revision = 0
        self._clear(update_id_base)

    def _clear(self, update_id_base: int | None = None) -> None:
        self.users: dict[int, User] = {}
        self.chats: dict[int, Chat] = {}
        self.messages: dict[tuple[int, int], Message] = {}
        self.updates: dict[int, UpdateRecord] = {}
        self.queue: list[UpdateRecord] = []  # unconfirmed updates, in delivery order
        # Random-ish base so bots never rely on update ids starting at 1.
        self.next_update_id = update_id_base if update_id_base is not None else random.randint(100_000, 899_999)
        self.last_offset: int | None = None
        self.allowed_updates: list[str] | None = None
        self.polling_generation = 0
        self.files: dict[str, StoredFile] = {}
        self.files_by_path: dict[str, StoredFile] = {}
        self._file_counter = 0
        self._media_group_counter = random.randint(10**16, 9 * 10**16)
        self.callback_queries: dict[str, CallbackQueryRecord] = {}
        self.calls: deque[ApiCall] = deque(maxlen=CALL_LOG_MAX)
        self._call_seq = 0
        self.faults: list[FaultRule] = []
        self._fault_seq = 0
        self.webhook: WebhookConfig | None = None
        self.commands: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.bot_settings: dict[str, Any] = {}
        self.chat_actions: list[dict[str, Any]] = []
        self.limits = Limits()
        self.tokens: set[str] = set()
        self._group_counter = random.randint(1_000_000_000, 8_999_999_999)

    def touch(self) -> None:
        """Something people see changed: bump the revision and wake the waiters."""
        self.revision += 1
        self.changed.notify()

    def reset(self) -> None:
        """Forget everything except the bot identity."""
        self._clear()
        self.touch()

    def clear_chats(self) -> None:
        """Empty every chat as "clear history" would, for a fresh demo: messages, forum topics, pending
        updates, callback queries, files and chat actions go; users (with their language), groups, members,
        the bot's settings, webhook, polling offset, limits and faults stay. Message and update ids keep
        counting up, so nothing the bot still remembers can point at a new message."""
        for chat in self.chats.values():
            chat.message_ids.clear()
            chat.topics.clear()
            chat.general_closed = chat.general_hidden = False
        self.messages.clear()
        self.updates.clear()
        self.queue.clear()
        self.callback_queries.clear()
        self.files.clear()
        self.files_by_path.clear()
        self.chat_actions.clear()
        self.touch()

    def set_language(self, user_id: int, language_code: str | None) -> User:
        """The language the user's Telegram app is set to: the language_code of their next updates."""
        user = self.require_user(user_id)
        user.language_code = language_code or None
        self.touch()
        return user

    # ---- users and chats ---------------------------------------------------------------------

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
        self.touch()
        return user

    def require_user(self, user_id: int) -> User:
        user = self.users.get(user_id)
        if user is None:
            raise ControlError(404, f"unknown user {user_id}: POST /control/users first")
        return user

    def chat_to_api(self, chat_id: int) -> dict[str, Any]:
        return self.chats[chat_id].to_api()

    def user_to_api(self, user_id: int) -> dict[str, Any]:
        if user_id == self.bot.id:
            return self.bot.to_api()
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
        self.touch()
        if quiet:
            return None
        bot = self.bot.to_api()
        old, new = (Member(self.bot.id, a) for a in (("member", "kicked") if blocked else ("kicked", "member")))
        return self.queue_update("my_chat_member", {
            "chat": self.chat_to_api(user_id), "from": user.to_api(), "date": now_ts(),
            "old_chat_member": old.to_api(bot), "new_chat_member": new.to_api(bot)})

    # ---- supergroups, members and forum topics -------------------------------------------------

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
        if chat_id in self.chats:
            raise ControlError(409, f"chat {chat_id} already exists")
        # Message 1 of a supergroup is its creation, and topic 1 is General: topics start at 2.
        chat = Chat(chat_id, "supergroup", title=title, username=username, is_forum=is_forum, next_message_id=2)
        specs = [{"user_id": self.bot.id, "status": bot_status, "rights": bot_rights}, *members]
        if creator_id is not None:
            specs.insert(0, {"user_id": creator_id, "status": "creator"})
        for spec in specs:
            uid = int(spec["user_id"])
            if uid != self.bot.id:
                self.require_user(uid)
            member = self._new_member(uid, str(spec.get("status") or "member"), spec.get("rights"),
                                      spec.get("custom_title"))
            if member.status == "creator" and any(m.status == "creator" for m in chat.members.values()):
                raise ControlError(409, "a group has one creator")
            chat.members[uid] = member
        self.chats[chat_id] = chat
        self.touch()
        return chat

    def _new_member(self, user_id: int, status: str, rights: dict[str, Any] | None = None,
                    custom_title: str | None = None) -> Member:
        if status not in MEMBER_STATUSES:
            raise ControlError(400, f"status must be one of {', '.join(MEMBER_STATUSES)}")
        if status != "administrator":
            if rights:
                raise ControlError(400, "rights are for status administrator only")
            return Member(user_id, status, custom_title=custom_title if status == "creator" else None)
        defaults = DEFAULT_BOT_RIGHTS if user_id == self.bot.id else DEFAULT_ADMIN_RIGHTS
        try:
            cleaned = clean_rights(rights, defaults)
        except ValueError as exc:
            raise ControlError(400, str(exc)) from None
        return Member(user_id, status, cleaned, custom_title)

    def require_group(self, chat_id: int) -> Chat:
        chat = self.chats.get(chat_id)
        if chat is None or not chat.is_group:
            raise ControlError(404, f"unknown group {chat_id}: POST /control/groups first")
        return chat

    def require_present(self, chat: Chat, user_id: int) -> Member:
        member = chat.member(user_id)
        if not member.present:
            raise ControlError(403, f"user {user_id} is not a member of chat {chat.id} (status {member.status})")
        return member

    def member_to_api(self, chat: Chat, user_id: int) -> dict[str, Any]:
        return chat.member(user_id).to_api(self.user_to_api(user_id))

    def set_member(self, chat_id: int, user_id: int, status: str, rights: dict[str, Any] | None = None,
                   custom_title: str | None = None, by_user_id: int | None = None,
                   quiet: bool = False) -> tuple[Member, list[UpdateRecord]]:
        """Change someone's standing as a person would in the app. Unless `quiet`, the bot hears of it as
        on Telegram: my_chat_member (its own status) or chat_member (others; only when asked for in
        allowed_updates), and a new_chat_members / left_chat_member service message in General."""
        chat = self.require_group(chat_id)
        if user_id != self.bot.id:
            self.require_user(user_id)
        if by_user_id is not None and by_user_id != self.bot.id:
            self.require_user(by_user_id)
        old = chat.member(user_id)
        new = self._new_member(user_id, status, rights, custom_title)
        if new.status == "creator" and any(m.status == "creator" and uid != user_id
                                           for uid, m in chat.members.items()):
            raise ControlError(409, "a group has one creator")
        chat.members[user_id] = new
        self.touch()
        if quiet:
            return new, []
        creator = next((uid for uid, m in chat.members.items() if m.status == "creator"), None)
        actor = by_user_id if by_user_id is not None else (creator if creator is not None else user_id)
        user_api = self.user_to_api(user_id)
        recs = [self.queue_update("my_chat_member" if user_id == self.bot.id else "chat_member", {
            "chat": chat.to_api(), "from": self.user_to_api(actor), "date": now_ts(),
            "old_chat_member": old.to_api(user_api), "new_chat_member": new.to_api(user_api)})]
        if not old.present and new.present:
            service: dict[str, Any] | None = {"new_chat_members": [user_api]}
        elif old.present and not new.present:
            service = {"left_chat_member": user_api}
        else:
            service = None
        if service is not None:
            rec = self._service_message(chat, actor, None, service)[1]
            if rec is not None:
                recs.append(rec)
        return new, recs

    def can_manage_topics(self, chat: Chat, user_id: int) -> bool:
        return chat.member(user_id).can("can_manage_topics")

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
        replied = self.get_message(chat.id, reply_to) if reply_to is not None else None
        if thread_id == 0:
            thread_id = None
        if not chat.is_forum:
            if thread_id is not None:
                root = self.get_message(chat.id, thread_id)
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
            if chat.general_closed and not self.can_manage_topics(chat, sender_id):
                raise ThreadError("closed")
            if replied is not None:
                return ThreadTarget(replied.message_thread_id or replied.message_id, False, reply_to)
            return ThreadTarget()
        topic = chat.live_topic(thread_id)
        if topic is None:
            raise ThreadError("not_found")
        if replied is not None and not (replied.is_topic_message and replied.message_thread_id == thread_id):
            raise ThreadError("reply_not_found")
        if topic.closed and not self.can_manage_topics(chat, sender_id):
            raise ThreadError("closed")
        return ThreadTarget(thread_id, True, reply_to if reply_to is not None else thread_id, thread_id)

    def bot_sees(self, chat: Chat, msg: Message) -> bool:
        """Whether the bot gets an update for this group message: privacy mode as on Telegram."""
        me = chat.member(self.bot.id)
        if not me.present:
            return False
        if me.status in ("creator", "administrator") or self.bot.can_read_all_group_messages:
            return True  # administrators and bots with privacy mode off see everything
        if msg.kind == "service":
            return True
        if (msg.text or msg.caption or "").startswith("/"):
            return True  # commands
        if msg.reply_to_message_id is not None and not (
                msg.is_topic_message and msg.reply_to_message_id == msg.message_thread_id):
            replied = self.get_message(chat.id, msg.reply_to_message_id)
            return replied is not None and replied.outgoing  # replies to the bot's messages
        return False

    def _announce(self, chat: Chat, msg: Message, kind: str = "message") -> UpdateRecord | None:
        if msg.outgoing or not self.bot_sees(chat, msg):
            return None
        return self.queue_update(kind, self.message_to_api(msg))

    def _service_message(self, chat: Chat, actor_id: int, topic_id: int | None,
                         payload: dict[str, Any]) -> tuple[Message, UpdateRecord | None]:
        """A service message (forum_topic_closed, new_chat_members...) in a topic or in General."""
        in_topic = topic_id is not None
        msg = self.add_message(chat.id, actor_id, actor_id == self.bot.id, "service", extra=payload,
                               message_thread_id=topic_id, is_topic_message=in_topic,
                               reply_to_message_id=topic_id)
        return msg, self._announce(chat, msg)

    def _forum(self, chat_id: int) -> Chat:
        chat = self.chats[chat_id]
        if not chat.is_forum:
            raise bad_request("the chat is not a forum")
        return chat

    def _changeable_topic(self, chat: Chat, thread_id: int) -> ForumTopic:
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
        if not self.can_manage_topics(chat, creator_id):
            raise bad_request("not enough rights to create a topic")
        title = clean_topic_name(name)
        if not title:
            raise bad_request("title must be non-empty")
        if icon_color is None:
            icon_color = DEFAULT_TOPIC_COLOR
        elif not 0 <= icon_color <= 0xFFFFFF:
            raise bad_request("invalid icon color specified")
        root = self.add_message(chat.id, creator_id, creator_id == self.bot.id, "service")
        topic = ForumTopic(chat.id, root.message_id, title, icon_color, creator_id, root.date,
                           icon_custom_emoji_id or None)
        chat.topics[topic.message_thread_id] = topic
        root.message_thread_id, root.is_topic_message = root.message_id, True
        root.extra = {"forum_topic_created": topic.created_api()}
        return topic, root, self._announce(chat, root)

    def edit_topic(self, chat_id: int, actor_id: int, thread_id: int, name: str | None,
                   icon_custom_emoji_id: str | None = None) -> UpdateRecord | None:
        """editForumTopic: name and/or icon (icon_custom_emoji_id "" removes it; None leaves it)."""
        chat = self._forum(chat_id)
        topic = self._changeable_topic(chat, thread_id)
        if not self.can_manage_topics(chat, actor_id) and topic.creator_id != actor_id:
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
        return self._service_message(chat, actor_id, topic.message_thread_id, {"forum_topic_edited": changed})[1]

    def set_topic_closed(self, chat_id: int, actor_id: int, thread_id: int, closed: bool) -> UpdateRecord | None:
        """closeForumTopic / reopenForumTopic."""
        chat = self._forum(chat_id)
        topic = self._changeable_topic(chat, thread_id)
        if not self.can_manage_topics(chat, actor_id) and topic.creator_id != actor_id:
            raise bad_request("not enough rights to close or open the topic")
        if topic.closed == closed:
            raise bad_request("TOPIC_NOT_MODIFIED")
        topic.closed = closed
        action = "forum_topic_closed" if closed else "forum_topic_reopened"
        return self._service_message(chat, actor_id, topic.message_thread_id, {action: {}})[1]

    def delete_topic(self, chat_id: int, actor_id: int, thread_id: int) -> int:
        """deleteForumTopic: the topic and every message in it go; nobody gets an update. Returns how many
        messages were deleted."""
        chat = self._forum(chat_id)
        topic = self._changeable_topic(chat, thread_id)
        if not chat.member(actor_id).can("can_delete_messages") and topic.creator_id != actor_id:
            raise bad_request("not enough rights to delete the topic")
        topic.deleted = True
        count = 0
        for msg in self.chat_messages(chat.id):
            if msg.is_topic_message and msg.message_thread_id == thread_id and not msg.deleted:
                msg.deleted = True
                count += 1
        self.touch()
        return count

    def set_general(self, chat_id: int, actor_id: int, *, closed: bool | None = None, hidden: bool | None = None,
                    name: str | None = None) -> UpdateRecord | None:
        """close/reopen/hide/unhide/editGeneralForumTopic. Hiding General also closes it, as on Telegram."""
        chat = self._forum(chat_id)
        if not self.can_manage_topics(chat, actor_id):
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
        return self._service_message(chat, actor_id, None, payload)[1]

    def in_thread(self, chat: Chat, msg: Message, thread_id: int) -> bool:
        """Whether a message belongs to this topic (GENERAL_TOPIC_ID: General) or reply thread."""
        if chat.is_forum and thread_id == GENERAL_TOPIC_ID:
            return not msg.is_topic_message
        return msg.message_thread_id == thread_id

    # ---- messages ----------------------------------------------------------------------------

    def add_message(self, chat_id: int, from_id: int, outgoing: bool, kind: str = "text", **fields: Any) -> Message:
        chat = self.chats[chat_id]
        msg = Message(chat_id=chat_id, message_id=chat.allocate_message_id(), from_id=from_id, outgoing=outgoing,
                      date=now_ts(), kind=kind, **fields)
        self.messages[(chat_id, msg.message_id)] = msg
        chat.message_ids.append(msg.message_id)
        self.touch()
        return msg

    def get_message(self, chat_id: int, message_id: int) -> Message | None:
        return self.messages.get((chat_id, message_id))

    def chat_messages(self, chat_id: int) -> list[Message]:
        chat = self.chats.get(chat_id)
        if chat is None:
            return []
        return [self.messages[(chat_id, mid)] for mid in chat.message_ids]

    def new_media_group_id(self) -> str:
        self._media_group_counter += 1
        return str(self._media_group_counter)

    def message_to_api(self, msg: Message, with_reply: bool = True) -> dict[str, Any]:
        d: dict[str, Any] = {
            "message_id": msg.message_id,
            "from": self.user_to_api(msg.from_id),
            "chat": self.chat_to_api(msg.chat_id),
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
            f = self.files.get(msg.file_id)
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
        self.touch()

    # ---- files -------------------------------------------------------------------------------

    def store_file(self, data: bytes | None, kind: str, *, size: int | None = None, mime_type: str | None = None,
                   file_name: str | None = None, width: int = 0, height: int = 0) -> StoredFile:
        if data is not None:
            digest = hashlib.sha256(data).digest()
            # Same bytes, same file_unique_id, as Telegram does; file_id stays per upload.
            unique = "AQAD" + base64.urlsafe_b64encode(digest[:12]).decode().rstrip("=")
        else:
            unique = "AQAD" + secrets.token_urlsafe(12)
        file_id = FILE_ID_PREFIX.get(kind, "BQAC") + secrets.token_urlsafe(48)
        f = StoredFile(file_id=file_id, file_unique_id=unique, kind=kind,
                       size=size if size is not None else len(data or b""), data=data, mime_type=mime_type,
                       file_name=file_name, width=width, height=height)
        self.files[file_id] = f
        return f

    def store_photo(self, data: bytes,
                    facts: tuple[tuple[int, int] | None, tuple[bytes, int, int] | None] | None = None
                    ) -> list[dict[str, Any]]:
        """Store an image and return its PhotoSize list, smallest first as Telegram sends it.
        `facts` is `media.photo_facts(data)` when the caller already worked it out off the loop."""
        found_size, thumb = facts if facts is not None else media.photo_facts(data)
        size = found_size or (0, 0)
        sizes: list[dict[str, Any]] = []
        if thumb is not None:
            t = self.store_file(thumb[0], "photo", mime_type="image/jpeg", width=thumb[1], height=thumb[2])
            sizes.append(self.photo_size(t))
        main = self.store_file(data, "photo", mime_type="image/jpeg", width=size[0], height=size[1])
        sizes.append(self.photo_size(main))
        return sizes

    @staticmethod
    def photo_size(f: StoredFile) -> dict[str, Any]:
        return {"file_id": f.file_id, "file_unique_id": f.file_unique_id, "width": f.width, "height": f.height,
                "file_size": f.size}

    @staticmethod
    def document_dict(f: StoredFile) -> dict[str, Any]:
        d: dict[str, Any] = {"file_id": f.file_id, "file_unique_id": f.file_unique_id, "file_size": f.size}
        if f.file_name:
            d["file_name"] = f.file_name
        if f.mime_type:
            d["mime_type"] = f.mime_type
        return d

    def assign_file_path(self, f: StoredFile) -> str:
        if f.file_path is None:
            self._file_counter += 1
            ext = ""
            if f.file_name and "." in f.file_name:
                ext = f.file_name.rsplit(".", 1)[1]
            elif f.kind == "photo":
                ext = "jpg"
            elif f.mime_type:
                ext = {"image/png": "png", "image/jpeg": "jpg", "application/pdf": "pdf", "audio/ogg": "oga",
                       "image/webp": "webp", "video/mp4": "mp4"}.get(f.mime_type, "")
            folder = FILE_FOLDER.get(f.kind, "documents")
            f.file_path = f"{folder}/file_{self._file_counter}" + (f".{ext}" if ext else "")
            self.files_by_path[f.file_path] = f
        return f.file_path

    # ---- updates -----------------------------------------------------------------------------

    def queue_update(self, kind: str, obj: dict[str, Any]) -> UpdateRecord:
        return self.queue_raw({kind: obj})

    def queue_raw(self, update: dict[str, Any]) -> UpdateRecord:
        update = dict(update)
        if "update_id" not in update:
            update = {"update_id": self.next_update_id, **update}
        uid = int(update["update_id"])
        update["update_id"] = uid
        self.next_update_id = max(self.next_update_id, uid + 1)
        old = self.updates.get(uid)
        if old is not None and old in self.queue:
            self.queue.remove(old)
        rec = UpdateRecord(update_id=uid, payload=update, kind=_update_kind(update), chat_key=_chat_key(update))
        self.updates[uid] = rec
        self.queue.append(rec)
        self.changed.notify()
        return rec

    def redeliver(self, update_id: int) -> UpdateRecord:
        """Queue the same update again (same id and content), as Telegram does when a confirmation got lost."""
        rec = self.updates.get(update_id)
        if rec is None:
            raise ControlError(404, f"unknown update {update_id}")
        rec.status = "pending"
        rec.confirmed_at = None
        if rec not in self.queue:
            self.queue.append(rec)
        self.changed.notify()
        return rec

    def confirm(self, rec: UpdateRecord) -> None:
        rec.status = "confirmed"
        rec.confirmed_at = time.time()
        rec.in_flight = False
        if rec in self.queue:
            self.queue.remove(rec)
        self.changed.notify()

    def drop_pending(self) -> None:
        for rec in list(self.queue):
            self.confirm(rec)

    @staticmethod
    def is_allowed(kind: str, allowed: list[str] | None) -> bool:
        if not allowed:
            return kind not in NOT_DEFAULT_UPDATES
        return kind in allowed

    def apply_offset(self, offset: int | None) -> None:
        """getUpdates' offset confirms every update handed out before whose id is below it."""
        if offset is None:
            return
        self.last_offset = offset
        if offset < 0:
            for rec in self.queue[: max(len(self.queue) + offset, 0)]:
                self.confirm(rec)
            return
        for rec in list(self.queue):
            # An update queued again by redeliver() was never handed out since, so it survives.
            if rec.update_id < offset and rec.status == "delivered":
                self.confirm(rec)

    def take_updates(self, limit: int) -> list[UpdateRecord]:
        out: list[UpdateRecord] = []
        for rec in list(self.queue):
            if len(out) >= limit:
                break
            if not self.is_allowed(rec.kind, self.allowed_updates):
                self.confirm(rec)  # Telegram never stores updates the bot did not ask for
                continue
            rec.status = "delivered"
            rec.attempts += 1
            out.append(rec)
        return out

    # ---- what users do -----------------------------------------------------------------------
    # Every user action takes `chat_id` (default: the user's private chat with the bot) and, in a group,
    # `message_thread_id` (a forum topic; GENERAL_TOPIC_ID or None for General). In a group the user must
    # be a member; the bot gets an update only for what its privacy mode lets through (bot_sees), so the
    # returned UpdateRecord may be None.

    def _user_message(self, user_id: int, kind: str, reply_to_message_id: int | None = None,
                      chat_id: int | None = None, message_thread_id: int | None = None,
                      **fields: Any) -> Message:
        user = self.require_user(user_id)
        if chat_id is None or chat_id == user_id:
            user.started = True
            if reply_to_message_id is not None and self.get_message(user_id, reply_to_message_id) is None:
                raise ControlError(404, f"no message {reply_to_message_id} in chat {user_id} to reply to")
            return self.add_message(user_id, user.id, False, kind, reply_to_message_id=reply_to_message_id,
                                    **fields)
        chat = self.require_group(chat_id)
        self.require_present(chat, user_id)
        if reply_to_message_id is not None:
            replied = self.get_message(chat.id, reply_to_message_id)
            if replied is None or replied.deleted:
                raise ControlError(404, f"no message {reply_to_message_id} in chat {chat.id} to reply to")
        try:
            target = self.resolve_thread(chat, user_id, message_thread_id, reply_to_message_id, for_bot=False)
        except ThreadError as exc:
            raise thread_control_error(exc, chat.id, message_thread_id) from None
        return self.add_message(chat.id, user.id, False, kind, reply_to_message_id=target.reply_to_message_id,
                                message_thread_id=target.message_thread_id,
                                is_topic_message=target.is_topic_message, **fields)

    def _queue_message(self, msg: Message, kind: str = "message") -> UpdateRecord | None:
        chat = self.chats[msg.chat_id]
        if chat.is_group:
            return self._announce(chat, msg, kind)
        return self.queue_update(kind, self.message_to_api(msg))

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
        sizes = self.store_photo(data, facts)
        msg = self._user_message(user_id, "photo", None, chat_id, message_thread_id, media=sizes,
                                 file_id=sizes[-1]["file_id"], caption=caption or None)
        return self._queue_message(msg), msg

    def user_send_document(self, user_id: int, data: bytes | None, file_name: str | None, mime_type: str | None,
                           caption: str | None = None, size: int | None = None, chat_id: int | None = None,
                           message_thread_id: int | None = None) -> tuple[UpdateRecord | None, Message]:
        self._check_sender(user_id, chat_id)
        f = self.store_file(data, "document", size=size, mime_type=mime_type, file_name=file_name)
        msg = self._user_message(user_id, "document", None, chat_id, message_thread_id,
                                 media=self.document_dict(f), file_id=f.file_id, caption=caption or None)
        return self._queue_message(msg), msg

    def user_send_file_ref(self, user_id: int, kind: str, file_size: int, mime_type: str | None = None,
                           file_name: str | None = None) -> tuple[UpdateRecord | None, Message]:
        """A photo/document that claims a size without bytes (e.g. 30 MB) to exercise getFile's limit."""
        if kind == "photo":
            self.require_user(user_id)
            f = self.store_file(None, "photo", size=file_size, mime_type=mime_type or "image/jpeg",
                                width=4000, height=3000)
            msg = self._user_message(user_id, "photo", media=[self.photo_size(f)], file_id=f.file_id)
            return self._queue_message(msg), msg
        if kind == "document":
            self.require_user(user_id)
            return self.user_send_document(user_id, None, file_name or "file.bin",
                                           mime_type or media.guess_mime(file_name), size=file_size)
        raise ControlError(400, "kind must be photo or document")

    def user_send_sticker(self, user_id: int, emoji: str = "\U0001f44d", chat_id: int | None = None,
                          message_thread_id: int | None = None) -> tuple[UpdateRecord | None, Message]:
        self._check_sender(user_id, chat_id)
        f = self.store_file(b"RIFF\x00\x00\x00\x00WEBPVP8 sandbox-sticker", "sticker", mime_type="image/webp")
        sticker = {"file_id": f.file_id, "file_unique_id": f.file_unique_id, "type": "regular", "width": 512,
                   "height": 512, "is_animated": False, "is_video": False, "emoji": emoji, "file_size": f.size}
        msg = self._user_message(user_id, "sticker", None, chat_id, message_thread_id, media=sticker,
                                 file_id=f.file_id)
        return self._queue_message(msg), msg

    def user_send_voice(self, user_id: int, duration: int = 3, chat_id: int | None = None,
                        message_thread_id: int | None = None) -> tuple[UpdateRecord | None, Message]:
        self._check_sender(user_id, chat_id)
        f = self.store_file(b"OggS\x00sandbox-voice" + secrets.token_bytes(8), "voice", mime_type="audio/ogg")
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
        self.require_user(user_id)
        if chat_id is not None and chat_id != user_id:
            self.require_present(self.require_group(chat_id), user_id)

    def user_edit_text(self, user_id: int, message_id: int, text: str,
                       chat_id: int | None = None) -> tuple[UpdateRecord | None, Message]:
        """The user edits their own message: the text of a text message, the caption of a media message.
        The bot gets an edited_message update (in a group: if it would have seen the message)."""
        self.require_user(user_id)
        chat_id = user_id if chat_id is None else chat_id
        msg = self.get_message(chat_id, message_id)
        if msg is None or msg.outgoing or msg.deleted or msg.from_id != user_id:
            raise ControlError(404, f"no message {message_id} of user {user_id} in chat {chat_id} to edit")
        if msg.kind == "text":
            if not text:
                raise ControlError(400, "text must not be empty")
            self.record_edit(msg)
            msg.text = text
            msg.entities = command_entities(text)
        elif msg.kind in CAPTIONED_KINDS:
            self.record_edit(msg)
            msg.caption = text or None
            msg.caption_entities = []
        else:
            raise ControlError(400, f"a {msg.kind} message has no text or caption to edit")
        return self._queue_message(msg, "edited_message"), msg

    def user_press(self, user_id: int, message_id: int, data: str | None = None,
                   button_text: str | None = None, chat_id: int | None = None
                   ) -> tuple[UpdateRecord, CallbackQueryRecord]:
        user = self.require_user(user_id)
        chat_id = user_id if chat_id is None else chat_id
        if chat_id != user_id:
            self.require_present(self.require_group(chat_id), user_id)
        msg = self.get_message(chat_id, message_id)
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
            "message": self.message_to_api(msg),
            "chat_instance": self.chats[chat_id].chat_instance,
            "data": data,
        }
        return self.queue_update("callback_query", payload), cq

    # ---- people act on groups and topics (control API) -----------------------------------------

    def user_create_topic(self, chat_id: int, user_id: int, name: str, icon_color: int | None = None,
                          icon_custom_emoji_id: str | None = None
                          ) -> tuple[ForumTopic, Message, UpdateRecord | None]:
        chat = self.require_group(chat_id)
        self.require_present(chat, user_id)
        return as_control(lambda: self.create_topic(chat.id, user_id, name, icon_color, icon_custom_emoji_id))

    def user_topic_action(self, chat_id: int, user_id: int, message_thread_id: int, action: str,
                          name: str | None = None, icon_custom_emoji_id: str | None = None
                          ) -> UpdateRecord | None:
        """A person edits, closes, reopens or deletes a topic in the app, with the same rights the bot needs."""
        chat = self.require_group(chat_id)
        self.require_present(chat, user_id)
        if action == "edit":
            return as_control(lambda: self.edit_topic(chat.id, user_id, message_thread_id, name,
                                                      icon_custom_emoji_id))
        if action in ("close", "reopen"):
            if message_thread_id == GENERAL_TOPIC_ID and chat.is_forum:
                return as_control(lambda: self.set_general(chat.id, user_id, closed=action == "close"))
            return as_control(lambda: self.set_topic_closed(chat.id, user_id, message_thread_id,
                                                            action == "close"))
        if action == "delete":
            as_control(lambda: self.delete_topic(chat.id, user_id, message_thread_id))
            return None
        raise ControlError(400, "action must be edit, close, reopen or delete")

    # ---- bot-side bookkeeping ----------------------------------------------------------------

    def log_call(self, method: str, token: str, params: dict[str, Any], status: int,
                 description: str | None = None) -> ApiCall:
        self._call_seq += 1
        call = ApiCall(self._call_seq, method, token, params, time.time(), status, description)
        self.calls.append(call)
        return call

    def calls_to_control(self, method: str | None = None, after: int = 0) -> list[dict[str, Any]]:
        return [asdict(c) for c in self.calls
                if c.seq > after and (method is None or c.method.lower() == method.lower())]

    def add_fault(self, method: str, error_code: int, count: int = 1, chat_id: Any = None,
                  retry_after: int | None = None, description: str | None = None, delay: float = 0.0,
                  answer_late: bool = False) -> FaultRule:
        self._fault_seq += 1
        rule = FaultRule(self._fault_seq, method.lower(), error_code, count,
                         None if chat_id is None else str(chat_id), retry_after, description, delay, answer_late)
        self.faults.append(rule)
        return rule

    def take_fault(self, method: str, chat_id: Any) -> FaultRule | None:
        for rule in self.faults:
            if rule.matches(method, chat_id):
                rule.count -= 1
                if rule.count <= 0:
                    self.faults.remove(rule)
                return rule
        return None

    @staticmethod
    def commands_key(scope: dict[str, Any] | None, language_code: str | None) -> tuple[str, str]:
        return json.dumps(scope or {"type": "default"}, sort_keys=True), language_code or ""

    def commands_to_control(self) -> list[dict[str, Any]]:
        return [{"scope": json.loads(scope), "language_code": lang, "commands": cmds}
                for (scope, lang), cmds in self.commands.items()]

    def directory(self) -> dict[str, Any]:
        """Who and where, for the web page: the bot, every user, every supergroup with its present members
        and its forum topics (General first, then by latest message), each topic with a message count and
        a preview of its last message."""
        def display_name(uid: int) -> str:
            if uid == self.bot.id:
                return self.bot.first_name
            user = self.users.get(uid)
            return " ".join(p for p in (user.first_name, user.last_name) if p) if user else str(uid)

        groups: list[dict[str, Any]] = []
        membership: dict[int, list[int]] = {}
        for chat in self.chats.values():
            if not chat.is_group:
                continue
            members = []
            for uid, m in chat.members.items():
                if not m.present:
                    continue
                membership.setdefault(uid, []).append(chat.id)
                members.append({"user_id": uid, "name": display_name(uid), "status": m.status,
                                "custom_title": m.custom_title, "is_bot": uid == self.bot.id,
                                "can_manage_topics": m.can("can_manage_topics")})
            groups.append({**chat.to_api(), "members": members, "topics": self._topic_index(chat)})
        users = [u.to_api() | {"name": display_name(u.id), "started": u.started, "blocked_bot": u.blocked_bot,
                               "groups": membership.get(u.id, []), "messages": len(self.chats[u.id].message_ids)
                               if u.id in self.chats else 0}
                 for u in self.users.values()]
        return {"revision": self.revision, "bot": self.bot.get_me(), "users": users, "groups": groups}

    def _topic_index(self, chat: Chat) -> list[dict[str, Any]]:
        """A forum's topics as its topic list shows them; a plain supergroup is one thread, listed as General."""
        stats: dict[int, dict[str, Any]] = {}
        for msg in self.chat_messages(chat.id):
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

    def summary(self) -> dict[str, Any]:
        return {
            "pending_updates": len(self.queue),
            "next_update_id": self.next_update_id,
            "offset": self.last_offset,
            "allowed_updates": self.allowed_updates,
            "webhook": None if self.webhook is None else {
                "url": self.webhook.url, "max_connections": self.webhook.max_connections,
                "has_secret": self.webhook.secret_token is not None,
                "allowed_updates": self.webhook.allowed_updates,
                "last_error_message": self.webhook.last_error_message,
            },
            "users": [u.to_api() | {"blocked_bot": u.blocked_bot, "started": u.started} for u in self.users.values()],
            "chats": [c.to_api() | {"messages": len(c.message_ids)} | (
                {"members": sum(m.present for m in c.members.values()),
                 "topics": sum(not t.deleted for t in c.topics.values())} if c.is_group else {})
                for c in self.chats.values()],
            "tokens": sorted(self.tokens),
            "faults": [asdict(f) for f in self.faults],
            "limits": self.limits.to_dict(),
        }


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


__all__ = [
    "ApiCall", "BotIdentity", "CallbackQueryRecord", "Chat", "EmulatorState", "FaultRule", "ForumTopic", "Limits",
    "Member", "Message", "Notifier", "StoredFile", "ThreadError", "ThreadTarget", "UpdateRecord", "User",
    "WebhookConfig", "find_callback_data", "iter_buttons", "utf16_len",
]
