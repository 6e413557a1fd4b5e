"""SQLAlchemy implementations of the dialogs ports.

Repositories share the unit of work's session and never commit. Rows are mapped to and from the
domain dataclasses explicitly. Where a concurrent writer makes an INSERT lose a uniqueness race,
`ConcurrentUpdate` is raised: the caller retries the whole unit of work, and the retry's checks
then see the winner's row.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import (
    CursorResult,
    Executable,
    Result,
    Row,
    Table,
    bindparam,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from dialogs.clock import Clock, utcnow
from dialogs.domain import (
    OPEN_STATUSES,
    AgentRequest,
    Case,
    CaseStatus,
    Conversation,
    DeliveryStatus,
    EvidenceItem,
    Order,
    PaymentChannel,
    ProductKind,
    Reason,
    Verdict,
)
from dialogs.io import Button, Reply
from dialogs.ports import ConcurrentUpdate, LookupTally
from storage.models import (
    AgentRequestRow,
    CaseCounterRow,
    CaseEventRow,
    CaseRow,
    ConversationRow,
    EvidenceRow,
    LookupFailureRow,
    OrderRow,
    ProcessedUpdateRow,
)


def rowcount(result: Any) -> int:
    # session.execute() is typed as returning Result; DML statements give a CursorResult.
    return cast(CursorResult[Any], result).rowcount


async def execute_core(session: AsyncSession, statement: Executable, params: dict[str, Any]) -> Result[Any]:
    """Run a prebuilt Core statement on the session's connection.

    For the statements every update runs: about 40 µs on SQLite instead of 200+ µs through the ORM
    (no statement building, no identity map), measured with scripts/bench_dialog.py in mind."""
    connection = await session.connection()
    return await connection.execute(statement, params)


class SessionRepository:
    """What every repository holds: the unit of work's session (never committed here) and a clock."""

    def __init__(self, session: AsyncSession, clock: Clock = utcnow) -> None:
        self._session = session
        self._clock = clock


_ORDERS = cast(Table, OrderRow.__table__)
_GET_ORDER = select(_ORDERS).where(_ORDERS.c.order_no == bindparam("order_no"))
_LOCK_ORDER = _GET_ORDER.with_for_update()
_CONVERSATIONS = cast(Table, ConversationRow.__table__)
_LOAD_CONVERSATION = (
    select(_CONVERSATIONS).where(_CONVERSATIONS.c.chat_id == bindparam("chat_id")).with_for_update()
)
_INSERT_CONVERSATION = insert(_CONVERSATIONS)
# SET takes the parameters named like columns; WHERE the w_ ones.
_UPDATE_CONVERSATION = update(_CONVERSATIONS).where(
    _CONVERSATIONS.c.chat_id == bindparam("w_chat_id"), _CONVERSATIONS.c.version == bindparam("w_version")
)
# Not a step of the dialog, so no new version: a save from a conversation loaded earlier may bring the
# replies back, and they are sent once more at worst.
_SETTLE_REPLIES = update(_CONVERSATIONS).where(
    _CONVERSATIONS.c.chat_id == bindparam("w_chat_id"),
    _CONVERSATIONS.c.unconfirmed_update == bindparam("w_update_id"),
)
_UPDATES = cast(Table, ProcessedUpdateRow.__table__)
_CLAIMED = select(_UPDATES.c.update_id).where(_UPDATES.c.update_id == bindparam("update_id"))
_CLAIM = insert(_UPDATES)
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
_EVIDENCE = cast(Table, EvidenceRow.__table__)
_EVIDENCE_IN_DRAFT = select(_EVIDENCE.c.id).where(
    _EVIDENCE.c.draft_id == bindparam("draft_id"), _EVIDENCE.c.file_unique_id == bindparam("file_unique_id"))
_INSERT_EVIDENCE = insert(_EVIDENCE)
_LIST_DRAFT = select(_EVIDENCE).where(_EVIDENCE.c.draft_id == bindparam("draft_id")).order_by(_EVIDENCE.c.id)
_ATTACH = (  # only unbound rows: evidence already bound to a case stays with it
    update(_EVIDENCE).where(_EVIDENCE.c.draft_id == bindparam("w_draft_id"), _EVIDENCE.c.case_no.is_(None))
)


# --- orders -----------------------------------------------------------------------------------


def tags_to_text(tags: Iterable[str]) -> str:
    cleaned = sorted({tag.strip() for tag in tags if tag.strip()})
    for tag in cleaned:
        if "," in tag:
            raise ValueError(f"tag contains a comma: {tag!r}")
    return ",".join(cleaned)


def tags_from_text(text: str) -> frozenset[str]:
    return frozenset(tag for tag in text.split(",") if tag)


