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
from typing import Any

from . import media
from .errors import ControlError
from .formatting import command_entities, utf16_len

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
    type: str = "private"  # private | group | supergroup (groups and forum topics come later)
    title: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    username: str | None = None
    is_forum: bool = False
    next_message_id: int = 1
    message_ids: list[int] = field(default_factory=list)

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
    (negative chat id). The counters cover every rate-limited call, limits on or off, until reset.
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

    def reset(self) -> None:
        """Forget everything except the bot identity."""
        self._clear()
        self.changed.notify()

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

    # ---- messages ----------------------------------------------------------------------------

    def add_message(self, chat_id: int, from_id: int, outgoing: bool, kind: str = "text", **fields: Any) -> Message:
        chat = self.chats[chat_id]
        msg = Message(chat_id=chat_id, message_id=chat.allocate_message_id(), from_id=from_id, outgoing=outgoing,
                      date=now_ts(), kind=kind, **fields)
        self.messages[(chat_id, msg.message_id)] = msg
        chat.message_ids.append(msg.message_id)
        self.changed.notify()
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
        if msg.kind not in ("text",) and msg.media is not None and msg.kind not in MEDIA_KINDS:
            d[msg.kind] = msg.media  # location, contact...: small enough to show whole
        if msg.media_group_id is not None:
            d["media_group_id"] = msg.media_group_id
        if msg.message_thread_id is not None:
            d["message_thread_id"] = msg.message_thread_id
        return d

    def record_edit(self, msg: Message) -> None:
        entry = msg.snapshot()
        entry["edit_date"] = msg.edit_date or msg.date
        msg.edit_history.append(entry)
        msg.edit_date = now_ts()
        self.changed.notify()

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

    def _user_message(self, user_id: int, kind: str, reply_to_message_id: int | None = None,
                      **fields: Any) -> Message:
        user = self.require_user(user_id)
        user.started = True
        if reply_to_message_id is not None and self.get_message(user_id, reply_to_message_id) is None:
            raise ControlError(404, f"no message {reply_to_message_id} in chat {user_id} to reply to")
        return self.add_message(user_id, user.id, False, kind, reply_to_message_id=reply_to_message_id, **fields)

    def _queue_message(self, msg: Message) -> UpdateRecord:
        return self.queue_update("message", self.message_to_api(msg))

    def user_send_text(self, user_id: int, text: str, reply_to_message_id: int | None = None) -> tuple[UpdateRecord, Message]:
        if not text:
            raise ControlError(400, "text must not be empty")
        msg = self._user_message(user_id, "text", reply_to_message_id, text=text, entities=command_entities(text))
        return self._queue_message(msg), msg

    def user_send_photo(self, user_id: int, data: bytes, caption: str | None = None,
                        facts: tuple[tuple[int, int] | None, tuple[bytes, int, int] | None] | None = None
                        ) -> tuple[UpdateRecord, Message]:
        sizes = self.store_photo(data, facts)
        msg = self._user_message(user_id, "photo", media=sizes, file_id=sizes[-1]["file_id"], caption=caption or None)
        return self._queue_message(msg), msg

    def user_send_document(self, user_id: int, data: bytes | None, file_name: str | None, mime_type: str | None,
                           caption: str | None = None, size: int | None = None) -> tuple[UpdateRecord, Message]:
        f = self.store_file(data, "document", size=size, mime_type=mime_type, file_name=file_name)
        msg = self._user_message(user_id, "document", media=self.document_dict(f), file_id=f.file_id,
                                 caption=caption or None)
        return self._queue_message(msg), msg

    def user_send_file_ref(self, user_id: int, kind: str, file_size: int, mime_type: str | None = None,
                           file_name: str | None = None) -> tuple[UpdateRecord, Message]:
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

    def user_send_sticker(self, user_id: int, emoji: str = "\U0001f44d") -> tuple[UpdateRecord, Message]:
        self.require_user(user_id)
        f = self.store_file(b"RIFF\x00\x00\x00\x00WEBPVP8 sandbox-sticker", "sticker", mime_type="image/webp")
        sticker = {"file_id": f.file_id, "file_unique_id": f.file_unique_id, "type": "regular", "width": 512,
                   "height": 512, "is_animated": False, "is_video": False, "emoji": emoji, "file_size": f.size}
        msg = self._user_message(user_id, "sticker", media=sticker, file_id=f.file_id)
        return self._queue_message(msg), msg

    def user_send_voice(self, user_id: int, duration: int = 3) -> tuple[UpdateRecord, Message]:
        self.require_user(user_id)
        f = self.store_file(b"OggS\x00sandbox-voice" + secrets.token_bytes(8), "voice", mime_type="audio/ogg")
        voice = {"file_id": f.file_id, "file_unique_id": f.file_unique_id, "duration": duration,
                 "mime_type": "audio/ogg", "file_size": f.size}
        msg = self._user_message(user_id, "voice", media=voice, file_id=f.file_id)
        return self._queue_message(msg), msg

    def user_send_location(self, user_id: int, latitude: float = 31.2304,
                           longitude: float = 121.4737) -> tuple[UpdateRecord, Message]:
        msg = self._user_message(user_id, "location", media={"latitude": latitude, "longitude": longitude})
        return self._queue_message(msg), msg

    def user_edit_text(self, user_id: int, message_id: int, text: str) -> tuple[UpdateRecord, Message]:
        self.require_user(user_id)
        msg = self.get_message(user_id, message_id)
        if msg is None or msg.outgoing or msg.deleted:
            raise ControlError(404, f"no message {message_id} of user {user_id} to edit")
        if msg.kind != "text":
            raise ControlError(400, "only text messages can be edited this way")
        self.record_edit(msg)
        msg.text = text
        msg.entities = command_entities(text)
        return self.queue_update("edited_message", self.message_to_api(msg)), msg

    def user_press(self, user_id: int, message_id: int, data: str | None = None,
                   button_text: str | None = None) -> tuple[UpdateRecord, CallbackQueryRecord]:
        user = self.require_user(user_id)
        msg = self.get_message(user_id, message_id)
        if msg is None or not msg.outgoing:
            raise ControlError(404, f"no bot message {message_id} in chat {user_id}")
        if msg.deleted:
            raise ControlError(409, f"message {message_id} was deleted")
        if data is None:
            if button_text is None:
                raise ControlError(400, "give data or button_text")
            data = find_callback_data(msg.reply_markup, button_text)
            if data is None:
                raise ControlError(404, f"no callback button {button_text!r} on message {message_id}")
        cq_id = str(random.randint(10**18, 9 * 10**18))
        cq = CallbackQueryRecord(cq_id, user_id, user_id, message_id, data)
        self.callback_queries[cq_id] = cq
        payload = {
            "id": cq_id,
            "from": user.to_api(),
            "message": self.message_to_api(msg),
            "chat_instance": self.chats[user_id].chat_instance,
            "data": data,
        }
        return self.queue_update("callback_query", payload), cq

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
                  retry_after: int | None = None, description: str | None = None, delay: float = 0.0) -> FaultRule:
        self._fault_seq += 1
        rule = FaultRule(self._fault_seq, method.lower(), error_code, count,
                         None if chat_id is None else str(chat_id), retry_after, description, delay)
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
            "chats": [c.to_api() | {"messages": len(c.message_ids)} for c in self.chats.values()],
            "tokens": sorted(self.tokens),
            "faults": [asdict(f) for f in self.faults],
            "limits": self.limits.to_dict(),
        }


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
    "ApiCall", "BotIdentity", "CallbackQueryRecord", "Chat", "EmulatorState", "FaultRule", "Limits", "Message",
    "Notifier", "StoredFile", "UpdateRecord", "User", "WebhookConfig", "find_callback_data", "iter_buttons",
    "utf16_len",
]
