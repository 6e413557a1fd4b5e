"""Reconciliation (bot/reconcile.py, storage/reconcile.py) on SQLite and PostgreSQL: each kind of
mismatch, what is asked and what is not, pacing, and that the books never change. The rail is a
scripted RefundGateway that answers `query` by idempotency key (each real rail's query is tested against
its own fake in tests/bot/rails/)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

from bot.finance import local_range
from bot.reconcile import Kind, Report, reconcile
from dialogs.domain import CaseStatus, RefundAttempt, RefundStatus
from dialogs.ports import GatewayResult, GatewayUnavailable, Payment
from storage.uow import Database
from tests.storage.factories import T0, make_case, make_order

DAY = T0.date()
WINDOW = local_range(DAY, DAY, "Asia/Shanghai")
PAID_30 = GatewayResult(RefundStatus.SUCCEEDED, external_ref="2026112422001400001", rail_status="REFUND_SUCCESS",
                        amount=Decimal("30.00"))


@dataclass
class QueryRail:
    """Answers `query` from `answers` by idempotency key (None: no such refund; an exception is raised);
    `delay` seconds per answer; counts the queries in flight at once. `refund` must never be called."""

    answers: dict[str, object] = field(default_factory=dict)
    name: str = "alipay"
    delay: float = 0.0
    asked: list[tuple[str, Payment]] = field(default_factory=list)
    in_flight: int = 0
    most_in_flight: int = 0

    async def refund(self, attempt: RefundAttempt, payment: Payment) -> GatewayResult:
        raise AssertionError("reconciliation never pays")

    async def query(self, attempt: RefundAttempt, payment: Payment) -> GatewayResult | None:
        self.asked.append((attempt.idempotency_key, payment))
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.in_flight -= 1
        answer = self.answers.get(attempt.idempotency_key)
        if isinstance(answer, BaseException):
            raise answer
        return answer  # type: ignore[return-value]

    async def close(self) -> None:
        return None


async def book(database: Database, case_no: str, status: RefundStatus, amount: str = "30.00", *,
               order_no: str = "A1001", paid: str = "30.00", gateway: str = "alipay", day: int = 0,
               key: str | None = None) -> str:
    """An order (once), a case on it and one refund attempt in `status`; returns the attempt's key."""
    key = key or f"{case_no}-1"
    async with database.uow() as uow:
        if await uow.orders.get(order_no) is None:
            await uow.orders.upsert(make_order(order_no, amount=Decimal(paid), trade_no=f"T{order_no}"))
        if await uow.cases.get(case_no) is None:
            # A paid or refused case is closed: several may share an order (one open case per order and reason).
            done = {RefundStatus.SUCCEEDED: CaseStatus.REFUNDED, RefundStatus.FAILED: CaseStatus.REFUND_FAILED}
            await uow.cases.add(make_case(case_no, order_no, amount=Decimal(amount),
                                          status=done.get(status, CaseStatus.REFUNDING)))
        await uow.refunds.add(RefundAttempt(case_no, key, gateway, Decimal(amount), status,
                                            created_at=T0 + timedelta(days=day)))
        await uow.commit()
    return key


async def check(database: Database, rail: QueryRail, **kwargs: object) -> Report:
    return await reconcile(database, {rail.name: rail}, *WINDOW, **kwargs)  # type: ignore[arg-type]


def kinds(report: Report) -> list[tuple[str, Kind]]:
    return [(line.key or line.order_no, line.kind) for line in report.lines]


async def test_a_refund_paid_on_both_sides_is_ok_and_the_rail_is_asked_with_the_purchase(database: Database) -> None:
    key = await book(database, "R20261124-0001", RefundStatus.SUCCEEDED)
    rail = QueryRail({key: PAID_30})

    report = await check(database, rail)

    assert kinds(report) == [(key, Kind.OK)] and report.mismatches == []
    [line] = report.lines
    assert (line.rail_status, line.rail_amount, line.rail_ref) == ("REFUND_SUCCESS", Decimal("30.00"),
                                                                   "2026112422001400001")
    assert rail.asked == [(key, Payment("A1001", Decimal("30.00"), "TA1001", make_order().payment_channel))]


async def test_a_refund_the_books_call_paid_that_the_rail_never_had_is_missing(database: Database) -> None:
    key = await book(database, "R20261124-0001", RefundStatus.SUCCEEDED)

    report = await check(database, QueryRail({key: None}))

    assert kinds(report) == [(key, Kind.MISSING)]
    assert report.lines[0].rail_status == "not_found"


async def test_a_refund_the_rail_paid_but_the_books_call_failed_is_unbooked_and_the_books_stay(
        database: Database) -> None:
    key = await book(database, "R20261124-0001", RefundStatus.FAILED)

    report = await check(database, QueryRail({key: PAID_30}))

    assert kinds(report)[0] == (key, Kind.UNBOOKED)
    async with database.uow() as uow:
        [attempt] = await uow.refunds.for_case("R20261124-0001")
    assert (attempt.status, attempt.external_ref, attempt.rail_status) == (RefundStatus.FAILED, None, "")


async def test_a_rail_that_paid_another_amount_is_amount_differs(database: Database) -> None:
    key = await book(database, "R20261124-0001", RefundStatus.SUCCEEDED)
    twenty = GatewayResult(RefundStatus.SUCCEEDED, external_ref="X1", rail_status="REFUND_SUCCESS",
                           amount=Decimal("20.00"))

    report = await check(database, QueryRail({key: twenty}))

    assert kinds(report) == [(key, Kind.AMOUNT_DIFFERS)]
    assert (report.lines[0].books_amount, report.lines[0].rail_amount) == (Decimal("30.00"), Decimal("20.00"))


