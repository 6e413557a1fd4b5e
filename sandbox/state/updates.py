"""The update queue: what the bot has still to hear, by getUpdates (offset, allowed_updates, the polling
generation that ends a concurrent long poll) or by webhook (its configuration; webhook.py delivers).

`UpdateQueue` owns the updates by id and the queue of unconfirmed ones in delivery order.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any

from ..errors import ControlError
from .notifier import Notifier, now_ts

# Telegram leaves these out unless a bot asks for them in allowed_updates.
NOT_DEFAULT_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})


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
class WebhookConfig:
    url: str
    token: str
    secret_token: str | None = None
    max_connections: int = 40
    allowed_updates: list[str] | None = None
    set_at: int = field(default_factory=now_ts)
    last_error_date: int | None = None
    last_error_message: str | None = None


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


class UpdateQueue:
    def __init__(self, changed: Notifier, update_id_base: int | None = None) -> None:
        self._changed = changed
        self.updates: dict[int, UpdateRecord] = {}
        self.queue: list[UpdateRecord] = []  # unconfirmed updates, in delivery order
        # Random-ish base so bots never rely on update ids starting at 1.
        self.next_update_id = update_id_base if update_id_base is not None else random.randint(100_000, 899_999)
        self.last_offset: int | None = None
        self.allowed_updates: list[str] | None = None
        self.polling_generation = 0
        self.webhook: WebhookConfig | None = None

    def clear(self) -> None:
        """Drop every update; ids keep counting up."""
        self.updates.clear()
        self.queue.clear()

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
        self._changed.notify()
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
        self._changed.notify()
        return rec

    def confirm(self, rec: UpdateRecord) -> None:
        rec.status = "confirmed"
        rec.confirmed_at = time.time()
        rec.in_flight = False
        if rec in self.queue:
            self.queue.remove(rec)
        self._changed.notify()

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
