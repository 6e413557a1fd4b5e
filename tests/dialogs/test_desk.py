"""The agents' desk: who may do what, and what each decision does to the case, on the real database
(SQLite and PostgreSQL). The desk is driven through `RefundService.handle` with the events the
adapter builds, so routing is covered too; the end-to-end tests (tests/e2e/test_desk_actions.py) add
Telegram and the relay."""

from __future__ import annotations

from decimal import Decimal

from dialogs.cases import CaseWorkflow
from dialogs.domain import CaseStatus, RefundStatus
from dialogs.settings import CoreSettings
from dialogs.workdays import WorkingCalendar
from storage.uow import Database
from tests.storage.factories import T0, make_case, make_order

WORKFLOW = CaseWorkflow(CoreSettings(), WorkingCalendar())


async def test_a_partial_approval_pays_the_amount_and_its_retry_the_same(database: Database) -> None:
    async with database.uow() as uow:
        await uow.orders.upsert(make_order("A1001"))
        await uow.cases.add(make_case("R20261124-0001", "A1001", status=CaseStatus.IN_REVIEW))
        await WORKFLOW.approve(uow, "R20261124-0001", actor="agent:1", at=T0, amount=Decimal("30.00"))
        [first] = await uow.refunds.for_case("R20261124-0001")
        assert first.amount == Decimal("30.00")
        await uow.refunds.set_status(first.idempotency_key, RefundStatus.FAILED, at=T0)
        await WORKFLOW.move(uow, "R20261124-0001", "fail_refund", actor="system", at=T0)
        await WORKFLOW.move(uow, "R20261124-0001", "retry_refund", actor="system", at=T0)
        attempts = await uow.refunds.for_case("R20261124-0001")
        assert [a.amount for a in attempts] == [Decimal("30.00"), Decimal("30.00")]


async def test_an_approval_never_pays_more_than_the_full_refund(database: Database) -> None:
    async with database.uow() as uow:
        await uow.orders.upsert(make_order("A1001"))
        await uow.cases.add(make_case("R20261124-0001", "A1001", status=CaseStatus.IN_REVIEW))
        await WORKFLOW.approve(uow, "R20261124-0001", actor="agent:1", at=T0, amount=Decimal(900))
        [attempt] = await uow.refunds.for_case("R20261124-0001")
        assert attempt.amount == Decimal("100.00")
