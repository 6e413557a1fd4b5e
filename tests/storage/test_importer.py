from __future__ import annotations

import json
from datetime import timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from dialogs.domain import DeliveryStatus, PaymentChannel, ProductKind
from storage.importer import (
    ImportFileError,
    RejectedRow,
    count_rows,
    detect_format,
    import_orders,
    read_orders,
)
from storage.uow import Database

HEADER = (
    "order_no,buyer_phone,buyer_telegram_id,product_name,product_kind,tags,amount,payment_channel,"
    "paid_at,delivered_at,delivery_status,card_redeemed,topup_credited"
)
PAID = "2026-11-24T10:30:00+08:00"


def _row(order_no: str, /, **fields: str) -> str:
    values = {
        "order_no": order_no,
        "buyer_phone": "13800138000",
        "buyer_telegram_id": "4242",
        "product_name": "Steam 100",
        "product_kind": "card_code",
        "tags": "discount",
        "amount": "100.00",
        "payment_channel": "alipay",
        "paid_at": PAID,
        "delivered_at": "2026-11-24T10:31:00+08:00",
        "delivery_status": "delivered",
        "card_redeemed": "false",
        "topup_credited": "",
    }
    values.update(fields)
    return ",".join(values[name] for name in HEADER.split(","))


def _csv(tmp_path: Path, *rows: str, name: str = "orders.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    return path


def _reasons(path: Path) -> list[RejectedRow]:
    return [item for _, item in read_orders(path) if isinstance(item, RejectedRow)]


async def test_csv_import_inserts_valid_orders(database: Database, tmp_path: Path) -> None:
    path = _csv(
        tmp_path,
        _row("A1", tags='"discount,custom"'),
        _row("A2", product_kind="direct_topup", topup_credited="TRUE", card_redeemed="", delivered_at=""),
    )
    report = await import_orders(database, path)
    assert (report.inserted, report.updated, report.rejected) == (2, 0, [])
    async with database.uow() as uow:
        a1, a2 = await uow.orders.get("A1"), await uow.orders.get("A2")
    assert a1 is not None and a2 is not None
    assert a1.tags == frozenset({"discount", "custom"})
    assert a1.amount == Decimal("100.00") and a1.card_redeemed is False
    assert a1.paid_at.astimezone(timezone(timedelta(hours=8))).hour == 10
    assert (a2.product_kind, a2.topup_credited, a2.card_redeemed, a2.delivered_at) == (
        ProductKind.DIRECT_TOPUP,
        True,
        None,
        None,
    )


async def test_jsonl_import_accepts_typed_values_and_tag_lists(database: Database, tmp_path: Path) -> None:
    record = {
        "order_no": 20261124001,
        "buyer_phone": "13800138000",
        "product_name": "话费 50",
        "product_kind": "direct_topup",
        "tags": ["custom", "discount"],
        "amount": 49.9,
        "payment_channel": "wechat",
        "paid_at": "2026-11-24T02:30:00Z",
        "delivered_at": None,
        "delivery_status": "failed",
        "card_redeemed": None,
        "topup_credited": False,
    }
    path = tmp_path / "orders.jsonl"
    path.write_text(json.dumps(record, ensure_ascii=False) + "\n\n", encoding="utf-8")
    report = await import_orders(database, path)
    assert (report.inserted, report.updated, report.rejected) == (1, 0, [])
    async with database.uow() as uow:
        order = await uow.orders.get("20261124001")
    assert order is not None
    assert order.amount == Decimal("49.90")  # parsed as a decimal, never a binary float
    assert order.tags == frozenset({"custom", "discount"})
    assert (order.payment_channel, order.delivery_status, order.buyer_telegram_id) == (
        PaymentChannel.WECHAT,
        DeliveryStatus.FAILED,
        None,
    )


async def test_bad_rows_are_reported_by_line_while_good_rows_import(database: Database, tmp_path: Path) -> None:
    path = _csv(
        tmp_path,
        _row("A1"),  # line 2
        _row("A2", amount="abc"),  # line 3
        "",  # line 4, blank
        _row("A3", paid_at="2026-11-24T10:30:00", product_kind="gift"),  # line 5
        _row("A4"),  # line 6
    )
    report = await import_orders(database, path)
    assert (report.inserted, report.updated) == (2, 0)
    assert report.rejected == [
        RejectedRow(3, "amount: not a decimal: 'abc'"),
        RejectedRow(
            5,
            "product_kind: unknown value 'gift' (expected one of card_code, direct_topup, membership, "
            "data_plan, other); paid_at: no UTC offset (e.g. +08:00): '2026-11-24T10:30:00'",
        ),
    ]
    async with database.uow() as uow:
        assert await uow.orders.get("A2") is None
        assert await uow.orders.get("A4") is not None


async def test_reimport_counts_updates_and_a_repeated_order_updates_the_first(
    database: Database, tmp_path: Path
) -> None:
    path = _csv(tmp_path, _row("A1"), _row("A2"), _row("A1", amount="90.50"))
    first = await import_orders(database, path)
    assert (first.inserted, first.updated) == (2, 1)
    second = await import_orders(database, path)
    assert (second.inserted, second.updated) == (0, 3)
    async with database.uow() as uow:
        order = await uow.orders.get("A1")
    assert order is not None and order.amount == Decimal("90.50")


async def test_upsert_counts_across_batches(database: Database, tmp_path: Path) -> None:
    path = _csv(tmp_path, *(_row(f"A{n}") for n in range(5)), _row("A0", amount="1.00"))
    report = await import_orders(database, path, batch_size=2)
    assert (report.inserted, report.updated) == (5, 1)


async def test_progress_is_called_with_the_running_row_count(database: Database, tmp_path: Path) -> None:
    path = _csv(tmp_path, *(_row(f"A{n}") for n in range(5)), _row("bad", amount="-1"))
    calls: list[int] = []
    report = await import_orders(database, path, progress=calls.append, batch_size=2)
    assert calls == [2, 4, 6]
    assert count_rows(path) == report.processed == 6


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("amount", "0", "amount: must be greater than 0: '0'"),
        ("amount", "1.234", "amount: more than 2 decimal places: '1.234'"),
        ("amount", "NaN", "amount: not a decimal: 'NaN'"),
        ("amount", "10000000000", "amount: larger than 9999999999.99: '10000000000'"),
        ("payment_channel", "paypal", "payment_channel: unknown value 'paypal'"),
        ("delivery_status", "", "delivery_status: required"),
        ("paid_at", "yesterday", "paid_at: not an ISO 8601 datetime: 'yesterday'"),
        ("delivered_at", "2026-11-24", "delivered_at: no UTC offset"),
        ("card_redeemed", "yes", "card_redeemed: expected true, false or empty: 'yes'"),
        ("buyer_telegram_id", "@bob", "buyer_telegram_id: not an integer: '@bob'"),
        ("order_no", "", "order_no: required"),
        ("order_no", "X" * 65, "order_no: longer than 64 characters"),
    ],
)
def test_invalid_fields_are_rejected_with_a_clear_reason(
    tmp_path: Path, field: str, value: str, reason: str
) -> None:
    [rejected] = _reasons(_csv(tmp_path, _row("A1", **{field: value})))
    assert rejected.line == 2
    assert rejected.reason.startswith(reason)


