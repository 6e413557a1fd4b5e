"""The refund worker with a rail: query before retry, "not now" (RailBusy) and a rail's refusal by name.

The rail here is a scripted RefundGateway (each real rail is tested against its own local fake in
tests/bot/rails/); what is under test is the worker's order of questions and what it records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

from sqlalchemy import select

from bot.workers.refunds import RefundWorker
from dialogs.cases import CaseWorkflow
from dialogs.domain import CaseStatus, Delivery, PaymentChannel, RailError, RefundAttempt, RefundStatus
from dialogs.notify import Notice, compose
from dialogs.outbox import CASE_NEWS, SUPERVISOR_ALERT
from dialogs.ports import GatewayResult, GatewayUnavailable, Payment, RailBusy
from dialogs.settings import CoreSettings, SlaSettings
from storage.models import OutboxRow
from storage.uow import Database
from tests.bot.test_refunds import CASE, state
from tests.storage.factories import T0, make_case, make_order

SETTINGS = CoreSettings(sla=SlaSettings(supervisors_chat_id=-1009))


@dataclass
class ScriptedRail:
    """Answers `refund` and `query` from scripts (an exception to raise, or a result); records the calls."""

    refunds: list[object] = field(default_factory=list)
    queries: list[object] = field(default_factory=list)
    calls: list[tuple[str, str, Payment]] = field(default_factory=list)
    name: str = "alipay"

    async def refund(self, attempt: RefundAttempt, payment: Payment) -> GatewayResult:
        self.calls.append(("refund", attempt.idempotency_key, payment))
        return self._next(self.refunds)

    async def query(self, attempt: RefundAttempt, payment: Payment) -> GatewayResult | None:
        self.calls.append(("query", attempt.idempotency_key, payment))
        return self._next(self.queries)  # type: ignore[return-value]

    async def close(self) -> None:
        return None

    @staticmethod
    def _next(script: list[object]) -> GatewayResult:
        answer = script.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer  # type: ignore[return-value]


PAID = GatewayResult(RefundStatus.SUCCEEDED, external_ref="2026112422001400001", rail_status="REFUND_SUCCESS")


def rails_workflow() -> CaseWorkflow:
    return CaseWorkflow.for_settings(SETTINGS, "manual", {PaymentChannel.ALIPAY: "alipay"})


async def approved(database: Database, channel: PaymentChannel = PaymentChannel.ALIPAY) -> None:
    async with database.uow() as uow:
        await uow.orders.upsert(make_order("A1001", amount=Decimal("30.00"), payment_channel=channel,
                                           trade_no="2026112422001412345678901234"))
        await uow.cases.add(make_case(CASE, "A1001", amount=Decimal("30.00"), status=CaseStatus.IN_REVIEW))
        await rails_workflow().approve(uow, CASE, actor="agent:1", at=T0)
        await uow.commit()


def worker(database: Database, rail: ScriptedRail) -> RefundWorker:
    return RefundWorker(database.uow, rails_workflow(), rail, clock=lambda: T0 + timedelta(hours=1),
                        retry_base_seconds=0)


async def test_an_alipay_order_s_attempt_goes_to_the_alipay_rail_with_its_trade_number(database: Database) -> None:
    await approved(database)
    rail = ScriptedRail(refunds=[PAID])

    assert await worker(database, rail).run_once() == 1

    [(call, key, payment)] = rail.calls
    assert (call, key) == ("refund", f"{CASE}-1")
    assert payment == Payment("A1001", Decimal("30.00"), "2026112422001412345678901234", PaymentChannel.ALIPAY)
    async with database.uow() as uow:
        [attempt] = await uow.refunds.for_case(CASE)
    assert (attempt.gateway, attempt.status, attempt.external_ref, attempt.rail_status) == (
        "alipay", RefundStatus.SUCCEEDED, "2026112422001400001", "REFUND_SUCCESS")


async def test_another_channel_keeps_the_default_gateway(database: Database) -> None:
    await approved(database, PaymentChannel.WECHAT)
    async with database.uow() as uow:
        [attempt] = await uow.refunds.for_case(CASE)
    assert attempt.gateway == "manual"


async def test_an_unknown_outcome_is_asked_about_and_a_paid_refund_is_never_sent_again(database: Database) -> None:
    await approved(database)
    rail = ScriptedRail(refunds=[GatewayUnavailable("read timeout")], queries=[PAID])

    assert await worker(database, rail).run_once() == 0  # sent; no answer
    assert await worker(database, rail).run_once() == 1  # asked first: it was paid

    assert [c[0] for c in rail.calls] == ["refund", "query"]
    assert await state(database) == (CaseStatus.REFUNDED, [RefundStatus.SUCCEEDED])


async def test_a_refund_the_rail_never_got_is_sent_again_under_the_same_key(database: Database) -> None:
    await approved(database)
    rail = ScriptedRail(refunds=[GatewayUnavailable("connection reset"), PAID], queries=[None])

    await worker(database, rail).run_once()
    await worker(database, rail).run_once()

    assert [(c[0], c[1]) for c in rail.calls] == [("refund", f"{CASE}-1"), ("query", f"{CASE}-1"),
                                                 ("refund", f"{CASE}-1")]
    assert await state(database) == (CaseStatus.REFUNDED, [RefundStatus.SUCCEEDED])


async def test_a_query_without_an_answer_sends_nothing(database: Database) -> None:
    await approved(database)
    rail = ScriptedRail(refunds=[GatewayUnavailable("timeout")], queries=[GatewayUnavailable("timeout")])

    await worker(database, rail).run_once()
    assert await worker(database, rail).run_once() == 0

    assert [c[0] for c in rail.calls] == ["refund", "query"]
    assert await state(database) == (CaseStatus.REFUNDING, [RefundStatus.PENDING])


async def test_a_low_merchant_balance_keeps_the_attempt_and_tells_the_supervisors_once_a_day(
        database: Database) -> None:
    await approved(database)
    busy = RailBusy("ACQ.SELLER_BALANCE_NOT_ENOUGH")
    rail = ScriptedRail(refunds=[busy, busy, busy, PAID], queries=[None, None, None])

    for _ in range(3):
        assert await worker(database, rail).run_once() == 0
    assert await state(database) == (CaseStatus.REFUNDING, [RefundStatus.PENDING])
    [alert] = await said(database, SUPERVISOR_ALERT)  # three refusals, one alert that day
    assert alert.chat_id == -1009
    assert "¥30.00" in alert.text and "商户账户余额不足" in alert.text and CASE in alert.text

    assert await worker(database, rail).run_once() == 1  # topped up: the query finds nothing, it is sent
    assert await state(database) == (CaseStatus.REFUNDED, [RefundStatus.SUCCEEDED])


async def test_a_closed_trade_fails_the_attempt_by_name_and_tells_the_customer_why(database: Database) -> None:
    await approved(database)
    closed = GatewayResult(RefundStatus.FAILED, reason="ACQ.TRADE_HAS_CLOSE: 交易已关闭",
                           rail_status="ACQ.TRADE_HAS_CLOSE", error=RailError.TRADE_CLOSED)
    rail = ScriptedRail(refunds=[closed])

    assert await worker(database, rail).run_once() == 1

    assert await state(database) == (CaseStatus.REFUND_FAILED, [RefundStatus.FAILED])
    async with database.uow() as uow:
        [attempt] = await uow.refunds.for_case(CASE)
        [note] = [r.payload["note"] for r in await uow.session.scalars(select(OutboxRow).where(
            OutboxRow.kind == CASE_NEWS)) if r.payload.get("to") == "refund_failed"]
    assert attempt.error is RailError.TRADE_CLOSED and attempt.rail_status == "ACQ.TRADE_HAS_CLOSE"
    assert note.startswith("trade_closed")  # the case's history names the refusal
    [news] = [n for n in await said(database, CASE_NEWS) if "退款未能成功" in n.text]
    assert "原支付交易已在支付渠道关闭" in news.text and "ACQ." not in news.text  # the customer's words


async def said(database: Database, kind: str) -> list[Notice]:
    """What the relay would send for every outbox row of `kind`, oldest first."""
    async with database.uow() as uow:
        rows = list(await uow.session.scalars(select(OutboxRow).where(OutboxRow.kind == kind).order_by(OutboxRow.id)))
        notices = [await compose(uow, Delivery(r.id, r.kind, r.chat_id, r.dedupe_key, r.payload, 0, r.created_at),
                                 SETTINGS) for r in rows]
    return [n for n in notices if n is not None]
