"""dujiaoka's api_hook (bot/shops/hooks.py) over real HTTP, and the refund service asking a real shop
database: what the shop's database says is what is stored, whatever the hook's body claims."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from decimal import Decimal

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.config import DujiaokaConfig
from bot.shops.dujiaoka import DujiaokaOrders
from bot.shops.hooks import MAX_BODY_BYTES, DujiaokaHook
from dialogs.service import RefundService
from dialogs.settings import CoreSettings, OrderSettings
from storage.uow import Database
from tests.dialogs.customer import ZH, Customer
from tests.shops.support import dead_url, run_sql

SECRET = "h00k-s3cret-Zq81"
ORDER = "7DWUQ9G1Z5XK2M4A"
# What dujiaoka's ApiHook job posts, with money facts that are not the database's.
LYING_BODY = {"title": "Steam 钱包充值卡 100元 x 2", "order_sn": ORDER.lower(), "email": "attacker@example.com",
              "actual_price": "0.01", "order_info": "FAKE-CODE", "good_id": 1, "gd_name": "Steam 钱包充值卡 100元"}


@pytest.fixture(scope="module")
def shop_url(mysql_url: str) -> str:
    run_sql(mysql_url, "dujiaoka_schema.sql", "dujiaoka_rows.sql")  # the default install: no table prefix
    return mysql_url


@pytest.fixture
async def shop(shop_url: str) -> AsyncIterator[DujiaokaOrders]:
    orders = DujiaokaOrders(DujiaokaConfig(url=shop_url))
    yield orders
    await orders.close()


async def serve(hook: DujiaokaHook) -> TestServer:
    app = web.Application()
    hook.add_routes(app)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    return server


async def post(server: TestServer, secret: str, body: bytes) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession() as session:
        url = server.make_url(f"/api/v1/shops/dujiaoka/hook/{secret}")
        async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as response:
            return response.status, await response.json()


async def stored(database: Database, order_no: str):  # type: ignore[no-untyped-def]
    async with database.uow() as uow:
        return await uow.orders.get(order_no)


async def test_a_wrong_secret_is_not_found_and_stores_nothing(database: Database, shop: DujiaokaOrders) -> None:
    server = await serve(DujiaokaHook(SECRET, shop, database.uow))
    try:
        status, answer = await post(server, SECRET + "x", json.dumps(LYING_BODY).encode())
    finally:
        await server.close()
    assert status == 404 and answer["ok"] is False
    assert await stored(database, ORDER) is None


async def test_the_hook_stores_the_databases_truth_not_the_bodys(database: Database, shop: DujiaokaOrders) -> None:
    server = await serve(DujiaokaHook(SECRET, shop, database.uow))
    try:
        status, answer = await post(server, SECRET, json.dumps(LYING_BODY, ensure_ascii=False).encode())
        again, second = await post(server, SECRET, json.dumps(LYING_BODY).encode())
    finally:
        await server.close()
    assert (status, answer) == (200, {"ok": True, "order_no": ORDER, "inserted": True})
    assert again == 200 and second["inserted"] is False
    order = await stored(database, ORDER)
    assert order is not None
    assert order.amount == Decimal("190.00") and order.buyer_contact == "Buyer@Example.com"
    assert order.delivered_codes == ("STEAM-AAAA-BBBB-CCCC", "STEAM-DDDD-EEEE-FFFF")


@pytest.mark.parametrize(("body", "status"), [
    (b"not json", 400),
    (b'{"title": "x"}', 400),
    (b'{"order_sn": "../../etc"}', 400),
    (json.dumps({**LYING_BODY, "order_sn": "UNPA1D0RDER00001"}).encode(), 404),
    (b'{"order_sn": "' + b"A" * MAX_BODY_BYTES + b'"}', 413),
])
async def test_bad_bodies_get_a_polite_json_error_and_change_nothing(
        database: Database, shop: DujiaokaOrders, body: bytes, status: int) -> None:
    server = await serve(DujiaokaHook(SECRET, shop, database.uow))
    try:
        got, answer = await post(server, SECRET, body)
    finally:
        await server.close()
    assert got == status and answer["ok"] is False and isinstance(answer["error"], str)
    async with database.uow() as uow:
        assert await uow.orders.get("UNPA1D0RDER00001") is None


async def test_a_hook_while_the_shop_is_down_is_503_so_it_can_be_sent_again(database: Database) -> None:
    down = DujiaokaOrders(DujiaokaConfig(url=dead_url(), connect_timeout_seconds=2))
    server = await serve(DujiaokaHook(SECRET, down, database.uow))
    try:
        status, answer = await post(server, SECRET, json.dumps(LYING_BODY).encode())
    finally:
        await server.close()
        await down.close()
    assert status == 503 and answer["ok"] is False
    assert await stored(database, ORDER) is None


def dujiaoka_settings() -> CoreSettings:
    return CoreSettings(orders=OrderSettings(number_pattern=r"[A-Z0-9]{16}", number_example="6HX1Z2YQ4T8KBN3P"))


async def test_the_service_keeps_the_shops_order_locally(database: Database, shop: DujiaokaOrders) -> None:
    customer = Customer(RefundService(database.uow, dujiaoka_settings(), orders=shop))
    await customer.command("refund")
    shown = await customer.says(ORDER.lower())  # typed in lower case: the service asks in upper case
    assert ZH("orders_unavailable") not in [reply.text for reply in shown.replies]
    order = await stored(database, ORDER)
    assert order is not None and order.query_secret is not None and len(order.delivered_codes) == 2


async def test_an_unreachable_shop_tells_the_customer_to_try_again_shortly(database: Database) -> None:
    down = DujiaokaOrders(DujiaokaConfig(url=dead_url(), connect_timeout_seconds=2))
    try:
        customer = Customer(RefundService(database.uow, dujiaoka_settings(), orders=down))
        await customer.command("refund")
        shown = await customer.says(ORDER)
    finally:
        await down.close()
    assert [reply.text for reply in shown.replies] == [ZH("orders_unavailable")]


async def test_a_shop_that_accepts_and_never_answers_times_out_as_unavailable() -> None:
    from dialogs.ports import OrderSourceUnavailable

    with socket.socket() as silent:  # takes the connection, never says MySQL's hello
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        shop = DujiaokaOrders(DujiaokaConfig(url=f"mysql+aiomysql://root@127.0.0.1:{port}/shop",
                                             connect_timeout_seconds=0.5, query_timeout_seconds=1))
        try:
            with pytest.raises(OrderSourceUnavailable):
                await shop.get(ORDER)
        finally:
            await shop.close()


async def test_the_hook_is_mounted_only_for_dujiaoka_with_a_secret(database: Database, shop: DujiaokaOrders) -> None:
    from bot.shops.hooks import HOOK_PATH, add_shop_routes

    def mounted(orders: object, secret: str) -> bool:
        app = web.Application()
        add_shop_routes(app, orders, database.uow, secret)  # type: ignore[arg-type]
        return any(getattr(r.resource, "canonical", "") == HOOK_PATH for r in app.router.routes())

    assert mounted(shop, SECRET)
    assert not mounted(shop, "") and not mounted(None, SECRET)
