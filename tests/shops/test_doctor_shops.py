"""`refundbot doctor`'s orders line (bot/shops/doctor.py) for a real MariaDB shop, a dead one, and no URL."""

from __future__ import annotations

import pytest

from bot.config import AppConfig
from bot.shops.doctor import order_source_findings
from tests.shops.support import dead_url, run_sql


@pytest.fixture(scope="module")
def shop_url(mysql_url: str) -> str:
    run_sql(mysql_url, "acg_faka_schema.sql", prefix="shop_")
    return mysql_url


async def findings(orders: dict[str, object]) -> list[tuple[str, str]]:
    return [finding async for finding in order_source_findings(AppConfig.model_validate({"orders": orders}))]


async def test_a_reachable_shop_with_its_tables_is_ok(shop_url: str) -> None:
    [(level, text)] = await findings({"source": "acg_faka", "acg_faka": {"url": shop_url, "table_prefix": "shop_"}})
    assert level == "ok" and "tables shop_order, shop_commodity, shop_pay readable" in text


async def test_tables_under_another_prefix_fail_naming_the_setting(shop_url: str) -> None:
    [(level, text)] = await findings({"source": "acg_faka", "acg_faka": {"url": shop_url}})  # default acg_
    assert level == "fail" and "acg_order" in text and "table_prefix" in text


async def test_an_unreachable_shop_fails(shop_url: str) -> None:
    [(level, text)] = await findings({"source": "dujiaoka", "dujiaoka": {"url": dead_url(), "connect_timeout_seconds": 2}})
    assert level == "fail" and "[orders.dujiaoka] url" in text


async def test_a_shop_without_a_url_fails_saying_what_to_set() -> None:
    [(level, text)] = await findings({"source": "dujiaoka"})
    assert level == "fail" and "[orders.dujiaoka] url is empty" in text and "mysql+aiomysql://" in text


async def test_local_orders_need_no_check() -> None:
    [(level, text)] = await findings({})
    assert level == "ok" and text.startswith("orders from local")
