"""Failed order lookups per order number: the tally behind the guess-an-order-number limit."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from dialogs.ports import LookupTally
from storage.models import LookupFailureRow
from storage.repositories import SessionRepository, execute_core

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
