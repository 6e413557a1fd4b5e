from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from dialogs.domain import CaseStatus, Reason
from dialogs.ports import ConcurrentUpdate
from storage.cases import SqlaCaseRepository
from storage.uow import Database
from tests.storage.factories import T0, make_case, make_evidence, make_order


@pytest.fixture
async def order(database: Database) -> None:
    async with database.uow() as uow:
        await uow.orders.upsert(make_order("A1001"))
        await uow.orders.upsert(make_order("A1002"))
        await uow.commit()


async def _allocate(database: Database, day: str) -> str:
    async with database.uow() as uow:
        case_no = await uow.cases.next_case_no(day)
        await uow.commit()
    return case_no


async def test_case_numbers_are_sequential_within_a_day(database: Database) -> None:
    numbers = [await _allocate(database, "20261124") for _ in range(3)]
    assert numbers == ["R20261124-0001", "R20261124-0002", "R20261124-0003"]


async def test_case_numbers_restart_on_the_next_day(database: Database) -> None:
    await _allocate(database, "20261124")
    await _allocate(database, "20261124")
    assert await _allocate(database, "20261125") == "R20261125-0001"
    assert await _allocate(database, "20261124") == "R20261124-0003"


async def test_a_rolled_back_allocation_leaves_no_gap(database: Database) -> None:
    async with database.uow() as uow:
        assert await uow.cases.next_case_no("20261124") == "R20261124-0001"
    assert await _allocate(database, "20261124") == "R20261124-0001"


async def test_a_malformed_day_is_refused(database: Database) -> None:
    async with database.uow() as uow:
        with pytest.raises(ValueError, match="YYYYMMDD"):
            await uow.cases.next_case_no("2026-11-24")


@pytest.mark.parametrize("day_exists", [False, True], ids=["new-day", "existing-day"])
async def test_concurrent_allocations_get_distinct_numbers(database: Database, day_exists: bool) -> None:
    # The first unit of work holds the counter (row lock on PostgreSQL, write lock on SQLite)
    # while the second asks; the second must wait and continue after the first commits.
    if day_exists:
        await _allocate(database, "20261124")
    allocated = asyncio.Event()

    async def first() -> str:
        async with database.uow() as uow:
            number = await uow.cases.next_case_no("20261124")
            allocated.set()
            await asyncio.sleep(0.3)
            await uow.commit()
        return number

    async def second() -> str:
        await allocated.wait()
        return await _allocate(database, "20261124")

    a, b = await asyncio.gather(first(), second())
    offset = 1 if day_exists else 0
    assert (a, b) == (f"R20261124-{1 + offset:04d}", f"R20261124-{2 + offset:04d}")


async def test_added_case_reads_back_equal_with_its_attached_evidence(database: Database, order: None) -> None:
    case = make_case()
    async with database.uow() as uow:
        await uow.evidence.add_draft("draft-1", case.chat_id, make_evidence("AQAD1"))
        await uow.evidence.add_draft("draft-1", case.chat_id, make_evidence("AQAD2"))
        await uow.cases.add(case)
        assert await uow.evidence.attach("draft-1", case.case_no) == 2
        await uow.commit()
    async with database.uow() as uow:
        found = await uow.cases.get(case.case_no)
    assert found is not None
    assert found.evidence == (make_evidence("AQAD1"), make_evidence("AQAD2"))
    assert found == make_case(evidence=found.evidence)


async def test_get_of_an_unknown_case_is_none(database: Database) -> None:
    async with database.uow() as uow:
        assert await uow.cases.get("R20000101-0001") is None


async def test_adding_a_case_records_its_first_event(database: Database, order: None) -> None:
    async with database.uow() as uow:
        await uow.cases.add(make_case())
        await uow.commit()
    async with database.uow() as uow:
        events = await SqlaCaseRepository(uow.session).events("R20261124-0001")
    assert events == [(None, "submitted", "customer")]


async def test_find_open_finds_the_open_case_of_an_order_and_reason(database: Database, order: None) -> None:
    async with database.uow() as uow:
        await uow.cases.add(make_case())
        await uow.commit()
    async with database.uow() as uow:
        found = await uow.cases.find_open("A1001", Reason.CARD_INVALID)
        other_reason = await uow.cases.find_open("A1001", Reason.CARD_USED)
        other_order = await uow.cases.find_open("A1002", Reason.CARD_INVALID)
    assert found is not None and found.case_no == "R20261124-0001"
    assert other_reason is None and other_order is None


