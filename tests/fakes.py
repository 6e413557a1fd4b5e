"""In-memory implementations of the core's ports, for fast tests of the dialog (fakes, not mocks)."""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import datetime
from types import TracebackType
from typing import Self

from dialogs.domain import (
    OPEN_STATUSES,
    AgentRequest,
    Case,
    CaseStatus,
    Conversation,
    EvidenceItem,
    Order,
    OutboxMessage,
    Reason,
)
from dialogs.ports import ConcurrentUpdate


class FakeStore:
    """The 'database': committed state shared by every unit of work."""

    def __init__(self) -> None:
        self.orders: dict[str, Order] = {}
        self.cases: dict[str, Case] = {}
        self.counters: dict[str, int] = {}
        self.conversations: dict[int, Conversation] = {}
        self.evidence: dict[str, list[tuple[int, EvidenceItem, str | None]]] = {}
        self.updates: dict[int, datetime] = {}
        self.agent_requests: list[AgentRequest] = []
        self.outbox: dict[str, OutboxMessage] = {}
        self.case_events: list[tuple[str, CaseStatus | None, CaseStatus, str, str]] = []


class FakeUnitOfWork:
    def __init__(self, store: FakeStore) -> None:
        self.committed_store = store
        self.orders = self.cases = self.conversations = self.evidence = self  # type: ignore[assignment]
        self.updates = self.agent_requests = self.outbox = self  # type: ignore[assignment]
        self.commits = 0

    async def __aenter__(self) -> Self:
        self._work = copy.deepcopy(self.committed_store)
        self._loaded_versions: dict[int, int] = {}
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._work = None  # type: ignore[assignment]

    async def commit(self) -> None:
        for chat_id, version in self._loaded_versions.items():
            current = self.committed_store.conversations.get(chat_id)
            if (current.version if current else 0) != version:
                raise ConcurrentUpdate(chat_id)
        self.committed_store.__dict__.update(self._work.__dict__)
        self._work = copy.deepcopy(self.committed_store)
        self.commits += 1

    async def rollback(self) -> None:
        self._work = copy.deepcopy(self.committed_store)

    # orders
    async def get(self, key: str) -> Order | Case | None:  # type: ignore[override]
        return self._work.orders.get(key) or self._work.cases.get(key)

    async def upsert(self, order: Order) -> bool:
        new = order.order_no not in self._work.orders
        self._work.orders[order.order_no] = order
        return new

    # cases
    async def next_case_no(self, day: str) -> str:
        self._work.counters[day] = self._work.counters.get(day, 0) + 1
        return f"R{day}-{self._work.counters[day]:04d}"

    async def add(self, item: Case | AgentRequest | OutboxMessage) -> bool | None:  # type: ignore[override]
        if isinstance(item, Case):
            if await self.find_open(item.order_no, item.reason):
                raise ConcurrentUpdate(item.order_no)
            self._work.cases[item.case_no] = item
            return None
        if isinstance(item, AgentRequest):
            self._work.agent_requests.append(item)
            return None
        if item.dedupe_key in self._work.outbox:
            return False
        self._work.outbox[item.dedupe_key] = item
        return True

    async def set_status(self, case_no: str, status: CaseStatus, *, actor: str, at: datetime | None = None,
                         note: str = "") -> Case:
        case = self._work.cases[case_no]
        moved = replace(case, status=status, version=case.version + 1)
        self._work.cases[case_no] = moved
        self._work.case_events.append((case_no, case.status, status, actor, note))
        return moved

    async def find_open(self, order_no: str, reason: Reason) -> Case | None:
        for case in self._work.cases.values():
            if case.order_no == order_no and case.reason == reason and case.status in OPEN_STATUSES:
                return case
        return None

    async def list_for_user(self, user_id: int, limit: int = 20) -> list[Case]:
        found = [c for c in self._work.cases.values() if c.user_id == user_id]
        return sorted(found, key=lambda c: c.created_at, reverse=True)[:limit]

    # conversations
    async def load(self, chat_id: int) -> Conversation | None:
        conv = self._work.conversations.get(chat_id)
        if conv is not None:
            self._loaded_versions[chat_id] = conv.version
            return copy.deepcopy(conv)
        self._loaded_versions[chat_id] = 0
        return None

    async def save(self, conversation: Conversation) -> None:
        conversation.version += 1
        self._work.conversations[conversation.chat_id] = copy.deepcopy(conversation)

    # evidence
    async def add_draft(self, draft_id: str, chat_id: int, item: EvidenceItem) -> bool:
        rows = self._work.evidence.setdefault(draft_id, [])
        if any(i.file_unique_id == item.file_unique_id for _, i, _ in rows):
            return False
        rows.append((chat_id, item, None))
        return True

    async def list_draft(self, draft_id: str) -> list[EvidenceItem]:
        return [i for _, i, _ in self._work.evidence.get(draft_id, [])]

    async def attach(self, draft_id: str, case_no: str) -> int:
        rows = self._work.evidence.get(draft_id, [])
        self._work.evidence[draft_id] = [(c, i, case_no) for c, i, _ in rows]
        case = self._work.cases[case_no]
        self._work.cases[case_no] = replace(case, evidence=tuple(i for _, i, _ in rows))
        return len(rows)

    # updates
    async def claim(self, update_id: int, chat_id: int, at: datetime) -> bool:
        if update_id in self._work.updates:
            return False
        self._work.updates[update_id] = at
        return True

    async def prune(self, before: datetime) -> int:
        old = [u for u, at in self._work.updates.items() if at < before]
        for u in old:
            del self._work.updates[u]
        return len(old)

    async def count_for_chat(self, chat_id: int) -> int:
        return sum(1 for r in self._work.agent_requests if r.chat_id == chat_id)


class FakeUnitOfWorkFactory:
    def __init__(self, store: FakeStore | None = None) -> None:
        self.store = store or FakeStore()

    def __call__(self) -> FakeUnitOfWork:
        return FakeUnitOfWork(self.store)
