"""Case timers: deadlines and reminders that fire once, across restarts and across processes."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import cast

from sqlalchemy import Table, bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from dialogs.domain import Timer, TimerKind
from dialogs.ports import ConcurrentUpdate
from storage.leases import NOW, LeaseClaim
from storage.models import CaseTimerRow
from storage.repositories import SessionRepository, execute_core, rowcount

_TIMERS = cast(Table, CaseTimerRow.__table__)
_TIMER_SET = select(_TIMERS.c.id).where(
    _TIMERS.c.case_no == bindparam("case_no"), _TIMERS.c.kind == bindparam("kind"),
    _TIMERS.c.version == bindparam("version"), _TIMERS.c.due_at == bindparam("due_at"))
_INSERT_TIMER = insert(_TIMERS)
# Not done, due, and held by nobody (or by a sweeper whose lease ran out).
_CLAIM = LeaseClaim(
    _TIMERS, ready=[_TIMERS.c.done_at.is_(None), _TIMERS.c.due_at <= NOW],
    order_by=[_TIMERS.c.due_at, _TIMERS.c.id],
    returning=[_TIMERS.c.id, _TIMERS.c.case_no, _TIMERS.c.kind, _TIMERS.c.version, _TIMERS.c.due_at])


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
        rows = await _CLAIM.claim(self._session, owner=owner, now=now, lease_seconds=lease_seconds, limit=limit)
        timers = [Timer(id=r.id, case_no=r.case_no, kind=TimerKind(r.kind), version=r.version, due_at=r.due_at)
                  for r in rows]
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
