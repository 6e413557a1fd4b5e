"""Whole-database chores that are not part of any port: only the sandbox's reset uses them."""

from __future__ import annotations

from sqlalchemy import delete

from storage.models import Base
from storage.uow import Database


async def wipe(database: Database) -> None:
    """Delete every row of every table (the schema and its revision stay). Children before parents."""
    async with database.uow() as uow:
        for table in reversed(Base.metadata.sorted_tables):
            await uow.session.execute(delete(table))
        await uow.commit()
