"""`refundbot orders check ORDER` (bot/shops/check.py) against a real MariaDB shop and the local table."""

from __future__ import annotations

from pathlib import Path

import pytest

from dialogs.proof import secret_digest
from storage.uow import Database
from tests.cli_support import cli, seeded_sqlite
from tests.shops.support import dead_url, run_sql
from tests.storage.factories import make_order


@pytest.fixture(scope="module")
def shop_url(mysql_url: str) -> str:
    run_sql(mysql_url, "dujiaoka_schema.sql", "dujiaoka_rows.sql")
    run_sql(mysql_url, "acg_faka_schema.sql", "acg_faka_rows.sql", prefix="acg_")
    return mysql_url


def config_file(tmp_path: Path, source: str, url: str) -> str:
    path = tmp_path / "config.toml"
    path.write_text(f'[orders]\nsource = "{source}"\n[orders.{source}]\nurl = "{url}"\nconnect_timeout_seconds = 2\n',
                    encoding="utf-8")
    return str(path)


def test_a_dujiaoka_order_is_shown_with_its_codes_masked(shop_url: str, tmp_path: Path) -> None:
    code, out = cli("orders", "check", "7dwuq9g1z5xk2m4a", "--config", config_file(tmp_path, "dujiaoka", shop_url))
    assert code == 0, out
    assert "7DWUQ9G1Z5XK2M4A" in out and "190.00" in out and "epay" in out and "delivered" in out
    assert "ST****************CC" in out and "STEAM-AAAA" not in out
    assert "查询密码" in out and "set" in out
    assert secret_digest("7DWUQ9G1Z5XK2M4A", "qwe123") not in out and "qwe123" not in out
    assert "2026-12-05 02:00:00 UTC" in out
    assert "mysql+aiomysql://root@127.0.0.1" in out  # where it looked


def test_an_acg_faka_order_is_shown(shop_url: str, tmp_path: Path) -> None:
    code, out = cli("orders", "check", "512261205100000123", "--config", config_file(tmp_path, "acg_faka", shop_url))
    assert code == 0, out
    assert "codes (3)" in out and "NE***********22" in out and "NEVIP-1111" not in out


def test_an_unpaid_order_is_not_found_with_exit_3(shop_url: str, tmp_path: Path) -> None:
    code, out = cli("orders", "check", "UNPA1D0RDER00001", "--config", config_file(tmp_path, "dujiaoka", shop_url))
    assert code == 3 and "not found" in out


def test_an_unreachable_shop_exits_5_and_says_why(tmp_path: Path) -> None:
    url = dead_url().replace("root@", "reader:s3cretpw@")
    code, out = cli("orders", "check", "7DWUQ9G1Z5XK2M4A", "--config", config_file(tmp_path, "dujiaoka", url))
    assert code == 5 and "shop unreachable" in out
    assert "s3cretpw" not in out  # the URL's password is never printed


def test_a_number_of_another_shape_is_pointed_out(shop_url: str, tmp_path: Path) -> None:
    code, out = cli("orders", "check", "KM20261124000001", "--config", config_file(tmp_path, "acg_faka", shop_url))
    assert code == 3 and "does not match" in out


def test_the_local_table_is_checked_when_orders_are_local(tmp_path: Path) -> None:
    async def seed(database: Database) -> None:
        async with database.uow() as uow:
            await uow.orders.upsert(make_order("KM20261124000009"))
            await uow.commit()

    config, _ = seeded_sqlite(tmp_path, seed)
    code, out = cli("orders", "check", "KM20261124000009", "--config", config)
    assert code == 0, out
    assert "local (sqlite" in out and "KM20261124000009" in out
