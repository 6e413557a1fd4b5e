"""The epay rail (bot/rails/epay.py) against a local 彩虹易支付 (fake_epay.py), through the real RefundWorker
and a real database (SQLite and PostgreSQL): what the site pays, what the case and the customer see."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal

import aiohttp
import pytest

from bot.config import AppConfig
from bot.rails import build_gateways
from bot.rails.epay import EpayGateway
from bot.workers.refunds import RefundWorker
from dialogs.cases import CaseWorkflow
from dialogs.domain import CaseStatus, PaymentChannel, RailError, Reason, RefundAttempt, RefundStatus
from dialogs.outbox import CASE_NEWS, SUPERVISOR_ALERT
from dialogs.settings import CoreSettings, SlaSettings
from storage.uow import Database
from tests.bot.rails.fake_epay import CLOSED, FakeEpay, new_key, private_pem, public_pem
from tests.bot.test_rail_worker import said
from tests.storage.factories import T0, make_case, make_order

SETTINGS = CoreSettings(sla=SlaSettings(supervisors_chat_id=-1009))
CASE, CASE2 = "R20261124-0001", "R20261124-0002"
ORDER, TRADE = "A1001", "2026112410000001"
MERCHANT, PLATFORM = new_key(), new_key()  # the shop's key pair and the epay site's, made for these tests


@pytest.fixture
async def site() -> AsyncIterator[FakeEpay]:
    async with FakeEpay(merchant_public=MERCHANT.public_key(), platform_key=PLATFORM) as fake:
        fake.add_order(ORDER, "30.00", trade_no=TRADE)
        yield fake


def v2(site: FakeEpay) -> EpayGateway:
    return EpayGateway(site.url, site.pid, version=2, merchant_private_key=MERCHANT,
                       platform_public_key=PLATFORM.public_key(), timeout=0.5)


def v1(site: FakeEpay, key: str | None = None) -> EpayGateway:
    return EpayGateway(site.url, site.pid, version=1, key=key or site.key, timeout=0.5)


def workflow() -> CaseWorkflow:
    return CaseWorkflow.for_settings(SETTINGS, "manual", {PaymentChannel.EPAY: "epay"})


async def approved(database: Database, case_no: str = CASE, amount: str | None = None,
                   reason: Reason = Reason.CARD_INVALID) -> None:
    async with database.uow() as uow:
        await uow.orders.upsert(make_order(ORDER, amount=Decimal("30.00"), payment_channel=PaymentChannel.EPAY,
                                           trade_no=TRADE))
        await uow.cases.add(make_case(case_no, ORDER, amount=Decimal("30.00"), reason=reason,
                                      status=CaseStatus.IN_REVIEW))
        await workflow().approve(uow, case_no, actor="agent:1", at=T0,
                                 amount=Decimal(amount) if amount is not None else None)
        await uow.commit()


async def run(database: Database, gateway: EpayGateway) -> int:
    worker = RefundWorker(database.uow, workflow(), gateway, clock=lambda: T0 + timedelta(hours=1),
                          retry_base_seconds=0)
    try:
        return await worker.run_once()
    finally:
        await gateway.close()


async def attempts(database: Database, case_no: str = CASE) -> list[RefundAttempt]:
    async with database.uow() as uow:
        return await uow.refunds.for_case(case_no)


async def case_status(database: Database, case_no: str = CASE) -> CaseStatus:
    async with database.uow() as uow:
        case = await uow.cases.get(case_no)
    assert case is not None
    return case.status


# --- v2 (RSA, api/pay/refund + refundquery) ---------------------------------------------------------


async def test_a_full_refund_is_paid_once_and_recorded_with_the_site_s_refund_number(
        database: Database, site: FakeEpay) -> None:
    await approved(database)

    assert await run(database, v2(site)) == 1

    [payout] = site.payouts
    assert (payout.out_trade_no, payout.money, payout.out_refund_no) == (ORDER, Decimal("30.00"), f"{CASE}-1")
    [attempt] = await attempts(database)
    assert (attempt.status, attempt.external_ref, attempt.gateway) == (RefundStatus.SUCCEEDED, payout.refund_no, "epay")
    assert await case_status(database) is CaseStatus.REFUNDED


async def test_two_partial_refunds_of_one_order_are_paid_under_their_own_refund_numbers(
        database: Database, site: FakeEpay) -> None:
    await approved(database, CASE, amount="10.00")
    await approved(database, CASE2, amount="20.00", reason=Reason.CARD_USED)

    assert await run(database, v2(site)) == 2

    assert sorted((p.out_refund_no, p.money) for p in site.payouts) == [
        (f"{CASE}-1", Decimal("10.00")), (f"{CASE2}-1", Decimal("20.00"))]
    assert site.paid_out(ORDER) == Decimal("30.00")
    assert [await case_status(database, c) for c in (CASE, CASE2)] == [CaseStatus.REFUNDED, CaseStatus.REFUNDED]


async def test_a_timeout_after_paying_is_settled_by_refundquery_with_exactly_one_payout(
        database: Database, site: FakeEpay) -> None:
    await approved(database)
    site.script = ["timeout_after_pay"]

    assert await run(database, v2(site)) == 0  # paid, but the answer never came
    assert [a.status for a in await attempts(database)] == [RefundStatus.PENDING]
    assert await run(database, v2(site)) == 1

    assert site.calls == ["refund", "refundquery"]  # asked, never sent again
    assert len(site.payouts) == 1
    [attempt] = await attempts(database)
    assert (attempt.status, attempt.external_ref, attempt.rail_status) == (
        RefundStatus.SUCCEEDED, site.payouts[0].refund_no, "status=1")


async def test_a_timeout_before_paying_is_sent_again_under_the_same_number_once_refundquery_finds_nothing(
        database: Database, site: FakeEpay) -> None:
    await approved(database)
    site.script = ["timeout_before_pay"]

    await run(database, v2(site))
    assert site.payouts == []
    assert await run(database, v2(site)) == 1

    assert site.calls == ["refund", "refundquery", "refund"]
    [payout] = site.payouts
    assert payout.out_refund_no == f"{CASE}-1"
    assert await case_status(database) is CaseStatus.REFUNDED


async def test_a_closed_trade_fails_the_case_by_name_and_the_customer_is_told_why(
        database: Database, site: FakeEpay) -> None:
    site.orders[ORDER].status = CLOSED
    await approved(database)

    assert await run(database, v2(site)) == 1

    assert site.payouts == []
    [attempt] = await attempts(database)
    assert (attempt.status, attempt.error) == (RefundStatus.FAILED, RailError.TRADE_CLOSED)
    assert await case_status(database) is CaseStatus.REFUND_FAILED
    [news] = [n for n in await said(database, CASE_NEWS) if "退款未能成功" in n.text]
    assert "原支付交易已在支付渠道关闭" in news.text


async def test_a_low_merchant_balance_keeps_the_attempt_alerts_the_supervisors_and_pays_once_topped_up(
        database: Database, site: FakeEpay) -> None:
    site.balance = Decimal("5.00")
    await approved(database)

    assert await run(database, v2(site)) == 0
    assert await run(database, v2(site)) == 0

    assert site.payouts == [] and [a.status for a in await attempts(database)] == [RefundStatus.PENDING]
    [alert] = await said(database, SUPERVISOR_ALERT)
    assert alert.chat_id == -1009 and "¥30.00" in alert.text and "商户账户余额不足" in alert.text
    site.balance = Decimal("100.00")  # topped up on the epay site
    assert await run(database, v2(site)) == 1
    assert len(site.payouts) == 1 and await case_status(database) is CaseStatus.REFUNDED


async def test_the_site_never_refunds_more_than_the_order_was_paid(database: Database, site: FakeEpay) -> None:
    site.add_order("A1001-console", "1.00")  # (another order: the ledger is per order)
    await approved(database, CASE, amount="25.00")
    assert await run(database, v2(site)) == 1
    site.orders[ORDER].money = Decimal("28.00")  # the site holds less than our books (a refund made by hand)
    await approved(database, CASE2, amount="5.00", reason=Reason.CARD_USED)

    assert await run(database, v2(site)) == 1

    assert site.paid_out(ORDER) == Decimal("25.00") <= Decimal("30.00")
    [attempt] = await attempts(database, CASE2)
    assert (attempt.status, attempt.error) == (RefundStatus.FAILED, RailError.AMOUNT_TOO_HIGH)
    assert "可退款金额" in attempt.note
    assert await case_status(database, CASE2) is CaseStatus.REFUND_FAILED


async def test_a_forged_success_is_never_taken_as_paid(database: Database, site: FakeEpay) -> None:
    await approved(database)
    site.script = ["forged"]  # "退款成功", signed with a key that is not the platform's; nothing paid

    assert await run(database, v2(site)) == 0

    assert site.payouts == []
    assert [a.status for a in await attempts(database)] == [RefundStatus.PENDING]
    assert await case_status(database) is CaseStatus.REFUNDING
    assert await run(database, v2(site)) == 1  # refundquery (truly signed): no such refund; sent again
    assert site.calls == ["refund", "refundquery", "refund"] and len(site.payouts) == 1


async def test_a_request_signed_with_another_merchant_key_is_refused_and_nothing_is_paid(
        database: Database, site: FakeEpay) -> None:
    await approved(database)
    wrong = EpayGateway(site.url, site.pid, version=2, merchant_private_key=new_key(),
                        platform_public_key=PLATFORM.public_key(), timeout=0.5)

    assert await run(database, wrong) == 0

    assert site.refusals == ["签名校验失败"] and site.payouts == []
    assert [a.status for a in await attempts(database)] == [RefundStatus.PENDING]  # fixed config, then retried


# --- v1 (MD5, api.php) -----------------------------------------------------------------------------


async def test_v1_a_full_refund_is_paid(database: Database, site: FakeEpay) -> None:
    await approved(database)

    assert await run(database, v1(site)) == 1

    [payout] = site.payouts
    assert (payout.out_trade_no, payout.money) == (ORDER, Decimal("30.00"))
    assert [a.status for a in await attempts(database)] == [RefundStatus.SUCCEEDED]
    assert await case_status(database) is CaseStatus.REFUNDED


async def test_v1_the_site_refuses_a_bad_md5_signature(site: FakeEpay) -> None:
    form = {"pid": site.pid, "key": site.key, "out_trade_no": ORDER, "money": "30.00",
            "sign": "0" * 32, "sign_type": "MD5"}
    async with aiohttp.ClientSession() as http, http.post(site.url + "api.php?act=refund", data=form) as resp:
        answer = await resp.json()

    assert answer == {"code": -1, "msg": "签名校验失败"} and site.payouts == []


async def test_v1_a_wrong_merchant_key_pays_nothing_and_the_attempt_waits(database: Database, site: FakeEpay) -> None:
    await approved(database)

    assert await run(database, v1(site, key="not-the-key")) == 0

    assert site.refusals == ["商户ID或密钥错误"] and site.payouts == []
    assert [a.status for a in await attempts(database)] == [RefundStatus.PENDING]


async def test_v1_after_a_timeout_the_order_status_says_refunded_and_nothing_is_sent_again(
        database: Database, site: FakeEpay) -> None:
    await approved(database)
    site.script = ["timeout_after_pay"]

    await run(database, v1(site))
    assert await run(database, v1(site)) == 1

    assert site.calls == ["refund", "order"] and len(site.payouts) == 1
    [attempt] = await attempts(database)
    assert (attempt.status, attempt.rail_status) == (RefundStatus.SUCCEEDED, "status=2")


async def test_v1_after_a_timeout_before_paying_the_order_shows_nothing_refunded_and_it_is_sent_again(
        database: Database, site: FakeEpay) -> None:
    await approved(database)
    site.script = ["timeout_before_pay"]

    await run(database, v1(site))
    assert await run(database, v1(site)) == 1

    assert site.calls == ["refund", "order", "refund"] and len(site.payouts) == 1
    assert await case_status(database) is CaseStatus.REFUNDED


async def test_v1_a_partial_refund_whose_outcome_the_order_cannot_tell_is_held_for_finance(
        database: Database, site: FakeEpay) -> None:
    await approved(database, CASE, amount="10.00")
    site.script = ["timeout_after_pay"]
    await run(database, v1(site))

    assert await run(database, v1(site)) == 1

    assert len(site.payouts) == 1  # never sent twice
    [attempt] = await attempts(database)
    assert attempt.status is RefundStatus.REQUESTED and "finance must confirm" in attempt.note


# --- keys and configuration ------------------------------------------------------------------------


async def test_check_proves_the_v2_keys_sign_and_load_without_calling_the_site(site: FakeEpay) -> None:
    line = await v2(site).check()

    assert "RSA 2048" in line and site.calls == []


async def test_check_refuses_the_merchant_s_own_public_key_in_place_of_the_platform_s(site: FakeEpay) -> None:
    mixed_up = EpayGateway(site.url, site.pid, version=2, merchant_private_key=MERCHANT,
                           platform_public_key=MERCHANT.public_key())

    with pytest.raises(ValueError, match="平台公钥"):
        await mixed_up.check()


def test_the_configuration_builds_an_epay_gateway_from_key_files(tmp_path) -> None:
    (tmp_path / "merchant.pem").write_bytes(private_pem(MERCHANT))
    (tmp_path / "platform.pem").write_bytes(public_pem(PLATFORM))
    config = AppConfig.model_validate({"platform": {"rails": {"epay": "epay"}, "epay": {
        "api_url": "https://pay.example.com/", "pid": "1001", "version": 2,
        "merchant_private_key_file": str(tmp_path / "merchant.pem"),
        "platform_public_key_file": str(tmp_path / "platform.pem")}}})

    gateway = build_gateways(config.platform)["epay"]

    assert isinstance(gateway, EpayGateway) and gateway.version == 2 and gateway.base == "https://pay.example.com/"


def test_the_v1_key_may_come_from_the_environment() -> None:
    config = AppConfig.model_validate({"platform": {"epay": {"api_url": "https://pay.example.com", "pid": "1001",
                                                             "version": 1}}})

    with pytest.raises(ValueError, match="REFUNDBOT_EPAY_KEY"):
        EpayGateway.from_config(config.platform, environ={})
    assert EpayGateway.from_config(config.platform, environ={"REFUNDBOT_EPAY_KEY": "k"}).version == 1


def test_a_bad_key_file_is_named_without_its_contents(tmp_path) -> None:
    secret = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC-not-a-key"
    (tmp_path / "merchant.pem").write_text(secret)
    (tmp_path / "platform.pem").write_bytes(public_pem(PLATFORM))
    config = AppConfig.model_validate({"platform": {"epay": {
        "api_url": "https://pay.example.com", "pid": "1001",
        "merchant_private_key_file": str(tmp_path / "merchant.pem"),
        "platform_public_key_file": str(tmp_path / "platform.pem")}}})

    with pytest.raises(ValueError, match="merchant private key") as err:
        EpayGateway.from_config(config.platform, environ={})
    assert secret[:20] not in str(err.value)


async def test_v2_keys_may_come_from_the_environment_as_the_bare_base64_the_console_shows() -> None:
    def bare(pem: bytes) -> str:
        return "".join(line for line in pem.decode().splitlines() if not line.startswith("-----"))

    config = AppConfig.model_validate({"platform": {"epay": {"api_url": "https://pay.example.com", "pid": "1001"}}})
    gateway = EpayGateway.from_config(config.platform, environ={
        "REFUNDBOT_EPAY_MERCHANT_PRIVATE_KEY": bare(private_pem(MERCHANT)),
        "REFUNDBOT_EPAY_PLATFORM_PUBLIC_KEY": bare(public_pem(PLATFORM))})

    assert "RSA 2048" in await gateway.check()


async def test_check_names_a_v1_key_pasted_with_spaces_around_it(site: FakeEpay) -> None:
    assert "MD5" in await v1(site).check()
    with pytest.raises(ValueError, match="spaces around it"):
        await v1(site, key=site.key + " ").check()
