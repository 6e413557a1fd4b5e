"""The read-only MySQL users README.h-shops.md tells operators to create are enough for the connectors,
and keep the payment gateways' keys (dujiaoka pays.merchant_key, ...) out of refundbot's reach."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from sqlalchemy.engine import make_url

from bot.config import AcgFakaConfig, DujiaokaConfig
from bot.shops.acg_faka import AcgFakaOrders
from bot.shops.dujiaoka import DujiaokaOrders
from tests.shops.support import run_sql

# As in README.h-shops.md, with the database's name filled in.
DUJIAOKA_GRANTS = """
GRANT SELECT (order_sn, title, type, goods_id, actual_price, search_pwd, email, info, pay_id, trade_no, status,
              created_at, updated_at, deleted_at) ON `{db}`.`orders` TO '{user}'@'127.0.0.1';
GRANT SELECT (id, gd_name) ON `{db}`.`goods` TO '{user}'@'127.0.0.1';
GRANT SELECT (id, pay_check, pay_handleroute) ON `{db}`.`pays` TO '{user}'@'127.0.0.1';
"""
ACG_GRANTS = """
GRANT SELECT (trade_no, amount, commodity_id, pay_id, create_time, pay_time, status, secret, password, contact,
              delivery_status) ON `{db}`.`acg_order` TO '{user}'@'127.0.0.1';
GRANT SELECT (id, name, delivery_way, shared_id) ON `{db}`.`acg_commodity` TO '{user}'@'127.0.0.1';
GRANT SELECT (id, code, handle) ON `{db}`.`acg_pay` TO '{user}'@'127.0.0.1';
"""


@pytest.fixture(scope="module")
def reader(mysql_url: str, mysql_databases) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """The shops' tables, and a user with only the README's grants: its URL."""
    run_sql(mysql_url, "dujiaoka_schema.sql", "dujiaoka_rows.sql")
    run_sql(mysql_url, "acg_faka_schema.sql", "acg_faka_rows.sql", prefix="acg_")
    db, user, password = make_url(mysql_url).database, f"rb_ro_{secrets.token_hex(4)}", secrets.token_hex(8)
    connection = mysql_databases.connect()
    cursor = connection.cursor()
    try:
        cursor.execute(f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY '{password}'")
        for statement in (DUJIAOKA_GRANTS + ACG_GRANTS).format(db=db, user=user).split(";"):
            if statement.strip():
                cursor.execute(statement)
        yield make_url(mysql_url).set(username=user, password=password).render_as_string(hide_password=False)
    finally:
        cursor.execute(f"DROP USER IF EXISTS '{user}'@'127.0.0.1'")
        connection.close()


async def test_the_readme_grants_suffice_for_dujiaoka(reader: str) -> None:
    shop = DujiaokaOrders(DujiaokaConfig(url=reader))
    try:
        order = await shop.get("7DWUQ9G1Z5XK2M4A")
        assert order is not None and len(order.delivered_codes) == 2
        assert await shop.check() == "tables orders, goods, pays readable"
    finally:
        await shop.close()


async def test_the_readme_grants_suffice_for_acg_faka(reader: str) -> None:
    shop = AcgFakaOrders(AcgFakaConfig(url=reader))
    try:
        order = await shop.get("512261205100000123")
        assert order is not None and len(order.delivered_codes) == 3
        assert await shop.check() == "tables acg_order, acg_commodity, acg_pay readable"
    finally:
        await shop.close()


async def test_the_reader_cannot_see_the_payment_keys(reader: str) -> None:
    import pymysql

    url = make_url(reader)
    connection = pymysql.connect(host=url.host, port=url.port or 3306, user=url.username, password=url.password,
                                 database=url.database)
    try:
        with pytest.raises(pymysql.err.OperationalError, match="denied"):
            connection.cursor().execute("SELECT merchant_pem FROM pays")
    finally:
        connection.close()
