"""RefundWorker against a fake platform over real HTTP, finance's mark-refunded and the CSV export, on
SQLite and PostgreSQL; workers sharing one database call the platform once per attempt."""

from __future__ import annotations

import asyncio
import csv
import io
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from bot.finance import export_rows, local_range, write_csv
from bot.rails.http import HttpGateway
from bot.rails.manual import ManualGateway
from bot.workers.refunds import RefundWorker
from dialogs.cases import CaseWorkflow
from dialogs.domain import CaseStatus, RefundAttempt, RefundStatus
from dialogs.lifecycle import ForbiddenTransition
from dialogs.outbox import CASE_NEWS
from dialogs.ports import GatewayResult, Payment
from dialogs.refunds import mark_refunded
from dialogs.settings import CoreSettings
from dialogs.workdays import WorkingCalendar
from storage.models import OutboxRow, RefundAttemptRow
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


def worker(database: Database, gateway: HttpGateway | ManualGateway | CountingGateway,
           **options: object) -> RefundWorker:
    # retry_base 0: an unavailable gateway is tried again on the very next pass
    settings: dict[str, object] = {"clock": lambda: T0 + timedelta(hours=1), "retry_base_seconds": 0, **options}
    return RefundWorker(database.uow, workflow(gateway.name), gateway, **settings)  # type: ignore[arg-type]


@dataclass
class Clock:
    now: datetime = T0 + timedelta(hours=1)

    def __call__(self) -> datetime:
        return self.now


@dataclass
class CountingGateway:
    """A worker's HttpGateway, counting the calls this worker makes (`on_call` runs before each)."""

    inner: HttpGateway
    calls: Counter[str] = field(default_factory=Counter)
    on_call: list[object] = field(default_factory=list)
    name: str = "http"

    async def refund(self, attempt: RefundAttempt, payment: Payment) -> GatewayResult:
        self.calls[attempt.idempotency_key] += 1
        for hook in self.on_call:
            hook()  # type: ignore[operator]
        return await self.inner.refund(attempt, payment)

    async def query(self, attempt: RefundAttempt, payment: Payment) -> GatewayResult | None:
        return await self.inner.query(attempt, payment)

    async def close(self) -> None:
        await self.inner.close()


class SlowPlatform(FakePlatform):
    """Answers each refund after `delay` seconds: two workers' passes overlap."""

    delay = 0.02

    async def refund(self, request: web.Request) -> web.Response:
        await asyncio.sleep(self.delay)
        return await super().refund(request)


async def refunding_cases(database: Database, count: int) -> list[str]:
    return [await refunding_case(database, case_no=f"R20261124-{n:04d}", order_no=f"A{1000 + n}")
            for n in range(1, count + 1)]


async def lease_of(database: Database, key: str) -> tuple[str | None, datetime | None]:
    async with database.uow() as uow:
        row = (await uow.session.execute(select(RefundAttemptRow.claimed_by, RefundAttemptRow.claim_until)
                                         .where(RefundAttemptRow.idempotency_key == key))).one()
    return row.claimed_by, row.claim_until


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
    await gateway.refund(recorded, Payment("A1001", Decimal("30.00")))  # the call went out, then the process died before recording
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
        write_csv(await export_rows(database, **filters), out)  # type: ignore[arg-type]
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


# --- several workers on one database -----------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_two_workers_on_one_postgresql_database_send_each_attempt_exactly_once(
        migrated_database_url: str) -> None:
    platform = SlowPlatform()
    platform.server = TestServer(platform.app())
    await platform.server.start_server()
    # Two processes' worth: a connection pool, a gateway (its own HTTP session) and a worker each.
    databases = [Database.from_url(migrated_database_url) for _ in range(2)]
    gateways = [CountingGateway(HttpGateway(platform.refund_url, SECRET, timeout=2)) for _ in range(2)]
    try:
        keys = [f"{case_no}-1" for case_no in await refunding_cases(databases[0], 20)]
        workers = [RefundWorker(db.uow, workflow(), gw, batch_size=3, owner=f"worker-{n}")
                   for n, (db, gw) in enumerate(zip(databases, gateways, strict=True))]
        stop = asyncio.Event()
        loops = [asyncio.create_task(w.run(stop, every=0.01)) for w in workers]
        for _ in range(1000):
            if len(platform.payouts) == 20:
                break
            await asyncio.sleep(0.01)
        stop.set()
        await asyncio.wait_for(asyncio.gather(*loops), 5)
        assert Counter(c["idempotency_key"] for c in platform.calls) == Counter(keys)  # once each, none twice
        assert platform.payouts == Counter(keys)
        assert gateways[0].calls + gateways[1].calls == Counter(keys)
        assert gateways[0].calls and gateways[1].calls  # both took a share
        for case_no in (k.removesuffix("-1") for k in keys):
            assert await state(databases[1], case_no) == (CaseStatus.REFUNDED, [RefundStatus.SUCCEEDED])
    finally:
        for gw in gateways:
            await gw.inner.close()
        for db in databases:
            await db.dispose()
        await platform.server.close()


