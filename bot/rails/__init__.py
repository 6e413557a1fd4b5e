"""The rails money goes back on: one gateway per name, chosen per order by its payment channel.

`[platform] gateway` is the default ("manual": finance pays by hand; "http": the platform's own refund
endpoint); `[platform.rails]` sends a channel's refunds to another gateway, e.g. alipay = "alipay",
wechat = "wechat", epay = "epay". Each gateway named there gets its own refund worker
(bot/workers/refunds.py), which claims only its gateway's attempts.
"""

from __future__ import annotations

from collections.abc import Callable

from bot.config import PlatformConfig
from bot.rails.alipay import AlipayGateway
from bot.rails.dujiao_next import DujiaoNextWalletGateway
from bot.rails.epay import EpayGateway
from bot.rails.http import HttpGateway
from bot.rails.manual import ManualGateway
from bot.rails.wechat import WechatGateway
from dialogs.ports import RefundGateway

# How each gateway is built from the configuration; a rail adds its line here.
BUILDERS: dict[str, Callable[[PlatformConfig], RefundGateway]] = {
    "manual": lambda config: ManualGateway(),
    "http": lambda config: HttpGateway(config.refund_url, config.secret, config.timeout_seconds,
                                       max_answer_bytes=config.max_answer_bytes),
    "epay": EpayGateway.from_config,
    "alipay": AlipayGateway.from_config,
    "wechat": WechatGateway.from_config,
    "dujiao_next": DujiaoNextWalletGateway.from_config,
}


def gateway_names(config: PlatformConfig) -> list[str]:
    """Every gateway the configuration sends refunds to: the default first, then the rails' own."""
    return list(dict.fromkeys([config.gateway, *config.rails.values()]))


def build_gateways(config: PlatformConfig) -> dict[str, RefundGateway]:
    """One gateway per name in use; ValueError names what is missing (a URL, a key, an unknown name)."""
    gateways: dict[str, RefundGateway] = {}
    for name in gateway_names(config):
        if name not in BUILDERS:
            raise ValueError(f"[platform.rails]: no gateway named {name!r} (known: {', '.join(BUILDERS)})")
        gateways[name] = BUILDERS[name](config)
    return gateways
