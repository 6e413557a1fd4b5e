"""bot/shops/mapping.py: the shops' payment codes as their installers ship them, kinds, times, codes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.config import DujiaokaConfig
from bot.shops import mapping
from dialogs.domain import PaymentChannel, ProductKind
from dialogs.proof import password_matches

CONFIG = DujiaokaConfig()


@pytest.mark.parametrize(("code", "route", "channel"), [
    # dujiaoka's database/sql/install.sql pays rows
    ("zfbf2f", "/pay/alipay", PaymentChannel.ALIPAY),
    ("aliweb", "/pay/alipay", PaymentChannel.ALIPAY),
    ("mzfb", "/pay/mapay", PaymentChannel.ALIPAY),
    ("mwx", "/pay/mapay", PaymentChannel.WECHAT),
    ("pszfb", "/pay/paysapi", PaymentChannel.ALIPAY),
    ("pswx", "/pay/paysapi", PaymentChannel.WECHAT),
    ("wescan", "/pay/wepay", PaymentChannel.WECHAT),
    ("payjswescan", "/pay/payjs", PaymentChannel.WECHAT),
    ("alipay", "/pay/yipay", PaymentChannel.EPAY),
    ("wxpay", "/pay/yipay", PaymentChannel.EPAY),
    ("qqpay", "/pay/yipay", PaymentChannel.EPAY),
    ("vzfb", "pay/vpay", PaymentChannel.ALIPAY),
    ("vwx", "pay/vpay", PaymentChannel.WECHAT),
    ("paypal", "/pay/paypal", PaymentChannel.BANK_CARD),
    ("tokenpay-usdt-trc", "pay/tokenpay", PaymentChannel.BANK_CARD),
    # acg-faka's Install.sql pay rows
    ("#system", "#system", PaymentChannel.BALANCE),
    ("alipay", "Epay", PaymentChannel.EPAY),
    (None, None, PaymentChannel.BANK_CARD),  # the pay row was deleted
])
def test_the_installers_payment_codes_land_on_their_channels(code: str | None, route: str | None,
                                                            channel: PaymentChannel) -> None:
    assert mapping.payment_channel(CONFIG, code, route) is channel


def test_a_configured_code_and_fallback_win() -> None:
    config = DujiaokaConfig(channels={"wescan": PaymentChannel.EPAY}, fallback_channel=PaymentChannel.BALANCE)
    assert mapping.payment_channel(config, "wescan", "/pay/wepay") is PaymentChannel.EPAY
    assert mapping.payment_channel(config, "paypal", "/pay/paypal") is PaymentChannel.BALANCE


@pytest.mark.parametrize(("name", "auto", "kind"), [
    ("Steam 充值卡 100元", True, ProductKind.CARD_CODE),  # auto-delivered: a 卡密, whatever its name says
    ("中国移动话费 100元", False, ProductKind.DIRECT_TOPUP),
    ("联通流量包 10G", False, ProductKind.DATA_PLAN),
    ("优酷vip 年卡", False, ProductKind.MEMBERSHIP),  # keywords match case-insensitively
    ("原神 代充 6480", False, ProductKind.DIRECT_TOPUP),
    ("代练 定制服务", False, ProductKind.OTHER),
])
def test_kinds_follow_delivery_then_keywords(name: str, auto: bool, kind: ProductKind) -> None:
    assert mapping.product_kind(CONFIG, 7, name, auto) is kind


def test_a_kind_by_goods_id_wins_over_delivery() -> None:
    config = DujiaokaConfig(kinds={"7": ProductKind.MEMBERSHIP})
    assert mapping.product_kind(config, 7, "Steam 充值卡", True) is ProductKind.MEMBERSHIP


def test_shop_times_are_local_and_become_utc() -> None:
    assert mapping.shop_time(datetime(2026, 12, 5, 8, 0), "Asia/Shanghai") == datetime(2026, 12, 5, 0, 0, tzinfo=UTC)
    assert mapping.shop_time(None, "Asia/Shanghai") is None


def test_codes_are_one_per_line_without_blanks() -> None:
    assert mapping.codes("A-1\r\n\r\n B-2 \nC-3\n") == ("A-1", "B-2", "C-3")
    assert mapping.codes(None) == () and mapping.codes("") == ()


def test_the_password_is_kept_as_a_digest_and_an_empty_one_as_none() -> None:
    digest = mapping.query_secret("ORDER1", " pw1 ")
    assert digest is not None and "pw1" not in digest and password_matches("ORDER1", digest, "pw1")
    assert not password_matches("ORDER2", digest, "pw1")  # salted by the order number
    assert mapping.query_secret("ORDER1", "") is None and mapping.query_secret("ORDER1", None) is None
    assert mapping.contact("  ") is None and mapping.contact(" a@b.c ") == "a@b.c"
