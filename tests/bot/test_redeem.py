"""The redeemed check (bot/redeem.py) against a local fake of the shop's endpoint that verifies our
signature: true / false / null answers become Order.card_redeemed; every failure is unknown (never an
auto-approval), logged without a code; the wrapper works for the local orders table too."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest

from bot.config import RedeemCheckConfig
from bot.redeem import RedeemCheckedOrders, RedeemChecker, StoredOrders, checked_lookup
from dialogs.domain import Order, ProductKind
from storage.uow import Database
from tests.fakes.redeem_shop import SECRET, FakeRedeemShop
from tests.storage.factories import make_order

CODES = ("STEAM-7H3K-9QX2-ABCD", "STEAM-1Z8Y-4PL0-WXYZ")


@pytest.fixture
async def shop() -> AsyncIterator[FakeRedeemShop]:
    fake = await FakeRedeemShop().start()
    try:
        yield fake
    finally:
        await fake.close()


@pytest.fixture
async def checker(shop: FakeRedeemShop) -> AsyncIterator[RedeemChecker]:
    client = RedeemChecker(shop.url, SECRET, timeout=1)
    try:
        yield client
    finally:
        await client.close()


class OneOrder:
    """An order source with one order (the platform's or a shop's lookup, as the wrapper sees it)."""

    def __init__(self, order: Order) -> None:
        self.order = order

    async def get(self, order_no: str) -> Order | None:
        return self.order if order_no == self.order.order_no else None


async def test_the_shop_gets_a_signed_request_with_the_order_and_its_codes(
        shop: FakeRedeemShop, checker: RedeemChecker) -> None:
    shop.redeemed = dict.fromkeys(CODES, False)
    assert await checker.redeemed("KM20261124000001", CODES) is False
    assert shop.calls == [{"order_no": "KM20261124000001", "codes": list(CODES)}]
    assert shop.bad_signatures == 0


async def test_one_redeemed_code_makes_the_order_redeemed_and_an_unsure_shop_unknown(
        shop: FakeRedeemShop, checker: RedeemChecker) -> None:
    shop.redeemed = {CODES[0]: False, CODES[1]: True}
    assert await checker.redeemed("KM1", CODES) is True
    shop.redeemed = {CODES[0]: False, CODES[1]: None}
    assert await checker.redeemed("KM1", CODES) is None


async def test_a_request_signed_with_another_secret_is_refused_by_the_shop_and_is_unknown(
        shop: FakeRedeemShop) -> None:
    shop.redeemed = dict.fromkeys(CODES, False)
    forger = RedeemChecker(shop.url, "not-the-secret", timeout=1)
    try:
        assert await forger.redeemed("KM1", CODES) is None
    finally:
        await forger.close()
    assert shop.bad_signatures == 1 and shop.calls == []


@pytest.mark.parametrize("mode", ["down", "garbage", "bad_value", "redirect", "huge", "hang"])
async def test_every_failure_is_unknown_and_the_log_names_no_code(
        shop: FakeRedeemShop, checker: RedeemChecker, mode: str, caplog: pytest.LogCaptureFixture) -> None:
    shop.redeemed = dict.fromkeys(CODES, False)
    shop.mode = mode
    with caplog.at_level(logging.DEBUG):
        assert await checker.redeemed("KM20261124000001", CODES) is None
    assert "KM20261124000001" in caplog.text  # the warning says which order
    assert not any(code in caplog.text for code in CODES)


async def test_an_unreachable_shop_is_unknown(caplog: pytest.LogCaptureFixture) -> None:
    shop = await FakeRedeemShop().start()
    url = shop.url
    await shop.close()  # nobody listens there any more
    checker = RedeemChecker(url, SECRET, timeout=1)
    try:
        with caplog.at_level(logging.DEBUG):
            assert await checker.redeemed("KM1", CODES) is None
    finally:
        await checker.close()
    assert not any(code in caplog.text for code in CODES)


async def test_the_wrapper_sets_card_redeemed_on_card_orders_with_codes_only(
        shop: FakeRedeemShop, checker: RedeemChecker) -> None:
    shop.redeemed = dict.fromkeys(CODES, True)
    card = make_order("KM1", delivered_codes=CODES, card_redeemed=False)  # the source says unredeemed
    checked = await RedeemCheckedOrders(OneOrder(card), checker).get("KM1")
    assert checked is not None and checked.card_redeemed is True  # the shop's answer wins
    no_codes = make_order("KM2", card_redeemed=None)
    assert await RedeemCheckedOrders(OneOrder(no_codes), checker).get("KM2") == no_codes
    topup = make_order("KM3", delivered_codes=CODES, product_kind=ProductKind.DIRECT_TOPUP)
    assert await RedeemCheckedOrders(OneOrder(topup), checker).get("KM3") == topup
    assert await RedeemCheckedOrders(OneOrder(card), checker).get("NOPE") is None
    assert len(shop.calls) == 1  # only the card order with codes was asked about


async def test_a_failed_check_turns_a_known_unredeemed_flag_into_unknown(
        shop: FakeRedeemShop, checker: RedeemChecker) -> None:
    # Never auto-approve on a failure: the source's "not redeemed" does not survive a check that failed.
    shop.mode = "down"
    card = make_order("KM1", delivered_codes=CODES, card_redeemed=False)
    checked = await RedeemCheckedOrders(OneOrder(card), checker).get("KM1")
    assert checked is not None and checked.card_redeemed is None


async def test_the_local_orders_table_is_checked_through_stored_orders(
        shop: FakeRedeemShop, database: Database) -> None:
    shop.redeemed = dict.fromkeys(CODES, False)
    async with database.uow() as uow:
        await uow.orders.upsert(make_order("KM1", delivered_codes=CODES, card_redeemed=None))
        await uow.commit()
    lookup = checked_lookup(None, RedeemCheckConfig(url=shop.url, secret=SECRET), database.uow)
    assert isinstance(lookup, RedeemCheckedOrders) and isinstance(lookup.inner, StoredOrders)
    try:
        order = await lookup.get("KM1")
    finally:
        await lookup.close()
    assert order is not None and order.card_redeemed is False and order.delivered_codes == CODES


async def test_over_the_local_table_an_order_without_codes_is_not_written_back(
        shop: FakeRedeemShop, database: Database) -> None:
    async with database.uow() as uow:
        await uow.orders.upsert(make_order("KM2", card_redeemed=False))
        await uow.commit()
    lookup = checked_lookup(None, RedeemCheckConfig(url=shop.url, secret=SECRET), database.uow)
    assert lookup is not None
    try:
        assert await lookup.get("KM2") is None  # the service leaves the row alone; the dialog reads it
        assert await lookup.get("NOPE") is None
    finally:
        await lookup.close()  # type: ignore[attr-defined]
    assert shop.calls == []


def test_without_a_url_the_lookup_is_left_alone_and_a_url_needs_a_secret() -> None:
    inner = OneOrder(make_order("KM1"))
    assert checked_lookup(inner, RedeemCheckConfig(), None) is inner  # type: ignore[arg-type]
    assert checked_lookup(None, RedeemCheckConfig(), None) is None  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="secret"):
        checked_lookup(inner, RedeemCheckConfig(url="http://127.0.0.1:9/x"), None)  # type: ignore[arg-type]
    assert "redeem-secret" not in repr(RedeemCheckConfig(url="u", secret="redeem-secret"))
