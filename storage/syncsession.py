"""AsyncSession's surface, as the repositories use it, over a synchronous Session (SQLite only)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session


class SyncSessionAdapter:
    """Each method does its work at once and returns: a transaction never waits on a thread."""

    def __init__(self, session: Session) -> None:
        self._session = session

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        return self._session.execute(*args, **kwargs)

    async def scalar(self, *args: Any, **kwargs: Any) -> Any:
        return self._session.scalar(*args, **kwargs)

    async def scalars(self, *args: Any, **kwargs: Any) -> Any:
        return self._session.scalars(*args, **kwargs)

    async def connection(self) -> _SyncConnectionAdapter:
        return _SyncConnectionAdapter(self._session.connection())

    async def flush(self, objects: Any = None) -> None:
        self._session.flush(objects)

    def add(self, instance: object) -> None:
        self._session.add(instance)

    @asynccontextmanager
    async def begin_nested(self) -> AsyncIterator[None]:
        with self._session.begin_nested():
            yield

    async def commit(self) -> None:
        self._session.commit()

    async def rollback(self) -> None:
        self._session.rollback()

    async def close(self) -> None:
        self._session.close()


class _SyncConnectionAdapter:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        return self._connection.execute(*args, **kwargs)
