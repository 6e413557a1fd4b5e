"""An in-memory unit of work with the ports' real semantics, so the core's tests need no database.

`FakeDatabase` plays `storage.uow.Database`: `uow` is the `UnitOfWorkFactory` handed to the core and
`tables` is what has been committed. As on SQLite, one unit of work runs at a time (the others wait
at `async with`), so row locks have nothing left to do; a unit of work works on a copy of the
tables taken when it starts, which its commit publishes and its end (or a rollback) drops. The
repositories keep the SQL ones' once-only keys, versions, leases and errors (see
tests/storage/test_fakes_contract.py, which runs the same scenarios on both)."""

from __future__ import annotations

import asyncio
import copy
from types import TracebackType
from typing import TYPE_CHECKING, Self

from dialogs.clock import Clock, utcnow
from dialogs.ports import (
    AgentRequests,
    CaseRepository,
    ChatDirectory,
    ConversationRepository,
    DeskRepository,
    EvidenceRepository,
    LookupFailures,
    Moderation,
    NonceLedger,
    OrderStore,
    Outbox,
    RefundLedger,
    StaffDirectory,
    Timers,
    UpdateLedger,
)
from tests.fakes.delivery import FakeChatDirectory, FakeNonceLedger, FakeOutbox, FakeRefundLedger, FakeTimers
from tests.fakes.desk import FakeDeskRepository
from tests.fakes.records import (
    FakeAgentRequests,
    FakeCaseRepository,
    FakeConversationRepository,
    FakeEvidenceRepository,
    FakeLookupFailures,
    FakeOrderStore,
    FakeUpdateLedger,
    Work,
)
from tests.fakes.staff import FakeModeration, FakeStaffDirectory
from tests.fakes.tables import HELD_UNTIL, AuditRow, OutboxRow, Tables

__all__ = ["HELD_UNTIL", "AuditRow", "FakeDatabase", "FakeUnitOfWork", "OutboxRow", "Tables"]


class FakeUnitOfWork:
    """One transaction: `async with uow: ...; await uow.commit()`; leaving the block drops whatever was
    not committed (including work done after a commit). Reusable serially, as SqlaUnitOfWork."""

    orders: OrderStore
    cases: CaseRepository
    conversations: ConversationRepository
    evidence: EvidenceRepository
    updates: UpdateLedger
    agent_requests: AgentRequests
    outbox: Outbox
    chats: ChatDirectory
    timers: Timers
    refunds: RefundLedger
    nonces: NonceLedger
    desk: DeskRepository
    lookups: LookupFailures
    staff: StaffDirectory
    moderation: Moderation

    def __init__(self, database: FakeDatabase) -> None:
        self._database = database
        self._work: Work | None = None

    async def __aenter__(self) -> Self:
        if self._work is not None:
            raise RuntimeError("the unit of work is already active")
        me = asyncio.current_task()
        if self._database.holder is me:  # it would wait for itself forever (as on SQLite's writer gate)
            raise RuntimeError("a unit of work opened inside another one of the same task")
        await self._database.gate.acquire()
        self._database.holder = me
        work = self._work = Work(copy.deepcopy(self._database.tables), self._database.clock)
        self.orders, self.cases = FakeOrderStore(work), FakeCaseRepository(work)
        self.conversations, self.evidence = FakeConversationRepository(work), FakeEvidenceRepository(work)
        self.updates, self.agent_requests = FakeUpdateLedger(work), FakeAgentRequests(work)
        self.outbox, self.chats, self.timers = FakeOutbox(work), FakeChatDirectory(work), FakeTimers(work)
        self.refunds, self.nonces = FakeRefundLedger(work), FakeNonceLedger(work)
        self.desk, self.lookups = FakeDeskRepository(work), FakeLookupFailures(work)
        self.staff, self.moderation = FakeStaffDirectory(work), FakeModeration(work)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self._work = None
        self._database.holder = None
        self._database.gate.release()

    def _active(self) -> Work:
        if self._work is None:
            raise RuntimeError("the unit of work is not active (use `async with uow:`)")
        return self._work

    async def commit(self) -> None:
        self._database.tables = copy.deepcopy(self._active().tables)

    async def rollback(self) -> None:
        self._active().tables = copy.deepcopy(self._database.tables)


class FakeDatabase:
    """The committed tables and the gate every unit of work passes, one at a time."""

    def __init__(self, clock: Clock = utcnow) -> None:
        self.tables = Tables()
        self.clock = clock
        self.gate = asyncio.Lock()
        self.holder: asyncio.Task[object] | None = None  # the task whose unit of work is open

    def uow(self) -> FakeUnitOfWork:
        return FakeUnitOfWork(self)

    def outbox_rows(self, *kinds: str) -> list[OutboxRow]:
        """Committed outbox rows (of these kinds; all when none), oldest first."""
        return [r for r in self.tables.outbox.values() if not kinds or r.kind in kinds]


if TYPE_CHECKING:  # structural conformance to the ports, checked by mypy
    from dialogs import ports

    def _conforms(database: FakeDatabase) -> None:
        _uow: ports.UnitOfWork = database.uow()
        _factory: ports.UnitOfWorkFactory = database.uow
