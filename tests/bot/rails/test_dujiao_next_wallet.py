"""Refunds to the buyer's Dujiao-Next wallet (bot/rails/dujiao_next.py) against the local shop
(tests/shops/fake_dujiao_next.py), through the real RefundWorker and a real database (SQLite and
PostgreSQL): the wallet is credited once, a lost answer is settled by the shop's refund records, the
shop's refusals are named."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal

import pytest

from bot.config import AppConfig, DujiaoNextConfig, PlatformConfig
from bot.rails import build_gateways
from bot.rails.dujiao_next import DujiaoNextWalletGateway, refusal
from bot.workers.refunds import RefundWorker
from dialogs.cases import CaseWorkflow
from dialogs.domain import CaseStatus, PaymentChannel, RailError, Reason, RefundAttempt, RefundStatus
from dialogs.settings import CoreSettings, SlaSettings
from storage.uow import Database
from tests.shops.fake_dujiao_next import ADMIN_TOKEN, API_KEY, API_SECRET, FakeDujiaoNext
from tests.storage.factories import T0, make_case, make_order

SETTINGS = CoreSettings(sla=SlaSettings(supervisors_chat_id=-1009))
CASE, CASE2 = "R20261124-0001", "R20261124-0002"
ORDER = "DJ20261124103000K7QM"
BUYER = 1001


@pytest.fixture
async def shop() -> AsyncIterator[FakeDujiaoNext]:
    async with FakeDujiaoNext() as fake:
        fake.add_order(ORDER, "30.00", user_id=BUYER, wallet_paid="30.00", order_id=77)
        yield fake


def gateway(shop: FakeDujiaoNext, **changes: object) -> DujiaoNextWalletGateway:
    fields: dict[str, object] = {"base_url": shop.url, "api_key": API_KEY, "api_secret": API_SECRET,
                                 "admin_token": ADMIN_TOKEN, "timeout_seconds": 5, **changes}
    return DujiaoNextWalletGateway(DujiaoNextConfig.model_validate(fields))


def workflow() -> CaseWorkflow:
    return CaseWorkflow.for_settings(SETTINGS, "manual", {PaymentChannel.BALANCE: "dujiao_next"})


async def approved(database: Database, case_no: str = CASE, amount: str | None = None,
                   reason: Reason = Reason.CARD_INVALID, trade_no: str | None = "77") -> None:
    async with database.uow() as uow:
        await uow.orders.upsert(make_order(ORDER, amount=Decimal("30.00"), payment_channel=PaymentChannel.BALANCE,
                                           trade_no=trade_no))
        await uow.cases.add(make_case(case_no, ORDER, amount=Decimal("30.00"), reason=reason,
                                      status=CaseStatus.IN_REVIEW))
        await workflow().approve(uow, case_no, actor="agent:1", at=T0,
                                 amount=Decimal(amount) if amount is not None else None)
        await uow.commit()


async def run(database: Database, rail: DujiaoNextWalletGateway) -> int:
    worker = RefundWorker(database.uow, workflow(), rail, clock=lambda: T0 + timedelta(hours=1),
                          retry_base_seconds=0)
    try:
        return await worker.run_once()
    finally:
        await rail.close()


async def attempts(database: Database, case_no: str = CASE) -> list[RefundAttempt]:
    async with database.uow() as uow:
        return await uow.refunds.for_case(case_no)


async def case_status(database: Database, case_no: str = CASE) -> CaseStatus:
    async with database.uow() as uow:
        case = await uow.cases.get(case_no)
    assert case is not None
    return case.status


async def test_an_approved_refund_credits_the_wallet_once_and_names_our_request_in_the_shop_s_record(
        database: Database, shop: FakeDujiaoNext) -> None:
    await approved(database)

    assert await run(database, gateway(shop)) == 1

    assert shop.wallets[BUYER] == Decimal("30.00")
    [record] = shop.records
    assert record["order_id"] == 77 and record["amount"] == "30.00" and f"{CASE}-1" in record["remark"]
    [attempt] = await attempts(database)
    assert (attempt.status, attempt.external_ref, attempt.gateway) == (
        RefundStatus.SUCCEEDED, str(record["id"]), "dujiao_next")
    assert await case_status(database) is CaseStatus.REFUNDED
    assert shop.by_no(ORDER).status == "refunded"  # type: ignore[union-attr]


async def test_two_partial_refunds_of_one_order_each_credit_their_own_amount(
        database: Database, shop: FakeDujiaoNext) -> None:
    await approved(database, CASE, amount="10.00")
    await approved(database, CASE2, amount="20.00", reason=Reason.CARD_USED)

    assert await run(database, gateway(shop)) == 2

    assert sorted(r["amount"] for r in shop.records) == ["10.00", "20.00"]
    assert shop.wallets[BUYER] == Decimal("30.00")


async def test_a_lost_answer_after_paying_is_settled_by_the_shop_s_records_and_never_paid_twice(
        database: Database, shop: FakeDujiaoNext) -> None:
    await approved(database)
    shop.lose_next_refund_answer = True

    assert await run(database, gateway(shop)) == 0  # credited, but the answer was a 502
    assert [a.status for a in await attempts(database)] == [RefundStatus.PENDING]
    assert await run(database, gateway(shop)) == 1

    assert len(shop.records) == 1 and shop.wallets[BUYER] == Decimal("30.00")
    posts = [p for m, p in shop.requests if m == "POST"]
    assert posts == ["/api/v1/admin/orders/77/refund-to-wallet"]  # asked the second time, not sent
    [attempt] = await attempts(database)
    assert attempt.status is RefundStatus.SUCCEEDED


async def test_an_attempt_the_shop_never_saw_is_sent_again_under_the_same_key_once_it_answers(
        database: Database, shop: FakeDujiaoNext) -> None:
    await approved(database)
    shop.fail_next = [503]  # the first call (the records) fails: nothing sent

    assert await run(database, gateway(shop)) == 0
    assert shop.records == []
    assert await run(database, gateway(shop)) == 1

    [record] = shop.records
    assert f"{CASE}-1" in record["remark"] and shop.wallets[BUYER] == Decimal("30.00")


async def test_query_finds_the_record_by_key_or_answers_none(database: Database, shop: FakeDujiaoNext) -> None:
    await approved(database)
    [attempt] = await attempts(database)
    rail = gateway(shop)
    from dialogs.ports import Payment
    payment = Payment(order_no=ORDER, paid=Decimal("30.00"), trade_no="77", channel=PaymentChannel.BALANCE)
    try:
        assert await rail.query(attempt, payment) is None
        await rail.refund(attempt, payment)
        again = await rail.refund(attempt, payment)  # the same attempt again: found, not paid twice
        known = await rail.query(attempt, payment)
    finally:
        await rail.close()
    assert again.status is RefundStatus.SUCCEEDED and known is not None and known.status is RefundStatus.SUCCEEDED
    assert len(shop.records) == 1 and shop.wallets[BUYER] == Decimal("30.00")


async def test_a_local_trade_no_never_names_the_shop_s_order_the_order_number_does(
        database: Database, shop: FakeDujiaoNext) -> None:
    shop.add_order("DJ20261124103000OTHR", "99.00", user_id=2002, order_id=4200000)
    await approved(database, trade_no="4200000")  # e.g. a payment serial imported from elsewhere

    assert await run(database, gateway(shop)) == 1

    assert [r["order_id"] for r in shop.records] == [77] and shop.wallets[2002] == Decimal("0.00")


async def test_an_error_inside_a_200_answer_fails_the_attempt_by_its_words(
        database: Database, shop: FakeDujiaoNext) -> None:
    shop.answer_next_refund = {"status_code": 400, "msg": "退款金额超过可退金额"}
    await approved(database)

    assert await run(database, gateway(shop)) == 1

    [attempt] = await attempts(database)
    assert (attempt.status, attempt.error) == (RefundStatus.FAILED, RailError.AMOUNT_TOO_HIGH)
    assert shop.records == []


async def test_a_200_with_no_refund_record_under_our_key_is_held_for_finance_never_taken_as_paid(
        database: Database, shop: FakeDujiaoNext) -> None:
    shop.answer_next_refund = {"status_code": 0, "msg": "success", "data": {}}
    await approved(database)

    assert await run(database, gateway(shop)) == 1

    [attempt] = await attempts(database)
    assert attempt.status is RefundStatus.REQUESTED and "held for finance" in attempt.note
    assert await case_status(database) is CaseStatus.REFUNDING


@pytest.mark.parametrize(("setup", "error"), [
    ("expired", RailError.WINDOW_PASSED),
    ("canceled", RailError.TRADE_CLOSED),
    ("refunded_elsewhere", RailError.AMOUNT_TOO_HIGH),
    ("guest", RailError.REJECTED),
])
async def test_the_shop_s_refusals_fail_the_attempt_by_name(database: Database, shop: FakeDujiaoNext,
                                                            setup: str, error: RailError) -> None:
    order = shop.by_no(ORDER)
    assert order is not None
    if setup == "expired":
        order.paid_at = order.paid_at - timedelta(days=31)  # type: ignore[operator]
    elif setup == "canceled":
        order.status = "canceled"
    elif setup == "refunded_elsewhere":
        order.refunded = Decimal("25.00")
    else:
        order.user_id = 0
    await approved(database)

    assert await run(database, gateway(shop)) == 1

    assert shop.records == [] and all(v == Decimal("0.00") for v in shop.wallets.values())
    [attempt] = await attempts(database)
    assert (attempt.status, attempt.error) == (RefundStatus.FAILED, error)
    assert await case_status(database) is CaseStatus.REFUND_FAILED


async def test_refused_credentials_are_retried_later_and_never_fail_the_case(
        database: Database, shop: FakeDujiaoNext) -> None:
    await approved(database)

    assert await run(database, gateway(shop, admin_token="expired-jwt")) == 0

    assert shop.refusals and shop.records == []
    assert [a.status for a in await attempts(database)] == [RefundStatus.PENDING]
    assert await case_status(database) is CaseStatus.REFUNDING


def test_refusal_words_in_both_languages() -> None:
    assert refusal("退款金额超过可退金额") is RailError.AMOUNT_TOO_HIGH
    assert refusal("refund amount exceeded") is RailError.AMOUNT_TOO_HIGH
    assert refusal("订单已超过退款期限") is RailError.WINDOW_PASSED
    assert refusal("order refund expired") is RailError.WINDOW_PASSED
    assert refusal("订单状态不允许退款") is RailError.TRADE_CLOSED
    assert refusal("something else") is RailError.REJECTED


def test_the_rail_is_built_from_orders_dujiao_next_by_its_name() -> None:
    config = AppConfig.model_validate({
        "orders": {"dujiao_next": {"base_url": "https://shop", "api_key": "k", "api_secret": "s", "admin_token": "t"}},
        "platform": {"rails": {"balance": "dujiao_next"}}})
    gateways = build_gateways(config.platform)
    assert isinstance(gateways["dujiao_next"], DujiaoNextWalletGateway)
    with pytest.raises(ValueError, match="api_key, api_secret, admin_token"):
        build_gateways(PlatformConfig(rails={PaymentChannel.BALANCE: "dujiao_next"}).with_dujiao_next(
            DujiaoNextConfig(base_url="https://shop")))


async def test_doctor_checks_the_rail_s_settings_without_calling_the_shop(shop: FakeDujiaoNext) -> None:
    from bot.doctor_rails import rail_findings

    platform = PlatformConfig(rails={PaymentChannel.BALANCE: "dujiao_next"})
    good = DujiaoNextConfig(base_url=shop.url, api_key=API_KEY, api_secret=API_SECRET, admin_token=ADMIN_TOKEN)
    [(level, text)] = [f async for f in rail_findings(platform.with_dujiao_next(good))]
    assert level == "ok" and "dujiao_next" in text
    slip = good.model_copy(update={"admin_token": ADMIN_TOKEN + "\n"})
    [(level, text)] = [f async for f in rail_findings(platform.with_dujiao_next(slip))]
    assert level == "fail" and "spaces around it" in text
    assert shop.requests == [] and shop.refusals == []
