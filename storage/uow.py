"""The SQLAlchemy unit of work and the `Database` handle the application holds."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, cast

from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import sessionmaker

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
from storage.cases import SqlaCaseRepository
from storage.conversations import SqlaAgentRequests, SqlaConversationRepository
from storage.db import (
    checkpoint_sqlite,
    create_engine,
    create_session_factory,
    create_sync_sqlite_engine,
    sqlite_path,
)
from storage.delivery import SqlaChatDirectory, SqlaOutbox
from storage.desk import SqlaDeskRepository
from storage.evidence import SqlaEvidenceRepository
from storage.lookups import SqlaLookupFailures
from storage.orders import SqlaOrderStore
from storage.platform import SqlaNonceLedger, SqlaRefundLedger
from storage.staff import SqlaModeration, SqlaStaffDirectory
from storage.syncsession import SyncSessionAdapter
from storage.timers import SqlaTimers
from storage.updates import SqlaUpdateLedger


class SqlaUnitOfWork:
    """One transaction: `async with uow: ...; await uow.commit()`.

    Leaving the block rolls back whatever was not committed (including work done after a
    commit). A fresh session is opened on every entry, so an instance may be reused serially.
    """

    # Typed as the ports (protocol attributes are invariant); use `session` for anything more.
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

    def __init__(self, session_factory: Callable[[], AsyncSession], clock: Clock = utcnow,
                 gate: asyncio.Lock | None = None) -> None:
        self._session_factory = session_factory
        self._clock = clock
        self._session: AsyncSession | None = None
        self._gate = gate

    @property
    def session(self) -> AsyncSession:
        if self._session is None:
            raise RuntimeError("the unit of work is not active (use `async with uow:`)")
        return self._session

    async def __aenter__(self) -> Self:
        if self._session is not None:
            raise RuntimeError("the unit of work is already active")
        if self._gate is not None:
            await self._gate.acquire()
        session = self._session_factory()
        self._session = session
        self.orders = SqlaOrderStore(session, self._clock)
        self.cases = SqlaCaseRepository(session, self._clock)
        self.conversations = SqlaConversationRepository(session, self._clock)
        self.evidence = SqlaEvidenceRepository(session, self._clock)
        self.updates = SqlaUpdateLedger(session)
        self.agent_requests = SqlaAgentRequests(session)
        self.outbox = SqlaOutbox(session)
        self.chats = SqlaChatDirectory(session)
        self.timers = SqlaTimers(session)
        self.refunds = SqlaRefundLedger(session)
        self.nonces = SqlaNonceLedger(session)
        self.desk = SqlaDeskRepository(session, self._clock)
        self.lookups = SqlaLookupFailures(session, self._clock)
        self.staff = SqlaStaffDirectory(session, self._clock)
        self.moderation = SqlaModeration(session, self._clock)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        session = self.session
        self._session = None
        try:
            await session.rollback()
        finally:
            try:
                await session.close()
            finally:
                if self._gate is not None:
                    self._gate.release()

    async def commit(self) -> None:
        await self.session.commit()

    async def rollback(self) -> None:
        await self.session.rollback()


class Database:
    """Engine + session factory; `uow` is the `UnitOfWorkFactory` handed to the core."""

    def __init__(self, engine: AsyncEngine, clock: Clock = utcnow) -> None:
        self.engine = engine
        self.session_factory = create_session_factory(engine)
        self._clock = clock
        self._sync_engine: Engine | None = None
        self.sqlite_file = sqlite_path(engine.url)
        self._uow_sessions: Callable[[], AsyncSession] = self.session_factory
        if self.sqlite_file is not None:
            self._sync_engine = create_sync_sqlite_engine(engine.url)
            sync_sessions = sessionmaker(self._sync_engine, expire_on_commit=False, autoflush=False)
            # The adapter offers the AsyncSession methods the repositories call (see syncsession).
            self._uow_sessions = lambda: cast(AsyncSession, SyncSessionAdapter(sync_sessions()))
        # Every SQLite transaction is a writer (BEGIN IMMEDIATE): queue them here instead of in
        # SQLite's busy handler, which sleeps in steps of up to 100 ms while another one commits.
        self._gate = asyncio.Lock() if engine.dialect.name == "sqlite" else None

    @classmethod
    def from_url(cls, url: str, *, clock: Clock = utcnow, **engine_options: Any) -> Database:
        return cls(create_engine(url, **engine_options), clock=clock)

    @property
    def dialect(self) -> str:
        """'sqlite' or 'postgresql'."""
        return self.engine.dialect.name

    def uow(self) -> SqlaUnitOfWork:
        return SqlaUnitOfWork(self._uow_sessions, self._clock, self._gate)

    async def checkpoint(self) -> None:
        """SQLite: move the WAL into the database file, off the event loop (see create_sync_sqlite_engine).
        Run it periodically while units of work are running; a no-op on PostgreSQL."""
        if self._sync_engine is not None and self.sqlite_file is not None:
            await asyncio.to_thread(checkpoint_sqlite, self.sqlite_file)

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self._sync_engine is not None:
            self._sync_engine.dispose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.dispose()


if TYPE_CHECKING:  # structural conformance to the ports, checked by mypy
    from dialogs import ports

    def _conforms(database: Database) -> None:
        _uow: ports.UnitOfWork = database.uow()
        _factory: ports.UnitOfWorkFactory = database.uow
