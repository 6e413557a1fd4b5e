"""What refundbot keeps about the platform: refund attempts (idempotency keys) and callback nonces."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    Table,
    bindparam,
    delete,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from dialogs.domain import RailError, RefundAttempt, RefundStatus
from storage.leases import LeaseClaim
from storage.models import ApiNonceRow, CaseRow, RefundAttemptRow, UTCDateTime
from storage.repositories import SessionRepository, execute_core, rowcount


def _attempt(row: Any) -> RefundAttempt:
    """A RefundAttemptRow, or a Core row with its columns."""
    return RefundAttempt(case_no=row.case_no, idempotency_key=row.idempotency_key, gateway=row.gateway,
                         amount=row.amount, status=RefundStatus(row.status), created_at=row.created_at,
                         external_ref=row.external_ref, note=row.note, sent_at=row.sent_at,
                         rail_status=row.rail_status or "", error=RailError(row.error) if row.error else None)


# Prebuilt Core statements for the refund workers' claim (see storage.leases).
_ATTEMPTS = cast(Table, RefundAttemptRow.__table__)
# Rendered inline, not as a parameter: the planner then sees the predicate of the partial index
# ix_refund_attempts_pending_gateway_id (a generic PostgreSQL plan could not use it with `status = $1`).
_IS_PENDING = _ATTEMPTS.c.status == literal(RefundStatus.PENDING.value, literal_execute=True)


# Pending, of the worker's gateway, and held by nobody (or its not-before has passed).
_CLAIM = LeaseClaim(
    _ATTEMPTS, ready=[_IS_PENDING], order_by=[_ATTEMPTS.c.id],
    pick_only=[_ATTEMPTS.c.gateway == bindparam("w_gateway")],
    returning=[_ATTEMPTS.c.id, _ATTEMPTS.c.case_no, _ATTEMPTS.c.idempotency_key, _ATTEMPTS.c.gateway,
               _ATTEMPTS.c.amount, _ATTEMPTS.c.status, _ATTEMPTS.c.created_at, _ATTEMPTS.c.external_ref,
               _ATTEMPTS.c.note, _ATTEMPTS.c.sent_at, _ATTEMPTS.c.rail_status,
               _ATTEMPTS.c.error])
_RELEASE = (
    update(_ATTEMPTS).where(_ATTEMPTS.c.idempotency_key == bindparam("w_key"),
                            _ATTEMPTS.c.claimed_by == bindparam("w_owner"), _IS_PENDING)
    .values(claimed_by=None, claim_until=bindparam("w_until", type_=UTCDateTime()))
)


class SqlaRefundLedger(SessionRepository):
    async def add(self, attempt: RefundAttempt) -> bool:
        exists = await self._session.scalar(
            select(RefundAttemptRow.id).where(RefundAttemptRow.idempotency_key == attempt.idempotency_key))
        if exists is not None:
            return False
        try:
            async with self._session.begin_nested():
                await self._session.execute(insert(RefundAttemptRow).values(
                    case_no=attempt.case_no, idempotency_key=attempt.idempotency_key, gateway=attempt.gateway,
                    amount=attempt.amount, status=attempt.status.value, external_ref=attempt.external_ref,
                    note=attempt.note, created_at=attempt.created_at, updated_at=attempt.created_at))
        except IntegrityError:
            return False
        return True

    async def for_case(self, case_no: str) -> list[RefundAttempt]:
        rows = await self._session.scalars(
            select(RefundAttemptRow).where(RefundAttemptRow.case_no == case_no).order_by(RefundAttemptRow.id)
            .execution_options(populate_existing=True))
        return [_attempt(row) for row in rows]

    async def for_order(self, order_no: str) -> list[RefundAttempt]:
        of_order = select(CaseRow.case_no).where(CaseRow.order_no == order_no)
        rows = await self._session.scalars(
            select(RefundAttemptRow).where(RefundAttemptRow.case_no.in_(of_order)).order_by(RefundAttemptRow.id)
            .execution_options(populate_existing=True))
        return [_attempt(row) for row in rows]

    async def get(self, idempotency_key: str) -> RefundAttempt | None:
        row = await self._session.scalar(
            select(RefundAttemptRow).where(RefundAttemptRow.idempotency_key == idempotency_key)
            .execution_options(populate_existing=True))
        return _attempt(row) if row is not None else None

    async def set_status(self, idempotency_key: str, status: RefundStatus, *, at: datetime,
                         external_ref: str | None = None, note: str = "", rail_status: str | None = None,
                         error: RailError | None = None) -> None:
        values: dict[str, object] = {"status": status.value, "updated_at": at, "note": note,
                                     "error": error.value if error is not None else None}
        if status is not RefundStatus.PENDING:  # settled or with the platform: no worker holds it any more
            values.update(claimed_by=None, claim_until=None)
        if external_ref is not None:
            values["external_ref"] = external_ref
        if rail_status is not None:
            values["rail_status"] = rail_status[:32]
        result = await self._session.execute(
            update(RefundAttemptRow).where(RefundAttemptRow.idempotency_key == idempotency_key).values(**values)
            .execution_options(synchronize_session=False))
        if rowcount(result) == 0:
            raise KeyError(idempotency_key)

    async def mark_sent(self, idempotency_key: str, at: datetime) -> None:
        await self._session.execute(
            update(RefundAttemptRow).where(RefundAttemptRow.idempotency_key == idempotency_key,
                                           RefundAttemptRow.sent_at.is_(None))
            .values(sent_at=at).execution_options(synchronize_session=False))

    async def pending(self, limit: int = 100) -> list[RefundAttempt]:
        rows = await self._session.scalars(
            select(RefundAttemptRow).where(RefundAttemptRow.status == RefundStatus.PENDING.value)
            .order_by(RefundAttemptRow.id).limit(limit).execution_options(populate_existing=True))
        return [_attempt(row) for row in rows]

    async def claim_pending(self, *, gateway: str, owner: str, now: datetime, lease_seconds: float,
                            limit: int) -> list[RefundAttempt]:
        rows = await _CLAIM.claim(self._session, owner=owner, now=now, lease_seconds=lease_seconds, limit=limit,
                                  params={"w_gateway": gateway})
        return [_attempt(row) for row in sorted(rows, key=lambda r: int(r.id))]

    async def release(self, idempotency_key: str, *, owner: str, until: datetime | None = None) -> bool:
        result = await execute_core(self._session, _RELEASE, {"w_key": idempotency_key, "w_owner": owner,
                                                              "w_until": until})
        return rowcount(result) > 0


class SqlaNonceLedger(SessionRepository):
    async def remember(self, signature: str, at: datetime) -> bool:
        seen = await self._session.scalar(select(ApiNonceRow.signature).where(ApiNonceRow.signature == signature))
        if seen is not None:
            return False
        try:
            async with self._session.begin_nested():
                await self._session.execute(insert(ApiNonceRow).values(signature=signature, seen_at=at))
        except IntegrityError:
            return False
        return True

    async def prune(self, before: datetime) -> int:
        result = await self._session.execute(
            delete(ApiNonceRow).where(ApiNonceRow.seen_at < before).execution_options(synchronize_session=False))
        return rowcount(result)
