"""The Dujiao-Next shop (bot/shops/dujiao_next.py) against a local fake that checks the Open API signature the
way the shop documents it: what is signed, how orders map, what an unreachable shop means, the callback."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import socket
import time
from collections.abc import AsyncIterator
from decimal import Decimal

import aiohttp
import pytest
from aiohttp import web

from bot.config import AppConfig, DujiaoNextConfig, load_config
from bot.platform import SignatureError
from bot.shops import SOURCES
from bot.shops.dujiao_next import CALLBACK_PATH, DujiaoNextCallback, DujiaoNextOrders, sign, verify
from dialogs.domain import DeliveryStatus, PaymentChannel, ProductKind
from dialogs.ports import OrderSourceUnavailable
from storage.uow import Database
from tests.shops.fake_dujiao_next import ADMIN_TOKEN, API_KEY, API_SECRET, FakeDujiaoNext, signature

ORDER = "DJ20261124103000K7QM"


def shop_config(url: str, **changes: object) -> DujiaoNextConfig:
    fields: dict[str, object] = {"base_url": url, "api_key": API_KEY, "api_secret": API_SECRET,
                                 "admin_token": ADMIN_TOKEN, "timeout_seconds": 2, **changes}
    return DujiaoNextConfig.model_validate(fields)


@pytest.fixture
async def shop() -> AsyncIterator[FakeDujiaoNext]:
    async with FakeDujiaoNext() as fake:
        yield fake


@pytest.fixture
async def orders(shop: FakeDujiaoNext) -> AsyncIterator[DujiaoNextOrders]:
    lookup = DujiaoNextOrders(shop_config(shop.url))
    yield lookup
    await lookup.close()


# --- the signature -----------------------------------------------------------------------------------


def test_the_signature_is_hmac_sha256_over_method_path_timestamp_and_body_md5_as_documented() -> None:
    body = b'{"sku_id":1,"quantity":1}'
    expected = hmac.new(
        b"your_api_secret",
        f"POST\n/api/v1/upstream/orders\n1767225600\n{hashlib.md5(body).hexdigest()}".encode(),
        hashlib.sha256).hexdigest()
    assert sign("your_api_secret", "POST", "/api/v1/upstream/orders", "1767225600", body) == expected
    assert hashlib.md5(b"").hexdigest() == "d41d8cd98f00b204e9800998ecf8427e"


async def _raw(shop: FakeDujiaoNext, method: str, path: str, body: bytes = b"", *, signed_method: str | None = None,
               signed_path: str | None = None, signed_body: bytes | None = None,
               timestamp: int | None = None) -> tuple[int, dict]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    sig = signature(API_SECRET, signed_method or method, signed_path or path, ts,
                    body if signed_body is None else signed_body)
    headers = {"Dujiao-Next-Api-Key": API_KEY, "Dujiao-Next-Timestamp": ts, "Dujiao-Next-Signature": sig,
               "Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"}
    async with aiohttp.ClientSession() as http, http.request(method, shop.url + path, data=body or None,
                                                             headers=headers) as resp:
        return resp.status, await resp.json(content_type=None)


async def test_the_fake_takes_a_rightly_signed_request_and_refuses_each_wrong_part(shop: FakeDujiaoNext) -> None:
    order = shop.add_order(ORDER, "10.00")
    path, body = f"/api/v1/admin/orders/{order.id}/refund-to-wallet", b'{"amount":"1.00","remark":"x"}'

    assert (await _raw(shop, "POST", path, body, signed_body=b'{"amount":"9.00","remark":"x"}'))[0] == 401
    assert (await _raw(shop, "POST", path, body, signed_path=f"/api/v1/admin/orders/{order.id}"))[0] == 401
    assert (await _raw(shop, "POST", path, body, signed_method="GET"))[0] == 401
    assert (await _raw(shop, "POST", path, body, timestamp=int(time.time()) - 61))[0] == 401
    assert shop.refusals == ["invalid_signature"] * 3 + ["timestamp_expired"]
    assert shop.wallets[1001] == Decimal("0.00")  # nothing refused was paid

    status, _ = await _raw(shop, "POST", path, body)
    assert status == 200 and shop.wallets[1001] == Decimal("1.00")


async def test_the_client_signs_path_without_query_and_the_exact_body(shop: FakeDujiaoNext,
                                                                       orders: DujiaoNextOrders) -> None:
    shop.add_order(ORDER, "10.00")

    assert await orders.get(ORDER) is not None

    assert shop.refusals == []
    assert shop.requests == [("GET", "/api/v1/admin/orders"), ("GET", "/api/v1/admin/orders/101")]


async def test_a_wrong_secret_or_a_clock_a_minute_off_is_refused_and_reported_unavailable(
        shop: FakeDujiaoNext) -> None:
    shop.add_order(ORDER, "10.00")
    wrong = DujiaoNextOrders(shop_config(shop.url, api_secret="not-the-secret"))
    late = DujiaoNextOrders(shop_config(shop.url), clock=lambda: time.time() - 90)
    try:
        for lookup in (wrong, late):
            with pytest.raises(OrderSourceUnavailable, match="credentials"):
                await lookup.get(ORDER)
    finally:
        await wrong.close()
        await late.close()
    assert shop.refusals == ["invalid_signature", "timestamp_expired"]


def test_callback_verification_refuses_a_wrong_key_an_old_timestamp_and_a_changed_body() -> None:
    now = 1767225600
    body = b'{"order_no":"DJ1"}'
    good = {"Dujiao-Next-Api-Key": API_KEY, "Dujiao-Next-Timestamp": str(now),
            "Dujiao-Next-Signature": sign(API_SECRET, "POST", CALLBACK_PATH, str(now), body)}
    verify(API_KEY, API_SECRET, good, "POST", CALLBACK_PATH, body, now=now + 60, max_skew=60)
    for headers, sent, message in (({**good, "Dujiao-Next-Api-Key": "other"}, body, "unknown API key"),
                                   (good, b'{"order_no":"DJ2"}', "bad signature"),
                                   ({k: v for k, v in good.items() if k != "Dujiao-Next-Signature"}, body, "missing")):
        with pytest.raises(SignatureError, match=message):
            verify(API_KEY, API_SECRET, headers, "POST", CALLBACK_PATH, sent, now=now, max_skew=60)
    with pytest.raises(SignatureError, match="away from the server clock"):
        verify(API_KEY, API_SECRET, good, "POST", CALLBACK_PATH, body, now=now + 61, max_skew=60)


# --- mapping ------------------------------------------------------------------------------------------


async def test_a_completed_card_order_paid_online_maps_amount_codes_contact_and_the_shop_s_order_id(
        shop: FakeDujiaoNext, orders: DujiaoNextOrders) -> None:
    shop.add_order(ORDER, "100.00", user_id=0, guest_email="buyer@example.com",
                   payload="AAAA-BBBB-CCCC\n\nDDDD-EEEE-FFFF\n", order_id=4242)

    order = await orders.get(ORDER)

    assert order is not None
    assert (order.order_no, order.amount, order.payment_channel, order.trade_no) == (
        ORDER, Decimal("100.00"), PaymentChannel.EPAY, "4242")
    assert (order.product_kind, order.delivery_status, order.product_name) == (
        ProductKind.CARD_CODE, DeliveryStatus.DELIVERED, "Steam 充值卡 100 元")
    assert order.delivered_codes == ("AAAA-BBBB-CCCC", "DDDD-EEEE-FFFF")
    assert (order.buyer_contact, order.query_secret) == ("buyer@example.com", None)
    assert order.delivered_at is not None and order.paid_at.tzinfo is not None


async def test_a_wallet_paid_order_already_partly_refunded_offers_only_what_is_left_on_the_balance_channel(
        shop: FakeDujiaoNext, orders: DujiaoNextOrders) -> None:
    placed = shop.add_order(ORDER, "50.00", wallet_paid="50.00", fulfillment_type="manual")
    placed.refunded, placed.status = Decimal("20.00"), "partially_refunded"

    order = await orders.get(ORDER)

    assert order is not None
    assert (order.amount, order.payment_channel, order.product_kind) == (
        Decimal("30.00"), PaymentChannel.BALANCE, ProductKind.OTHER)
    assert "dujiao_next:refunded_before" in order.tags


@pytest.mark.parametrize(("status", "delivery", "amount"), [
    ("pending_payment", DeliveryStatus.PENDING, Decimal("0.00")),
    ("paid", DeliveryStatus.PENDING, Decimal("8.00")),
    ("fulfilling", DeliveryStatus.PENDING, Decimal("8.00")),
    ("delivered", DeliveryStatus.DELIVERED, Decimal("8.00")),
    ("canceled", DeliveryStatus.FAILED, Decimal("8.00")),
])
async def test_each_shop_status_maps_to_a_delivery_state(shop: FakeDujiaoNext, orders: DujiaoNextOrders,
                                                        status: str, delivery: DeliveryStatus,
                                                        amount: Decimal) -> None:
    shop.add_order(ORDER, "8.00", status=status)
    order = await orders.get(ORDER)
    assert order is not None and (order.delivery_status, order.amount) == (delivery, amount)


async def test_an_online_paid_order_is_routed_by_the_configured_online_channel(shop: FakeDujiaoNext) -> None:
    shop.add_order(ORDER, "8.00")
    lookup = DujiaoNextOrders(shop_config(shop.url, online_channel="alipay"))
    try:
        order = await lookup.get(ORDER)
    finally:
        await lookup.close()
    assert order is not None and order.payment_channel is PaymentChannel.ALIPAY


async def test_an_order_the_shop_does_not_have_is_none(shop: FakeDujiaoNext, orders: DujiaoNextOrders) -> None:
    shop.add_order(ORDER, "8.00")
    assert await orders.get("DJ20261124103000ZZZZ") is None


# --- unavailable ----------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_an_unreachable_shop_is_unavailable_not_no_such_order() -> None:
    lookup = DujiaoNextOrders(shop_config(f"http://127.0.0.1:{_free_port()}"))
    try:
        with pytest.raises(OrderSourceUnavailable):
            await lookup.get(ORDER)
    finally:
        await lookup.close()


@pytest.mark.parametrize("status", [500, 502, 429])
async def test_a_failing_shop_is_unavailable(shop: FakeDujiaoNext, orders: DujiaoNextOrders, status: int) -> None:
    shop.add_order(ORDER, "8.00")
    shop.fail_next = [status]
    with pytest.raises(OrderSourceUnavailable, match=f"HTTP {status}"):
        await orders.get(ORDER)


async def test_a_shop_that_answers_too_slowly_is_unavailable() -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/api/v1/admin/orders", slow)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    lookup = DujiaoNextOrders(shop_config(f"http://127.0.0.1:{runner.addresses[0][1]}", timeout_seconds=0.2))
    try:
        with pytest.raises(OrderSourceUnavailable, match="Timeout"):
            await lookup.get(ORDER)
    finally:
        await lookup.close()
        await runner.cleanup()


def test_missing_credentials_name_the_settings() -> None:
    with pytest.raises(ValueError, match="api_secret, admin_token"):
        DujiaoNextOrders(DujiaoNextConfig(base_url="http://shop", api_key="k"))


def test_the_source_is_built_from_orders_dujiao_next_with_secrets_from_the_environment(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "config.toml"
    path.write_text('[orders]\nsource = "dujiao_next"\n[orders.dujiao_next]\nbase_url = "https://shop.example.com"\n'
                    'api_key = "k"\n', encoding="utf-8")
    config = load_config(path, {"REFUNDBOT_DUJIAO_NEXT_API_SECRET": "sekret-9", "REFUNDBOT_DUJIAO_NEXT_ADMIN_TOKEN": "jwt-7"})
    lookup = SOURCES["dujiao_next"](config)
    assert isinstance(lookup, DujiaoNextOrders) and lookup.shop.api_secret == "sekret-9"
    assert config.platform.dujiao_next.admin_token == "jwt-7"  # the wallet rail sees the same shop
    shown = repr(config)
    assert "sekret-9" not in shown and "jwt-7" not in shown


# --- the callback -----------------------------------------------------------------------------------------


@pytest.fixture
async def hook(shop: FakeDujiaoNext, database: Database) -> AsyncIterator[str]:
    app = web.Application()
    DujiaoNextCallback(DujiaoNextOrders(shop_config(shop.url)), database.uow).add_routes(app)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}{CALLBACK_PATH}"
    await runner.cleanup()


async def test_a_signed_callback_rereads_the_order_from_the_shop_and_upserts_it(
        shop: FakeDujiaoNext, hook: str, database: Database) -> None:
    placed = shop.add_order(ORDER, "12.00", status="paid")
    placed.status, placed.payload = "completed", "CODE-1"  # the body says "completed"; the API is what counts

    assert await shop.callback(hook, ORDER, "completed") == (200, {"ok": True, "message": "received"})

    async with database.uow() as uow:
        stored = await uow.orders.get(ORDER)
    assert stored is not None and stored.delivery_status is DeliveryStatus.DELIVERED
    assert stored.delivered_codes == ("CODE-1",) and stored.amount == Decimal("12.00")


async def test_a_callback_with_a_wrong_signature_or_an_old_timestamp_changes_nothing(
        shop: FakeDujiaoNext, hook: str, database: Database) -> None:
    shop.add_order(ORDER, "12.00")

    status, answer = await shop.callback(hook, ORDER, "completed", secret="guessed")
    assert (status, answer["ok"]) == (401, False)
    status, _ = await shop.callback(hook, ORDER, "completed", timestamp=time.time() - 120)
    assert status == 401

    async with database.uow() as uow:
        assert await uow.orders.get(ORDER) is None
    assert shop.requests == []  # nothing was read from the shop either


async def test_a_callback_for_an_order_the_shop_does_not_have_is_404_and_an_unreadable_one_503(
        shop: FakeDujiaoNext, hook: str) -> None:
    assert (await shop.callback(hook, "DJ20261124103000NONE", "paid"))[0] == 404
    shop.add_order(ORDER, "12.00")
    shop.fail_next = [500]
    assert (await shop.callback(hook, ORDER, "paid"))[0] == 503  # the shop retries later


def test_appconfig_hands_the_shop_to_the_rails() -> None:
    config = AppConfig.model_validate({"orders": {"dujiao_next": {"base_url": "https://s", "api_key": "k"}}})
    assert config.platform.dujiao_next.base_url == "https://s"


def test_the_callback_is_mounted_only_when_orders_come_from_dujiao_next() -> None:
    from bot.shops.dujiao_next import add_dujiao_next_routes

    shop = {"base_url": "https://shop", "api_key": "k", "api_secret": "s", "admin_token": "t"}
    mounted, plain = web.Application(), web.Application()
    add_dujiao_next_routes(mounted, AppConfig.model_validate({"orders": {"source": "dujiao_next", "dujiao_next": shop}}),
                           None)  # type: ignore[arg-type]
    add_dujiao_next_routes(plain, AppConfig.model_validate({"orders": {"dujiao_next": shop}}), None)  # type: ignore[arg-type]
    assert [r.resource.canonical for r in mounted.router.routes()] == [CALLBACK_PATH]  # type: ignore[union-attr]
    assert list(plain.router.routes()) == []


async def test_an_error_in_a_200_envelope_is_unavailable_not_an_order() -> None:
    async def enveloped_error(request: web.Request) -> web.Response:
        return web.json_response({"status_code": 500, "msg": "数据库错误"})

    app = web.Application()
    app.router.add_get("/api/v1/admin/orders", enveloped_error)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    lookup = DujiaoNextOrders(shop_config(f"http://127.0.0.1:{runner.addresses[0][1]}"))
    try:
        with pytest.raises(OrderSourceUnavailable, match="数据库错误"):
            await lookup.get(ORDER)
    finally:
        await lookup.close()
        await runner.cleanup()
