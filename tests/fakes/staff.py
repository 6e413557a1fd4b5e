"""Fake staff directory and moderation: the same answers as storage.staff on SQL."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from dialogs.ports import Restriction, StaffChange, StaffMember
from tests.fakes.records import FakeRepository


class FakeStaffDirectory(FakeRepository):
    async def members(self, *, removed: bool = False) -> list[StaffMember]:
        return [m for m in self._t.staff.values() if removed or m.removed_at is None]

    async def put(self, member: StaffMember, *, action: str) -> None:
        self._t.staff[member.user_id] = replace(member, removed_at=None, removed_by=None)  # keeps its place
        self._t.staff_events.append(StaffChange(at=member.added_at, user_id=member.user_id, action=action,
                                                role=member.role, alias=member.alias, by=member.added_by))

    async def remove(self, user_id: int, *, by: str, at: datetime) -> bool:
        member = self._t.staff.get(user_id)
        if member is None or member.removed_at is not None:
            return False
        self._t.staff[user_id] = replace(member, removed_at=at, removed_by=by)
        self._t.staff_events.append(StaffChange(at=at, user_id=user_id, action="remove", role=member.role,
                                                alias=member.alias, by=by))
        return True

    async def changes(self, limit: int = 50) -> list[StaffChange]:
        return list(reversed(self._t.staff_events))[:limit]


class FakeModeration(FakeRepository):
    async def get(self, chat_id: int) -> Restriction | None:
        return self._t.restrictions.get(chat_id)

    async def put(self, restriction: Restriction) -> None:
        self._t.restrictions[restriction.chat_id] = restriction

    async def lift(self, chat_id: int) -> bool:
        return self._t.restrictions.pop(chat_id, None) is not None

    async def noticed(self, chat_id: int, *, at: datetime) -> None:
        if chat_id in self._t.restrictions:
            self._t.restrictions[chat_id] = replace(self._t.restrictions[chat_id], noticed_at=at)
