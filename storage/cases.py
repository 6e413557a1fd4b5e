"""Cases: numbering, filing, status moves with their event log, and searches."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any, cast

from sqlalchemy import Row, Table, bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from dialogs.domain import OPEN_STATUSES, Case, CaseStatus, EvidenceItem, Reason, Verdict
from dialogs.ports import ConcurrentUpdate
from storage.evidence import evidence_from_row
from storage.models import CaseCounterRow, CaseEventRow, CaseRow, EvidenceRow, OrderRow
from storage.repositories import SessionRepository, execute_core, rowcount

_CASES = cast(Table, CaseRow.__table__)
_CASE_BY_NO = select(_CASES).where(_CASES.c.case_no == bindparam("case_no"))
_LOCK_CASE_BY_NO = _CASE_BY_NO.with_for_update()
_CASE_BY_OPEN_KEY = select(_CASES).where(_CASES.c.open_key == bindparam("open_key"))
_INSERT_CASE = insert(_CASES).returning(_CASES.c.id)
_SET_STATUS_MESSAGE = update(_CASES).where(_CASES.c.case_no == bindparam("w_case_no"))
_CASE_EVENTS = cast(Table, CaseEventRow.__table__)
_INSERT_CASE_EVENT = insert(_CASE_EVENTS)
_COUNTERS = cast(Table, CaseCounterRow.__table__)
_LOCK_COUNTER = select(_COUNTERS.c.last).where(_COUNTERS.c.day == bindparam("day")).with_for_update()
_INSERT_COUNTER = insert(_COUNTERS)
_BUMP_COUNTER = update(_COUNTERS).where(_COUNTERS.c.day == bindparam("w_day"))
_DAY = re.compile(r"\d{8}")


def open_key(order_no: str, reason: Reason | str, status: CaseStatus | str) -> str | None:
    """The value of cases.open_key: set while the case is open, so that at most one open case
    exists per order and reason (NULLs do not collide in a UNIQUE index)."""
    if CaseStatus(status) in OPEN_STATUSES:
        return f"{order_no}:{Reason(reason).value}"
    return None


def case_from_row(row: CaseRow | Row[Any], evidence: Sequence[EvidenceItem] = ()) -> Case:
    return Case(
        case_no=row.case_no,
        order_no=row.order_no,
        chat_id=row.chat_id,
        user_id=row.user_id,
        reason=Reason(row.reason),
        verdict=Verdict(row.verdict),
        rule_id=row.rule_id,
        description=row.description,
        amount=row.amount,
        locale=row.locale,
        status=CaseStatus(row.status),
        created_at=row.created_at,
        review_due=row.review_due,
        evidence=tuple(evidence),
        wants_human=row.wants_human,
        version=row.version,
        credit_due=row.credit_due,
        status_message_id=row.status_message_id,
        rating=row.rating,
        rating_comment=row.rating_comment,
        delivered_codes=tuple(row.delivered_codes or ()),
        order_paid=row.order_paid,
    )


class SqlaCaseRepository(SessionRepository):
    async def next_case_no(self, day: str) -> str:
        """Allocate 'R{day}-{n:04d}'. The counter row is locked (FOR UPDATE on PostgreSQL; SQLite
        transactions are already exclusive) until the unit of work ends, so numbers never repeat;
        a rolled-back unit of work leaves no gap either."""
        if not _DAY.fullmatch(day):
            raise ValueError(f"day must be YYYYMMDD, got {day!r}")
        last = await self._locked_counter(day)
        if last is None:
            try:
                # Savepoint: losing the race to create the day's row must not abort the transaction.
                async with self._session.begin_nested():
                    await execute_core(self._session, _INSERT_COUNTER, {"day": day, "last": 1})
                return _format_case_no(day, 1)
            except IntegrityError:
                last = await self._locked_counter(day)
                if last is None:  # pragma: no cover - the winner's row must be visible now
                    raise
        number = last + 1
        await execute_core(self._session, _BUMP_COUNTER, {"w_day": day, "last": number})
        return _format_case_no(day, number)

    async def _locked_counter(self, day: str) -> int | None:
        last: int | None = (await execute_core(self._session, _LOCK_COUNTER, {"day": day})).scalar()
        return last

    async def add(self, case: Case) -> None:
        """Insert the case and its first event. `case.evidence` is not written here: the evidence
        repository binds the draft's rows to the case (`attach`)."""
        now = self._clock()
        key = open_key(case.order_no, case.reason, case.status)
        paid = case.order_paid if case.order_paid is not None else await self._session.scalar(
            select(OrderRow.amount).where(OrderRow.order_no == case.order_no))  # the snapshot: what was paid now
        try:
            # Savepoint: after a unique violation we still need to ask which constraint it was.
            async with self._session.begin_nested():
                case_id = (await execute_core(self._session, _INSERT_CASE, {
                    "case_no": case.case_no, "order_no": case.order_no, "chat_id": case.chat_id,
                    "user_id": case.user_id, "reason": case.reason.value, "verdict": case.verdict.value,
                    "rule_id": case.rule_id, "description": case.description, "amount": case.amount,
                    "locale": case.locale, "status": case.status.value, "wants_human": case.wants_human,
                    "created_at": case.created_at, "review_due": case.review_due, "credit_due": case.credit_due,
                    "status_message_id": None, "rating": None, "rating_comment": None, "updated_at": now,
                    "version": 1, "open_key": key, "delivered_codes": list(case.delivered_codes) or None,
                    "order_paid": paid,
                })).scalar_one()
        except IntegrityError as exc:
            if key is not None and await self._open_key_taken(key):
                raise ConcurrentUpdate(
                    f"an open case for {case.order_no}/{case.reason.value} was filed concurrently"
                ) from exc
            if await self._case_no_taken(case.case_no):
                raise ConcurrentUpdate(f"case number {case.case_no} is taken") from exc
            raise
        await execute_core(self._session, _INSERT_CASE_EVENT, {
            "case_id": case_id, "at": case.created_at, "actor": "customer", "from_status": None,
            "to_status": case.status.value, "note": "",
        })

    async def _open_key_taken(self, key: str) -> bool:
        found = await self._session.scalar(select(CaseRow.id).where(CaseRow.open_key == key))
        return found is not None

    async def _case_no_taken(self, case_no: str) -> bool:
        found = await self._session.scalar(select(CaseRow.id).where(CaseRow.case_no == case_no))
        return found is not None

    async def get(self, case_no: str, *, for_update: bool = False) -> Case | None:
        query = _LOCK_CASE_BY_NO if for_update else _CASE_BY_NO
        row = (await execute_core(self._session, query, {"case_no": case_no})).first()
        if row is None:
            return None
        evidence = await self._evidence_of([case_no])
        return case_from_row(row, evidence.get(case_no, ()))

    async def find_open(self, order_no: str, reason: Reason) -> Case | None:
        key = open_key(order_no, reason, CaseStatus.SUBMITTED)
        row = (await execute_core(self._session, _CASE_BY_OPEN_KEY, {"open_key": key})).first()
        if row is None:
            return None
        evidence = await self._evidence_of([row.case_no])
        return case_from_row(row, evidence.get(row.case_no, ()))

    async def for_order(self, order_no: str) -> list[Case]:
        rows = (await self._session.scalars(
            select(CaseRow).where(CaseRow.order_no == order_no).order_by(CaseRow.created_at, CaseRow.id)
            .execution_options(populate_existing=True))).all()
        return [case_from_row(row, ()) for row in rows]

    async def list_for_user(self, user_id: int, limit: int = 20) -> list[Case]:
        rows = (
            await self._session.scalars(
                select(CaseRow)
                .where(CaseRow.user_id == user_id)
                .order_by(CaseRow.created_at.desc(), CaseRow.id.desc())
                .limit(limit)
                .execution_options(populate_existing=True)
            )
        ).all()
        evidence = await self._evidence_of([row.case_no for row in rows])
        return [case_from_row(row, evidence.get(row.case_no, ())) for row in rows]

    async def set_status(
        self, case_no: str, status: CaseStatus, *, actor: str, at: datetime | None = None, note: str = ""
    ) -> Case:
        """Move a case to `status`, keeping open_key in step and logging an event.
        Raises KeyError for an unknown case."""
        at = at or self._clock()
        row = await self._session.scalar(
            select(CaseRow).where(CaseRow.case_no == case_no).with_for_update()
            .execution_options(populate_existing=True)
        )
        if row is None:
            raise KeyError(case_no)
        previous = row.status
        try:
            async with self._session.begin_nested():
                await self._session.execute(
                    update(CaseRow)
                    .where(CaseRow.id == row.id)
                    .values(
                        status=status.value,
                        open_key=open_key(row.order_no, row.reason, status),
                        updated_at=at,
                        version=CaseRow.version + 1,
                    )
                    .execution_options(synchronize_session=False)
                )
        except IntegrityError as exc:  # reopening while another case for the same order+reason is open
            raise ConcurrentUpdate(f"another open case exists for {row.order_no}/{row.reason}") from exc
        await self._session.execute(
            insert(CaseEventRow).values(
                case_id=row.id, at=at, actor=actor, from_status=previous, to_status=status.value, note=note
            )
        )
        found = await self.get(case_no)
        assert found is not None
        return found

    async def log(self, case_no: str, *, actor: str, at: datetime, note: str) -> None:
        row = (await self._session.execute(
            select(CaseRow.id, CaseRow.status).where(CaseRow.case_no == case_no))).first()
        if row is None:
            raise KeyError(case_no)
        await execute_core(self._session, _INSERT_CASE_EVENT, {
            "case_id": row.id, "at": at, "actor": actor, "from_status": row.status, "to_status": row.status,
            "note": note[:2000]})

    async def _update(self, case_no: str, **values: Any) -> None:
        result = await self._session.execute(
            update(CaseRow).where(CaseRow.case_no == case_no).values(**values)
            .execution_options(synchronize_session=False)
        )
        if rowcount(result) == 0:
            raise KeyError(case_no)

    async def set_due(self, case_no: str, *, review_due: date | None = None, credit_due: date | None = None) -> None:
        values: dict[str, Any] = {"updated_at": self._clock()}
        if review_due is not None:
            values["review_due"] = review_due
        if credit_due is not None:
            values["credit_due"] = credit_due
        await self._update(case_no, **values)

    async def set_status_message(self, case_no: str, message_id: int | None) -> None:
        # Every delivered status card: prebuilt.
        result = await execute_core(self._session, _SET_STATUS_MESSAGE,
                                    {"w_case_no": case_no, "status_message_id": message_id})
        if rowcount(result) == 0:
            raise KeyError(case_no)

    async def rate(self, case_no: str, rating: int, comment: str | None) -> None:
        await self._update(case_no, rating=rating, rating_comment=comment, updated_at=self._clock())

    async def search(self, *, statuses: Iterable[CaseStatus] = (), since: datetime | None = None,
                     until: datetime | None = None, limit: int | None = None) -> list[Case]:
        query = select(CaseRow).order_by(CaseRow.created_at, CaseRow.id).execution_options(populate_existing=True)
        wanted = [CaseStatus(s).value for s in statuses]
        if wanted:
            query = query.where(CaseRow.status.in_(wanted))
        if since is not None:
            query = query.where(CaseRow.created_at >= since)
        if until is not None:
            query = query.where(CaseRow.created_at < until)
        if limit is not None:
            query = query.limit(limit)
        rows = (await self._session.scalars(query)).all()
        evidence = await self._evidence_of([row.case_no for row in rows])
        return [case_from_row(row, evidence.get(row.case_no, ())) for row in rows]

    async def count_by_status(self) -> dict[CaseStatus, int]:
        rows = await self._session.execute(select(CaseRow.status, func.count()).group_by(CaseRow.status))
        return {CaseStatus(status): int(count) for status, count in rows}

    async def events(self, case_no: str) -> list[tuple[str | None, str, str]]:
        """(from_status, to_status, actor) of a case, oldest first; for audits and tests."""
        rows = await self._session.execute(
            select(CaseEventRow.from_status, CaseEventRow.to_status, CaseEventRow.actor)
            .join(CaseRow, CaseRow.id == CaseEventRow.case_id)
            .where(CaseRow.case_no == case_no)
            .order_by(CaseEventRow.id)
        )
        return [(r.from_status, r.to_status, r.actor) for r in rows]

    async def _evidence_of(self, case_nos: Sequence[str]) -> dict[str, list[EvidenceItem]]:
        found: dict[str, list[EvidenceItem]] = {}
        for start in range(0, len(case_nos), 500):  # bounded IN lists for big exports
            rows = await self._session.scalars(
                select(EvidenceRow).where(EvidenceRow.case_no.in_(case_nos[start:start + 500]))
                .order_by(EvidenceRow.id)
            )
            for row in rows:
                assert row.case_no is not None
                found.setdefault(row.case_no, []).append(evidence_from_row(row))
        return found


def _format_case_no(day: str, number: int) -> str:
    return f"R{day}-{number:04d}"
