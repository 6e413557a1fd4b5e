"""The desk's staff (agents, supervisors, their aliases and the audit of every change) and the
customers it banned or muted: dialogs.ports.StaffDirectory and Moderation on SQL."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from dialogs.ports import Restriction, StaffChange, StaffMember
from storage.models import RestrictionRow, StaffEventRow, StaffRow
from storage.repositories import SessionRepository, execute_core, rowcount

_STAFF = cast(Table, StaffRow.__table__)
_EVENTS = cast(Table, StaffEventRow.__table__)
_RESTRICTIONS = cast(Table, RestrictionRow.__table__)
_GET_RESTRICTION = select(_RESTRICTIONS).where(_RESTRICTIONS.c.chat_id == bindparam("chat_id"))


def _member(row: Any) -> StaffMember:
    return StaffMember(user_id=row.user_id, role=row.role, alias=row.alias, added_by=row.added_by,
                       added_at=row.added_at, removed_at=row.removed_at, removed_by=row.removed_by)


class SqlaStaffDirectory(SessionRepository):
    async def members(self, *, removed: bool = False) -> list[StaffMember]:
        query = select(_STAFF).order_by(_STAFF.c.id)
        if not removed:
            query = query.where(_STAFF.c.removed_at.is_(None))
        return [_member(row) for row in (await self._session.execute(query)).all()]

    async def put(self, member: StaffMember, *, action: str) -> None:
        values = {"role": member.role, "alias": member.alias, "added_by": member.added_by,
                  "added_at": member.added_at, "removed_at": None, "removed_by": None}
        set_row = update(_STAFF).where(_STAFF.c.user_id == member.user_id).values(**values)
        if rowcount(await self._session.execute(set_row)) == 0:  # an existing row keeps its first-added place
            try:
                # Savepoint: several processes starting at once seed the same people; the loser of the
                # unique key waits for the winner's commit, then updates the winner's row.
                async with self._session.begin_nested():
                    await self._session.execute(insert(_STAFF).values(user_id=member.user_id, **values))
            except IntegrityError:
                await self._session.execute(set_row)
        await self._audit(StaffChange(at=member.added_at, user_id=member.user_id, action=action, role=member.role,
                                      alias=member.alias, by=member.added_by))

    async def remove(self, user_id: int, *, by: str, at: datetime) -> bool:
        row = (await self._session.execute(select(_STAFF).where(
            _STAFF.c.user_id == user_id, _STAFF.c.removed_at.is_(None)).with_for_update())).first()
        if row is None:
            return False
        await self._session.execute(update(_STAFF).where(_STAFF.c.user_id == user_id)
                                    .values(removed_at=at, removed_by=by))
        await self._audit(StaffChange(at=at, user_id=user_id, action="remove", role=row.role, alias=row.alias, by=by))
        return True

    async def changes(self, limit: int = 50) -> list[StaffChange]:
        rows = (await self._session.execute(select(_EVENTS).order_by(_EVENTS.c.id.desc()).limit(limit))).all()
        return [StaffChange(at=r.at, user_id=r.user_id, action=r.action, role=r.role, alias=r.alias, by=r.by)
                for r in rows]

    async def _audit(self, change: StaffChange) -> None:
        await self._session.execute(insert(_EVENTS).values(
            at=change.at, user_id=change.user_id, action=change.action, role=change.role, alias=change.alias,
            by=change.by))


class SqlaModeration(SessionRepository):
    async def get(self, chat_id: int) -> Restriction | None:
        row = (await execute_core(self._session, _GET_RESTRICTION, {"chat_id": chat_id})).first()
        if row is None:
            return None
        return Restriction(chat_id=row.chat_id, kind=row.kind, reason=row.reason, by=row.by, at=row.at,
                           until=row.until, noticed_at=row.noticed_at)

    async def put(self, restriction: Restriction) -> None:
        await self.lift(restriction.chat_id)
        await self._session.execute(insert(_RESTRICTIONS).values(
            chat_id=restriction.chat_id, kind=restriction.kind, reason=restriction.reason, by=restriction.by,
            at=restriction.at, until=restriction.until, noticed_at=restriction.noticed_at))

    async def lift(self, chat_id: int) -> bool:
        return rowcount(await self._session.execute(
            delete(_RESTRICTIONS).where(_RESTRICTIONS.c.chat_id == chat_id))) > 0

    async def noticed(self, chat_id: int, *, at: datetime) -> None:
        await self._session.execute(update(_RESTRICTIONS).where(_RESTRICTIONS.c.chat_id == chat_id)
                                    .values(noticed_at=at))
