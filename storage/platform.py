"""What refundbot keeps about the platform: refund attempts (idempotency keys) and callback nonces."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from dialogs.domain import RefundAttempt, RefundStatus
from storage.models import ApiNonceRow, RefundAttemptRow
from storage.repositories import SessionRepository, rowcount


def _attempt(row: RefundAttemptRow) -> RefundAttempt:
    return RefundAttempt(case_no=row.case_no, idempotency_key=row.idempotency_key, gateway=row.gateway,
                         amount=row.amount, status=RefundStatus(row.status), created_at=row.created_at,
                         external_ref=row.external_ref, note=row.note)


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

    async def set_status(self, idempotency_key: str, status: RefundStatus, *, at: datetime,
                         external_ref: str | None = None, note: str = "") -> None:
        values: dict[str, object] = {"status": status.value, "updated_at": at, "note": note}
        if external_ref is not None:
            values["external_ref"] = external_ref
        result = await self._session.execute(
            update(RefundAttemptRow).where(RefundAttemptRow.idempotency_key == idempotency_key).values(**values)
            .execution_options(synchronize_session=False))
        if rowcount(result) == 0:
            raise KeyError(idempotency_key)

    async def pending(self, limit: int = 100) -> list[RefundAttempt]:
        rows = await self._session.scalars(
            select(RefundAttemptRow).where(RefundAttemptRow.status == RefundStatus.PENDING.value)
            .order_by(RefundAttemptRow.id).limit(limit).execution_options(populate_existing=True))
        return [_attempt(row) for row in rows]


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
