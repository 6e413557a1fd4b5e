"""Demo customers and orders covering every policy branch; times are relative to `now`, so the
24-hour card-code window holds whenever the demo is started."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from dialogs.domain import DeliveryStatus, Order, PaymentChannel, ProductKind


@dataclass(frozen=True, slots=True)
class DemoCustomer:
    user_id: int
    first_name: str
    language_code: str
    phone: str


CUSTOMERS = (
    DemoCustomer(10001, "小明", "zh-hans", "13800001234"),
    DemoCustomer(10002, "Alice", "en", "13900005678"),
    DemoCustomer(10003, "小红", "zh-hans", "13700009999"),
)


@dataclass(frozen=True, slots=True)
class DemoAgent:
    user_id: int
    first_name: str
    alias: str  # what customers see
    supervisor: bool = False


# The agents' forum group of the sandbox: one agent, one supervisor (who confirms big approvals).
AGENTS = (
    DemoAgent(20001, "客服小李", "客服小李"),
    DemoAgent(20002, "主管老王", "客服主管老王", supervisor=True),
)
DESK_TITLE = "退款客服台 (agents)"


def _trade_no(channel: PaymentChannel, paid: datetime, i: int) -> str | None:
    """A trade number shaped like the rail's: Alipay's trade_no and WeChat Pay's transaction_id are 28
    digits; a bank card payment has the acquirer's serial; the shop balance has none."""
    day = paid.strftime("%Y%m%d")
    return {PaymentChannel.ALIPAY: f"{day}22001{i:015d}", PaymentChannel.WECHAT: f"42000{i:015d}{day}",
            PaymentChannel.BANK_CARD: f"UP{day}{i:010d}"}.get(channel)


def _no(i: int) -> str:
    return f"KM20261101{i:06d}"


def demo_orders(now: datetime) -> list[Order]:
    """One order per policy branch. Order i's comment names the rule it exercises."""
    xm, alice, xh = CUSTOMERS
    h = timedelta(hours=1)
    D, F, P = DeliveryStatus.DELIVERED, DeliveryStatus.FAILED, DeliveryStatus.PENDING
    K, T, M, DP, O = (ProductKind.CARD_CODE, ProductKind.DIRECT_TOPUP, ProductKind.MEMBERSHIP,
                      ProductKind.DATA_PLAN, ProductKind.OTHER)

    def order(i: int, who: DemoCustomer | None, name: str, kind: ProductKind, amount: str,
              age: timedelta, status: DeliveryStatus, *, bound: bool = True, tags: tuple[str, ...] = (),
              redeemed: bool | None = None, credited: bool | None = None,
              channel: PaymentChannel = PaymentChannel.ALIPAY) -> Order:
        buyer = who or xh
        return Order(
            order_no=_no(i), buyer_phone=buyer.phone,
            buyer_telegram_id=buyer.user_id if bound and who is not None else None,
            product_name=name, product_kind=kind, tags=frozenset(tags), amount=Decimal(amount),
            payment_channel=channel, paid_at=now - age - timedelta(minutes=2),
            delivered_at=(now - age) if status is D else None, delivery_status=status,
            card_redeemed=redeemed, topup_credited=credited, trade_no=_trade_no(channel, now - age, i),
        )

    return [
        # CARD_DEFECT_IN_WINDOW (eligible); with "not received": DELIVERY_DISPUTED (review)
        order(1, xm, "王者荣耀点券卡 100元", K, "100.00", 2 * h, D, redeemed=False),
        # CARD_DEFECT_LATE (not eligible)
        order(2, xm, "网易一卡通 50元", K, "50.00", 72 * h, D, redeemed=False, channel=PaymentChannel.WECHAT),
        # CARD_REDEEMED (not eligible)
        order(3, xm, "腾讯Q币卡 30元", K, "30.00", 1 * h, D, redeemed=True),
        # CARD_REDEEM_UNKNOWN (review)
        order(4, alice, "Steam Wallet Code ¥200", K, "200.00", 3 * h, D, channel=PaymentChannel.BANK_CARD),
        # NOT_DELIVERED (eligible, "card not received")
        order(5, alice, "Apple Gift Card ¥100", K, "100.00", 1 * h, F),
        # TOPUP_NOT_CREDITED (eligible)
        order(6, xm, "中国移动话费充值 100元", T, "99.50", 2 * h, F, credited=False),
        # TOPUP_ALREADY_CREDITED (not eligible); with "charged twice": PLATFORM_FAULT_CHECK (review)
        order(7, xm, "原神 创世结晶 6480", T, "648.00", 5 * h, D, credited=True, channel=PaymentChannel.WECHAT),
        # TOPUP_CREDIT_UNKNOWN (review)
        order(8, alice, "China Unicom data 10 GB", DP, "30.00", 1 * h, P),
        # MEMBERSHIP_NOT_ACTIVATED (eligible)
        order(9, xm, "爱奇艺黄金会员 月卡", M, "25.00", 1 * h, P, channel=PaymentChannel.BALANCE),
        # MEMBERSHIP_ACTIVE (review)
        order(10, alice, "Tencent Video VIP, 1 month", M, "30.00", 20 * h, D),
        # SPECIAL_GOODS (review): limited-time discount
        order(11, xm, "限时折扣 和平精英 点券 60元", K, "45.00", 1 * h, D, tags=("discount",), redeemed=False),
        # SPECIAL_GOODS (review): customised service
        order(12, alice, "Custom game account boosting", O, "120.00", 30 * h, D, tags=("custom",)),
        # HUMAN_JUDGEMENT (review): "other" product, any reason
        order(13, xm, "游戏周边 数字壁纸包", O, "9.90", 10 * h, D),
        # Not bound to a Telegram account: ownership by the last 4 phone digits (9999)
        order(14, None, "QQ音乐绿钻 季卡", M, "45.00", 1 * h, P),
        order(15, None, "腾讯Q币卡 10元", K, "10.00", 1 * h, D, redeemed=False),
    ]
