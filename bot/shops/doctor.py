"""`refundbot doctor`'s `orders` check: the configured order source is built and, for a shop, asked to read
one row of each table it uses (`async def check(self) -> str`). Findings are (level, text) pairs, as
bot.doctor_rails' are; bot.doctor makes them its own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Literal

from bot.config import AppConfig
from bot.shops import build_order_source
from bot.shops.check import source_label
from dialogs.ports import OrderSourceUnavailable

SourceFinding = tuple[Literal["ok", "warn", "fail"], str]


async def order_source_findings(config: AppConfig) -> AsyncIterator[SourceFinding]:
    source_name = config.orders.source
    if source_name in ("local", "http"):  # the local table needs no check; the platform check probes http
        yield "ok", f"orders from {source_label(config)}"
        return
    try:
        source = build_order_source(config)
    except ValueError as exc:
        yield "fail", str(exc)
        return
    check = getattr(source, "check", None)
    try:
        if check is None:
            yield "ok", f"orders from {source_label(config)} (no check available)"
            return
        try:
            yield "ok", f"orders from {source_label(config)}: {await check()}"
        except OrderSourceUnavailable as exc:
            yield "fail", (f"orders from {source_label(config)}: {exc} (check [orders.{source_name}] url, "
                           "table_prefix, and that the user may SELECT those tables)")
    finally:
        if source is not None:
            await source.close()