async def test_a_rail_still_processing_what_the_books_call_paid_is_status_differs(database: Database) -> None:
    key = await book(database, "R20261124-0001", RefundStatus.SUCCEEDED)
    processing = GatewayResult(RefundStatus.REQUESTED, external_ref="X1", rail_status="PROCESSING")

    report = await check(database, QueryRail({key: processing}))

    assert kinds(report) == [(key, Kind.STATUS_DIFFERS)]
    assert report.lines[0].rail_status == "PROCESSING"


async def test_nothing_paid_on_either_side_is_ok(database: Database) -> None:
    never_sent = await book(database, "R20261124-0001", RefundStatus.PENDING)
    refused = await book(database, "R20261124-0002", RefundStatus.FAILED, order_no="A1002")
    closed = GatewayResult(RefundStatus.FAILED, rail_status="ACQ.TRADE_HAS_CLOSE", reason="交易已关闭")

    report = await check(database, QueryRail({never_sent: None, refused: closed}))

    assert kinds(report) == [(never_sent, Kind.OK), (refused, Kind.OK)]


async def test_an_order_the_rail_paid_twice_is_doubled(database: Database) -> None:
    first = await book(database, "R20261124-0001", RefundStatus.SUCCEEDED)
    second = await book(database, "R20261124-0002", RefundStatus.FAILED)  # same order, ¥30 paid

    report = await check(database, QueryRail({first: PAID_30, second: PAID_30}))

    assert kinds(report) == [(first, Kind.OK), (second, Kind.UNBOOKED), ("A1001", Kind.DOUBLED)]
    doubled = report.lines[-1]
    assert (doubled.case_no, doubled.books_amount, doubled.rail_amount) == (
        "R20261124-0001", Decimal("30.00"), Decimal("60.00"))
    assert "60.00 paid back in all of 30.00 paid" in doubled.note


async def test_a_rail_paying_what_the_books_paid_elsewhere_passes_the_purchase_and_is_doubled(
        database: Database) -> None:
    # ¥20 paid back by hand the day before (manual, outside the window); today ¥20 on the rail: ¥40 of ¥30.
    await book(database, "R20261123-0001", RefundStatus.SUCCEEDED, "20.00", gateway="manual", day=-1)
    today = await book(database, "R20261124-0001", RefundStatus.SUCCEEDED, "20.00")
    twenty = GatewayResult(RefundStatus.SUCCEEDED, external_ref="X1", amount=Decimal("20.00"))

    report = await check(database, QueryRail({today: twenty}))

    assert kinds(report) == [(today, Kind.OK), ("A1001", Kind.DOUBLED)]
    assert "40.00 paid back in all of 30.00 paid" in report.lines[-1].note


async def test_a_rail_that_cannot_answer_is_unknown_with_its_words(database: Database) -> None:
    key = await book(database, "R20261124-0001", RefundStatus.SUCCEEDED)

    report = await check(database, QueryRail({key: GatewayUnavailable("alipay: read timeout")}))

    assert kinds(report) == [(key, Kind.UNKNOWN)]
    assert report.lines[0].note == "alipay: read timeout"


async def test_a_rail_that_never_answers_is_unknown_after_the_call_timeout(database: Database) -> None:
    key = await book(database, "R20261124-0001", RefundStatus.SUCCEEDED)

    report = await check(database, QueryRail({key: PAID_30}, delay=5), call_timeout=0.05)

    assert kinds(report) == [(key, Kind.UNKNOWN)] and "no answer within 0.05 s" in report.lines[0].note


async def test_an_attempt_of_a_gateway_no_longer_configured_is_unknown(database: Database) -> None:
    key = await book(database, "R20261124-0001", RefundStatus.SUCCEEDED, gateway="wechat")

    report = await check(database, QueryRail())

    assert kinds(report) == [(key, Kind.UNKNOWN)] and "'wechat' is not configured" in report.lines[0].note


async def test_manual_and_http_attempts_are_not_asked_and_are_counted(database: Database) -> None:
    await book(database, "R20261124-0001", RefundStatus.SUCCEEDED, gateway="manual")
    await book(database, "R20261124-0002", RefundStatus.SUCCEEDED, gateway="http", order_no="A1002")
    rail = QueryRail()

    report = await check(database, rail)

    assert (report.lines, report.skipped, rail.asked) == ([], 2, [])


async def test_only_the_window_s_attempts_of_the_chosen_gateway_are_asked(database: Database) -> None:
    today = await book(database, "R20261124-0001", RefundStatus.SUCCEEDED)
    await book(database, "R20261123-0001", RefundStatus.SUCCEEDED, order_no="A1000", day=-1)
    await book(database, "R20261125-0001", RefundStatus.SUCCEEDED, order_no="A1002", day=1)
    await book(database, "R20261124-0002", RefundStatus.SUCCEEDED, order_no="A1003", gateway="wechat")
    rail = QueryRail({today: PAID_30})

    report = await check(database, rail, only="alipay")

    assert [key for key, _ in rail.asked] == [today] and kinds(report) == [(today, Kind.OK)]


async def test_the_rail_is_asked_a_few_at_a_time(database: Database) -> None:
    keys = [await book(database, f"R20261124-{n:04d}", RefundStatus.SUCCEEDED, order_no=f"A{n}")
            for n in range(1, 9)]
    rail = QueryRail(dict.fromkeys(keys, PAID_30), delay=0.02)

    report = await check(database, rail, concurrency=3)

    assert len(rail.asked) == 8 and rail.most_in_flight == 3
    assert {line.kind for line in report.lines} == {Kind.OK}

