"""bot/shops/__init__.py: `[orders] source` → the lookup the service asks."""

from __future__ import annotations

import pytest

from bot.config import AppConfig
from bot.platform import HttpOrderLookup
from bot.shops import SOURCES, build_order_source
from bot.shops.acg_faka import AcgFakaOrders
from bot.shops.dujiaoka import DujiaokaOrders

URL = "mysql+aiomysql://reader:pw@127.0.0.1:3306/shop"


def config(**orders: object) -> AppConfig:
    return AppConfig.model_validate({"orders": orders, "platform": {"orders_url": "http://127.0.0.1:9/orders",
                                                                    "secret": "s"}})


def test_local_orders_need_no_lookup() -> None:
    assert build_order_source(config()) is None


async def test_each_source_builds_its_lookup() -> None:
    http = build_order_source(config(source="http"))
    dujiaoka = build_order_source(config(source="dujiaoka", dujiaoka={"url": URL}))
    acg = build_order_source(config(source="acg_faka", acg_faka={"url": URL.replace("+aiomysql", "")}))
    try:
        assert isinstance(http, HttpOrderLookup)
        assert isinstance(dujiaoka, DujiaokaOrders) and isinstance(acg, AcgFakaOrders)
        assert acg.engine.url.drivername == "mysql+aiomysql"  # a plain mysql:// URL gets the async driver
    finally:
        for source in (http, dujiaoka, acg):
            assert source is not None
            await source.close()


@pytest.mark.parametrize(("orders", "message"), [
    ({"source": "dujiaoka"}, r"\[orders.dujiaoka\] url is empty"),
    ({"source": "acg_faka", "acg_faka": {"url": "postgresql://x/y"}}, "must be a MySQL / MariaDB URL"),
    ({"source": "acg_faka", "acg_faka": {"url": "::not a url::"}}, "not a database URL"),
])
def test_a_shop_without_a_usable_url_is_refused_at_start(orders: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_order_source(config(**orders))


def test_every_shop_the_config_names_has_a_place() -> None:
    from typing import get_args

    from bot.config import OrdersConfig

    named = set(get_args(OrdersConfig.model_fields["source"].annotation))
    assert set(SOURCES) <= named and named - set(SOURCES) <= {"dujiao_next"}  # its connector adds its own line
