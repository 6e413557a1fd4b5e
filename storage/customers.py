"""A customer's personal data (PIPL): everything we hold about a Telegram user, and erasing it while
the money records finance and audit need stay (case numbers, amounts, statuses, refund attempts).

What `forget` erases: conversations (their messages and drafts), pending agent requests, the outbox
rows to their chats, message links and delivery state of their chats, their evidence rows (the caller
deletes the files no row names any more), the customer's own words on their cases (description, rating
comment, the customer's notes in the history) and the contact on their orders (phone number, the
Telegram binding). Kept: the case rows with their numbers, amounts, statuses and the Telegram id they
were filed under, the agents' history entries, refund attempts, desk items and the audit."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import and_, delete, or_, select, update

from dialogs.ledger import IN_FLIGHT
from storage.models import (
    AgentRequestRow,
    Base,
    CaseEventRow,
    CaseRow,
    ChatDeliveryRow,
    ConversationRow,
    EvidenceRow,
    MessageLinkRow,
    OrderRow,
    OutboxRow,
    ProcessedUpdateRow,
    RefundAttemptRow,
)
from storage.repositories import rowcount
from storage.uow import Database

CUSTOMER_ACTOR = "customer"
_DESK_COPIES = ("agent:{chat}:%", "desk:copy:%:{chat}:%", "desk:edit:%:{chat}:%")  # how the case history records the customer's own entries


class PayoutInFlight(Exception):
    """A case of the customer has a refund attempt whose outcome is not known yet."""

    def __init__(self, case_no: str, key: str) -> None:
        super().__init__(f"case {case_no} has a payout in flight (attempt {key}); forget them once it has settled")
        self.case_no = case_no


@dataclass(frozen=True, slots=True)
class Forgotten:
    cases: int
    orders: int
    conversations: int
    evidence_rows: int
    orphaned_files: tuple[str, ...]  # evidence files no row names any more: the caller deletes them


def _plain(row: Base, skip: Sequence[str] = ()) -> dict[str, Any]:
    """A row's columns as JSON-ready values (times as ISO 8601, amounts as text)."""
    out: dict[str, Any] = {}
    for column in row.__table__.columns:
        if column.key in skip:
            continue
        value = getattr(row, column.key)
        out[column.key] = value.isoformat() if hasattr(value, "isoformat") else (
            str(value) if value is not None and not isinstance(value, (bool, int, str, dict, list)) else value)
    return out


async def _chats(database: Database, user_id: int) -> tuple[set[int], list[str]]:
    """The user's chats (private chat, conversations, cases) and case numbers."""
    async with database.uow() as uow:
        session = uow.session
        chats = {user_id}
        chats.update((await session.scalars(select(ConversationRow.chat_id).where(ConversationRow.user_id == user_id))).all())
        cases = (await session.execute(select(CaseRow.case_no, CaseRow.chat_id).where(CaseRow.user_id == user_id)
                                       .order_by(CaseRow.id))).all()
    chats.update(chat for _, chat in cases)
    return chats, [case_no for case_no, _ in cases]


async def customer_data(database: Database, user_id: int) -> dict[str, Any]:
    """Everything we hold about the user, as one JSON-ready document (evidence as file paths)."""
    chats, case_nos = await _chats(database, user_id)
    async with database.uow() as uow:
        session = uow.session
        cases = (await session.scalars(select(CaseRow).where(CaseRow.case_no.in_(case_nos)).order_by(CaseRow.id))).all()
        order_nos = {case.order_no for case in cases}
        orders = (await session.scalars(select(OrderRow).where(
            or_(OrderRow.buyer_telegram_id == user_id, OrderRow.order_no.in_(order_nos))).order_by(OrderRow.order_no))).all()
        document: dict[str, Any] = {
            "telegram_user_id": user_id,
            "chats": sorted(chats),
            "conversations": [_plain(r) for r in (await session.scalars(
                select(ConversationRow).where(ConversationRow.chat_id.in_(chats)))).all()],
            "orders": [_plain(r) for r in orders],
            "cases": [],
            "evidence": [_plain(r, skip=("file_id",)) for r in (await session.scalars(
                select(EvidenceRow).where(or_(EvidenceRow.case_no.in_(case_nos), EvidenceRow.chat_id.in_(chats)))
                .order_by(EvidenceRow.id))).all()],
            "agent_requests": [_plain(r) for r in (await session.scalars(
                select(AgentRequestRow).where(AgentRequestRow.chat_id.in_(chats)).order_by(AgentRequestRow.id))).all()],
            "messages_to_them": [_plain(r, skip=("claimed_by", "claim_until")) for r in (await session.scalars(
                select(OutboxRow).where(OutboxRow.chat_id.in_(chats)).order_by(OutboxRow.id))).all()],
        }
        for case in cases:
            entry = _plain(case, skip=("open_key", "status_message_id"))
            entry["history"] = [_plain(e, skip=("id", "case_id")) for e in (await session.scalars(
                select(CaseEventRow).where(CaseEventRow.case_id == case.id).order_by(CaseEventRow.id))).all()]
            entry["refund_attempts"] = [_plain(a, skip=("id", "claimed_by", "claim_until")) for a in (await session.scalars(
                select(RefundAttemptRow).where(RefundAttemptRow.case_no == case.case_no)
                .order_by(RefundAttemptRow.id))).all()]
            document["cases"].append(entry)
    return document


