"""Fake repositories of what goes out and what waits: the outbox, blocked chats, case timers, the
refund ledger and callback nonces. Leases, order per chat and once-only keys as in storage/."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime, timedelta

from dialogs.domain import Delivery, OutboxMessage, RailError, RefundAttempt, RefundStatus, Timer, TimerKind
from tests.fakes.records import FakeRepository
from tests.fakes.tables import HELD_UNTIL, AttemptRow, OutboxRow, TimerRow


def delivery_of(row: OutboxRow) -> Delivery:
    return Delivery(id=row.id, kind=row.kind, chat_id=row.chat_id, dedupe_key=row.dedupe_key,
                    payload=copy.deepcopy(row.payload), attempts=row.attempts, created_at=row.created_at)


def _free(claim_until: datetime | None, now: datetime) -> bool:
    """Held by nobody, or by a worker whose lease ran out."""
    return claim_until is None or claim_until < now


class FakeOutbox(FakeRepository):
    async def add(self, message: OutboxMessage) -> bool:
        if any(r.dedupe_key == message.dedupe_key for r in self._t.outbox.values()):
            return False
        row_id = self._t.new_id()
        self._t.outbox[row_id] = OutboxRow(row_id, message.kind, message.chat_id, message.dedupe_key,
                                           copy.deepcopy(message.payload), message.created_at, message.created_at)
        return True

    async def claim(self, *, owner: str, now: datetime, lease_seconds: float, limit: int) -> list[Delivery]:
        heads: dict[int, int] = {}  # chat -> its oldest open row: a chat's rows go in order
        for row in self._t.outbox.values():
            if row.chat_id is not None and row.open:
                heads.setdefault(row.chat_id, row.id)
        claimed = [row for row in self._t.outbox.values()
                   if row.chat_id is not None and heads.get(row.chat_id) == row.id and row.available_at <= now
                   and _free(row.claim_until, now)][:limit]
        for row in claimed:
            row.claimed_by, row.claim_until = owner, now + timedelta(seconds=lease_seconds)
        return [delivery_of(row) for row in claimed]

    def _released(self, delivery_id: int) -> OutboxRow | None:
        row = self._t.outbox.get(delivery_id)
        if row is not None:
            row.claimed_by, row.claim_until, row.attempts = None, None, row.attempts + 1
        return row

    async def mark_sent(self, delivery_id: int, *, at: datetime, message_id: int | None) -> None:
        if (row := self._released(delivery_id)) is not None:
            row.sent_at, row.message_id, row.last_error = at, message_id, None

    async def defer(self, delivery_id: int, *, until: datetime, error: str) -> None:
        if (row := self._released(delivery_id)) is not None:
            row.available_at, row.last_error = until, error[:2000]

    async def give_up(self, delivery_id: int, *, at: datetime, error: str) -> None:
        if (row := self._released(delivery_id)) is not None:
            row.dead_at, row.last_error = at, error[:2000]

    async def hold(self, delivery_id: int, *, error: str) -> None:
        if (row := self._t.outbox.get(delivery_id)) is not None:
            row.available_at, row.last_error, row.claimed_by, row.claim_until = HELD_UNTIL, error[:2000], None, None

    async def release_held(self, chat_id: int, *, at: datetime) -> int:
        held = [r for r in self._t.outbox.values() if r.chat_id == chat_id and r.open and r.available_at >= HELD_UNTIL]
        for row in held:
            row.available_at = at
        return len(held)

    async def backlog(self) -> int:
        return sum(1 for r in self._t.outbox.values()
                   if r.open and r.available_at < HELD_UNTIL and r.chat_id not in self._t.blocked_chats)


class FakeChatDirectory(FakeRepository):
    async def mark_blocked(self, chat_id: int, *, at: datetime, reason: str) -> bool:
        if chat_id in self._t.blocked_chats:
            return False
        self._t.blocked_chats[chat_id] = (at, reason[:2000])
        return True

    async def unblock(self, chat_id: int) -> bool:
        return self._t.blocked_chats.pop(chat_id, None) is not None

    async def blocked(self, chat_ids: Iterable[int]) -> set[int]:
        return {c for c in chat_ids if c in self._t.blocked_chats}


class FakeTimers(FakeRepository):
    async def schedule(self, case_no: str, kind: TimerKind, due_at: datetime, *, version: int) -> bool:
        wanted = (case_no, TimerKind(kind), version, due_at)
        if any((t.case_no, t.kind, t.version, t.due_at) == wanted for t in self._t.timers.values()):
            return False
        timer_id = self._t.new_id()
        self._t.timers[timer_id] = TimerRow(timer_id, case_no, TimerKind(kind), version, due_at)
        return True

    async def cancel(self, case_no: str, kinds: Iterable[TimerKind] = ()) -> int:
        wanted = {TimerKind(k) for k in kinds}
        dropped = [t.id for t in self._t.timers.values()
                   if t.case_no == case_no and t.done_at is None and (not wanted or t.kind in wanted)]
        for timer_id in dropped:
            del self._t.timers[timer_id]
        return len(dropped)

    async def claim_due(self, *, owner: str, now: datetime, lease_seconds: float, limit: int) -> list[Timer]:
        due = sorted((t for t in self._t.timers.values()
                      if t.done_at is None and t.due_at <= now and _free(t.claim_until, now)),
                     key=lambda t: (t.due_at, t.id))[:limit]
        for row in due:
            row.claimed_by, row.claim_until = owner, now + timedelta(seconds=lease_seconds)
        return [Timer(id=t.id, case_no=t.case_no, kind=t.kind, version=t.version, due_at=t.due_at) for t in due]

    async def done(self, timer_id: int, *, at: datetime) -> None:
        if (row := self._t.timers.get(timer_id)) is not None:
            row.done_at, row.claimed_by, row.claim_until = at, None, None

    async def pending(self, case_no: str) -> list[tuple[TimerKind, datetime]]:
        return [(t.kind, t.due_at) for t in sorted(self._t.timers.values(), key=lambda t: (t.due_at, t.id))
                if t.case_no == case_no and t.done_at is None]


class FakeRefundLedger(FakeRepository):
    def _by_key(self, idempotency_key: str) -> AttemptRow | None:
        return next((r for r in self._t.refunds.values() if r.attempt.idempotency_key == idempotency_key), None)

    async def add(self, attempt: RefundAttempt) -> bool:
        if self._by_key(attempt.idempotency_key) is not None:
            return False
        row_id = self._t.new_id()
        self._t.refunds[row_id] = AttemptRow(row_id, attempt, attempt.created_at)
        return True

    async def for_case(self, case_no: str) -> list[RefundAttempt]:
        return [r.attempt for r in self._t.refunds.values() if r.attempt.case_no == case_no]

    async def for_order(self, order_no: str) -> list[RefundAttempt]:
        of_order = {c.case_no for c in self._t.cases.values() if c.order_no == order_no}
        return [r.attempt for r in self._t.refunds.values() if r.attempt.case_no in of_order]

    async def get(self, idempotency_key: str) -> RefundAttempt | None:
        row = self._by_key(idempotency_key)
        return row.attempt if row is not None else None

    async def set_status(self, idempotency_key: str, status: RefundStatus, *, at: datetime,
                         external_ref: str | None = None, note: str = "", rail_status: str | None = None,
                         error: RailError | None = None) -> None:
        row = self._by_key(idempotency_key)
        if row is None:
            raise KeyError(idempotency_key)
        row.attempt = replace(
            row.attempt, status=status, note=note, error=error,
            external_ref=external_ref if external_ref is not None else row.attempt.external_ref,
            rail_status=rail_status[:32] if rail_status is not None else row.attempt.rail_status)
        row.updated_at = at
        if status is not RefundStatus.PENDING:  # settled or with the platform: no worker holds it any more
            row.claimed_by = row.claim_until = None

    async def mark_sent(self, idempotency_key: str, at: datetime) -> None:
        row = self._by_key(idempotency_key)
        if row is not None and row.attempt.sent_at is None:
            row.attempt = replace(row.attempt, sent_at=at)

    async def pending(self, limit: int = 100) -> list[RefundAttempt]:
        return [r.attempt for r in self._t.refunds.values() if r.attempt.status is RefundStatus.PENDING][:limit]

    async def claim_pending(self, *, gateway: str, owner: str, now: datetime, lease_seconds: float,
                            limit: int) -> list[RefundAttempt]:
        claimed = [r for r in self._t.refunds.values() if r.attempt.gateway == gateway
                   and r.attempt.status is RefundStatus.PENDING and _free(r.claim_until, now)][:limit]
        for row in claimed:
            row.claimed_by, row.claim_until = owner, now + timedelta(seconds=lease_seconds)
        return [r.attempt for r in claimed]

    async def release(self, idempotency_key: str, *, owner: str, until: datetime | None = None) -> bool:
        row = self._by_key(idempotency_key)
        if row is None or row.claimed_by != owner or row.attempt.status is not RefundStatus.PENDING:
            return False
        row.claimed_by, row.claim_until = None, until
        return True


class FakeNonceLedger(FakeRepository):
    async def remember(self, signature: str, at: datetime) -> bool:
        if signature in self._t.nonces:
            return False
        self._t.nonces[signature] = at
        return True

    async def prune(self, before: datetime) -> int:
        old = [s for s, at in self._t.nonces.items() if at < before]
        for signature in old:
            del self._t.nonces[signature]
        return len(old)