def order_values(order: Order, now: datetime) -> dict[str, Any]:
    """Column values of an order row (shared with the bulk importer)."""
    return {
        "order_no": order.order_no,
        "buyer_phone": order.buyer_phone,
        "buyer_telegram_id": order.buyer_telegram_id,
        "product_name": order.product_name,
        "product_kind": order.product_kind.value,
        "tags": tags_to_text(order.tags),
        "amount": order.amount,
        "payment_channel": order.payment_channel.value,
        "paid_at": order.paid_at,
        "delivered_at": order.delivered_at,
        "delivery_status": order.delivery_status.value,
        "card_redeemed": order.card_redeemed,
        "topup_credited": order.topup_credited,
        "updated_at": now,
    }


def order_from_row(row: Any) -> Order:
    """An OrderRow or a Core row of the orders table (same attribute names)."""
    return Order(
        order_no=row.order_no,
        buyer_phone=row.buyer_phone,
        buyer_telegram_id=row.buyer_telegram_id,
        product_name=row.product_name,
        product_kind=ProductKind(row.product_kind),
        tags=tags_from_text(row.tags),
        amount=row.amount,
        payment_channel=PaymentChannel(row.payment_channel),
        paid_at=row.paid_at,
        delivered_at=row.delivered_at,
        delivery_status=DeliveryStatus(row.delivery_status),
        card_redeemed=row.card_redeemed,
        topup_credited=row.topup_credited,
    )


