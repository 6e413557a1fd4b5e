"""Engine and session factory for SQLite (aiosqlite) and PostgreSQL (asyncpg)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine as sa_create_engine
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

_SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=10000",
)


def normalize_url(url: str) -> str:
    """Map plain database URLs to the async drivers we ship; async URLs pass unchanged."""
    return _async_url(url).render_as_string(hide_password=False)


def _async_url(url: str | URL) -> URL:
    text = url.render_as_string(hide_password=False) if isinstance(url, URL) else url
    if text.startswith("postgres://"):  # Heroku-style alias that SQLAlchemy does not accept
        text = "postgresql://" + text[len("postgres://") :]
    parsed = make_url(text)
    if parsed.drivername in ("sqlite", "sqlite+pysqlite"):
        return parsed.set(drivername="sqlite+aiosqlite")
    if parsed.drivername in ("postgresql", "postgresql+psycopg2", "postgresql+psycopg"):
        return parsed.set(drivername="postgresql+asyncpg")
    return parsed


def is_sqlite(url: str | URL) -> bool:
    return _async_url(url).get_backend_name() == "sqlite"


def sqlite_path(url: str | URL) -> Path | None:
    """The file of a SQLite URL; None for other databases and in-memory SQLite."""
    parsed = _async_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    return _sqlite_file(parsed)


def _sqlite_file(url: URL) -> Path | None:
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def create_engine(url: str | URL, **kwargs: Any) -> AsyncEngine:
    """An async engine; on SQLite with WAL and write-locking transactions (see `_setup_sqlite`)."""
    normalized = _async_url(url)
    if normalized.get_backend_name() == "sqlite":
        path = _sqlite_file(normalized)
        if path is not None:
            path.expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(normalized, **kwargs)
        _setup_sqlite(engine)
        return engine
    options: dict[str, Any] = {}
    if "poolclass" not in kwargs:  # NullPool etc. reject sizing arguments
        options = {
            "pool_size": 5,
            "max_overflow": 10,
            "pool_pre_ping": True,  # survive server restarts and idle-connection reaping
            "pool_recycle": 1800,
        }
    options.update(kwargs)
    return create_async_engine(normalized, **options)


def create_sync_sqlite_engine(url: str | URL) -> Engine:
    """A plain pysqlite engine on the same file, with the same pragmas and BEGIN IMMEDIATE.

    The unit of work runs SQLite statements through it in the event loop's thread: a statement
    takes microseconds, far less than aiosqlite's thread hand-off per cursor call, and a
    transaction then holds the writer gate only for its own work."""
    parsed = _async_url(url).set(drivername="sqlite+pysqlite")
    engine = sa_create_engine(parsed, connect_args={"check_same_thread": False})
    # A commit that crosses the WAL's auto-checkpoint size would copy pages and fsync right there,
    # in the event loop's thread; `checkpoint_sqlite` does that work in a worker thread instead.
    _install_sqlite_hooks(engine, extra_pragmas=("PRAGMA wal_autocheckpoint=0",))
    return engine


def checkpoint_sqlite(path: Path) -> None:
    """Copy committed WAL frames into the database file without blocking readers or writers.
    Blocking I/O: call it from a worker thread."""
    connection = sqlite3.connect(path, isolation_level=None, timeout=10)
    try:
        connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
    finally:
        connection.close()


def _setup_sqlite(engine: AsyncEngine) -> None:
    _install_sqlite_hooks(engine.sync_engine)


def _install_sqlite_hooks(engine: Engine, extra_pragmas: tuple[str, ...] = ()) -> None:
    # The pysqlite recipe from the SQLAlchemy docs: take BEGIN away from the driver and emit
    # BEGIN IMMEDIATE ourselves. A deferred transaction that reads and then writes fails with
    # SQLITE_BUSY on lock upgrade (busy_timeout does not apply there); IMMEDIATE takes the write
    # lock up front, so concurrent writers queue on busy_timeout instead.

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            for pragma in _SQLITE_PRAGMAS + extra_pragmas:
                cursor.execute(pragma)
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    # expire_on_commit=False: repositories hand out domain objects, but rows must stay readable
    # after commit without an implicit (async-incompatible) refresh.
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


# The conventional name, for callers that think in SQLAlchemy terms.
sessionmaker = create_session_factory
