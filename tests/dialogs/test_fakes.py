"""What the fakes add to the ports' contract (tests/storage/test_fakes_contract.py holds the rest)."""

from __future__ import annotations

import asyncio

import pytest

from tests.fakes import FakeDatabase


async def test_a_unit_of_work_nested_in_the_same_task_is_refused_instead_of_waiting_forever(
        database: FakeDatabase) -> None:
    async with database.uow():
        with pytest.raises(RuntimeError):
            async with database.uow():
                pass


async def test_units_of_work_of_two_tasks_take_turns(database: FakeDatabase) -> None:
    order: list[str] = []

    async def work(name: str) -> None:
        async with database.uow():
            order.append(f"{name} in")
            await asyncio.sleep(0)
            order.append(f"{name} out")

    await asyncio.gather(work("a"), work("b"))
    assert order == ["a in", "a out", "b in", "b out"]
