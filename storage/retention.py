"""Evidence retention (`[storage] keep_days`): what a case closed long ago no longer needs goes — its
evidence rows (the sweep then deletes the files no row names) and the buyer's phone number on its
order once no case of the order is open or recently closed. The case keeps a note in its history."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.orm import aliased

from dialogs.domain import OPEN_STATUSES, CaseStatus
from storage.models import CaseRow, EvidenceRow, OrderRow
from storage.repositories import rowcount
from storage.uow import Database

CLOSED = tuple(s.value for s in CaseStatus if s not in OPEN_STATUSES)
RETENTION_ACTOR = "retention"


@dataclass(frozen=True, slots=True)
class Purged:
    cases: int  # cases that got a "purged" note
    evidence_rows: int
    phones: int  # orders whose buyer phone number was erased


async def purge_closed(database: Database, *, now: datetime, keep_days: float, batch: int = 500) -> Purged:
    """Purge the cases closed (last changed) more than `keep_days` before `now`, at most `batch` per call."""
    before = now - timedelta(days=keep_days)
    other = aliased(CaseRow)
    old_closed = (CaseRow.status.in_(CLOSED), CaseRow.updated_at < before)
    async with database.uow() as uow:
        session = uow.session
        counts = dict((await session.execute(
            select(CaseRow.case_no, func.count()).join(EvidenceRow, EvidenceRow.case_no == CaseRow.case_no)
            .where(*old_closed).group_by(CaseRow.case_no).order_by(CaseRow.case_no).limit(batch))).tuples().all())
        # An order's phone goes only when every case of it is closed and old: an open case may still need it.
        phones = dict((await session.execute(
            select(OrderRow.order_no, func.min(CaseRow.case_no)).join(CaseRow, CaseRow.order_no == OrderRow.order_no)
            .where(OrderRow.buyer_phone != "", *old_closed,
                   ~exists().where(other.order_no == OrderRow.order_no,
                                   other.status.not_in(CLOSED) | (other.updated_at >= before)))
            .group_by(OrderRow.order_no).limit(batch))).tuples().all())
        evidence_rows = 0
        if counts:
            evidence_rows = rowcount(await session.execute(
                delete(EvidenceRow).where(EvidenceRow.case_no.in_(list(counts)))
                .execution_options(synchronize_session=False)))
        if phones:
            await session.execute(update(OrderRow).where(OrderRow.order_no.in_(list(phones)))
                                  .values(buyer_phone="").execution_options(synchronize_session=False))
        notes: dict[str, list[str]] = {}
        for case_no, files in counts.items():
            notes.setdefault(case_no, []).append(f"evidence purged ({files} files)")
        for order_no, case_no in phones.items():
            notes.setdefault(case_no, []).append(f"buyer phone of order {order_no} erased")
        for case_no, parts in sorted(notes.items()):
            await uow.cases.log(case_no, actor=RETENTION_ACTOR, at=now,
                                note=f"{'; '.join(parts)}: closed more than {keep_days:g} days ago")
        await uow.commit()
    return Purged(len(notes), evidence_rows, len(phones))
