"""The order import carries how a card shop knows its buyer: the checkout contact, the 查询密码 (kept only
as its digest) and the delivered 卡密 (a JSON list, or one code per line in CSV)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from dialogs.proof import contact_matches, password_matches
from storage.importer import RejectedRow, import_orders, read_orders
from storage.uow import Database

BASE = {
    "order_no": "DJ2026112400001", "buyer_phone": "", "product_name": "Steam 100", "product_kind": "card_code",
    "amount": "100.00", "payment_channel": "alipay", "paid_at": "2026-11-24T10:30:00+08:00",
    "delivery_status": "delivered",
}


def write_csv(path: Path, *rows: dict[str, str]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


async def test_csv_orders_carry_contact_password_digest_and_codes_one_per_line(
        database: Database, tmp_path: Path) -> None:
    row = {**BASE, "buyer_phone": "13800138000", "buyer_contact": "Buyer@Example.com",
           "query_password": "x7k2p9", "delivered_codes": "AAAA-1111-BBBB\r\nCCCC-2222-DDDD\n"}
    report = await import_orders(database, write_csv(tmp_path / "orders.csv", row))
    assert report.rejected == []
    async with database.uow() as uow:
        order = await uow.orders.get(BASE["order_no"])
    assert order is not None
    assert order.buyer_contact == "Buyer@Example.com" and contact_matches(order.buyer_contact, "buyer@example.com")
    assert order.query_secret is not None and "x7k2p9" not in order.query_secret
    assert password_matches(order.order_no, order.query_secret, "x7k2p9")
    assert not password_matches(order.order_no, order.query_secret, "x7k2p8")
    assert order.delivered_codes == ("AAAA-1111-BBBB", "CCCC-2222-DDDD")


async def test_jsonl_orders_carry_codes_as_a_list_and_may_have_no_password(database: Database, tmp_path: Path) -> None:
    record = {**BASE, "buyer_phone": "13800138000", "buyer_contact": "123456789", "query_password": None,
              "delivered_codes": ["CODE-1", " CODE-2 "]}
    path = tmp_path / "orders.jsonl"
    path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    report = await import_orders(database, path)
    assert report.rejected == []
    async with database.uow() as uow:
        order = await uow.orders.get(BASE["order_no"])
    assert order is not None and order.query_secret is None and order.delivered_codes == ("CODE-1", "CODE-2")


def test_codes_that_are_not_strings_are_refused_with_the_field_named(tmp_path: Path) -> None:
    path = tmp_path / "orders.jsonl"
    path.write_text(json.dumps({**BASE, "buyer_phone": "1", "delivered_codes": [1, 2]}) + "\n", encoding="utf-8")
    [(_, rejected)] = list(read_orders(path))
    assert isinstance(rejected, RejectedRow) and "delivered_codes" in rejected.reason


def test_a_query_password_longer_than_a_shop_allows_is_refused(tmp_path: Path) -> None:
    row = {**BASE, "buyer_phone": "1", "query_password": "p" * 65}
    [(_, rejected)] = list(read_orders(write_csv(tmp_path / "orders.csv", row)))
    assert isinstance(rejected, RejectedRow) and "query_password: longer than 64" in rejected.reason
    assert "ppppp" * 4 not in rejected.reason  # a password is not echoed into the report
