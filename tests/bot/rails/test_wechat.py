"""WeChat Pay API v3: the real RefundWorker and WechatGateway (wechatpayv3, its own signing and
verification) against a local fake of WeChat Pay over HTTP, on a real database; and the refund
notification endpoint, fed signed, encrypted notifications by the fake."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.config import PlatformConfig, WechatConfig
from bot.rails import build_gateways
from bot.rails.wechat import WechatGateway, classify_refusal
from bot.rails.wechat_notify import PATH, WechatNotifications
from bot.workers.refunds import RefundWorker
from dialogs.cases import CaseWorkflow
from dialogs.domain import CaseStatus, PaymentChannel, RailError, Reason, RefundAttempt, RefundStatus
from dialogs.outbox import SUPERVISOR_ALERT
from dialogs.ports import GatewayUnavailable, Payment
from dialogs.settings import CoreSettings, SlaSettings
from storage.uow import Database
from tests.bot.rails.fake_wechat import MCHID, FakeWechat, Keys, Refund
from tests.bot.test_rail_worker import said
from tests.storage.factories import T0, make_case, make_order

CASE = "R20261124-0001"
CASE2 = "R20261124-0002"
TRANSACTION = "4200002026112400000001"
SETTINGS = CoreSettings(sla=SlaSettings(supervisors_chat_id=-1009))


def rails_workflow() -> CaseWorkflow:
    return CaseWorkflow.for_settings(SETTINGS, "manual", {PaymentChannel.WECHAT: "wechat"})


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys.generate()


@pytest.fixture
async def fake(keys: Keys) -> AsyncIterator[FakeWechat]:
    async with FakeWechat(keys, hang_seconds=1.5) as wechat:
        wechat.trade("A1001", "30.00", TRANSACTION)
        yield wechat


def settings(keys: Keys, folder: Path, fake: FakeWechat, **changes: str) -> WechatConfig:
    return WechatConfig(**{**keys.write(folder), "notify_url": "https://bot.example.com" + PATH,
                           "api_base": fake.url, **changes})


@pytest.fixture
def gateway(keys: Keys, fake: FakeWechat, tmp_path: Path) -> Iterator[WechatGateway]:
    yield WechatGateway(settings(keys, tmp_path / "keys", fake), timeout=0.5, environ={})


async def approved(database: Database, case_no: str = CASE, amount: str = "30.00",
                   reason: Reason = Reason.CARD_INVALID, trade_no: str | None = TRANSACTION) -> None:
    async with database.uow() as uow:
        await uow.orders.upsert(make_order("A1001", amount=Decimal("30.00"), payment_channel=PaymentChannel.WECHAT,
                                           trade_no=trade_no))
        await uow.cases.add(make_case(case_no, "A1001", amount=Decimal(amount), status=CaseStatus.IN_REVIEW,
                                      reason=reason))
        await rails_workflow().approve(uow, case_no, actor="agent:1", at=T0)
        await uow.commit()


def worker(database: Database, gateway: WechatGateway) -> RefundWorker:
    return RefundWorker(database.uow, rails_workflow(), gateway, clock=lambda: T0 + timedelta(hours=1),
                        retry_base_seconds=0, call_timeout=5)


async def attempts(database: Database, case_no: str = CASE) -> tuple[CaseStatus, list[RefundAttempt]]:
    async with database.uow() as uow:
        case = await uow.cases.get(case_no)
        found = await uow.refunds.for_case(case_no)
    assert case is not None
    return case.status, found


# -- refunds through the worker -------------------------------------------------------------------
async def test_a_full_refund_is_paid_once_and_the_case_is_refunded(database: Database, fake: FakeWechat,
                                                                   gateway: WechatGateway) -> None:
    await approved(database)

    assert await worker(database, gateway).run_once() == 1

    status, [attempt] = await attempts(database)
    [refund] = fake.refunds.values()
    assert status is CaseStatus.REFUNDED
    assert (attempt.status, attempt.external_ref, attempt.rail_status) == (
        RefundStatus.SUCCEEDED, refund.refund_id, "SUCCESS")
    assert (refund.out_refund_no, refund.out_trade_no, refund.refund, refund.total) == (
        f"{CASE}-1", "A1001", 3000, 3000)
    assert refund.notify_url == "https://bot.example.com" + PATH
    [asked] = fake.asked
    assert (asked["transaction_id"], asked["amount"]) == (TRANSACTION, {"refund": 3000, "total": 3000, "currency": "CNY"})
    assert fake.payouts("A1001") == [3000] and fake.refused_signatures == 0


async def test_an_order_without_wechat_s_transaction_id_is_refunded_by_its_order_number(
        database: Database, fake: FakeWechat, gateway: WechatGateway) -> None:
    await approved(database, trade_no=None)

    assert await worker(database, gateway).run_once() == 1

    [asked] = fake.asked
    assert (asked["out_trade_no"], asked.get("transaction_id")) == ("A1001", None)
    assert [r.refund for r in fake.refunds.values()] == [3000]
    assert (await attempts(database))[0] is CaseStatus.REFUNDED


async def test_two_partial_refunds_of_one_order_pay_twice_within_its_total(database: Database, fake: FakeWechat,
                                                                          gateway: WechatGateway) -> None:
    await approved(database, CASE, "10.00")
    await approved(database, CASE2, "20.00", Reason.CARD_USED)

    assert await worker(database, gateway).run_once() == 2

    assert sorted(fake.payouts("A1001")) == [1000, 2000]
    assert {r.out_refund_no for r in fake.refunds.values()} == {f"{CASE}-1", f"{CASE2}-1"}
    assert (await attempts(database, CASE))[0] is CaseStatus.REFUNDED
    assert (await attempts(database, CASE2))[0] is CaseStatus.REFUNDED


async def test_a_timeout_after_paying_is_settled_by_the_query_with_one_payout(database: Database, fake: FakeWechat,
                                                                             gateway: WechatGateway) -> None:
    await approved(database)
    fake.script = ["timeout_after_paying"]

    assert await worker(database, gateway).run_once() == 0  # paid, but the answer never came
    assert [a.status for a in (await attempts(database))[1]] == [RefundStatus.PENDING]
    assert await worker(database, gateway).run_once() == 1

    key = f"{CASE}-1"
    assert fake.requests == [("POST", "/v3/refund/domestic/refunds"), ("GET", f"/v3/refund/domestic/refunds/{key}")]
    assert fake.payouts("A1001") == [3000]
    assert (await attempts(database))[0] is CaseStatus.REFUNDED


async def test_a_timeout_before_paying_is_sent_again_under_the_same_key_once_the_query_finds_nothing(
        database: Database, fake: FakeWechat, gateway: WechatGateway) -> None:
    await approved(database)
    fake.script = ["timeout_before_paying"]

    assert await worker(database, gateway).run_once() == 0
    assert fake.payouts("A1001") == []
    assert await worker(database, gateway).run_once() == 1

    key = f"{CASE}-1"
    assert fake.requests == [("POST", "/v3/refund/domestic/refunds"), ("GET", f"/v3/refund/domestic/refunds/{key}"),
                             ("POST", "/v3/refund/domestic/refunds")]
    assert [r.out_refund_no for r in fake.refunds.values()] == [key]
    assert fake.payouts("A1001") == [3000]


async def test_a_closed_trade_fails_the_attempt_as_trade_closed(database: Database, fake: FakeWechat,
                                                                gateway: WechatGateway) -> None:
    fake.trades["A1001"].closed = True
    await approved(database)

    assert await worker(database, gateway).run_once() == 1

    status, [attempt] = await attempts(database)
    assert status is CaseStatus.REFUND_FAILED
    assert (attempt.status, attempt.error, attempt.rail_status) == (
        RefundStatus.FAILED, RailError.TRADE_CLOSED, "INVALID_REQUEST")
    assert fake.payouts("A1001") == []


async def test_a_low_balance_keeps_the_attempt_alerts_the_supervisors_and_pays_once_topped_up(
        database: Database, fake: FakeWechat, gateway: WechatGateway) -> None:
    fake.balance = 0
    await approved(database)

    assert await worker(database, gateway).run_once() == 0
    assert await worker(database, gateway).run_once() == 0

    status, [attempt] = await attempts(database)
    assert (status, attempt.status) == (CaseStatus.REFUNDING, RefundStatus.PENDING)
    [alert] = await said(database, SUPERVISOR_ALERT)
    assert alert.chat_id == -1009 and "¥30.00" in alert.text and CASE in alert.text
    fake.balance = 100_000  # topped up
    assert await worker(database, gateway).run_once() == 1
    assert (await attempts(database))[0] is CaseStatus.REFUNDED
    assert fake.payouts("A1001") == [3000]


async def test_more_than_the_trade_still_holds_is_refused_and_the_ledger_never_exceeds_the_total(
        database: Database, fake: FakeWechat, gateway: WechatGateway) -> None:
    # 25.00 of the 30.00 was refunded on WeChat Pay before (by hand, in the merchant platform).
    fake.refunds["manual-1"] = Refund("manual-1", "A1001", TRANSACTION, "503000manual", 2500, 3000, "SUCCESS", "")
    await approved(database)

    assert await worker(database, gateway).run_once() == 1

    status, [attempt] = await attempts(database)
    assert (status, attempt.error) == (CaseStatus.REFUND_FAILED, RailError.AMOUNT_TOO_HIGH)
    assert sum(fake.payouts("A1001")) <= 3000


async def test_a_forged_answer_is_never_taken_as_paid(database: Database, fake: FakeWechat,
                                                      gateway: WechatGateway) -> None:
    await approved(database)
    fake.script = ["forge"]

    assert await worker(database, gateway).run_once() == 0

    status, [attempt] = await attempts(database)
    assert (status, attempt.status) == (CaseStatus.REFUNDING, RefundStatus.PENDING)
    # The genuine answer, asked for before anything is sent again, settles it: one payout.
    assert await worker(database, gateway).run_once() == 1
    assert (await attempts(database))[0] is CaseStatus.REFUNDED
    assert fake.payouts("A1001") == [3000]


async def test_a_query_answer_failing_verification_cannot_tell(fake: FakeWechat, gateway: WechatGateway) -> None:
    attempt = RefundAttempt(CASE, f"{CASE}-1", "wechat", Decimal("30.00"), RefundStatus.PENDING, T0)
    payment = Payment("A1001", Decimal("30.00"), TRANSACTION)
    fake.refunds[attempt.idempotency_key] = Refund(attempt.idempotency_key, "A1001", TRANSACTION, "5030001", 3000,
                                                   3000, "SUCCESS", "")
    fake.script = ["forge"]

    with pytest.raises(GatewayUnavailable):
        await gateway.query(attempt, payment)
    result = await gateway.query(attempt, payment)  # the genuine answer
    assert result is not None and result.status is RefundStatus.SUCCEEDED


async def test_merchants_on_platform_certificates_are_verified_with_them(
        database: Database, keys: Keys, fake: FakeWechat, tmp_path: Path) -> None:
    pem, fake.serial = keys.platform_certificate()
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / f"{fake.serial}.pem").write_text(pem)
    config = settings(keys, tmp_path / "keys", fake, platform_public_key_file="", public_key_id="",
                      platform_cert_dir=str(tmp_path / "certs"))
    gateway = WechatGateway(config, timeout=0.5, environ={})
    await approved(database)

    assert await worker(database, gateway).run_once() == 1

    assert (await attempts(database))[0] is CaseStatus.REFUNDED
    assert "1 platform certificate" in await gateway.check()


# -- notifications ----------------------------------------------------------------------------------
@pytest.fixture
async def bot_url(database: Database, gateway: WechatGateway) -> AsyncIterator[str]:
    app = web.Application()
    WechatNotifications(gateway, database.uow, rails_workflow()).add_routes(app)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        yield str(server.make_url(PATH))
    finally:
        await server.close()


async def processing(database: Database, fake: FakeWechat, gateway: WechatGateway) -> RefundAttempt:
    fake.answer_status = "PROCESSING"
    await approved(database)
    assert await worker(database, gateway).run_once() == 1
    status, [attempt] = await attempts(database)
    assert (status, attempt.status, attempt.rail_status) == (CaseStatus.REFUNDING, RefundStatus.REQUESTED,
                                                             "PROCESSING")
    return attempt


async def test_processing_then_the_notification_success_credits_the_case(
        database: Database, fake: FakeWechat, gateway: WechatGateway, bot_url: str) -> None:
    attempt = await processing(database, fake, gateway)

    assert (await fake.notify(bot_url, attempt.idempotency_key))[0] == 204

    status, [settled] = await attempts(database)
    assert (status, settled.status, settled.rail_status) == (CaseStatus.REFUNDED, RefundStatus.SUCCEEDED, "SUCCESS")
    assert settled.external_ref == fake.refunds[attempt.idempotency_key].refund_id
    assert fake.payouts("A1001") == [3000]


async def test_a_duplicate_notification_is_answered_and_changes_nothing(
        database: Database, fake: FakeWechat, gateway: WechatGateway, bot_url: str) -> None:
    attempt = await processing(database, fake, gateway)
    body = fake.notification(attempt.idempotency_key)
    assert (await fake.post(bot_url, body))[0] == 204
    async with database.uow() as uow:
        events = await uow.cases.events(CASE)

    assert (await fake.post(bot_url, body))[0] == 204  # WeChat Pay sends it again

    async with database.uow() as uow:
        assert await uow.cases.events(CASE) == events
    assert (await attempts(database))[0] is CaseStatus.REFUNDED


async def test_a_notification_with_a_bad_signature_is_refused_and_changes_nothing(
        database: Database, fake: FakeWechat, gateway: WechatGateway, bot_url: str) -> None:
    attempt = await processing(database, fake, gateway)
    body = fake.notification(attempt.idempotency_key)

    status, answer = await fake.post(bot_url, body, fake.signed_headers(body, forged=True))

    assert status == 401 and json.loads(answer)["code"] == "FAIL"
    assert [a.status for a in (await attempts(database))[1]] == [RefundStatus.REQUESTED]


async def test_a_genuine_signature_replayed_with_another_body_is_refused(
        database: Database, fake: FakeWechat, gateway: WechatGateway, bot_url: str) -> None:
    attempt = await processing(database, fake, gateway)
    genuine = fake.notification(attempt.idempotency_key, "REFUND.SUCCESS")
    headers = fake.signed_headers(genuine)

    status, _ = await fake.post(bot_url, fake.notification(attempt.idempotency_key, "REFUND.CLOSED"), headers)

    assert status == 401
    assert [a.status for a in (await attempts(database))[1]] == [RefundStatus.REQUESTED]


async def test_a_stale_notification_is_refused(database: Database, fake: FakeWechat, gateway: WechatGateway,
                                               bot_url: str) -> None:
    attempt = await processing(database, fake, gateway)
    body = fake.notification(attempt.idempotency_key)

    status, _ = await fake.post(bot_url, body, fake.signed_headers(body, timestamp=int(T0.timestamp())))

    assert status == 401
    assert [a.status for a in (await attempts(database))[1]] == [RefundStatus.REQUESTED]


async def test_a_notification_for_an_unknown_refund_changes_nothing(
        database: Database, fake: FakeWechat, gateway: WechatGateway, bot_url: str) -> None:
    attempt = await processing(database, fake, gateway)
    fake.refunds["not-ours-1"] = Refund("not-ours-1", "A1001", TRANSACTION, "5030009", 100, 3000, "PROCESSING", "")

    status, answer = await fake.notify(bot_url, "not-ours-1")

    assert status == 404 and json.loads(answer)["code"] == "FAIL"
    assert [a.status for a in (await attempts(database))[1]] == [RefundStatus.REQUESTED]
    assert attempt.status is RefundStatus.REQUESTED


async def test_an_abnormal_refund_notification_fails_the_attempt(
        database: Database, fake: FakeWechat, gateway: WechatGateway, bot_url: str) -> None:
    attempt = await processing(database, fake, gateway)

    assert (await fake.notify(bot_url, attempt.idempotency_key, "REFUND.ABNORMAL"))[0] == 204

    status, [failed] = await attempts(database)
    assert (status, failed.status, failed.error, failed.rail_status) == (
        CaseStatus.REFUND_FAILED, RefundStatus.FAILED, RailError.REJECTED, "ABNORMAL")


async def test_a_notified_amount_other_than_the_attempt_s_is_left_for_finance(
        database: Database, fake: FakeWechat, gateway: WechatGateway, bot_url: str) -> None:
    attempt = await processing(database, fake, gateway)

    body = fake.notification(attempt.idempotency_key, refund_fen=2999)
    assert (await fake.post(bot_url, body))[0] == 204

    assert [a.status for a in (await attempts(database))[1]] == [RefundStatus.REQUESTED]


# -- configuration and doctor -----------------------------------------------------------------------
async def test_check_proves_the_keys_sign_and_the_public_key_loads(gateway: WechatGateway) -> None:
    line = await gateway.check()
    assert MCHID in line and "PUB_KEY_ID_" in line and "key" in line
    assert "BEGIN" not in line


async def test_check_names_a_private_key_that_is_not_one(keys: Keys, fake: FakeWechat, tmp_path: Path) -> None:
    config = settings(keys, tmp_path / "keys", fake)
    Path(config.private_key_file).write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    with pytest.raises(ValueError, match="private_key_file"):
        await WechatGateway(config, environ={}).check()


def test_missing_settings_are_named_without_key_material(keys: Keys, fake: FakeWechat, tmp_path: Path) -> None:
    config = PlatformConfig(rails={PaymentChannel.WECHAT: "wechat"},
                            wechat=settings(keys, tmp_path / "keys", fake, apiv3_key="", cert_serial_no=""))
    with pytest.raises(ValueError, match="apiv3_key.*cert_serial_no") as err:
        build_gateways(config)
    assert "PRIVATE KEY" not in str(err.value)


def test_the_apiv3_key_may_come_from_the_environment(keys: Keys, fake: FakeWechat, tmp_path: Path) -> None:
    config = settings(keys, tmp_path / "keys", fake, apiv3_key="")
    gateway = WechatGateway(config, environ={"REFUNDBOT_WECHAT_APIV3_KEY": keys.apiv3_key})
    assert gateway.name == "wechat" and keys.apiv3_key not in repr(gateway)


@pytest.mark.parametrize(("message", "error"), [
    ("订单已关闭", RailError.TRADE_CLOSED),
    ("交易时间超过一年的订单无法提交退款", RailError.WINDOW_PASSED),
    ("申请退款金额超过订单可退金额", RailError.AMOUNT_TOO_HIGH),
    ("订单已全额退款", RailError.REJECTED),
    ("订单金额与原订单金额不一致", RailError.REJECTED),
])
def test_a_refusal_is_named_by_its_words(message: str, error: RailError) -> None:
    assert classify_refusal("INVALID_REQUEST", message) is error
