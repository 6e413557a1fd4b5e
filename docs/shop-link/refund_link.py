"""The link behind the shop's 申请退款 button (refundbot README "Signed refund link"); `secret` is refundbot's
[orders] link_secret / REFUNDBOT_ORDER_LINK_SECRET, `bot` its @username without the @."""

import hashlib
import hmac
import time


def refund_link(bot: str, secret: str, order: str, hours: float = 72) -> str:
    expires = int(time.time() + hours * 3600)
    sig = hmac.new(secret.encode(), f"{order}_{expires}".encode(), hashlib.sha256).hexdigest()[:24]
    return f"https://t.me/{bot}?start=rf_{order}_{expires}_{sig}"
