"""`refundbot orders check ORDER`: what the configured order source sees of one order, for setting a shop
up and for support. Delivered 卡密 are masked and the 查询密码 is only said to be set or not."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime

from rich.markup import escape
from sqlalchemy.engine import make_url

from bot.config import AppConfig
from bot.shops import OrderSource, build_order_source
from dialogs.domain import Order
from dialogs.ports import OrderSourceUnavailable
from dialogs.proof import mask_code

EXIT_NOT_FOUND = 3
EXIT_UNREACHABLE = 5


def source_label(config: AppConfig) -> str:
    """The source's name and where it reads, password hidden."""
    source = config.orders.source
    shop = getattr(config.orders, source, None)
    url = getattr(shop, "url", "")
    if url:
        try:
            url = make_url(url).render_as_string(hide_password=True)
        except Exception:  # noqa: BLE001 - shown as configured (without risking a password) when unparsable
            url = "(url not parsable)"
        return f"{source} ({url})"
    if source == "http" or config.platform.orders == "http":
        return f"http ({config.platform.orders_url})"
    return f"local ({make_url(config.database.url).render_as_string(hide_password=True)})"


def order_lines(order: Order) -> list[tuple[str, str]]:
    def when(moment: datetime | None) -> str:
        return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "-"

    codes = ", ".join(mask_code(code) for code in order.delivered_codes) or "-"
    return [
        ("order", order.order_no),
        ("product", f"{order.product_name} ({order.product_kind.value})"),
        ("amount", str(order.amount)),
        ("channel", order.payment_channel.value),
        ("trade no", order.trade_no or "-"),
        ("delivery", order.delivery_status.value),
        ("paid at", when(order.paid_at)),
        ("delivered at", when(order.delivered_at)),
        ("contact", order.buyer_contact or "-"),
        ("查询密码", "set" if order.query_secret else "none"),
        (f"codes ({len(order.delivered_codes)})", codes),
    ]


async def check_order(config: AppConfig, order_no: str, say: Callable[[str], None],
                      local: Callable[[str], object] | None = None) -> int:
    """Print what the source sees of `order_no`; the exit code (0 found, 3 not found, 5 unreachable)."""
    order_no = order_no.strip().upper()
    say(f"source        {escape(source_label(config))}")
    if re.fullmatch(config.orders.number_pattern, order_no) is None:
        say(f"[yellow]{escape(order_no)} does not match [orders] number_pattern "
            f"{escape(config.orders.number_pattern)}: customers could not name it[/yellow]")
    try:
        source: OrderSource | None = build_order_source(config)
    except ValueError as exc:
        say(f"[red]{escape(str(exc))}[/red]")
        return 2
    try:
        if source is None:
            assert local is not None, "the local source needs the database"
            order = await local(order_no)  # type: ignore[misc]
        else:
            order = await source.get(order_no)
    except OrderSourceUnavailable as exc:
        say(f"[red]shop unreachable: {escape(str(exc))}[/red]")
        return EXIT_UNREACHABLE
    finally:
        if source is not None:
            await source.close()
    if order is None:
        say(f"[yellow]not found: {escape(order_no)} (no such order, or never paid)[/yellow]")
        return EXIT_NOT_FOUND
    for label, value in order_lines(order):
        say(f"{label:<13} {escape(value)}")
    return 0
