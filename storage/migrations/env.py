"""Alembic environment: async engines from storage.db, URL from storage.migrate (never alembic.ini).

The URL comes from `config.attributes["url"]` (set by storage.migrate), else the
`sqlalchemy.url` main option, else REFUNDBOT_DATABASE_URL. A caller may also hand over an open
sync connection as `config.attributes["connection"]`.
"""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

from storage.db import create_engine, is_sqlite, normalize_url
from storage.models import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = (
        config.attributes.get("url")
        or config.get_main_option("sqlalchemy.url")
        or os.environ.get("REFUNDBOT_DATABASE_URL")
    )
    if not url:
        raise RuntimeError("no database URL: pass one to storage.migrate or set REFUNDBOT_DATABASE_URL")
    return str(url)


def run_migrations_offline() -> None:
    url = _url()
    context.configure(
        url=normalize_url(url),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        render_as_batch=is_sqlite(url),
    )
    with context.begin_transaction():
        context.run_migrations()


def do_run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things; batch mode recreates tables instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_async_migrations() -> None:
    # NullPool: a one-off engine whose connection must not outlive the migration.
    engine = create_engine(_url(), poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(do_run_migrations)
    finally:
        await engine.dispose()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        do_run_migrations(connection)
    else:
        asyncio.run(run_async_migrations())


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
