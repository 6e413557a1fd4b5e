"""What the card shops' rows mean to refundbot, shared by the dujiaoka and acg-faka connectors:
payment codes → channels, goods → product kinds, the shop's local times → UTC, delivered 卡密."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from bot.config import ShopDatabaseConfig
from dialogs.domain import PaymentChannel, ProductKind
from dialogs.proof import secret_digest

# Payment plugins that take the money through an epay (彩虹易支付) site: the refund goes back through it
# too, whatever the method shown to the buyer (dujiaoka's "/pay/yipay" route, acg-faka's "Epay" handle).
_EPAY_HANDLERS = frozenset({"yipay", "epay"})


def payment_channel(config: ShopDatabaseConfig, code: str | None, handler: str | None) -> PaymentChannel:
    """The channel of a payment: the configured map by code first, then the handler and the code's shape."""
    code = (code or "").strip()
    if code in config.channels:
        return config.channels[code]
    lowered, route = code.lower(), (handler or "").lower()
    if lowered == "#system" or route == "#system":  # acg-faka's 余额 (the buyer's balance on the shop)
        return PaymentChannel.BALANCE
    if route.rstrip("/").rsplit("/", 1)[-1] in _EPAY_HANDLERS:  # "/pay/yipay", "Epay" (not "/pay/wepay")
        return PaymentChannel.EPAY
    if lowered.startswith(("ali", "zfb")) or "zfb" in lowered or "alipay" in route:
        return PaymentChannel.ALIPAY
    if lowered.startswith(("wx", "we")) or "wx" in lowered or "wechat" in lowered or "wescan" in lowered:
        return PaymentChannel.WECHAT
    return config.fallback_channel


def product_kind(config: ShopDatabaseConfig, goods_id: int | None, name: str, auto_delivered: bool) -> ProductKind:
    """Goods named in `kinds` by id are what it says; auto-delivered goods are 卡密; goods delivered by
    hand are what the first keyword in their name says (top-ups, memberships), else "other"."""
    if goods_id is not None and str(goods_id) in config.kinds:
        return config.kinds[str(goods_id)]
    if auto_delivered:
        return ProductKind.CARD_CODE
    folded = name.casefold()
    for word, kind in config.kind_keywords.items():
        if word.casefold() in folded:
            return kind
    return ProductKind.OTHER


def shop_time(value: datetime | None, zone: str) -> datetime | None:
    """A naive DATETIME / TIMESTAMP as the shop wrote it (its local time) → an aware UTC time."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=ZoneInfo(zone))
    return value.astimezone(UTC)


def codes(text: str | None) -> tuple[str, ...]:
    """Delivered 卡密 as the shops store them: one per line (\\n or \\r\\n), blank lines dropped."""
    return tuple(line.strip() for line in (text or "").splitlines() if line.strip())


def contact(text: str | None) -> str | None:
    return (text or "").strip() or None


def query_secret(order_no: str, password: str | None) -> str | None:
    """The stored digest of an order's 查询密码 (dialogs.proof); None when the order has none."""
    password = (password or "").strip()
    return secret_digest(order_no, password) if password else None