async def test_a_failed_call_holds_the_attempt_back_from_every_worker_until_its_backoff_ends(
        database: Database, platform: FakePlatform, gateway: HttpGateway) -> None:
    await refunding_case(database)
    platform.plan = ["pay_then_500", "succeed"]
    clock = Clock()
    first = worker(database, gateway, clock=clock, retry_base_seconds=60, owner="a")
    other = worker(database, gateway, clock=clock, retry_base_seconds=60, owner="b")
    assert await first.run_once() == 0  # unavailable: backoff 60 s
    assert await lease_of(database, f"{CASE}-1") == (None, clock.now + timedelta(seconds=60))
    clock.now += timedelta(seconds=59)
    assert await other.run_once() == 0 and await first.run_once() == 0
    assert len(platform.calls) == 1
    clock.now += timedelta(seconds=2)
    assert await other.run_once() == 1
    assert await state(database) == (CaseStatus.REFUNDED, [RefundStatus.SUCCEEDED])
    assert [c["idempotency_key"] for c in platform.calls] == [f"{CASE}-1"] * 2
    assert await lease_of(database, f"{CASE}-1") == (None, None)  # settled: no lease left behind


async def test_a_dead_workers_attempts_are_sent_by_another_once_its_lease_ends(
        database: Database, platform: FakePlatform, gateway: HttpGateway) -> None:
    await refunding_case(database)
    clock = Clock()
    async with database.uow() as uow:  # a worker claimed, then its process was killed before the call
        [held] = await uow.refunds.claim_pending(gateway="http", owner="dead", now=clock.now, lease_seconds=300,
                                                 limit=10)
        await uow.commit()
    survivor = worker(database, gateway, clock=clock, owner="alive")
    assert await survivor.run_once() == 0 and platform.calls == []
    clock.now += timedelta(seconds=301)
    assert await survivor.run_once() == 1
    assert platform.payouts == {held.idempotency_key: 1}
    assert await state(database) == (CaseStatus.REFUNDED, [RefundStatus.SUCCEEDED])


async def test_a_stopping_worker_releases_what_it_has_not_sent(
        database: Database, platform: FakePlatform, gateway: HttpGateway) -> None:
    keys = [f"{case_no}-1" for case_no in await refunding_cases(database, 3)]
    stop = asyncio.Event()
    counting = CountingGateway(gateway, on_call=[stop.set])  # told to stop during its first call
    stopping = worker(database, counting, owner="stopping")
    await asyncio.wait_for(stopping.run(stop, every=0.01), 5)
    assert list(counting.calls) == keys[:1]  # the call in flight finished...
    assert await lease_of(database, keys[1]) == (None, None)  # ...the rest went back at once
    assert await worker(database, gateway, owner="other").run_once() == 2
    assert platform.payouts == Counter(keys)


async def test_a_pass_starts_no_call_its_lease_could_not_cover(
        database: Database, platform: FakePlatform, gateway: HttpGateway) -> None:
    keys = [f"{case_no}-1" for case_no in await refunding_cases(database, 3)]
    elapsed = [0.0]
    counting = CountingGateway(gateway, on_call=[lambda: elapsed.__setitem__(0, elapsed[0] + 40)])
    # lease 100 s, a call may take 30 s plus 10 s to record: calls may start until 60 s into the pass.
    slow = worker(database, counting, owner="slow", lease_seconds=100, call_timeout=30, record_margin=10,
                  monotonic=lambda: elapsed[0])
    assert await slow.run_once() == 2  # at 0 s and 40 s; at 80 s the third could outlast the lease
    assert list(counting.calls) == keys[:2]
    assert await lease_of(database, keys[2]) == (None, None)  # released for the next pass, anyone's
    assert await slow.run_once() == 1 and platform.payouts == Counter(keys)


async def test_a_call_that_outlasts_call_timeout_counts_as_unavailable(
        database: Database, platform: FakePlatform) -> None:
    await refunding_case(database)
    platform.plan = ["pay_then_hang", "succeed"]  # answers after 2 s
    patient = HttpGateway(platform.refund_url, SECRET, timeout=10)
    try:
        w = worker(database, patient, call_timeout=0.2, lease_seconds=60, record_margin=1)
        assert await w.run_once() == 0
        assert await state(database) == (CaseStatus.REFUNDING, [RefundStatus.PENDING])
        assert await w.run_once() == 1  # retried under the same key: paid once
        assert platform.payouts == {f"{CASE}-1": 1}
    finally:
        await patient.close()
