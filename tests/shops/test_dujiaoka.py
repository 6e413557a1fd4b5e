"""bot/shops/dujiaoka.py against a real MariaDB loaded with dujiaoka's own tables and rows."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from bot.config import DujiaokaConfig
from bot.shops.dujiaoka import DujiaokaOrders
from bot.shops.sql import ShopUnavailable
from dialogs.domain import DeliveryStatus, PaymentChannel, ProductKind
from dialogs.ports import OrderSourceUnavailable
from dialogs.proof import contact_matches, password_matches
from tests.shops.support import dead_url, run_sql

PREFIX = "dj_"  # the Laravel table prefix is honoured; the default install has none


@pytest.fixture(scope="module")
def shop_url(mysql_url: str) -> str:
    run_sql(mysql_url, "dujiaoka_schema.sql", "dujiaoka_rows.sql", prefix=PREFIX)
    return mysql_url


@pytest.fixture
async def shop(shop_url: str) -> AsyncIterator[DujiaokaOrders]:
    orders = DujiaokaOrders(DujiaokaConfig(url=shop_url, table_prefix=PREFIX))
    yield orders
    await orders.close()


async def test_a_completed_order_carries_amount_channel_codes_contact_and_password(shop: DujiaokaOrders) -> None:
    order = await shop.get("7DWUQ9G1Z5XK2M4A")
    assert order is not None
    assert order.amount == Decimal("190.00")  # actual_price, after coupon and wholesale discounts
    assert order.delivery_status is DeliveryStatus.DELIVERED
    assert order.product_kind is ProductKind.CARD_CODE
    assert order.product_name == "Steam 钱包充值卡 100元 x 2"
    assert order.payment_channel is PaymentChannel.EPAY  # "alipay" on the /pay/yipay route is epay's
    assert order.trade_no == "2026120522001400001"
    assert order.delivered_codes == ("STEAM-AAAA-BBBB-CCCC", "STEAM-DDDD-EEEE-FFFF")
    assert order.buyer_phone == "" and contact_matches(order.buyer_contact, "buyer@example.com")
    assert password_matches(order.order_no, order.query_secret, "qwe123")
    assert order.query_secret is not None and "qwe123" not in order.query_secret


async def test_the_shops_local_times_become_utc(shop: DujiaokaOrders) -> None:
    order = await shop.get("7DWUQ9G1Z5XK2M4A")
    assert order is not None
    assert order.paid_at == datetime(2026, 12, 5, 2, 0, 0, tzinfo=UTC)  # 10:00 in Shanghai
    assert order.delivered_at == datetime(2026, 12, 5, 2, 0, 7, tzinfo=UTC)


async def test_a_paid_manual_top_up_is_pending_with_no_codes_and_no_password(shop: DujiaokaOrders) -> None:
    order = await shop.get("P2Y8R6T4N1M3K5J7")
    assert order is not None
    assert order.delivery_status is DeliveryStatus.PENDING and order.delivered_at is None
    assert order.product_kind is ProductKind.DIRECT_TOPUP  # 人工处理 goods named 话费直充
    assert order.payment_channel is PaymentChannel.WECHAT  # wescan
    assert order.delivered_codes == ()  # info is the buyer's phone number, not a 卡密
    assert order.query_secret is None


async def test_an_order_in_processing_is_pending_and_a_membership(shop: DujiaokaOrders) -> None:
    order = await shop.get("H3K7M9Q2W4E6R8T1")
    assert order is not None
    assert order.delivery_status is DeliveryStatus.PENDING
    assert order.product_kind is ProductKind.MEMBERSHIP
    assert order.payment_channel is PaymentChannel.ALIPAY  # zfbf2f, 当面付


async def test_failed_and_abnormal_orders_are_failed_deliveries(shop: DujiaokaOrders) -> None:
    failed = await shop.get("F5A1L2E3D4X6Y7Z8")
    abnormal = await shop.get("AB6N0RM4L1ZZ9Q2W")
    assert failed is not None and abnormal is not None
    assert failed.delivery_status is abnormal.delivery_status is DeliveryStatus.FAILED
    assert failed.delivered_codes == ()
    # PayPal and USDT are no channel refundbot knows: the configured fallback
    assert failed.payment_channel is abnormal.payment_channel is PaymentChannel.BANK_CARD
    assert abnormal.product_kind is ProductKind.OTHER and abnormal.trade_no is None


@pytest.mark.parametrize("order_no", ["UNPA1D0RDER00001", "EXP1RED0RDER0001", "DE1ETED0RDER0001", "NOSUCHORDER00000"])
async def test_unpaid_expired_deleted_and_unknown_orders_are_not_found(shop: DujiaokaOrders, order_no: str) -> None:
    assert await shop.get(order_no) is None


async def test_an_order_whose_goods_were_deleted_keeps_its_title(shop: DujiaokaOrders) -> None:
    order = await shop.get("W1X2Y3Z4A5B6C7D8")
    assert order is not None
    assert order.product_name == "已下架商品 x 1" and order.product_kind is ProductKind.CARD_CODE
    assert order.delivered_codes == ("CODE-ONLY-ONE",)


async def test_configured_channel_and_kind_maps_win_over_the_guesses(shop_url: str) -> None:
    config = DujiaokaConfig(url=shop_url, table_prefix=PREFIX, channels={"paypal": PaymentChannel.BALANCE},
                            kinds={"1": ProductKind.MEMBERSHIP})
    shop = DujiaokaOrders(config)
    try:
        failed = await shop.get("F5A1L2E3D4X6Y7Z8")
        assert failed is not None
        assert failed.payment_channel is PaymentChannel.BALANCE and failed.product_kind is ProductKind.MEMBERSHIP
    finally:
        await shop.close()


async def test_another_timezone_setting_moves_the_times(shop_url: str) -> None:
    shop = DujiaokaOrders(DujiaokaConfig(url=shop_url, table_prefix=PREFIX, timezone="UTC"))
    try:
        order = await shop.get("7DWUQ9G1Z5XK2M4A")
        assert order is not None and order.paid_at == datetime(2026, 12, 5, 10, 0, tzinfo=UTC)
    finally:
        await shop.close()


async def test_an_unreachable_shop_is_unavailable_not_not_found() -> None:
    shop = DujiaokaOrders(DujiaokaConfig(url=dead_url(), connect_timeout_seconds=2))
    try:
        with pytest.raises(OrderSourceUnavailable, match="dujiaoka order 7DWUQ9G1Z5XK2M4A"):
            await shop.get("7DWUQ9G1Z5XK2M4A")
    finally:
        await shop.close()


async def test_missing_tables_are_unavailable_and_doctor_says_so(shop_url: str) -> None:
    shop = DujiaokaOrders(DujiaokaConfig(url=shop_url, table_prefix="wrong_"))
    try:
        with pytest.raises(ShopUnavailable, match="wrong_orders"):
            await shop.get("7DWUQ9G1Z5XK2M4A")
        with pytest.raises(ShopUnavailable, match="wrong_"):
            await shop.check()
    finally:
        await shop.close()


async def test_doctor_check_names_the_tables(shop: DujiaokaOrders) -> None:
    assert await shop.check() == "tables dj_orders, dj_goods, dj_pays readable"


async def test_the_connection_cannot_write(shop: DujiaokaOrders) -> None:
    from sqlalchemy import text

    with pytest.raises(Exception, match="READ ONLY|read.only"):
        async with shop.engine.connect() as connection:
            await connection.execute(text("UPDATE dj_orders SET status = 5 WHERE order_sn = '7DWUQ9G1Z5XK2M4A'"))