def test_a_row_with_the_wrong_number_of_fields_is_rejected(tmp_path: Path) -> None:
    assert _reasons(_csv(tmp_path, _row("A1") + ",extra")) == [RejectedRow(2, "expected 13 fields, got 14")]


def test_csv_line_numbers_count_physical_lines_of_multiline_fields(tmp_path: Path) -> None:
    # A line break inside a field is a control character (refused), but the next row's line is still right.
    path = _csv(tmp_path, _row("A1", product_name='"two\nlines"'), _row("A2", amount="x"))
    assert _reasons(path) == [RejectedRow(2, "product_name: control or bidi character U+000A at position 3"),
                              RejectedRow(4, "amount: not a decimal: 'x'")]


def test_jsonl_rejects_broken_lines_with_their_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "orders.ndjson"
    path.write_text('{"order_no": \n\n[1, 2]\n', encoding="utf-8")
    rejected = _reasons(path)
    assert [item.line for item in rejected] == [1, 3]
    assert rejected[0].reason.startswith("invalid JSON:")
    assert rejected[1].reason == "not a JSON object"


def test_a_csv_without_required_columns_is_refused_as_a_whole(tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_text("order_no,buyer_phone\nA1,138\n", encoding="utf-8")
    with pytest.raises(ImportFileError, match="missing columns: product_name, product_kind, amount"):
        list(read_orders(path))


def test_the_format_is_detected_by_content_without_a_known_extension(tmp_path: Path) -> None:
    jsonl = tmp_path / "export.txt"
    jsonl.write_text('\n{"order_no": "A1"}\n', encoding="utf-8")
    csv_file = tmp_path / "export.dat"
    csv_file.write_text("\ufeff" + HEADER + "\n", encoding="utf-8")
    assert (detect_format(jsonl), detect_format(csv_file)) == ("jsonl", "csv")
    assert (count_rows(jsonl), count_rows(csv_file)) == (1, 0)


def test_a_byte_order_mark_and_header_case_are_tolerated(tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_text("\ufeff" + HEADER.upper() + "\n" + _row("A1") + "\n", encoding="utf-8")
    [(line, order)] = list(read_orders(path))
    assert line == 2 and not isinstance(order, RejectedRow) and order.order_no == "A1"


async def test_the_payment_trade_number_is_optional_and_kept_when_given(database: Database, tmp_path: Path) -> None:
    header = HEADER + ",trade_no"
    path = tmp_path / "orders.csv"
    path.write_text("\n".join([header, _row("T1") + ",2026112422001412345678901234", _row("T2") + ","]) + "\n",
                    encoding="utf-8")
    report = await import_orders(database, path)
    assert (report.inserted, report.rejected) == (2, [])
    async with database.uow() as uow:
        t1, t2 = await uow.orders.get("T1"), await uow.orders.get("T2")
    assert t1 is not None and t1.trade_no == "2026112422001412345678901234"
    assert t2 is not None and t2.trade_no is None


def test_a_trade_number_longer_than_the_column_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_text("\n".join([HEADER + ",trade_no", _row("T3") + "," + "9" * 65]) + "\n", encoding="utf-8")
    [rejected] = _reasons(path)
    assert "trade_no: longer than 64 characters" in rejected.reason
