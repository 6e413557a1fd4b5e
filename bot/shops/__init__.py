"""Where orders come from (`[orders] source`): the local table, the platform's HTTP API, or a card shop's
own database or API. Each source is an OrderLookup with `close()`; a shop adds its line to SOURCES."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from bot.config import AppConfig
from bot.platform import build_order_lookup
from dialogs.domain import Order


class OrderSource(Protocol):
    """dialogs.ports.OrderLookup, plus closing what it holds (a pool, a session)."""

    async def get(self, order_no: str) -> Order | None: ...

    async def close(self) -> None: ...


def _dujiaoka(config: AppConfig) -> OrderSource:
    from bot.shops.dujiaoka import DujiaokaOrders  # SQLAlchemy's MySQL dialect loads only when used

    return DujiaokaOrders.from_config(config)


def _acg_faka(config: AppConfig) -> OrderSource:
    from bot.shops.acg_faka import AcgFakaOrders

    return AcgFakaOrders.from_config(config)


def _dujiao_next(config: AppConfig) -> OrderSource:
    from bot.shops.dujiao_next import build

    return build(config)


def _http(config: AppConfig) -> OrderSource | None:
    return build_order_lookup(config.platform, "http")


# `[orders] source` → how its lookup is built.
SOURCES: dict[str, Callable[[AppConfig], OrderSource | None]] = {
    "local": lambda config: None,
    "http": _http,
    "dujiaoka": _dujiaoka,
    "acg_faka": _acg_faka,
    "dujiao_next": _dujiao_next,
}


def build_order_source(config: AppConfig) -> OrderSource | None:
    """The configured order source; None for the local orders table. ValueError says what is missing."""
    source = config.orders.source
    if source == "local" and config.platform.orders == "http":  # the older spelling, [platform] orders = "http"
        source = "http"
    if source not in SOURCES:
        raise ValueError(f"[orders] source = {source!r} is not available in this build (known: {', '.join(SOURCES)})")
    return SOURCES[source](config)
