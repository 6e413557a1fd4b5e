"""The ports the core needs, as narrow Protocols named by role.

Implementations live in storage/ (SQLAlchemy) and bot/ (HTTP); test doubles are `Fake*`.
Repositories never commit: the unit of work does.
"""

from __future__ import annotations

from datetime import datetime
from types import TracebackType
from typing import Protocol, Self

from dialogs.domain import (
    AgentRequest,
    Case,
    CaseStatus,
    Conversation,
    EvidenceItem,
    Order,
    OutboxMessage,
    Reason,
)


class OrderLookup(Protocol):
    async def get(self, order_no: str) -> Order | None: ...


class OrderStore(OrderLookup, Protocol):
    async def upsert(self, order: Order) -> bool:
        """Insert or replace by order_no; True when inserted, False when updated."""
        ...


class CaseRepository(Protocol):
    async def next_case_no(self, day: str) -> str:
        """Allocate the next readable number of a day, e.g. 'R20261124-0001' for day '20261124'."""
        ...

    async def add(self, case: Case) -> None: ...

    async def get(self, case_no: str) -> Case | None: ...

    async def find_open(self, order_no: str, reason: Reason) -> Case | None: ...

    async def list_for_user(self, user_id: int, limit: int = 20) -> list[Case]: ...

    async def set_status(
        self, case_no: str, status: CaseStatus, *, actor: str, at: datetime | None = None, note: str = ""
    ) -> Case:
        """Move a case and log the event (who, when, from, to, note); returns the case as stored now.
        Raises KeyError for an unknown case, ConcurrentUpdate when it would reopen a second open
        case for the same order and reason. Lifecycle rules are checked by the caller."""
        ...


class ConversationRepository(Protocol):
    async def load(self, chat_id: int) -> Conversation | None:
        """Load and lock the conversation of a chat for the rest of the unit of work."""
        ...

    async def save(self, conversation: Conversation) -> None:
        """Insert or update; raises `ConcurrentUpdate` if the version moved since `load`."""
        ...


class EvidenceRepository(Protocol):
    async def add_draft(self, draft_id: str, chat_id: int, item: EvidenceItem) -> bool:
        """Store a draft's evidence row; False when that file_unique_id is already in the draft."""
        ...

    async def list_draft(self, draft_id: str) -> list[EvidenceItem]: ...

    async def attach(self, draft_id: str, case_no: str) -> int:
        """Bind the draft's evidence to the filed case; returns the number of rows bound."""
        ...


class UpdateLedger(Protocol):
    async def claim(self, update_id: int, chat_id: int, at: datetime) -> bool:
        """Record an update id; False when it was claimed before (a repeated delivery)."""
        ...

    async def prune(self, before: datetime) -> int:
        """Forget claims older than `before` (Telegram may restart update ids after a quiet week)."""
        ...


class AgentRequests(Protocol):
    async def add(self, request: AgentRequest) -> None: ...

    async def count_for_chat(self, chat_id: int) -> int: ...


class Outbox(Protocol):
    async def add(self, message: OutboxMessage) -> bool:
        """Queue a notification; False when its dedupe_key is already queued."""
        ...


class UnitOfWork(Protocol):
    orders: OrderStore
    cases: CaseRepository
    conversations: ConversationRepository
    evidence: EvidenceRepository
    updates: UpdateLedger
    agent_requests: AgentRequests
    outbox: Outbox

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Roll back whatever was not committed."""
        ...

    async def commit(self) -> None: ...

    async def rollback(self) -> None: ...


class UnitOfWorkFactory(Protocol):
    def __call__(self) -> UnitOfWork: ...


class ConcurrentUpdate(Exception):
    """Another worker saved the same conversation first; the caller retries the update."""
