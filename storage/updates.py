"""The update ledger: each Telegram update is worked once, across restarts and processes."""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import Table, bindparam, delete, insert, select
from sqlalchemy.exc import IntegrityError

from dialogs.ports import ConcurrentUpdate
from storage.models import ProcessedUpdateRow
from storage.repositories import SessionRepository, execute_core, rowcount

_UPDATES = cast(Table, ProcessedUpdateRow.__table__)
_CLAIMED = select(_UPDATES.c.update_id).where(_UPDATES.c.update_id == bindparam("update_id"))
_CLAIM = insert(_UPDATES)


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
