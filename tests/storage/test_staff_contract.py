"""The staff directory and moderation keep their promises on tests.fakes.FakeDatabase, SQLite and
PostgreSQL alike (the core's tests run on the fakes), and the TOML seed rule holds on each."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from dialogs import roster
from dialogs.ports import Restriction, StaffMember
from dialogs.settings import DeskSettings
from tests.fakes import FakeDatabase
from tests.storage.factories import T0

TOML = DeskSettings(chat_id=-100500, agents=(7001, 7002), supervisors=(7009,), aliases={7001: "小李"})


@pytest.fixture(params=["fake", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    """Here 'fake' too (tests/conftest.py's `database` reads this for SQLite and PostgreSQL)."""
    return str(request.param)


@pytest.fixture
def db(backend: str, request: pytest.FixtureRequest) -> Any:
    return FakeDatabase() if backend == "fake" else request.getfixturevalue("database")


def member(user_id: int, role: str = "agent", alias: str | None = None, by: str = "cli:boss") -> StaffMember:
    return StaffMember(user_id=user_id, role=role, alias=alias, added_by=by, added_at=T0)


async def test_members_come_in_first_added_order_and_a_removed_one_only_when_asked(db: Any) -> None:
    async with db.uow() as uow:
        for user_id in (30, 10, 20):
            await uow.staff.put(member(user_id), action="add")
        assert await uow.staff.remove(10, by="cli:boss", at=T0 + timedelta(minutes=1))
        await uow.commit()
    async with db.uow() as uow:
        assert [m.user_id for m in await uow.staff.members()] == [30, 20]
        everyone = await uow.staff.members(removed=True)
    assert [(m.user_id, m.removed_by) for m in everyone] == [(30, None), (10, "cli:boss"), (20, None)]
    assert everyone[1].removed_at == T0 + timedelta(minutes=1)


async def test_a_re_added_member_is_current_again_in_their_first_place_with_the_new_role(db: Any) -> None:
    async with db.uow() as uow:
        await uow.staff.put(member(1), action="add")
        await uow.staff.put(member(2), action="add")
        await uow.staff.remove(1, by="cli:boss", at=T0)
        await uow.staff.put(member(1, "supervisor", "老周"), action="add")
        await uow.commit()
    async with db.uow() as uow:
        members = await uow.staff.members()
    assert [(m.user_id, m.role, m.alias, m.removed_at) for m in members] == [(1, "supervisor", "老周", None),
                                                                           (2, "agent", None, None)]


async def test_removing_someone_who_is_not_a_current_member_changes_nothing(db: Any) -> None:
    async with db.uow() as uow:
        await uow.staff.put(member(1), action="add")
        assert await uow.staff.remove(1, by="a", at=T0)
        assert not await uow.staff.remove(1, by="b", at=T0)
        assert not await uow.staff.remove(99, by="b", at=T0)
        changes = await uow.staff.changes()
    assert [(c.user_id, c.action, c.by) for c in changes] == [(1, "remove", "a"), (1, "add", "cli:boss")]


async def test_every_change_is_audited_newest_first_and_a_rollback_keeps_none(db: Any) -> None:
    async with db.uow() as uow:
        await uow.staff.put(member(1, alias="小王", by="agent:9"), action="add")
        await uow.commit()
        await uow.staff.remove(1, by="agent:9", at=T0)  # not committed
    async with db.uow() as uow:
        changes = await uow.staff.changes()
        assert [m.user_id for m in await uow.staff.members()] == [1]
    assert [(c.user_id, c.action, c.role, c.alias, c.by, c.at) for c in changes] == [
        (1, "add", "agent", "小王", "agent:9", T0)]


async def test_the_seed_adds_toml_members_never_seen_and_never_brings_back_a_removed_one(db: Any) -> None:
    async with db.uow() as uow:
        added = await roster.seed(uow, TOML, T0)
        await uow.commit()
    assert [(m.user_id, m.role, m.alias, m.added_by) for m in added] == [
        (7001, "agent", "小李", "config"), (7002, "agent", None, "config"), (7009, "supervisor", None, "config")]
    async with db.uow() as uow:
        assert await roster.remove(uow, TOML, 7002, by="cli:boss", at=T0)
        assert await roster.seed(uow, TOML, T0) == []  # a second start
        await uow.commit()
    async with db.uow() as uow:
        desk = await roster.current_desk(uow, TOML, T0)
    assert (desk.agents, desk.supervisors) == ((7001,), (7009,))
    assert not desk.is_agent(7002)


async def test_a_database_never_seeded_reads_the_toml_members_as_the_seed_would_write_them(db: Any) -> None:
    async with db.uow() as uow:
        await roster.add(uow, TOML, 8001, supervisor=False, alias="小张", by="agent:7009", at=T0)
        await uow.commit()
    async with db.uow() as uow:
        desk = await roster.current_desk(uow, TOML.model_copy(update={"agents": (7001, 7002, 7003)}), T0)
    # 7003 joined the TOML after the database was seeded: never seen, so it counts.
    assert (desk.agents, desk.supervisors) == ((7001, 7002, 8001, 7003), (7009,))
    assert (desk.alias(7001, "zh_CN"), desk.alias(8001, "zh_CN")) == ("小李", "小张")


async def test_a_restriction_is_read_by_its_chat_replaced_noticed_and_lifted(db: Any) -> None:
    mute = Restriction(chat_id=42, kind="mute", reason="2 h", by="agent:1", at=T0, until=T0 + timedelta(hours=2))
    async with db.uow() as uow:
        assert await uow.moderation.get(42) is None
        await uow.moderation.put(mute)
        await uow.moderation.noticed(42, at=T0 + timedelta(minutes=5))
        await uow.commit()
    async with db.uow() as uow:
        seen = await uow.moderation.get(42)
        assert seen is not None and seen.noticed_at == T0 + timedelta(minutes=5) and seen.until == mute.until
        assert seen.active(T0 + timedelta(hours=1)) and not seen.active(T0 + timedelta(hours=2))
        await uow.moderation.put(Restriction(chat_id=42, kind="ban", reason="spam", by="agent:2", at=T0))
        ban = await uow.moderation.get(42)
        assert ban is not None and (ban.kind, ban.until, ban.noticed_at, ban.by) == ("ban", None, None, "agent:2")
        assert await uow.moderation.lift(42)
        assert not await uow.moderation.lift(42)
        assert await uow.moderation.get(42) is None


async def test_two_starts_seeding_at_once_leave_one_row_per_person(db: Any) -> None:
    async def start() -> None:
        async with db.uow() as uow:
            await roster.seed(uow, TOML, T0)
            await uow.commit()

    await asyncio.gather(start(), start())
    async with db.uow() as uow:
        assert [m.user_id for m in await uow.staff.members(removed=True)] == [7001, 7002, 7009]
