"""The agents' desk: items with their topic, card and owner; the audit log; copied-message links;
approvals waiting for a second person."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, delete, func, insert, nulls_last, select, update
from sqlalchemy.exc import IntegrityError

from dialogs.domain import Case, Delivery, DeskItem, MessageLink
from dialogs.ports import CaseEventRecord
from storage.cases import case_from_row
from storage.models import (
    CaseEventRow,
    CaseRow,
    DeskAuditRow,
    DeskItemRow,
    MessageLinkRow,
    OutboxRow,
    PendingApprovalRow,
)
from storage.repositories import SessionRepository, rowcount


def _item(row: Any) -> DeskItem:
    return DeskItem(key=row.key, chat_id=row.chat_id, user_id=row.user_id, opened_at=row.opened_at,
                    case_no=row.case_no, thread_id=row.thread_id, card_message_id=row.card_message_id,
                    owner_id=row.owner_id, owner_since=row.owner_since, owner_active_at=row.owner_active_at,
                    reminded_at=row.reminded_at, closed_at=row.closed_at)


def _delivery(row: Any) -> Delivery:
    return Delivery(id=row.id, kind=row.kind, chat_id=row.chat_id, dedupe_key=row.dedupe_key, payload=row.payload,
                    attempts=row.attempts, created_at=row.created_at)


_DELIVERY_COLUMNS = (OutboxRow.id, OutboxRow.kind, OutboxRow.chat_id, OutboxRow.dedupe_key, OutboxRow.payload,
                     OutboxRow.attempts, OutboxRow.created_at)


def _link(row: Any) -> MessageLink:
    return MessageLink(key=row.key, direction=row.direction, source_chat_id=row.source_chat_id,
                       source_message_id=row.source_message_id, copy_chat_id=row.copy_chat_id,
                       copy_message_id=row.copy_message_id)


_ITEM = select(DeskItemRow).execution_options(populate_existing=True)


class SqlaDeskRepository(SessionRepository):
    async def get(self, key: str, *, for_update: bool = False) -> DeskItem | None:
        query = _ITEM.where(DeskItemRow.key == key)
        row = await self._session.scalar(query.with_for_update() if for_update else query)
        return _item(row) if row is not None else None

    async def open(self, item: DeskItem) -> bool:
        """Insert, or reopen a closed item of the same key (a case back in the queue keeps its topic)."""
        row = await self._session.scalar(_ITEM.where(DeskItemRow.key == item.key).with_for_update())
        if row is not None:
            if row.closed_at is None:
                return False
            await self._set(item.key, closed_at=None, opened_at=item.opened_at, owner_id=None, owner_since=None,
                            owner_active_at=None, reminded_at=None)
            return True
        try:
            async with self._session.begin_nested():
                await self._session.execute(insert(DeskItemRow).values(
                    key=item.key, case_no=item.case_no, chat_id=item.chat_id, user_id=item.user_id,
                    thread_id=item.thread_id, card_message_id=item.card_message_id, owner_id=None,
                    opened_at=item.opened_at, closed_at=None))
        except IntegrityError:  # opened concurrently: the same fact
            return False
        return True

    async def _set(self, key: str, **values: Any) -> int:
        return rowcount(await self._session.execute(
            update(DeskItemRow).where(DeskItemRow.key == key).values(**values)
            .execution_options(synchronize_session=False)))

    async def close(self, key: str, *, at: datetime) -> None:
        await self._set(key, closed_at=at, owner_id=None, owner_since=None, owner_active_at=None, reminded_at=None)

    async def owned_in_chat(self, chat_id: int) -> DeskItem | None:
        row = await self._session.scalar(
            _ITEM.where(DeskItemRow.chat_id == chat_id, DeskItemRow.owner_id.is_not(None),
                        DeskItemRow.closed_at.is_(None)).order_by(DeskItemRow.owner_since.desc()).limit(1))
        return _item(row) if row is not None else None

    async def by_thread(self, thread_id: int) -> DeskItem | None:
        row = await self._session.scalar(_ITEM.where(DeskItemRow.thread_id == thread_id).limit(1))
        return _item(row) if row is not None else None

    async def set_topic(self, key: str, *, thread_id: int | None, card_message_id: int | None) -> None:
        if await self._set(key, thread_id=thread_id, card_message_id=card_message_id) == 0:
            raise KeyError(key)

    async def take(self, key: str, agent_id: int, *, at: datetime) -> int | None:
        # Compare-and-set: of two agents pressing Take at once exactly one UPDATE matches.
        await self._session.execute(
            update(DeskItemRow)
            .where(DeskItemRow.key == key, DeskItemRow.owner_id.is_(None), DeskItemRow.closed_at.is_(None))
            .values(owner_id=agent_id, owner_since=at, owner_active_at=at, reminded_at=None)
            .execution_options(synchronize_session=False))
        owner: int | None = await self._session.scalar(select(DeskItemRow.owner_id).where(DeskItemRow.key == key))
        return owner

    async def release(self, key: str, *, at: datetime) -> None:
        await self._set(key, owner_id=None, owner_since=None, owner_active_at=None, reminded_at=None)

    async def touch(self, key: str, *, at: datetime) -> None:
        await self._set(key, owner_active_at=at, reminded_at=None)

    async def mark_reminded(self, key: str, *, at: datetime) -> None:
        await self._set(key, reminded_at=at)

    async def idle_owned(self, before: datetime) -> list[DeskItem]:
        rows = await self._session.scalars(
            _ITEM.where(DeskItemRow.owner_id.is_not(None), DeskItemRow.closed_at.is_(None),
                        DeskItemRow.owner_active_at < before).order_by(DeskItemRow.owner_active_at))
        return [_item(row) for row in rows]

    async def queue(self, limit: int = 50) -> list[tuple[DeskItem, Case | None]]:
        rows = await self._session.execute(
            select(DeskItemRow, CaseRow)
            .outerjoin(CaseRow, CaseRow.case_no == DeskItemRow.case_no)
            .where(DeskItemRow.closed_at.is_(None))
            .order_by(nulls_last(CaseRow.review_due.asc()), DeskItemRow.opened_at, DeskItemRow.key)
            .limit(limit).execution_options(populate_existing=True))
        return [(_item(item), case_from_row(case) if case is not None else None) for item, case in rows]

    async def audit(self, *, actor_id: int, key: str | None, action: str, allowed: bool, at: datetime,
                    detail: str = "") -> None:
        await self._session.execute(insert(DeskAuditRow).values(
            at=at, actor_id=actor_id, key=key, action=action[:32], allowed=allowed, detail=detail[:2000]))

    async def refused_attempts(self, actor_id: int) -> int:
        count = await self._session.scalar(select(func.count()).select_from(DeskAuditRow).where(
            DeskAuditRow.actor_id == actor_id, DeskAuditRow.allowed.is_(False)))
        return int(count or 0)

    async def add_link(self, link: MessageLink) -> bool:
        if await self.find_link(link.source_chat_id, link.source_message_id, link.direction) is not None:
            return False
        try:
            async with self._session.begin_nested():
                await self._session.execute(insert(MessageLinkRow).values(
                    key=link.key, direction=link.direction, source_chat_id=link.source_chat_id,
                    source_message_id=link.source_message_id, copy_chat_id=link.copy_chat_id,
                    copy_message_id=link.copy_message_id))
        except IntegrityError:
            return False
        return True

    def _source(self, source_chat_id: int, source_message_id: int, direction: str) -> Any:
        return and_(MessageLinkRow.source_chat_id == source_chat_id,
                    MessageLinkRow.source_message_id == source_message_id, MessageLinkRow.direction == direction)

    async def set_link_copy(self, source_chat_id: int, source_message_id: int, direction: str,
                            copy_message_id: int) -> None:
        await self._session.execute(
            update(MessageLinkRow).where(self._source(source_chat_id, source_message_id, direction))
            .values(copy_message_id=copy_message_id).execution_options(synchronize_session=False))

    async def find_link(self, source_chat_id: int, source_message_id: int, direction: str) -> MessageLink | None:
        row = (await self._session.execute(
            select(MessageLinkRow).where(self._source(source_chat_id, source_message_id, direction))
            .execution_options(populate_existing=True))).scalar()
        return _link(row) if row is not None else None

    async def request_approval(self, case_no: str, *, amount: Decimal, agent_id: int, at: datetime) -> None:
        await self.clear_approval(case_no)
        await self._session.execute(insert(PendingApprovalRow).values(
            case_no=case_no, amount=amount, requested_by=agent_id, requested_at=at))

    async def pending_approval(self, case_no: str) -> tuple[Decimal, int] | None:
        row = (await self._session.execute(
            select(PendingApprovalRow.amount, PendingApprovalRow.requested_by)
            .where(PendingApprovalRow.case_no == case_no))).first()
        return (row.amount, row.requested_by) if row is not None else None

    async def clear_approval(self, case_no: str) -> None:
        await self._session.execute(delete(PendingApprovalRow).where(PendingApprovalRow.case_no == case_no)
                                    .execution_options(synchronize_session=False))

    async def history(self, case_no: str, limit: int = 12) -> list[CaseEventRecord]:
        rows = await self._session.execute(
            select(CaseEventRow.at, CaseEventRow.actor, CaseEventRow.from_status, CaseEventRow.to_status,
                   CaseEventRow.note)
            .join(CaseRow, CaseRow.id == CaseEventRow.case_id)
            .where(CaseRow.case_no == case_no)
            .order_by(CaseEventRow.id.desc()).limit(limit))
        return [CaseEventRecord(at=r.at, actor=r.actor, from_status=r.from_status, to_status=r.to_status,
                                note=r.note or "") for r in reversed(rows.all())]

    async def queued_after(self, chat_id: int, after_id: int, limit: int = 200) -> list[Delivery]:
        # The open rows of one chat: served by the outbox's partial index of open rows by chat.
        rows = await self._session.execute(
            select(*_DELIVERY_COLUMNS)
            .where(OutboxRow.chat_id == chat_id, OutboxRow.id > after_id, OutboxRow.sent_at.is_(None),
                   OutboxRow.dead_at.is_(None))
            .order_by(OutboxRow.id).limit(limit))
        return [_delivery(r) for r in rows]

    async def delivered_as(self, chat_id: int, message_id: int, kinds: Iterable[str]) -> list[Delivery]:
        rows = await self._session.execute(
            select(*_DELIVERY_COLUMNS)
            .where(OutboxRow.chat_id == chat_id, OutboxRow.message_id == message_id,
                   OutboxRow.kind.in_(list(kinds)), OutboxRow.sent_at.is_not(None))
            .order_by(OutboxRow.id))
        return [_delivery(r) for r in rows]