async def forget_customer(database: Database, user_id: int, *, actor: str, actor_id: int | None,
                          at: datetime) -> Forgotten:
    """Erase the user's personal data in one transaction (see the module's docstring); each case gets
    an entry in its history naming `actor`, and the desk audit a "forget" row (`actor_id`: the agent's
    Telegram id, 0 for a person named on the command line). Raises PayoutInFlight, changing nothing, while a refund
    attempt of theirs is pending or with the gateway."""
    chats, case_nos = await _chats(database, user_id)
    async with database.uow() as uow:
        session = uow.session
        for case_no in case_nos:
            await session.scalar(select(CaseRow.id).where(CaseRow.case_no == case_no).with_for_update())
        flying = (await session.execute(
            select(RefundAttemptRow.case_no, RefundAttemptRow.idempotency_key)
            .where(RefundAttemptRow.case_no.in_(case_nos), RefundAttemptRow.status.in_([s.value for s in IN_FLIGHT]))
            .limit(1))).first()
        if flying is not None:
            raise PayoutInFlight(flying[0], flying[1])

        evidence = (await session.execute(select(EvidenceRow.id, EvidenceRow.sha256, EvidenceRow.path).where(
            or_(EvidenceRow.case_no.in_(case_nos), EvidenceRow.chat_id.in_(chats))))).all()
        await session.execute(delete(EvidenceRow).where(EvidenceRow.id.in_([e.id for e in evidence]))
                              .execution_options(synchronize_session=False))
        still_named = set((await session.scalars(select(EvidenceRow.sha256).where(
            EvidenceRow.sha256.in_({e.sha256 for e in evidence})))).all())
        orphaned = tuple(sorted({e.path for e in evidence if e.sha256 not in still_named}))

        order_nos = set((await session.scalars(select(CaseRow.order_no).where(CaseRow.case_no.in_(case_nos)))).all())
        orders = await session.execute(
            update(OrderRow).where(or_(OrderRow.buyer_telegram_id == user_id, OrderRow.order_no.in_(order_nos)))
            .values(buyer_phone="", buyer_telegram_id=None).execution_options(synchronize_session=False))
        await session.execute(update(CaseRow).where(CaseRow.case_no.in_(case_nos))
                              .values(description="", rating_comment=None).execution_options(synchronize_session=False))
        case_ids = select(CaseRow.id).where(CaseRow.case_no.in_(case_nos)).scalar_subquery()
        await session.execute(update(CaseEventRow).where(CaseEventRow.case_id.in_(case_ids),
                                                         CaseEventRow.actor == CUSTOMER_ACTOR)
                              .values(note="").execution_options(synchronize_session=False))
        conversations = await session.execute(delete(ConversationRow).where(ConversationRow.chat_id.in_(chats)))
        for statement in (
            delete(AgentRequestRow).where(or_(AgentRequestRow.chat_id.in_(chats), AgentRequestRow.user_id == user_id)),
            delete(OutboxRow).where(OutboxRow.chat_id.in_(chats)),
            # Their messages copied to the desk and their agent requests, once delivered (an undelivered
            # row is the relay's to finish); the dedupe keys name the source chat (dialogs/desk/takeover.py).
            delete(OutboxRow).where(and_(or_(*[OutboxRow.dedupe_key.like(pattern.format(chat=chat)) for chat in chats
                                               for pattern in _DESK_COPIES]),
                                         or_(OutboxRow.sent_at.is_not(None), OutboxRow.dead_at.is_not(None)))),
            delete(MessageLinkRow).where(or_(MessageLinkRow.source_chat_id.in_(chats),
                                             MessageLinkRow.copy_chat_id.in_(chats))),
            delete(ChatDeliveryRow).where(ChatDeliveryRow.chat_id.in_(chats)),
            delete(ProcessedUpdateRow).where(ProcessedUpdateRow.chat_id.in_(chats)),
        ):
            await session.execute(statement.execution_options(synchronize_session=False))
        for case_no in case_nos:
            await uow.cases.log(case_no, actor=actor, at=at, note="the customer's personal data was erased (PIPL)")
        await uow.desk.audit(actor_id=actor_id or 0, key=None, action="forget_customer", allowed=True, at=at,
                             detail=f"user {user_id} by {actor}: {len(case_nos)} cases, {len(evidence)} evidence rows")
        await uow.commit()
    return Forgotten(cases=len(case_nos), orders=rowcount(orders), conversations=rowcount(conversations),
                     evidence_rows=len(evidence), orphaned_files=orphaned)


def scrub_sqlite(path: Path) -> bool:
    """Rewrite a SQLite file so erased values leave no trace in its free pages or its WAL (VACUUM, then
    a truncating checkpoint). False when another connection kept it busy: run it again later."""
    connection = sqlite3.connect(path, isolation_level=None, timeout=10)
    try:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        connection.execute("VACUUM")
        busy = connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        return not busy
    except sqlite3.OperationalError:
        return False
    finally:
        connection.close()
