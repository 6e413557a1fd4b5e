"""Case timers: deadlines and reminders that fire once, across restarts and across processes."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import ColumnElement, Table, and_, bindparam, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from dialogs.domain import Timer, TimerKind
from dialogs.ports import ConcurrentUpdate
from storage.models import CaseTimerRow
from storage.repositories import SessionRepository, execute_core, rowcount


def _claimable(now: datetime) -> ColumnElement[bool]:
    return and_(
        CaseTimerRow.done_at.is_(None),
        CaseTimerRow.due_at <= now,
        or_(CaseTimerRow.claim_until.is_(None), CaseTimerRow.claim_until < now),
    )


_TIMERS = cast(Table, CaseTimerRow.__table__)
_TIMER_SET = select(_TIMERS.c.id).where(
    _TIMERS.c.case_no == bindparam("case_no"), _TIMERS.c.kind == bindparam("kind"),
    _TIMERS.c.version == bindparam("version"), _TIMERS.c.due_at == bindparam("due_at"))
_INSERT_TIMER = insert(_TIMERS)


class SqlaTimers(SessionRepository):
    async def schedule(self, case_no: str, kind: TimerKind, due_at: datetime, *, version: int) -> bool:
        # Prebuilt Core: every filed case schedules its review timer.
        values = {"case_no": case_no, "kind": kind.value, "version": version, "due_at": due_at}
        if (await execute_core(self._session, _TIMER_SET, values)).first() is not None:
            return False
        try:
            await execute_core(self._session, _INSERT_TIMER, values)
        except IntegrityError as exc:  # the same timer set by a concurrent transaction: retry the work
            raise ConcurrentUpdate(f"timer {kind.value} of {case_no} set concurrently") from exc
        return True

    async def cancel(self, case_no: str, kinds: Iterable[TimerKind] = ()) -> int:
        query = delete(CaseTimerRow).where(CaseTimerRow.case_no == case_no, CaseTimerRow.done_at.is_(None))
        wanted = [TimerKind(k).value for k in kinds]
        if wanted:
            query = query.where(CaseTimerRow.kind.in_(wanted))
        return rowcount(await self._session.execute(query.execution_options(synchronize_session=False)))

    async def claim_due(self, *, owner: str, now: datetime, lease_seconds: float, limit: int) -> list[Timer]:
        # Two statements in one transaction, as the outbox claims (storage.delivery.SqlaOutbox.claim):
        # the SELECT picks and, on PostgreSQL, locks the rows (FOR UPDATE SKIP LOCKED passes over rows
        # another sweeper is claiming right now; a row it has just committed is re-checked against the
        # WHERE and dropped), the UPDATE stamps the lease on exactly those. Not one UPDATE ... WHERE id
        # IN (SELECT ... LIMIT n): PostgreSQL may rescan that subquery per outer row and claim more
        # than `limit` timers. SQLite serialises writers (BEGIN IMMEDIATE) and ignores FOR UPDATE.
        ids = list(await self._session.scalars(
            select(CaseTimerRow.id).where(_claimable(now)).order_by(CaseTimerRow.due_at, CaseTimerRow.id)
            .limit(limit).with_for_update(skip_locked=True)
        ))
        if not ids:
            return []
        result = await self._session.execute(
            update(CaseTimerRow)
            .where(CaseTimerRow.id.in_(ids), _claimable(now))
            .values(claimed_by=owner, claim_until=now + timedelta(seconds=lease_seconds))
            .returning(CaseTimerRow.id, CaseTimerRow.case_no, CaseTimerRow.kind, CaseTimerRow.version,
                       CaseTimerRow.due_at)
            .execution_options(synchronize_session=False)
        )
        timers = [Timer(id=r.id, case_no=r.case_no, kind=TimerKind(r.kind), version=r.version, due_at=r.due_at)
                  for r in result]
        return sorted(timers, key=lambda t: (t.due_at, t.id))  # RETURNING order is not guaranteed

    async def done(self, timer_id: int, *, at: datetime) -> None:
        await self._session.execute(
            update(CaseTimerRow).where(CaseTimerRow.id == timer_id)
            .values(done_at=at, claimed_by=None, claim_until=None)
            .execution_options(synchronize_session=False)
        )

    async def pending(self, case_no: str) -> list[tuple[TimerKind, datetime]]:
        rows = await self._session.execute(
            select(CaseTimerRow.kind, CaseTimerRow.due_at)
            .where(CaseTimerRow.case_no == case_no, CaseTimerRow.done_at.is_(None))
            .order_by(CaseTimerRow.due_at, CaseTimerRow.id)
        )
        return [(TimerKind(kind), due_at) for kind, due_at in rows]
