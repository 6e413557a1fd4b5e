"""The running bot on a dujiaoka shop's database (MariaDB): a customer names a shop order and the bot
finds it there; the shop's api_hook on the bot's own web app stores the database's truth; a shop that is
down reads as "try again shortly". Real HTTP and a real MariaDB (skipped with the reason without one)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from dialogs.texts import Texts
from tests.e2e.conftest import make_config, texts
from tests.shops.support import dead_url, run_sql

ZH = Texts("zh_CN")
ORDER = "7DWUQ9G1Z5XK2M4A"  # tests/shops/dujiaoka_rows.sql: completed, two 卡密, 查询密码 qwe123
HOOK_SECRET = "e2e-hook-secret-7731"


@pytest.fixture(scope="module")
def shop_url(mysql_url: str) -> str:
    run_sql(mysql_url, "dujiaoka_schema.sql", "dujiaoka_rows.sql")
    return mysql_url


def shop_config(tmp_path: Any, url: str) -> Any:
    config = make_config(tmp_path)
    orders = config.orders.model_validate({"source": "dujiaoka", "dujiaoka": {
        "url": url, "hook_secret": HOOK_SECRET, "connect_timeout_seconds": 2}})
    return config.model_copy(update={"orders": orders})


async def test_a_customer_names_a_dujiaoka_order_and_the_bot_finds_it_in_the_shop(
        start_bot, customer, shop_url, tmp_path):
    bot = await start_bot(shop_config(tmp_path, shop_url), demo=False)
    c = await customer(10001)
    await c.say("/refund")
    shown = texts(await c.say(ORDER.lower()))
    assert shown and ZH("orders_unavailable") not in shown
    async with bot.running.database.uow() as uow:
        local = await uow.orders.get(ORDER)
    assert local is not None and local.buyer_contact == "Buyer@Example.com" and len(local.delivered_codes) == 2
    assert "STEAM-AAAA-BBBB-CCCC" not in shown  # a 卡密 never reaches the chat in clear


async def test_the_api_hook_on_the_bots_web_app_stores_the_shops_order(start_bot, shop_url, tmp_path):
    bot = await start_bot(shop_config(tmp_path, shop_url), demo=False)
    body = json.dumps({"order_sn": ORDER, "actual_price": "0.01", "order_info": "FAKE"}).encode()
    for _ in range(100):  # the web app binds its port in the serving task
        if bot.running.web_url:
            break
        await asyncio.sleep(0.05)
    async with aiohttp.ClientSession() as http:
        url = f"{bot.running.web_url}/api/v1/shops/dujiaoka/hook/"
        async with http.post(url + "wrong", data=body) as wrong:
            assert wrong.status == 404
        async with http.post(url + HOOK_SECRET, data=body) as right:
            assert right.status == 200 and (await right.json())["ok"] is True
    async with bot.running.database.uow() as uow:
        local = await uow.orders.get(ORDER)
    assert local is not None and str(local.amount) == "190.00"


async def test_a_shop_database_that_is_down_says_try_again_shortly(start_bot, customer, tmp_path):
    await start_bot(shop_config(tmp_path, dead_url()), demo=False)
    c = await customer(10001)
    await c.say("/refund")
    assert texts(await c.say(ORDER)) == ZH("orders_unavailable")