class SqlaOrderStore(SessionRepository):
    async def get(self, order_no: str) -> Order | None:
        row = (await execute_core(self._session, _GET_ORDER, {"order_no": order_no})).first()
        return None if row is None else order_from_row(row)

    async def lock(self, order_no: str) -> Order | None:
        row = (await execute_core(self._session, _LOCK_ORDER, {"order_no": order_no})).first()
        return None if row is None else order_from_row(row)

    async def upsert(self, order: Order) -> bool:
        values = order_values(order, self._clock())
        exists = await self._session.scalar(
            select(OrderRow.order_no).where(OrderRow.order_no == order.order_no)
        )
        if exists is not None:
            await self._session.execute(
                update(OrderRow)
                .where(OrderRow.order_no == order.order_no)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            return False
        try:
            await self._session.execute(insert(OrderRow).values(**values))
        except IntegrityError as exc:
            raise ConcurrentUpdate(f"order {order.order_no} inserted concurrently") from exc
        return True


# --- failed lookups per order number -----------------------------------------------------------

_LOOKUPS = cast(Table, LookupFailureRow.__table__)
_GET_TALLY = select(_LOOKUPS).where(_LOOKUPS.c.order_no == bindparam("order_no"))
_LOCK_TALLY = _GET_TALLY.with_for_update()
_INSERT_TALLY = insert(_LOOKUPS)
_SET_TALLY = update(_LOOKUPS).where(_LOOKUPS.c.order_no == bindparam("w_order_no"))
# A bounded batch per write, skipping rows other chats hold: pruning never waits on (or deadlocks with) them.
_PRUNE_TALLIES = delete(_LOOKUPS).where(_LOOKUPS.c.order_no.in_(
    select(_LOOKUPS.c.order_no).where(_LOOKUPS.c.updated_at < bindparam("before"))
    .limit(100).with_for_update(skip_locked=True)))
_TALLY_KEY_LENGTH = 64  # the column's width; a longer number can be no order of ours anyway


def _tally(row: Any) -> LookupTally:
    return LookupTally(order_no=row.order_no, window_start=row.window_start, failures=row.failures,
                       last_failed_at=row.last_failed_at)


class SqlaLookupFailures(SessionRepository):
    """One counter row per order number with its window's start: small, and one row to lock."""

    async def get(self, order_no: str) -> LookupTally | None:
        row = (await execute_core(self._session, _GET_TALLY, {"order_no": order_no[:_TALLY_KEY_LENGTH]})).first()
        return None if row is None else _tally(row)

    async def lock(self, order_no: str, *, now: datetime) -> LookupTally:
        key = order_no[:_TALLY_KEY_LENGTH]
        row = (await execute_core(self._session, _LOCK_TALLY, {"order_no": key})).first()
        if row is not None:
            return _tally(row)
        try:
            # Savepoint: a chat that loses the race to create the row waits for the winner's commit
            # (the unique key), then locks the winner's row instead.
            async with self._session.begin_nested():
                await execute_core(self._session, _INSERT_TALLY, {
                    "order_no": key, "window_start": now, "failures": 0, "last_failed_at": None,
                    "updated_at": now})
        except IntegrityError:
            row = (await execute_core(self._session, _LOCK_TALLY, {"order_no": key})).first()
            if row is None:  # pragma: no cover - the winner's row must be visible now
                raise
            return _tally(row)
        return LookupTally(order_no=key, window_start=now, failures=0, last_failed_at=None)

    async def record(self, order_no: str, *, at: datetime, window: timedelta, forget_before: datetime) -> LookupTally:
        before = await self.lock(order_no, now=at)
        if before.failures == 0 or at - before.window_start >= window:
            tally = LookupTally(order_no=before.order_no, window_start=at, failures=1, last_failed_at=at)
        else:
            tally = LookupTally(order_no=before.order_no, window_start=before.window_start,
                                failures=before.failures + 1, last_failed_at=at)
        await execute_core(self._session, _SET_TALLY, {
            "w_order_no": tally.order_no, "window_start": tally.window_start, "failures": tally.failures,
            "last_failed_at": at, "updated_at": at})
        await execute_core(self._session, _PRUNE_TALLIES, {"before": forget_before})
        return tally


# --- cases ------------------------------------------------------------------------------------

_DAY = re.compile(r"\d{8}")


def open_key(order_no: str, reason: Reason | str, status: CaseStatus | str) -> str | None:
    """The value of cases.open_key: set while the case is open, so that at most one open case
    exists per order and reason (NULLs do not collide in a UNIQUE index)."""
    if CaseStatus(status) in OPEN_STATUSES:
        return f"{order_no}:{Reason(reason).value}"
    return None


def evidence_from_row(row: EvidenceRow | Row[Any]) -> EvidenceItem:
    return EvidenceItem(
        file_unique_id=row.file_unique_id,
        file_id=row.file_id,
        path=row.path,
        sha256=row.sha256,
        mime_type=row.mime_type,
        width=row.width,
        height=row.height,
        size=row.size,
    )


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
                    "version": 1, "open_key": key,
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


# --- conversations ----------------------------------------------------------------------------


class SqlaConversationRepository(SessionRepository):
    async def load(self, chat_id: int) -> Conversation | None:
        row = (await execute_core(self._session, _LOAD_CONVERSATION, {"chat_id": chat_id})).first()
        if row is None:
            return None
        return Conversation(
            chat_id=row.chat_id,
            user_id=row.user_id,
            locale=row.locale,
            step=row.step,
            data=dict(row.data),
            version=row.version,
            unconfirmed=tuple(_reply_from_json(r) for r in row.unconfirmed or ()),
            unconfirmed_update=row.unconfirmed_update,
            unconfirmed_since=row.unconfirmed_since,
            unconfirmed_by=row.unconfirmed_by,
        )

    async def save(self, conversation: Conversation) -> None:
        """Version 0 means never saved: INSERT; otherwise UPDATE guarded by the loaded version.
        On success `conversation.version` is the stored version."""
        values = {
            "user_id": conversation.user_id,
            "locale": conversation.locale,
            "step": conversation.step,
            "data": conversation.data,
            "updated_at": self._clock(),
            **_unconfirmed_values(conversation.unconfirmed, conversation.unconfirmed_update,
                                  conversation.unconfirmed_since, conversation.unconfirmed_by),
        }
        if conversation.version == 0:
            try:
                await execute_core(self._session, _INSERT_CONVERSATION,
                            {"chat_id": conversation.chat_id, "version": 1, **values})
            except IntegrityError as exc:
                raise ConcurrentUpdate(f"conversation {conversation.chat_id} created concurrently") from exc
            conversation.version = 1
            return
        result = await execute_core(self._session, _UPDATE_CONVERSATION, {
            "w_chat_id": conversation.chat_id, "w_version": conversation.version,
            "version": conversation.version + 1, **values,
        })
        if rowcount(result) == 0:
            raise ConcurrentUpdate(
                f"conversation {conversation.chat_id} moved past version {conversation.version}"
            )
        conversation.version += 1

    async def settle_replies(self, chat_id: int, update_id: int, left: Sequence[Reply]) -> None:
        await execute_core(self._session, _SETTLE_REPLIES, {
            "w_chat_id": chat_id, "w_update_id": update_id, **_unconfirmed_values(left, update_id, None, None)})


def _unconfirmed_values(replies: Sequence[Reply], update_id: int | None, since: datetime | None,
                        by: str | None) -> dict[str, Any]:
    if not replies:
        return {"unconfirmed": None, "unconfirmed_update": None, "unconfirmed_since": None, "unconfirmed_by": None}
    return {"unconfirmed": [_reply_to_json(r) for r in replies], "unconfirmed_update": update_id,
            "unconfirmed_since": since, "unconfirmed_by": by}


def _reply_to_json(reply: Reply) -> dict[str, Any]:
    return {"text": reply.text, "buttons": [[[b.text, b.token] for b in row] for row in reply.buttons]}


def _reply_from_json(raw: dict[str, Any]) -> Reply:
    return Reply(str(raw["text"]), tuple(tuple(Button(text, token) for text, token in row)
                                         for row in raw.get("buttons") or ()))


# --- evidence ---------------------------------------------------------------------------------


class SqlaEvidenceRepository(SessionRepository):
    async def add_draft(self, draft_id: str, chat_id: int, item: EvidenceItem) -> bool:
        found = await execute_core(self._session, _EVIDENCE_IN_DRAFT,
                            {"draft_id": draft_id, "file_unique_id": item.file_unique_id})
        if found.first() is not None:
            return False
        try:
            await execute_core(self._session, _INSERT_EVIDENCE, {
                "draft_id": draft_id, "case_no": None, "chat_id": chat_id, "file_unique_id": item.file_unique_id,
                "file_id": item.file_id, "path": item.path, "sha256": item.sha256, "mime_type": item.mime_type,
                "width": item.width, "height": item.height, "size": item.size, "created_at": self._clock(),
            })
        except IntegrityError as exc:
            raise ConcurrentUpdate(f"evidence {item.file_unique_id} added to {draft_id} concurrently") from exc
        return True

    async def list_draft(self, draft_id: str) -> list[EvidenceItem]:
        rows = await execute_core(self._session, _LIST_DRAFT, {"draft_id": draft_id})
        return [evidence_from_row(row) for row in rows]

    async def attach(self, draft_id: str, case_no: str) -> int:
        return rowcount(await execute_core(self._session, _ATTACH, {"w_draft_id": draft_id, "case_no": case_no}))

    async def prune_drafts(self, before: datetime) -> int:
        stale = (select(EvidenceRow.draft_id).where(EvidenceRow.case_no.is_(None))
                 .group_by(EvidenceRow.draft_id).having(func.max(EvidenceRow.created_at) < before))
        result = await self._session.execute(
            delete(EvidenceRow).where(EvidenceRow.case_no.is_(None), EvidenceRow.draft_id.in_(stale))
            .execution_options(synchronize_session=False))
        return rowcount(result)

    async def stored_digests(self) -> set[str]:
        return set((await self._session.scalars(select(EvidenceRow.sha256).distinct())).all())


# --- update ledger ----------------------------------------------------------------------------


class SqlaUpdateLedger(SessionRepository):
    async def claim(self, update_id: int, chat_id: int, at: datetime) -> bool:
        """Meant as the first statement of a unit of work. A lost INSERT race raises
        ConcurrentUpdate (the transaction is unusable on PostgreSQL); the retry then sees False."""
        if (await execute_core(self._session, _CLAIMED, {"update_id": update_id})).first() is not None:
            return False
        try:
            await execute_core(self._session, _CLAIM, {"update_id": update_id, "chat_id": chat_id, "processed_at": at})
        except IntegrityError as exc:
            raise ConcurrentUpdate(f"update {update_id} claimed concurrently") from exc
        return True

    async def prune(self, before: datetime) -> int:
        result = await self._session.execute(
            delete(ProcessedUpdateRow)
            .where(ProcessedUpdateRow.processed_at < before)
            .execution_options(synchronize_session=False)
        )
        return rowcount(result)


# --- agent requests ---------------------------------------------------------------------------


class SqlaAgentRequests(SessionRepository):
    async def add(self, request: AgentRequest) -> None:
        await self._session.execute(
            insert(AgentRequestRow).values(
                chat_id=request.chat_id,
                user_id=request.user_id,
                case_no=request.case_no,
                order_no=request.order_no,
                step=request.step,
                created_at=request.created_at,
            )
        )

    async def count_for_chat(self, chat_id: int) -> int:
        count = await self._session.scalar(
            select(func.count()).select_from(AgentRequestRow).where(AgentRequestRow.chat_id == chat_id)
        )
        return int(count or 0)


if TYPE_CHECKING:  # structural conformance to the ports, checked by mypy
    from dialogs import ports

    def _conforms(session: AsyncSession) -> None:
        _orders: ports.OrderStore = SqlaOrderStore(session)
        _cases: ports.CaseRepository = SqlaCaseRepository(session)
        _conversations: ports.ConversationRepository = SqlaConversationRepository(session)
        _evidence: ports.EvidenceRepository = SqlaEvidenceRepository(session)
        _updates: ports.UpdateLedger = SqlaUpdateLedger(session)
        _agent: ports.AgentRequests = SqlaAgentRequests(session)
