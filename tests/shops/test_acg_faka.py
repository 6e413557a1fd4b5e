"""bot/shops/acg_faka.py against a real MariaDB loaded with acg-faka's own tables and rows."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from bot.config import AcgFakaConfig
from bot.shops.acg_faka import AcgFakaOrders
from dialogs.domain import DeliveryStatus, PaymentChannel, ProductKind
from dialogs.ports import OrderSourceUnavailable
from dialogs.proof import contact_matches, password_matches
from tests.shops.support import dead_url, run_sql


@pytest.fixture(scope="module")
def shop_url(mysql_url: str) -> str:
    run_sql(mysql_url, "acg_faka_schema.sql", "acg_faka_rows.sql", prefix="acg_")  # the installer's default
    return mysql_url


@pytest.fixture
async def shop(shop_url: str) -> AsyncIterator[AcgFakaOrders]:
    orders = AcgFakaOrders(AcgFakaConfig(url=shop_url))
    yield orders
    await orders.close()


async def test_a_delivered_order_carries_amount_channel_codes_contact_and_password(shop: AcgFakaOrders) -> None:
    order = await shop.get("512261205100000123")
    assert order is not None
    assert order.amount == Decimal("36.00")
    assert order.delivery_status is DeliveryStatus.DELIVERED
    assert order.product_kind is ProductKind.CARD_CODE  # delivered automatically, though its name says VIP
    assert order.product_name == "网易云音乐黑胶VIP 月卡 兑换码"
    assert order.payment_channel is PaymentChannel.EPAY  # 支付宝 through the Epay plugin
    assert order.delivered_codes == ("NEVIP-1111-2222", "NEVIP-3333-4444", "NEVIP-5555-6666")
    assert contact_matches(order.buyer_contact, "Buyer@QQ.com") and order.buyer_phone == ""
    assert password_matches(order.order_no, order.query_secret, "abc123")
    assert order.trade_no is None


async def test_pay_time_in_shanghai_becomes_utc(shop: AcgFakaOrders) -> None:
    order = await shop.get("512261205100000123")
    assert order is not None
    assert order.paid_at == order.delivered_at == datetime(2026, 12, 5, 2, 1, 30, tzinfo=UTC)


async def test_an_undelivered_manual_order_is_pending_and_its_message_is_no_code(shop: AcgFakaOrders) -> None:
    order = await shop.get("733261205110000456")
    assert order is not None
    assert order.delivery_status is DeliveryStatus.PENDING and order.delivered_at is None
    assert order.delivered_codes == ()
    assert order.product_kind is ProductKind.MEMBERSHIP  # 手动发货, "会员" in the name
    assert order.payment_channel is PaymentChannel.WECHAT and order.query_secret is None


async def test_sold_out_between_order_and_payment_is_a_failed_delivery(shop: AcgFakaOrders) -> None:
    order = await shop.get("204261205120000789")
    assert order is not None
    assert order.delivery_status is DeliveryStatus.FAILED and order.delivered_codes == ()
    assert order.payment_channel is PaymentChannel.BALANCE  # 余额 (#system)
    assert order.query_secret is None  # an empty password is no password


async def test_shared_platform_goods_deliver_codes_and_unknown_payments_fall_back(shop: AcgFakaOrders) -> None:
    order = await shop.get("955261205130000321")
    assert order is not None
    assert order.delivery_status is DeliveryStatus.DELIVERED
    assert order.product_kind is ProductKind.CARD_CODE
    assert order.delivered_codes == ("ORDER-OK 6480点券已到账",)
    assert order.payment_channel is PaymentChannel.BANK_CARD


@pytest.mark.parametrize("order_no", ["100261205140000000", "999999999999999999"])
async def test_unpaid_and_unknown_orders_are_not_found(shop: AcgFakaOrders, order_no: str) -> None:
    assert await shop.get(order_no) is None


async def test_a_kind_by_commodity_id_wins(shop_url: str) -> None:
    shop = AcgFakaOrders(AcgFakaConfig(url=shop_url, kinds={"3": ProductKind.DIRECT_TOPUP},
                                       channels={"usdt": PaymentChannel.EPAY}))
    try:
        order = await shop.get("955261205130000321")
        assert order is not None
        assert order.product_kind is ProductKind.DIRECT_TOPUP and order.payment_channel is PaymentChannel.EPAY
    finally:
        await shop.close()


async def test_an_unreachable_shop_is_unavailable_not_not_found() -> None:
    shop = AcgFakaOrders(AcgFakaConfig(url=dead_url(), connect_timeout_seconds=2))
    try:
        with pytest.raises(OrderSourceUnavailable, match="acg-faka order 512261205100000123"):
            await shop.get("512261205100000123")
        with pytest.raises(OrderSourceUnavailable):
            await shop.check()
    finally:
        await shop.close()


async def test_doctor_check_names_the_tables(shop: AcgFakaOrders) -> None:
    assert await shop.check() == "tables acg_order, acg_commodity, acg_pay readable"
