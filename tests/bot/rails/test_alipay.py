"""Refunds back to Alipay: the real python-alipay-sdk against a local Alipay gateway that checks its RSA2
signatures and signs its answers with a key generated here, through the real RefundWorker and a real
database (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal

import pytest
from aiohttp.test_utils import TestServer

from bot.config import AlipayConfig, PlatformConfig, load_config
from bot.rails import build_gateways
from bot.rails.alipay import AlipayGateway
from bot.workers.refunds import RefundWorker
from dialogs.cases import CaseWorkflow
from dialogs.domain import CaseStatus, PaymentChannel, RailError, RefundAttempt, RefundStatus
from dialogs.outbox import SUPERVISOR_ALERT
from dialogs.ports import GatewayUnavailable, Payment
from storage.uow import Database
from tests.bot.rails.fake_alipay import QUERY, REFUND, FakeAlipay, bare_base64, new_key, pem, public_pem
from tests.bot.test_rail_worker import SETTINGS, said
from tests.bot.test_refunds import state
from tests.storage.factories import T0, make_case, make_order

APP_ID = "2021004100000001"
APP_KEY = new_key()
CASE, CASE2 = "R20261124-0001", "R20261124-0002"
KEY = f"{CASE}-1"


@pytest.fixture
async def alipay() -> AsyncIterator[FakeAlipay]:
    fake = FakeAlipay(APP_ID, APP_KEY.public_key())
    server = TestServer(fake.app())
    await server.start_server()
    fake.url = str(server.make_url("/gateway.do"))
    try:
        yield fake
    finally:
        fake.release()
        await server.close()


def platform(fake: FakeAlipay, app_key: str | None = None, alipay_key: str | None = None) -> PlatformConfig:
    return PlatformConfig(rails={PaymentChannel.ALIPAY: "alipay"}, timeout_seconds=0.5, alipay=AlipayConfig(
        app_id=APP_ID, app_private_key=app_key or pem(APP_KEY),
        alipay_public_key=alipay_key or public_pem(fake.alipay_key), gateway_url=fake.url))


def gateway(fake: FakeAlipay) -> AlipayGateway:
    return AlipayGateway.from_config(platform(fake))


def workflow() -> CaseWorkflow:
    return CaseWorkflow.for_settings(SETTINGS, "manual", {PaymentChannel.ALIPAY: "alipay"})


async def approved(database: Database, fake: FakeAlipay, case_no: str = CASE, *, paid: str = "30.00",
                   amount: str | None = None) -> None:
    """An Alipay order in our books (with Alipay's trade_no when the fake has the trade) and its case
    approved, for `amount` or all it may still get."""
    trade = fake.trades.get("A1001")
    async with database.uow() as uow:
        if await uow.orders.get("A1001") is None:
            await uow.orders.upsert(make_order("A1001", amount=Decimal(paid), payment_channel=PaymentChannel.ALIPAY,
                                               trade_no=trade.trade_no if trade else None))
        await uow.cases.add(make_case(case_no, "A1001", amount=Decimal(paid), status=CaseStatus.IN_REVIEW))
        await workflow().approve(uow, case_no, actor="agent:1", at=T0,
                                 amount=Decimal(amount) if amount is not None else None)
        await uow.commit()


def worker(database: Database, fake: FakeAlipay) -> RefundWorker:
    return RefundWorker(database.uow, workflow(), gateway(fake), clock=lambda: T0 + timedelta(hours=1),
                        retry_base_seconds=0)


async def attempt(database: Database, case_no: str = CASE) -> RefundAttempt:
    async with database.uow() as uow:
        [only] = await uow.refunds.for_case(case_no)
    return only


def methods(fake: FakeAlipay) -> list[tuple[str, str]]:
    return [(method, biz["out_request_no"]) for method, biz in fake.calls]


# -- through the worker ---------------------------------------------------------------------------------


async def test_a_full_refund_goes_back_to_the_buyer_s_alipay_once(database: Database, alipay: FakeAlipay) -> None:
    trade = alipay.add_trade("A1001", "30.00")
    await approved(database, alipay)

    assert await worker(database, alipay).run_once() == 1

    assert await state(database) == (CaseStatus.REFUNDED, [RefundStatus.SUCCEEDED])
    assert alipay.payouts == [("A1001", KEY, Decimal("30.00"))]
    [(method, biz)] = alipay.calls
    assert (method, biz) == (REFUND, {"refund_amount": "30.00", "out_request_no": KEY, "out_trade_no": "A1001",
                                      "trade_no": trade.trade_no})
    paid = await attempt(database)
    assert (paid.external_ref, paid.rail_status) == (trade.trade_no, "SUCCESS")


async def test_two_partial_refunds_of_one_order_are_two_request_numbers_paid_once_each(
        database: Database, alipay: FakeAlipay) -> None:
    alipay.add_trade("A1001", "30.00")
    await approved(database, alipay, CASE, amount="10.00")  # a partial approval
    await worker(database, alipay).run_once()
    await approved(database, alipay, CASE2)  # the rest, on a second case of the order
    await worker(database, alipay).run_once()

    assert alipay.payouts == [("A1001", KEY, Decimal("10.00")), ("A1001", f"{CASE2}-1", Decimal("20.00"))]
    assert await state(database, CASE) == (CaseStatus.REFUNDED, [RefundStatus.SUCCEEDED])
    assert await state(database, CASE2) == (CaseStatus.REFUNDED, [RefundStatus.SUCCEEDED])


async def test_a_timeout_after_alipay_paid_is_settled_by_the_query_with_exactly_one_payout(
        database: Database, alipay: FakeAlipay) -> None:
    alipay.add_trade("A1001", "30.00")
    alipay.refund_script = ["hang_after_paying"]
    await approved(database, alipay)

    assert await worker(database, alipay).run_once() == 0  # paid, but the answer never came
    assert await state(database) == (CaseStatus.REFUNDING, [RefundStatus.PENDING])
    assert await worker(database, alipay).run_once() == 1

    assert methods(alipay) == [(REFUND, KEY), (QUERY, KEY)]
    assert alipay.payouts == [("A1001", KEY, Decimal("30.00"))]
    assert await state(database) == (CaseStatus.REFUNDED, [RefundStatus.SUCCEEDED])
    assert (await attempt(database)).rail_status == "REFUND_SUCCESS"


async def test_a_timeout_before_alipay_paid_is_sent_again_under_the_same_key_only_after_the_query_finds_nothing(
        database: Database, alipay: FakeAlipay) -> None:
    alipay.add_trade("A1001", "30.00")
    alipay.refund_script = ["hang_before_paying"]
    await approved(database, alipay)

    assert await worker(database, alipay).run_once() == 0
    assert alipay.payouts == []
    assert await worker(database, alipay).run_once() == 1

    assert methods(alipay) == [(REFUND, KEY), (QUERY, KEY), (REFUND, KEY)]
    assert alipay.payouts == [("A1001", KEY, Decimal("30.00"))]
    assert await state(database) == (CaseStatus.REFUNDED, [RefundStatus.SUCCEEDED])


async def test_a_system_error_is_asked_about_before_the_request_is_sent_again(
        database: Database, alipay: FakeAlipay) -> None:
    alipay.add_trade("A1001", "30.00")
    alipay.refund_script = ["system_error"]
    await approved(database, alipay)

    await worker(database, alipay).run_once()
    await worker(database, alipay).run_once()

    assert methods(alipay) == [(REFUND, KEY), (QUERY, KEY), (REFUND, KEY)]
    assert alipay.payouts == [("A1001", KEY, Decimal("30.00"))]


async def test_a_request_number_alipay_already_paid_is_recorded_as_paid_without_a_second_payout(
        database: Database, alipay: FakeAlipay) -> None:
    # A crash between Alipay paying and our recording it: the same request number comes again.
    trade = alipay.add_trade("A1001", "30.00")
    trade.refunds[KEY] = Decimal("30.00")
    alipay.payouts.append(("A1001", KEY, Decimal("30.00")))
    await approved(database, alipay)

    assert await worker(database, alipay).run_once() == 1

    assert methods(alipay) == [(REFUND, KEY), (QUERY, KEY)]  # fund_change N, confirmed by the query
    assert alipay.payouts == [("A1001", KEY, Decimal("30.00"))]
    assert await state(database) == (CaseStatus.REFUNDED, [RefundStatus.SUCCEEDED])


async def test_a_closed_trade_fails_the_case_by_name_and_pays_nothing(database: Database, alipay: FakeAlipay) -> None:
    alipay.add_trade("A1001", "30.00").closed = True
    await approved(database, alipay)

    assert await worker(database, alipay).run_once() == 1

    assert await state(database) == (CaseStatus.REFUND_FAILED, [RefundStatus.FAILED])
    failed = await attempt(database)
    assert (failed.error, failed.rail_status) == (RailError.TRADE_CLOSED, "ACQ.TRADE_HAS_CLOSE")
    assert "交易已经关闭" in failed.note
    assert alipay.payouts == []


async def test_a_low_merchant_balance_keeps_the_attempt_alerts_the_supervisors_and_pays_once_topped_up(
        database: Database, alipay: FakeAlipay) -> None:
    alipay.add_trade("A1001", "30.00")
    alipay.balance = Decimal("5.00")
    await approved(database, alipay)

    assert await worker(database, alipay).run_once() == 0
    assert await state(database) == (CaseStatus.REFUNDING, [RefundStatus.PENDING])
    [alert] = await said(database, SUPERVISOR_ALERT)
    assert "商户账户余额不足" in alert.text and CASE in alert.text and "¥30.00" in alert.text

    alipay.balance = Decimal("500.00")  # finance tops the account up
    assert await worker(database, alipay).run_once() == 1

    assert alipay.payouts == [("A1001", KEY, Decimal("30.00"))]
    assert await state(database) == (CaseStatus.REFUNDED, [RefundStatus.SUCCEEDED])


async def test_more_than_the_alipay_trade_holds_is_refused_as_too_high_and_nothing_is_paid(
        database: Database, alipay: FakeAlipay) -> None:
    # Our books say 30.00; the buyer paid 25.00 on Alipay (a coupon covered the rest).
    alipay.add_trade("A1001", "25.00")
    await approved(database, alipay, paid="30.00")

    await worker(database, alipay).run_once()

    assert await state(database) == (CaseStatus.REFUND_FAILED, [RefundStatus.FAILED])
    assert (await attempt(database)).error is RailError.AMOUNT_TOO_HIGH
    assert alipay.paid_out("A1001") == 0


async def test_a_forged_success_answer_is_never_taken_as_paid(database: Database, alipay: FakeAlipay) -> None:
    alipay.add_trade("A1001", "30.00")
    alipay.refund_script = ["forge"]
    await approved(database, alipay)

    assert await worker(database, alipay).run_once() == 0

    assert await state(database) == (CaseStatus.REFUNDING, [RefundStatus.PENDING])
    assert await worker(database, alipay).run_once() == 1  # asked honestly: not paid, so sent again
    assert methods(alipay) == [(REFUND, KEY), (QUERY, KEY), (REFUND, KEY)]
    assert alipay.payouts == [("A1001", KEY, Decimal("30.00"))]


async def test_a_forged_query_answer_is_never_taken_as_paid(database: Database, alipay: FakeAlipay) -> None:
    alipay.add_trade("A1001", "30.00")
    alipay.refund_script = ["hang_before_paying"]
    alipay.query_script = ["forge"]
    await approved(database, alipay)

    await worker(database, alipay).run_once()
    assert await worker(database, alipay).run_once() == 0

    assert methods(alipay) == [(REFUND, KEY), (QUERY, KEY)]
    assert await state(database) == (CaseStatus.REFUNDING, [RefundStatus.PENDING])
    assert alipay.payouts == []


# -- the gateway alone ----------------------------------------------------------------------------------

PAYMENT = Payment("A1001", Decimal("30.00"), None, PaymentChannel.ALIPAY)


def an_attempt(amount: str = "30.00") -> RefundAttempt:
    return RefundAttempt(CASE, KEY, "alipay", Decimal(amount), RefundStatus.PENDING, T0)


async def test_a_502_from_alipay_is_an_unknown_outcome(alipay: FakeAlipay) -> None:
    alipay.add_trade("A1001", "30.00")
    alipay.refund_script = ["http_502"]

    with pytest.raises(GatewayUnavailable, match="502"):
        await gateway(alipay).refund(an_attempt(), PAYMENT)


async def test_an_unsigned_success_answer_is_an_unknown_outcome(alipay: FakeAlipay) -> None:
    alipay.add_trade("A1001", "30.00")
    alipay.refund_script = ["unsigned"]

    with pytest.raises(GatewayUnavailable, match="unsigned answer"):
        await gateway(alipay).refund(an_attempt(), PAYMENT)
    assert alipay.payouts == []


async def test_a_request_signed_with_the_wrong_app_key_pays_nothing_and_waits(alipay: FakeAlipay) -> None:
    alipay.add_trade("A1001", "30.00")
    wrong = AlipayGateway.from_config(platform(alipay, app_key=pem(new_key())))

    with pytest.raises(GatewayUnavailable, match="isv.invalid-signature"):
        await wrong.refund(an_attempt(), PAYMENT)
    assert alipay.refused_signatures == 1 and alipay.payouts == []


async def test_the_query_says_none_for_a_refund_alipay_never_got(alipay: FakeAlipay) -> None:
    alipay.add_trade("A1001", "30.00")

    assert await gateway(alipay).query(an_attempt(), PAYMENT) is None


async def test_the_query_says_none_for_a_trade_alipay_does_not_know(alipay: FakeAlipay) -> None:
    assert await gateway(alipay).query(an_attempt(), PAYMENT) is None


async def test_an_amount_with_cents_goes_to_alipay_as_yuan_with_two_decimals(alipay: FakeAlipay) -> None:
    alipay.add_trade("A1001", "30.00")

    result = await gateway(alipay).refund(an_attempt("12.5"), PAYMENT)

    assert result.amount == Decimal("12.50")
    assert alipay.calls[0][1]["refund_amount"] == "12.50"


# -- keys and configuration -----------------------------------------------------------------------------


async def test_check_says_what_it_verified(alipay: FakeAlipay) -> None:
    said_line = await gateway(alipay).check()

    assert APP_ID in said_line and "RSA2" in said_line and "2048-bit" in said_line


async def test_check_refuses_the_app_s_own_public_key_in_place_of_alipay_s(alipay: FakeAlipay) -> None:
    mixed_up = AlipayGateway.from_config(platform(alipay, alipay_key=public_pem(APP_KEY)))

    with pytest.raises(ValueError, match="your app's own public key"):
        await mixed_up.check()


def test_keys_come_from_the_environment_as_the_bare_base64_alipay_s_key_tool_prints(
        alipay: FakeAlipay, tmp_path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[platform.rails]\nalipay = "alipay"\n[platform.alipay]\napp_id = "{APP_ID}"\n'
                      f'gateway_url = "{alipay.url}"\n')
    loaded = load_config(config, environ={"REFUNDBOT_ALIPAY_APP_PRIVATE_KEY": bare_base64(APP_KEY),
                                          "REFUNDBOT_ALIPAY_PUBLIC_KEY": bare_base64(alipay.alipay_key.public_key())})

    [built] = [g for g in build_gateways(loaded.platform).values() if g.name == "alipay"]

    assert isinstance(built, AlipayGateway) and built.gateway_url == alipay.url
    assert bare_base64(APP_KEY) not in repr(loaded)


def test_key_files_are_read_and_a_missing_one_is_named(alipay: FakeAlipay, tmp_path) -> None:
    private, public = tmp_path / "app_private_key.pem", tmp_path / "alipay_public_key.txt"
    private.write_text(pem(APP_KEY))
    public.write_text(bare_base64(alipay.alipay_key.public_key()))
    files = AlipayConfig(app_id=APP_ID, app_private_key_file=str(private), alipay_public_key_file=str(public))
    assert AlipayGateway.from_config(PlatformConfig(alipay=files)).gateway_url == "https://openapi.alipay.com/gateway.do"

    missing = files.model_copy(update={"alipay_public_key_file": str(tmp_path / "nope.pem")})
    with pytest.raises(ValueError, match=r"alipay_public_key_file: cannot read .*nope\.pem"):
        AlipayGateway.from_config(PlatformConfig(alipay=missing))


def test_a_key_that_is_not_a_key_is_refused_without_echoing_it() -> None:
    garbage = "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWJ1dC1ub3QtYS1rZXk=\n-----END PRIVATE KEY-----"
    bad = AlipayConfig(app_id=APP_ID, app_private_key=garbage, alipay_public_key=public_pem(APP_KEY))

    with pytest.raises(ValueError, match="is not an RSA private key") as refused:
        AlipayGateway.from_config(PlatformConfig(alipay=bad))
    assert "c2VjcmV0" not in str(refused.value)


def test_an_alipay_rail_without_an_app_id_is_refused_by_name() -> None:
    unnamed = AlipayConfig(app_private_key=pem(APP_KEY), alipay_public_key=public_pem(APP_KEY))

    with pytest.raises(ValueError, match="app_id"):
        build_gateways(PlatformConfig(rails={PaymentChannel.ALIPAY: "alipay"}, alipay=unnamed))


def test_the_sandbox_setting_points_at_alipay_s_sandbox_gateway() -> None:
    sandbox = AlipayConfig(app_id=APP_ID, sandbox=True, app_private_key=pem(APP_KEY),
                           alipay_public_key=public_pem(new_key()))

    assert AlipayGateway.from_config(PlatformConfig(alipay=sandbox)).gateway_url == (
        "https://openapi-sandbox.dl.alipaydev.com/gateway.do")


async def test_doctor_s_rails_line_proves_the_real_alipay_keys_and_names_a_mix_up(alipay: FakeAlipay) -> None:
    from bot.doctor_rails import rail_findings

    good = [finding async for finding in rail_findings(platform(alipay))]
    mixed_up = [finding async for finding in rail_findings(platform(alipay, alipay_key=public_pem(APP_KEY)))]

    assert [level for level, _ in good] == ["ok"] and APP_ID in good[0][1]
    assert [level for level, _ in mixed_up] == ["fail"] and "your app's own public key" in mixed_up[0][1]
