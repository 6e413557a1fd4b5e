"""One way to open a card shop's MySQL / MariaDB database: SQLAlchemy async over aiomysql, a small pool,
short timeouts, and sessions that cannot write (the shop's data is the shop's)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bot.config import ShopDatabaseConfig
from dialogs.ports import OrderSourceUnavailable

T = TypeVar("T")


class ShopUnavailable(OrderSourceUnavailable):
    """The shop's database did not answer (down, slow, refused us): the customer is asked to try again
    shortly, never told the order does not exist."""


def shop_engine(config: ShopDatabaseConfig, section: str) -> AsyncEngine:
    """An engine on `config.url`; ValueError (naming `[section] url`) when it is missing or not MySQL."""
    if not config.url:
        raise ValueError(f"[{section}] url is empty: set it to mysql+aiomysql://USER:PASSWORD@HOST:3306/DATABASE")
    try:
        url = make_url(config.url)
    except ArgumentError as exc:
        raise ValueError(f"[{section}] url is not a database URL: {exc}") from exc
    if url.get_backend_name() not in ("mysql", "mariadb"):
        raise ValueError(f"[{section}] url must be a MySQL / MariaDB URL (mysql+aiomysql://...), not {url.drivername}")
    if url.get_driver_name() != "aiomysql":
        url = url.set(drivername=f"{url.get_backend_name()}+aiomysql")
    return create_async_engine(
        url,
        pool_size=config.pool_size,
        max_overflow=config.pool_size,
        pool_timeout=config.query_timeout_seconds,
        # One SELECT per lookup on a read-only session: no BEGIN / ROLLBACK round trips around it.
        isolation_level="AUTOCOMMIT",
        pool_reset_on_return=None,
        pool_recycle=1800,  # below MySQL's wait_timeout defaults: an idle connection dropped by the server is not reused
        pool_pre_ping=True,  # a connection the server dropped (restart, wait_timeout) is replaced, not failed
        connect_args={
            "connect_timeout": config.connect_timeout_seconds,
            "charset": "utf8mb4",
            # Read-only whatever the grants say; the session time zone stays the server's, as the shop's
            # PHP writes it, so TIMESTAMP columns read back in the shop's own local time.
            "init_command": "SET SESSION TRANSACTION READ ONLY",
        },
    )


async def guarded(call: Callable[[], Awaitable[T]], timeout: float, what: str) -> T:
    """Run a database call within `timeout`; any database error or timeout becomes ShopUnavailable."""
    try:
        async with asyncio.timeout(timeout):
            return await call()
    except TimeoutError as exc:
        raise ShopUnavailable(f"{what}: no answer within {timeout:g} s") from exc
    except (SQLAlchemyError, OSError) as exc:
        raise ShopUnavailable(f"{what}: {describe(exc)}") from exc


def describe(exc: BaseException) -> str:
    """A database error in one line, without the SQL statement and parameters SQLAlchemy appends."""
    original = getattr(exc, "orig", None) or exc
    text = str(original).splitlines()[0] if str(original) else type(original).__name__
    return f"{type(original).__name__}: {text}"[:300]
