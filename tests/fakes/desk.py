"""The fake agents' desk: items, the audit log, message links, approvals waiting for a second person,
and the outbox lookups the relay makes for the desk (as storage.desk)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from dialogs.domain import Case, Delivery, DeskItem, MessageLink
from dialogs.ports import CaseEventRecord
from tests.fakes.delivery import delivery_of
from tests.fakes.records import FakeRepository
from tests.fakes.tables import AuditRow

_UNOWNED: dict[str, Any] = {"owner_id": None, "owner_since": None, "owner_active_at": None, "reminded_at": None}


class FakeDeskRepository(FakeRepository):
    async def get(self, key: str, *, for_update: bool = False) -> DeskItem | None:
        return self._t.desk.get(key)

    async def open(self, item: DeskItem) -> bool:
        """Insert, or reopen a closed item of the same key (a case back in the queue keeps its topic)."""
        found = self._t.desk.get(item.key)
        if found is not None:
            if found.closed_at is None:
                return False
            self._t.desk[item.key] = replace(found, closed_at=None, opened_at=item.opened_at, **_UNOWNED)
            return True
        self._t.desk[item.key] = replace(item, closed_at=None, **_UNOWNED)
        return True

    def _set(self, key: str, **values: Any) -> bool:
        found = self._t.desk.get(key)
        if found is None:
            return False
        self._t.desk[key] = replace(found, **values)
        return True

    async def close(self, key: str, *, at: datetime) -> None:
        self._set(key, closed_at=at, **_UNOWNED)

    async def owned_in_chat(self, chat_id: int) -> DeskItem | None:
        owned = [i for i in self._t.desk.values()
                 if i.chat_id == chat_id and i.owner_id is not None and i.closed_at is None]
        return max(owned, key=lambda i: i.owner_since.timestamp() if i.owner_since else float("-inf"), default=None)

    async def by_thread(self, thread_id: int) -> DeskItem | None:
        return next((i for i in self._t.desk.values() if i.thread_id == thread_id), None)

    async def set_topic(self, key: str, *, thread_id: int | None, card_message_id: int | None) -> None:
        if not self._set(key, thread_id=thread_id, card_message_id=card_message_id):
            raise KeyError(key)

    async def take(self, key: str, agent_id: int, *, at: datetime) -> int | None:
        found = self._t.desk.get(key)
        if found is not None and found.owner_id is None and found.closed_at is None:
            self._set(key, owner_id=agent_id, owner_since=at, owner_active_at=at, reminded_at=None)
        found = self._t.desk.get(key)
        return found.owner_id if found is not None else None

    async def release(self, key: str, *, at: datetime) -> None:
        self._set(key, **_UNOWNED)

    async def touch(self, key: str, *, at: datetime) -> None:
        self._set(key, owner_active_at=at, reminded_at=None)

    async def mark_reminded(self, key: str, *, at: datetime) -> None:
        self._set(key, reminded_at=at)

    async def idle_owned(self, before: datetime) -> list[DeskItem]:
        idle = [i for i in self._t.desk.values() if i.owner_id is not None and i.closed_at is None
                and i.owner_active_at is not None and i.owner_active_at < before]
        return sorted(idle, key=lambda i: i.owner_active_at or before)

    async def queue(self, limit: int = 50) -> list[tuple[DeskItem, Case | None]]:
        # Cases as a join reads them: without their evidence.
        rows = [(i, self._t.cases.get(i.case_no) if i.case_no else None)
                for i in self._t.desk.values() if i.closed_at is None]

        def order(row: tuple[DeskItem, Case | None]) -> tuple[bool, date, datetime, str]:
            item, case = row
            return (case is None, case.review_due if case else date.min, item.opened_at, item.key)

        return sorted(rows, key=order)[:limit]

    async def audit(self, *, actor_id: int, key: str | None, action: str, allowed: bool, at: datetime,
                    detail: str = "") -> None:
        self._t.audit.append(AuditRow(self._t.new_id(), at, actor_id, key, action[:32], allowed, detail[:2000]))

    async def refused_attempts(self, actor_id: int) -> int:
        return sum(1 for a in self._t.audit if a.actor_id == actor_id and not a.allowed)

    async def add_link(self, link: MessageLink) -> bool:
        if await self.find_link(link.source_chat_id, link.source_message_id, link.direction) is not None:
            return False
        self._t.links.append(link)
        return True

    def _link_index(self, source_chat_id: int, source_message_id: int, direction: str) -> int | None:
        wanted = (source_chat_id, source_message_id, direction)
        return next((n for n, link in enumerate(self._t.links)
                     if (link.source_chat_id, link.source_message_id, link.direction) == wanted), None)

    async def set_link_copy(self, source_chat_id: int, source_message_id: int, direction: str,
                            copy_message_id: int) -> None:
        n = self._link_index(source_chat_id, source_message_id, direction)
        if n is not None:
            self._t.links[n] = replace(self._t.links[n], copy_message_id=copy_message_id)

    async def find_link(self, source_chat_id: int, source_message_id: int, direction: str) -> MessageLink | None:
        n = self._link_index(source_chat_id, source_message_id, direction)
        return self._t.links[n] if n is not None else None

    async def request_approval(self, case_no: str, *, amount: Decimal, agent_id: int, at: datetime) -> None:
        self._t.approvals[case_no] = (amount, agent_id, at)

    async def pending_approval(self, case_no: str) -> tuple[Decimal, int] | None:
        found = self._t.approvals.get(case_no)
        return (found[0], found[1]) if found is not None else None

    async def clear_approval(self, case_no: str) -> None:
        self._t.approvals.pop(case_no, None)

    async def history(self, case_no: str, limit: int = 12) -> list[CaseEventRecord]:
        events = [e for e in self._t.case_events if e.case_no == case_no][-limit:]
        return [CaseEventRecord(at=e.at, actor=e.actor, from_status=e.from_status, to_status=e.to_status,
                                note=e.note or "") for e in events]

    async def queued_after(self, chat_id: int, after_id: int, limit: int = 200) -> list[Delivery]:
        return [delivery_of(r) for r in self._t.outbox.values()
                if r.chat_id == chat_id and r.id > after_id and r.open][:limit]

    async def delivered_as(self, chat_id: int, message_id: int, kinds: Iterable[str]) -> list[Delivery]:
        wanted = set(kinds)
        return [delivery_of(r) for r in self._t.outbox.values() if r.chat_id == chat_id
                and r.message_id == message_id and r.kind in wanted and r.sent_at is not None]
