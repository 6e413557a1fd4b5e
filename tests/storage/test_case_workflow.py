"""Moving a case writes its event and its notification in one transaction, on SQLite and PostgreSQL;
a forbidden move changes nothing."""

from __future__ import annotations

import pytest

from dialogs.cases import CaseWorkflow
from dialogs.domain import CaseStatus
from dialogs.lifecycle import ForbiddenTransition
from dialogs.settings import CoreSettings
from dialogs.workdays import WorkingCalendar
from storage.uow import Database
from tests.storage.factories import T0, make_case, make_order

WORKFLOW = CaseWorkflow(CoreSettings(), WorkingCalendar())


async def move_case(uow, case_no: str, trigger: str, **kw):  # type: ignore[no-untyped-def]
    return await WORKFLOW.move(uow, case_no, trigger, **kw)


@pytest.fixture
async def case_no(database: Database) -> str:
    async with database.uow() as uow:
        await uow.orders.upsert(make_order("A1001"))
        await uow.cases.add(make_case("R20261124-0001", "A1001"))
        await uow.commit()
    return "R20261124-0001"


async def test_a_move_writes_the_event_and_one_notification(database: Database, case_no: str) -> None:
    async with database.uow() as uow:
        moved = await move_case(uow, case_no, "start_review", actor="agent:42", at=T0, note="taken")
        await uow.commit()
    assert moved.status is CaseStatus.IN_REVIEW
    async with database.uow() as uow:
        case = await uow.cases.get(case_no)
        assert case is not None and case.status is CaseStatus.IN_REVIEW and case.version == moved.version
        assert (await uow.cases.events(case_no))[-1] == ("submitted", "in_review", "agent:42")  # type: ignore[attr-defined]
        # The same news again (a replayed callback, a retried transaction) is not queued twice.
        assert not await uow.outbox.add(_notification(case_no, moved.version, "in_review"))


async def test_two_moves_queue_two_notifications(database: Database, case_no: str) -> None:
    async with database.uow() as uow:
        first = await move_case(uow, case_no, "start_review", actor="agent:42", at=T0)
        second = await move_case(uow, case_no, "ask_info", actor="agent:42", at=T0, note="order page")
        await uow.commit()
    assert second.version == first.version + 1 and second.status is CaseStatus.NEEDS_INFO


async def test_a_forbidden_move_raises_and_changes_nothing(database: Database, case_no: str) -> None:
    async with database.uow() as uow:
        with pytest.raises(ForbiddenTransition):
            await move_case(uow, case_no, "confirm_refund", actor="finance", at=T0)
        await uow.commit()
    async with database.uow() as uow:
        case = await uow.cases.get(case_no)
        assert case is not None and case.status is CaseStatus.SUBMITTED
        assert [e[1] for e in await uow.cases.events(case_no)] == ["submitted"]  # type: ignore[attr-defined]


async def test_an_unknown_case_raises(database: Database) -> None:
    async with database.uow() as uow:
        with pytest.raises(KeyError):
            await move_case(uow, "R20990101-0001", "withdraw", actor="customer", at=T0)


def _notification(case_no: str, version: int, status: str):  # type: ignore[no-untyped-def]
    from dialogs.domain import OutboxMessage

    return OutboxMessage(kind="case_card", chat_id=1, dedupe_key=f"case:{case_no}:v{version}:card",
                         payload={}, created_at=T0)
