"""Leases on work rows: a worker claims a batch until `claim_until`; if it dies, the lease runs out
and another worker claims the rows again. The outbox, the case timers and the refund attempts claim
alike, with the statements built here."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Row, Table, and_, bindparam, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import UTCDateTime
from storage.repositories import execute_core

# The claim's "now", as the statements below bind it; use it in a table's own readiness conditions.
NOW = bindparam("w_now", type_=UTCDateTime())


def claimable(table: Table, *ready: ColumnElement[bool]) -> ColumnElement[bool]:
    """`ready`, and held by nobody (or by a worker whose lease ran out, or whose not-before passed)."""
    return and_(*ready, or_(table.c.claim_until.is_(None), table.c.claim_until < NOW))


class LeaseClaim:
    """Claim up to `limit` claimable rows of a table for `owner`, as two prebuilt statements in one
    transaction.

    The SELECT picks the rows and, on PostgreSQL, locks them (FOR UPDATE SKIP LOCKED: rows another
    worker is claiming right now are passed over; a row it has just committed is re-checked against
    the WHERE and dropped). The UPDATE then stamps the lease on exactly those rows. Not one
    UPDATE ... WHERE id IN (SELECT ... LIMIT n): PostgreSQL may run that subquery once per outer row
    (a semi join over a sorted, locked subquery) and hand out more than `limit` rows. SQLite
    serialises writers (BEGIN IMMEDIATE) and ignores FOR UPDATE.

    `pick_only` narrows the SELECT alone (conditions the UPDATE need not re-check); its parameters
    are passed to `claim` as `params`."""

    def __init__(self, table: Table, *, ready: Iterable[ColumnElement[bool]],
                 order_by: Iterable[ColumnElement[Any]], returning: Iterable[ColumnElement[Any]],
                 pick_only: Iterable[ColumnElement[bool]] = ()) -> None:
        condition = claimable(table, *ready)
        self.pick = (
            select(table.c.id).where(condition, *pick_only)
            .order_by(*order_by).limit(bindparam("w_limit")).with_for_update(skip_locked=True)
        )
        self.stamp = (
            update(table).where(table.c.id.in_(bindparam("w_ids", expanding=True)), condition)
            .values(claimed_by=bindparam("w_owner"), claim_until=bindparam("w_until", type_=UTCDateTime()))
            .returning(*returning)
        )

    async def claim(self, session: AsyncSession, *, owner: str, now: datetime, lease_seconds: float, limit: int,
                    params: Mapping[str, Any] | None = None) -> list[Row[Any]]:
        """The claimed rows (the `returning` columns), in no particular order: RETURNING's order is
        not guaranteed, so the caller sorts."""
        ids = list((await execute_core(session, self.pick, {"w_now": now, "w_limit": limit, **(params or {})}))
                   .scalars())
        if not ids:
            return []
        result = await execute_core(session, self.stamp, {
            "w_ids": ids, "w_now": now, "w_owner": owner, "w_until": now + timedelta(seconds=lease_seconds)})
        return list(result)
