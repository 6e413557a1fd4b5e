"""RefundWorker against a fake platform over real HTTP, finance's mark-refunded and the CSV export, on
SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from bot.platform import HttpGateway, ManualGateway
from bot.refunds import RefundWorker, export_cases, local_range, mark_refunded
from dialogs.cases import CaseWorkflow
from dialogs.domain import CaseStatus, RefundAttempt, RefundStatus
from dialogs.lifecycle import ForbiddenTransition
from dialogs.notify import CASE_NEWS
from dialogs.settings import CoreSettings
from dialogs.workdays import WorkingCalendar
from storage.models import OutboxRow
from storage.uow import Database
from tests.bot.test_platform import SECRET, FakePlatform
from tests.storage.factories import T0, make_case, make_order

CASE = "R20261124-0001"


def workflow(gateway: str = "http") -> CaseWorkflow:
    return CaseWorkflow(CoreSettings(), WorkingCalendar(), gateway)


async def refunding_case(database: Database, gateway: str = "http", case_no: str = CASE, order_no: str = "A1001",
                         paid: str = "30.00") -> str:
    async with database.uow() as uow:
        await uow.orders.upsert(make_order(order_no, amount=Decimal(paid)))
        await uow.cases.add(make_case(case_no, order_no, amount=Decimal(paid), status=CaseStatus.IN_REVIEW))
        await workflow(gateway).approve(uow, case_no, actor="agent:1", at=T0)
        await uow.commit()
    return case_no


async def state(database: Database, case_no: str = CASE) -> tuple[CaseStatus, list[RefundStatus]]:
    async with database.uow() as uow:
        case = await uow.cases.get(case_no)
        attempts = await uow.refunds.for_case(case_no)
    assert case is not None
    return case.status, [a.status for a in attempts]


async def news(database: Database, case_no: str = CASE) -> list[str]:
    """The `to` of every case_news row queued for the case, oldest first."""
    async with database.uow() as uow:
        rows = await uow.session.scalars(select(OutboxRow).where(OutboxRow.kind == CASE_NEWS).order_by(OutboxRow.id))
        return [r.payload["to"] for r in rows if r.payload.get("case_no") == case_no]


@pytest.fixture
async def platform() -> AsyncIterator[FakePlatform]:
    fake = FakePlatform()
    fake.server = TestServer(fake.app())
    await fake.server.start_server()
    try:
        yield fake
    finally:
        await fake.server.close()


@pytest.fixture
async def gateway(platform: FakePlatform) -> AsyncIterator[HttpGateway]:
    gateway = HttpGateway(platform.refund_url, SECRET, timeout=0.3)
    try:
        yield gateway
    finally:
        await gateway.close()


def worker(database: Database, gateway: HttpGateway | ManualGateway) -> RefundWorker:
    # retry_base 0: an unavailable gateway is tried again on the very next pass
    return RefundWorker(database.uow, workflow(gateway.name), gateway, clock=lambda: T0 + timedelta(hours=1),
                        retry_base_seconds=0)


async def test_a_paid_refund_moves_the_case_to_refunded_and_tells_the_customer(
        database: Database, platform: FakePlatform, gateway: HttpGateway) -> None:
    await refunding_case(database)
    assert await worker(database, gateway).run_once() == 1
    assert await state(database) == (CaseStatus.REFUNDED, [RefundStatus.SUCCEEDED])
    assert "refunded" in await news(database)
    assert platform.payouts == {f"{CASE}-1": 1} and platform.calls[0]["amount"] == "30.00"
    assert await worker(database, gateway).run_once() == 0  # nothing pending: nothing sent again
    assert len(platform.calls) == 1


async def test_lost_answers_are_retried_under_the_same_key_and_pay_once(
        database: Database, platform: FakePlatform, gateway: HttpGateway) -> None:
    await refunding_case(database)
    platform.plan = ["pay_then_500", "pay_then_hang", "succeed"]
    w = worker(database, gateway)
    assert await w.run_once() == 0 and await w.run_once() == 0  # outcome unknown: the attempt stays pending
    assert await state(database) == (CaseStatus.REFUNDING, [RefundStatus.PENDING])
    assert await w.run_once() == 1
    assert await state(database) == (CaseStatus.REFUNDED, [RefundStatus.SUCCEEDED])
    assert [c["idempotency_key"] for c in platform.calls] == [f"{CASE}-1"] * 3
    assert platform.payouts == {f"{CASE}-1": 1}


async def test_a_worker_that_died_after_the_call_pays_nothing_twice(
        database: Database, platform: FakePlatform, gateway: HttpGateway) -> None:
    await refunding_case(database)
    async with database.uow() as uow:
        [recorded] = await uow.refunds.pending()
    await gateway.refund(recorded, "A1001")  # the call went out, then the process died before recording
    assert await worker(database, gateway).run_once() == 1  # a new process sends it again
    assert platform.payouts == {f"{CASE}-1": 1} and len(platform.calls) == 2
    assert await state(database) == (CaseStatus.REFUNDED, [RefundStatus.SUCCEEDED])


async def test_a_failed_refund_moves_the_case_to_refund_failed_and_a_retry_gets_a_new_key(
        database: Database, platform: FakePlatform, gateway: HttpGateway) -> None:
    await refunding_case(database)
    platform.plan = ["fail", "succeed"]
    assert await worker(database, gateway).run_once() == 1
    assert await state(database) == (CaseStatus.REFUND_FAILED, [RefundStatus.FAILED])
    async with database.uow() as uow:
        await workflow().move(uow, CASE, "retry_refund", actor="agent:1", at=T0)
        await uow.commit()
    assert await worker(database, gateway).run_once() == 1
    assert await state(database) == (CaseStatus.REFUNDED, [RefundStatus.FAILED, RefundStatus.SUCCEEDED])
    assert platform.payouts == {f"{CASE}-2": 1}


async def test_an_accepted_refund_waits_in_refunding(
        database: Database, platform: FakePlatform, gateway: HttpGateway) -> None:
    await refunding_case(database)
    platform.plan = ["accept"]
    assert await worker(database, gateway).run_once() == 1
    assert await state(database) == (CaseStatus.REFUNDING, [RefundStatus.REQUESTED])
    assert await worker(database, gateway).run_once() == 0 and len(platform.calls) == 1


async def test_an_answer_claiming_more_than_asked_is_held_for_finance(
        database: Database, platform: FakePlatform, gateway: HttpGateway) -> None:
    await refunding_case(database)
    platform.plan = ["overclaim"]
    assert await worker(database, gateway).run_once() == 1
    assert await state(database) == (CaseStatus.REFUNDING, [RefundStatus.REQUESTED])
    async with database.uow() as uow:
        [held] = await uow.refunds.for_case(CASE)
    assert "unclear answer" in held.note and "more than" in held.note


async def test_the_worker_leaves_other_gateways_attempts_alone(
        database: Database, platform: FakePlatform, gateway: HttpGateway) -> None:
    await refunding_case(database, gateway="manual")
    assert await worker(database, gateway).run_once() == 0
    assert platform.calls == [] and await state(database) == (CaseStatus.REFUNDING, [RefundStatus.PENDING])


async def test_manual_refunds_wait_for_finance_who_marks_them_refunded(database: Database) -> None:
    await refunding_case(database, gateway="manual")
    assert await worker(database, ManualGateway()).run_once() == 1
    assert await state(database) == (CaseStatus.REFUNDING, [RefundStatus.REQUESTED])
    done = await mark_refunded(database.uow, workflow("manual"), CASE, actor="finance:lin", note="支付宝 2026112422001")
    assert done.changed and done.case.status is CaseStatus.REFUNDED
    assert await state(database) == (CaseStatus.REFUNDED, [RefundStatus.SUCCEEDED])
    assert await news(database) == ["approved", "refunding", "refunded"]
    again = await mark_refunded(database.uow, workflow("manual"), CASE)
    assert not again.changed and await news(database) == ["approved", "refunding", "refunded"]


async def test_mark_refunded_refuses_unknown_and_unapproved_cases(database: Database) -> None:
    with pytest.raises(KeyError):
        await mark_refunded(database.uow, workflow("manual"), "R20990101-0001")
    async with database.uow() as uow:
        await uow.orders.upsert(make_order("A2002"))
        await uow.cases.add(make_case("R20261124-0002", "A2002", status=CaseStatus.IN_REVIEW))
        await uow.commit()
    with pytest.raises(ForbiddenTransition):
        await mark_refunded(database.uow, workflow("manual"), "R20261124-0002")
    assert await state(database, "R20261124-0002") == (CaseStatus.IN_REVIEW, [])


async def test_export_writes_the_finance_columns_and_filters_by_status_and_day(database: Database) -> None:
    await refunding_case(database, gateway="manual")  # created T0 = 2026-11-24 10:30 +08:00
    await mark_refunded(database.uow, workflow("manual"), CASE)
    async with database.uow() as uow:
        await uow.orders.upsert(make_order("A2002"))
        await uow.cases.add(make_case("R20261125-0001", "A2002", created_at=T0 + timedelta(days=1)))
        await uow.commit()

    async def export(**filters: object) -> list[dict[str, str]]:
        out = io.StringIO()
        await export_cases(database.uow, out, **filters)  # type: ignore[arg-type]
        return list(csv.DictReader(io.StringIO(out.getvalue())))

    everything = await export()
    assert [r["case_no"] for r in everything] == [CASE, "R20261125-0001"]
    first = everything[0]
    assert {k: first[k] for k in ("order_no", "user", "amount", "refunded_amount", "status", "rating")} == {
        "order_no": "A1001", "user": "424242", "amount": "30.00", "refunded_amount": "30.00",
        "status": "refunded", "rating": ""}
    assert first["created_at"] == "2026-11-24T10:30:00+08:00" and first["credit_due"]
    assert everything[1]["refunded_amount"] == "0.00" and everything[1]["credit_due"] == ""
    assert [r["case_no"] for r in await export(statuses=[CaseStatus.SUBMITTED])] == ["R20261125-0001"]
    since, until = local_range(date(2026, 11, 24), date(2026, 11, 24), "Asia/Shanghai")
    assert [r["case_no"] for r in await export(since=since, until=until)] == [CASE]
    assert await export(since=datetime(2027, 1, 1, tzinfo=UTC)) == []


async def test_an_attempt_whose_case_left_refunding_is_never_sent(
        database: Database, platform: FakePlatform, gateway: HttpGateway) -> None:
    async with database.uow() as uow:
        await uow.orders.upsert(make_order("A1001"))
        await uow.cases.add(make_case(CASE, "A1001", status=CaseStatus.IN_REVIEW))
        await uow.refunds.add(RefundAttempt(case_no=CASE, idempotency_key=f"{CASE}-1", gateway="http",
                                            amount=Decimal("100.00"), status=RefundStatus.PENDING, created_at=T0))
        await uow.commit()
    assert await worker(database, gateway).run_once() == 1
    assert platform.calls == [] and await state(database) == (CaseStatus.IN_REVIEW, [RefundStatus.FAILED])


async def test_the_worker_loop_pays_and_stops_when_told(
        database: Database, platform: FakePlatform, gateway: HttpGateway) -> None:
    await refunding_case(database)
    stop = asyncio.Event()
    loop = asyncio.create_task(worker(database, gateway).run(stop, every=0.01))
    for _ in range(300):
        if platform.payouts:
            break
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(loop, 2)
    assert platform.payouts == {f"{CASE}-1": 1}
    assert await state(database) == (CaseStatus.REFUNDED, [RefundStatus.SUCCEEDED])