@pytest.mark.parametrize("status", [CaseStatus.CLOSED, CaseStatus.WITHDRAWN, CaseStatus.REFUNDED])
async def test_find_open_ignores_closed_statuses(database: Database, order: None, status: CaseStatus) -> None:
    async with database.uow() as uow:
        await uow.cases.add(make_case(status=status))
        await uow.commit()
    async with database.uow() as uow:
        assert await uow.cases.find_open("A1001", Reason.CARD_INVALID) is None


async def test_find_open_ignores_a_case_once_it_is_closed(database: Database, order: None) -> None:
    async with database.uow() as uow:
        await uow.cases.add(make_case())
        cases = SqlaCaseRepository(uow.session)
        closed = await cases.set_status("R20261124-0001", CaseStatus.WITHDRAWN, actor="customer")
        await uow.commit()
    assert closed.status is CaseStatus.WITHDRAWN
    async with database.uow() as uow:
        assert await uow.cases.find_open("A1001", Reason.CARD_INVALID) is None
        events = await SqlaCaseRepository(uow.session).events("R20261124-0001")
    assert events == [(None, "submitted", "customer"), ("submitted", "withdrawn", "customer")]


async def test_a_second_open_case_for_the_same_order_and_reason_is_rejected(
    database: Database, order: None
) -> None:
    async with database.uow() as uow:
        await uow.cases.add(make_case("R20261124-0001"))
        await uow.commit()
    async with database.uow() as uow:
        with pytest.raises(ConcurrentUpdate):
            await uow.cases.add(make_case("R20261124-0002"))


async def test_a_closed_case_does_not_block_a_new_open_one(database: Database, order: None) -> None:
    async with database.uow() as uow:
        await uow.cases.add(make_case("R20261124-0001", status=CaseStatus.CLOSED))
        await uow.cases.add(make_case("R20261124-0002", status=CaseStatus.REJECTED_FINAL))
        await uow.cases.add(make_case("R20261124-0003"))
        await uow.commit()
    async with database.uow() as uow:
        found = await uow.cases.find_open("A1001", Reason.CARD_INVALID)
    assert found is not None and found.case_no == "R20261124-0003"


async def test_a_case_for_an_unknown_order_is_an_integrity_error_not_a_race(database: Database) -> None:
    from sqlalchemy.exc import IntegrityError

    async with database.uow() as uow:
        with pytest.raises(IntegrityError):
            await uow.cases.add(make_case(order_no="missing"))


async def test_list_for_user_is_newest_first_and_limited(database: Database, order: None) -> None:
    async with database.uow() as uow:
        for n, reason in enumerate([Reason.CARD_INVALID, Reason.CARD_USED, Reason.OTHER], start=1):
            await uow.cases.add(
                make_case(f"R20261124-{n:04d}", reason=reason, created_at=T0 + timedelta(minutes=n))
            )
        await uow.cases.add(make_case("R20261124-0009", order_no="A1002", user_id=999, chat_id=999))
        await uow.commit()
    async with database.uow() as uow:
        listed = await uow.cases.list_for_user(424242, limit=2)
        everything = await uow.cases.list_for_user(424242)
    assert [case.case_no for case in listed] == ["R20261124-0003", "R20261124-0002"]
    assert len(everything) == 3


async def test_a_logged_desk_action_joins_the_history_without_moving_the_case(database: Database) -> None:
    async with database.uow() as uow:
        await uow.orders.upsert(make_order("L1001"))
        await uow.cases.add(make_case("R20261124-0007", "L1001"))
        await uow.cases.log("R20261124-0007", actor="agent:20001", at=T0, note="take")
        await uow.commit()
    async with database.uow() as uow:
        case = await uow.cases.get("R20261124-0007")
        history = await uow.desk.history("R20261124-0007")
        with pytest.raises(KeyError):
            await uow.cases.log("R20990101-0001", actor="agent:1", at=T0, note="x")
    assert case is not None and case.status is CaseStatus.SUBMITTED and case.version == 1
    assert [(e.actor, e.from_status, e.to_status, e.note) for e in history][-1] == (
        "agent:20001", "submitted", "submitted", "take")
