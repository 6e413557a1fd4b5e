"""The outbox as the relay sees it (queue, claim, confirm, hold) and the chats it cannot reach now."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import cast

from sqlalchemy import (
    Table,
    bindparam,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased

from dialogs.domain import Delivery, OutboxMessage
from dialogs.ports import ConcurrentUpdate
from storage.leases import NOW, LeaseClaim
from storage.models import ChatDeliveryRow, OutboxRow, UTCDateTime
from storage.repositories import SessionRepository, execute_core

_Open = aliased(OutboxRow, name="open_row")

# Only the oldest open row of a chat may go: while an earlier one is unsent and not given up (held by
# a relay, deferred after a 429 or a 5xx), the chat's later rows wait. That keeps each chat's
# notifications in order across deferrals, batches and relays, and lets a status card be sent before
# the next version of it is composed (which then edits it). One aggregate over the open rows, not a
# correlated NOT EXISTS: with stale statistics PostgreSQL ran that as a nested loop (10 s for 10,000
# open rows).
_HEAD_OF_CHAT = OutboxRow.id.in_(
    select(func.min(_Open.id))
    .where(_Open.chat_id.is_not(None), _Open.sent_at.is_(None), _Open.dead_at.is_(None))
    .group_by(_Open.chat_id)
)


# Prebuilt Core statements for what every filed case and every notification runs (see
# storage.repositories.execute_core): no statement building, no ORM, per call.
_OUT = cast(Table, OutboxRow.__table__)
_QUEUED = select(_OUT.c.id).where(_OUT.c.dedupe_key == bindparam("dedupe_key"))
_QUEUE = insert(_OUT)
# For a chat (rows without one are the agent desk's), due, unsent, not given up, and held by nobody
# (or by a relay whose lease ran out); of those, only each chat's oldest open row.
_CLAIM = LeaseClaim(
    _OUT, ready=[_OUT.c.chat_id.is_not(None), _OUT.c.sent_at.is_(None), _OUT.c.dead_at.is_(None),
                 _OUT.c.available_at <= NOW],
    pick_only=[_HEAD_OF_CHAT], order_by=[_OUT.c.id],
    returning=[_OUT.c.id, _OUT.c.kind, _OUT.c.chat_id, _OUT.c.dedupe_key, _OUT.c.payload, _OUT.c.attempts,
               _OUT.c.created_at])
_RELEASED = {"claimed_by": None, "claim_until": None, "attempts": _OUT.c.attempts + 1}
_MARK_SENT = update(_OUT).where(_OUT.c.id == bindparam("w_id")).values(
    sent_at=bindparam("w_at", type_=UTCDateTime()), message_id=bindparam("w_message_id"), last_error=None,
    **_RELEASED)
_DEFER = update(_OUT).where(_OUT.c.id == bindparam("w_id")).values(
    available_at=bindparam("w_at", type_=UTCDateTime()), last_error=bindparam("w_error"), **_RELEASED)
# A held row: due at a time that never comes, until its chat is reopened (release_held).
HELD_UNTIL = datetime(9000, 1, 1, tzinfo=UTC)
_HOLD = update(_OUT).where(_OUT.c.id == bindparam("w_id")).values(
    available_at=HELD_UNTIL, last_error=bindparam("w_error"), claimed_by=None, claim_until=None)
_GIVE_UP = update(_OUT).where(_OUT.c.id == bindparam("w_id")).values(
    dead_at=bindparam("w_at", type_=UTCDateTime()), last_error=bindparam("w_error"), **_RELEASED)


class SqlaOutbox(SessionRepository):
    async def add(self, message: OutboxMessage) -> bool:
        if (await execute_core(self._session, _QUEUED, {"dedupe_key": message.dedupe_key})).first() is not None:
            return False
        try:
            await execute_core(self._session, _QUEUE, {
                "kind": message.kind, "chat_id": message.chat_id, "dedupe_key": message.dedupe_key,
                "payload": message.payload, "created_at": message.created_at,
                "available_at": message.created_at, "sent_at": None, "attempts": 0, "last_error": None,
            })
        except IntegrityError as exc:
            raise ConcurrentUpdate(f"outbox key {message.dedupe_key} queued concurrently") from exc
        return True

    async def claim(self, *, owner: str, now: datetime, lease_seconds: float, limit: int) -> list[Delivery]:
        # At most one row per chat: its oldest open one (see _HEAD_OF_CHAT); the claim: storage.leases.
        rows = await _CLAIM.claim(self._session, owner=owner, now=now, lease_seconds=lease_seconds, limit=limit)
        claimed = [Delivery(id=r.id, kind=r.kind, chat_id=r.chat_id, dedupe_key=r.dedupe_key,
                            payload=r.payload, attempts=r.attempts, created_at=r.created_at)
                   for r in rows]
        return sorted(claimed, key=lambda d: d.id)  # RETURNING order is not guaranteed

    async def mark_sent(self, delivery_id: int, *, at: datetime, message_id: int | None) -> None:
        await execute_core(self._session, _MARK_SENT, {"w_id": delivery_id, "w_at": at, "w_message_id": message_id})

    async def defer(self, delivery_id: int, *, until: datetime, error: str) -> None:
        await execute_core(self._session, _DEFER, {"w_id": delivery_id, "w_at": until, "w_error": error[:2000]})

    async def give_up(self, delivery_id: int, *, at: datetime, error: str) -> None:
        await execute_core(self._session, _GIVE_UP, {"w_id": delivery_id, "w_at": at, "w_error": error[:2000]})

    async def hold(self, delivery_id: int, *, error: str) -> None:
        await execute_core(self._session, _HOLD, {"w_id": delivery_id, "w_error": error[:2000]})

    async def release_held(self, chat_id: int, *, at: datetime) -> int:
        result = await self._session.execute(
            update(OutboxRow)
            .where(OutboxRow.chat_id == chat_id, OutboxRow.sent_at.is_(None), OutboxRow.dead_at.is_(None),
                   OutboxRow.available_at >= HELD_UNTIL)
            .values(available_at=at).execution_options(synchronize_session=False)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def backlog(self) -> int:
        count = await self._session.scalar(
            select(func.count()).select_from(OutboxRow)
            .where(OutboxRow.sent_at.is_(None), OutboxRow.dead_at.is_(None), OutboxRow.available_at < HELD_UNTIL,
                   ~select(ChatDeliveryRow.chat_id).where(ChatDeliveryRow.chat_id == OutboxRow.chat_id).exists())
        )
        return int(count or 0)


class SqlaChatDirectory(SessionRepository):
    async def mark_blocked(self, chat_id: int, *, at: datetime, reason: str) -> bool:
        known = await self._session.scalar(select(ChatDeliveryRow.chat_id).where(ChatDeliveryRow.chat_id == chat_id))
        if known is not None:
            return False
        try:
            async with self._session.begin_nested():
                await self._session.execute(
                    insert(ChatDeliveryRow).values(chat_id=chat_id, blocked_at=at, reason=reason[:2000])
                )
        except IntegrityError:  # another relay recorded it first: same fact
            return False
        return True

    async def unblock(self, chat_id: int) -> bool:
        result = await self._session.execute(
            delete(ChatDeliveryRow).where(ChatDeliveryRow.chat_id == chat_id)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0))

    async def blocked(self, chat_ids: Iterable[int]) -> set[int]:
        wanted = list(set(chat_ids))
        if not wanted:
            return set()
        rows = await self._session.scalars(select(ChatDeliveryRow.chat_id).where(ChatDeliveryRow.chat_id.in_(wanted)))
        return set(rows)
