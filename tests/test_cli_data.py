"""The operators' data commands through the real CLI on a real SQLite file: `cases list` and `cases show`,
the finance export (CSV and XLSX, masked contacts), `backup` of a live database, and `customers export`
and `customers forget` (PIPL)."""

from __future__ import annotations

import csv
import io
import json
import shutil
import sqlite3
import subprocess
import threading
import zipfile
from pathlib import Path

import pytest
from openpyxl import load_workbook

from storage import migrate
from storage.uow import Database
from tests.cli_support import cli, seeded_sqlite
from tests.storage.people import (
    A1001_TRADE_NO,
    OTHER_PHONE,
    PAID,
    STRANGER,
    WAITING,
    ZHANG,
    ZHANG_NAME,
    ZHANG_PHONE,
    Seeded,
    seed_people,
    settle_payout,
)


def setup(tmp_path: Path, *, settled: bool = False) -> tuple[str, Seeded]:
    async def seed(database: Database) -> Seeded:
        seeded = await seed_people(database, tmp_path / "evidence")
        if settled:
            await settle_payout(database)
        return seeded

    return seeded_sqlite(tmp_path, seed)


# --- cases list / show --------------------------------------------------------------------------


def test_cases_list_shows_a_row_per_case_with_amounts_asked_and_approved(tmp_path: Path) -> None:
    config, _ = setup(tmp_path)

    code, out = cli("cases", "list", "--config", config)

    assert code == 0, out
    row = next(line for line in out.splitlines() if PAID in line)
    assert "refunding" in row and "A1001" in row and "30.00" in row and "20.00" in row
    assert "card.invalid.review" in row
    assert WAITING in out and STRANGER in out and "3 cases" in out


def test_cases_list_filters_by_status_order_and_user(tmp_path: Path) -> None:
    config, _ = setup(tmp_path)

    _, by_status = cli("cases", "list", "--status", "in_review", "--config", config)
    _, by_order = cli("cases", "list", "--order", "B3003", "--config", config)
    _, by_user = cli("cases", "list", "--user", str(ZHANG), "--config", config)

    assert WAITING in by_status and PAID not in by_status
    assert STRANGER in by_order and PAID not in by_order
    assert PAID in by_user and WAITING in by_user and STRANGER not in by_user


def test_cases_list_refuses_an_unknown_status_with_exit_2(tmp_path: Path) -> None:
    config, _ = setup(tmp_path)

    code, out = cli("cases", "list", "--status", "paid", "--config", config)

    assert code == 2 and "refunding" in out  # the statuses it knows


def test_cases_show_prints_facts_history_attempts_evidence_and_deadlines(tmp_path: Path) -> None:
    config, seeded = setup(tmp_path)

    _, paid = cli("cases", "show", PAID, "--config", config)
    code, waiting = cli("cases", "show", WAITING, "--config", config)

    assert code == 0, waiting
    assert "agent:7001" in paid and "approved" in paid  # who moved it, in the history
    assert f"{PAID}-1" in paid and "pending" in paid and "manual" in paid  # the attempt: key, status, rail
    assert "credit" in paid  # its deadline
    assert f"{seeded.evidence_file}  {seeded.evidence_size} bytes" in waiting
    assert f"我是{ZHANG_NAME}" not in waiting and f"{ZHANG_NAME}：充值没到账" in waiting


def test_cases_show_prints_a_customers_brackets_as_typed(tmp_path: Path) -> None:
    config, _ = setup(tmp_path)
    with sqlite3.connect(tmp_path / "cli.db") as db:
        db.execute("UPDATE cases SET description = '[bold]加急[/bold] [link=http://x]点我[/link]' WHERE case_no = ?",
                   (WAITING,))

    _, out = cli("cases", "show", WAITING, "--config", config)

    assert "[bold]加急[/bold] [link=http://x]点我[/link]" in out


def test_cases_show_of_an_unknown_case_says_so_in_one_line_with_exit_3(tmp_path: Path) -> None:
    config, _ = setup(tmp_path)

    code, out = cli("cases", "show", "R20990101-0001", "--config", config)

    assert (code, out) == (3, "No case R20990101-0001.\n")


# --- finance export -------------------------------------------------------------------------------


def export_csv(config: str, *args: str) -> dict[str, dict[str, str]]:
    code, out = cli("cases", "export", *args, "--config", config)
    assert code == 0, out
    return {row["case_no"]: row for row in csv.DictReader(io.StringIO(out))}


def test_the_csv_export_has_channel_trade_number_masked_contact_approved_and_refunded_amounts(
        tmp_path: Path) -> None:
    config, _ = setup(tmp_path, settled=True)

    rows = export_csv(config)

    paid = rows[PAID]
    assert (paid["payment_channel"], paid["trade_no"], paid["buyer_contact"]) == (
        "alipay", A1001_TRADE_NO, "139****5678")
    assert (rows[WAITING]["trade_no"], rows[WAITING]["payout_ref"]) == ("", "")  # the shop sent none; no payout
    assert (paid["amount"], paid["approved_amount"], paid["refunded_amount"]) == ("30.00", "20.00", "20.00")
    assert (rows[WAITING]["payment_channel"], rows[WAITING]["approved_amount"]) == ("wechat", "")
    assert ZHANG_PHONE not in json.dumps(rows) and OTHER_PHONE not in json.dumps(rows)


def test_the_csv_export_shows_the_full_contact_with_full(tmp_path: Path) -> None:
    config, _ = setup(tmp_path)

    rows = export_csv(config, "--full")

    assert rows[PAID]["buyer_contact"] == ZHANG_PHONE and rows[STRANGER]["buyer_contact"] == OTHER_PHONE


def test_the_xlsx_export_has_a_frozen_header_and_amounts_as_numbers(tmp_path: Path) -> None:
    config, _ = setup(tmp_path, settled=True)
    out = tmp_path / "cases.xlsx"

    code, said = cli("cases", "export", "--format", "xlsx", "-o", str(out), "--config", config)

    assert code == 0 and "3 cases written" in said
    sheet = load_workbook(out).active
    assert sheet is not None and sheet.freeze_panes == "A2"
    header = [cell.value for cell in sheet[1]]
    assert header[:2] == ["case_no", "order_no"] and header[-5:] == ["approved_amount", "trade_no", "payout_ref",
                                                                       "rail_status", "rail_error"]
    rows = {row[0]: dict(zip(header, row, strict=True)) for row in sheet.iter_rows(min_row=2, values_only=True)}
    assert rows[PAID]["approved_amount"] == 20 and rows[PAID]["refunded_amount"] == 20
    assert rows[PAID]["amount"] == 30 and rows[PAID]["buyer_contact"] == "139****5678"
    amount_column = header.index("amount") + 1
    assert sheet.cell(row=2, column=amount_column).number_format == "0.00"


def test_an_xlsx_export_without_a_file_is_refused(tmp_path: Path) -> None:
    config, _ = setup(tmp_path)

    code, out = cli("cases", "export", "--format", "xlsx", "--config", config)

    assert code == 2 and "--output" in out


# --- backup ---------------------------------------------------------------------------------------


def test_backup_of_a_live_sqlite_database_with_a_writer_opens_and_has_the_rows(tmp_path: Path) -> None:
    config, _ = setup(tmp_path)
    db = tmp_path / "cli.db"
    writer = sqlite3.connect(db, isolation_level=None, timeout=30, check_same_thread=False)
    writer.execute("CREATE TABLE scratch (n INTEGER, pad TEXT)")
    stop = threading.Event()

    def write() -> None:
        n = 0
        while not stop.is_set():
            writer.execute("INSERT INTO scratch VALUES (?, ?)", (n, "x" * 500))
            n += 1

    thread = threading.Thread(target=write)
    thread.start()
    try:
        code, out = cli("backup", "--to", str(tmp_path / "copy.db"), "--config", config)
    finally:
        stop.set()
        thread.join()
        writer.close()

    assert code == 0, out
    assert f"to {tmp_path / 'copy.db'}" in out and "bytes" in out
    copy = sqlite3.connect(tmp_path / "copy.db")
    try:
        assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        cases = [r[0] for r in copy.execute("SELECT case_no FROM cases ORDER BY case_no")]
        assert cases == [PAID, WAITING, STRANGER]
        assert copy.execute("SELECT count(*) FROM scratch").fetchone()[0] >= 0
    finally:
        copy.close()


def test_backup_into_a_folder_names_the_file_by_time_and_never_overwrites(tmp_path: Path) -> None:
    config, _ = setup(tmp_path)
    folder = tmp_path / "backups"
    folder.mkdir()

    code, out = cli("backup", "--to", str(folder), "--config", config)
    made = list(folder.glob("refundbot-*.db"))
    again_code, again = cli("backup", "--to", str(made[0]), "--config", config)

    assert code == 0 and len(made) == 1 and str(made[0]) in out
    assert again_code == 1 and "exists already" in again


def test_backup_of_postgresql_prints_the_pg_dump_command_without_the_password(tmp_path: Path) -> None:
    config = tmp_path / "pg.toml"
    config.write_text('[database]\nurl = "postgresql://refund:s3cret@db.internal:5432/refundbot"\n', encoding="utf-8")

    code, out = cli("backup", "--print", "--to", str(tmp_path / "x.dump"), "--config", str(config))

    assert code == 0
    assert out.strip() == (f"PGPASSWORD=*** pg_dump --format=custom --no-owner --file={tmp_path / 'x.dump'} "
                           "--dbname=postgresql://refund@db.internal:5432/refundbot")


@pytest.mark.postgres
def test_backup_of_postgresql_runs_pg_dump_and_the_dump_holds_the_cases(tmp_path: Path, postgres_databases) -> None:  # type: ignore[no-untyped-def]
    if shutil.which("pg_dump") is None or shutil.which("pg_restore") is None:
        pytest.skip("pg_dump / pg_restore are not on PATH")
    name, url = postgres_databases.create()
    try:
        migrate.upgrade(url)
        config = tmp_path / "pg.toml"
        config.write_text(f'[database]\nurl = "{url}"\n', encoding="utf-8")
        dump = tmp_path / "refundbot.dump"

        code, out = cli("backup", "--to", str(dump), "--config", str(config))

        assert code == 0 and f"Dumped the database to {dump}" in out, out
        listing = subprocess.run(["pg_restore", "--list", str(dump)], capture_output=True, text=True, check=True)
        assert "TABLE public cases" in listing.stdout and "TABLE public refund_attempts" in listing.stdout
    finally:
        postgres_databases.drop(name)


# --- customers export / forget --------------------------------------------------------------------


def test_customers_export_writes_their_data_and_evidence_files(tmp_path: Path) -> None:
    config, seeded = setup(tmp_path)
    folder = tmp_path / "zhang"

    code, out = cli("customers", "export", str(ZHANG), "--to", str(folder), "--config", config)

    assert code == 0, out
    assert "2 cases, 2 orders, 1 conversations, 1 evidence files" in out
    data = json.loads((folder / "data.json").read_text(encoding="utf-8"))
    assert [c["case_no"] for c in data["cases"]] == [PAID, WAITING]
    assert data["evidence"][0]["exported_as"] == f"evidence/{seeded.evidence_file.name}"
    assert (folder / "evidence" / seeded.evidence_file.name).read_bytes() == seeded.evidence_file.read_bytes()


def test_customers_export_as_a_zip(tmp_path: Path) -> None:
    config, seeded = setup(tmp_path)

    code, out = cli("customers", "export", str(ZHANG), "--to", str(tmp_path / "zhang"), "--zip", "--config", config)

    assert code == 0, out
    with zipfile.ZipFile(tmp_path / "zhang.zip") as archive:
        assert set(archive.namelist()) >= {"data.json", f"evidence/{seeded.evidence_file.name}"}
    assert not (tmp_path / "zhang").exists()


def test_customers_forget_is_refused_in_one_line_while_a_payout_is_in_flight(tmp_path: Path) -> None:
    config, seeded = setup(tmp_path)

    code, out = cli("customers", "forget", str(ZHANG), "--by", "王经理", "--config", config)

    assert code == 4 and len(out.strip().splitlines()) == 1 and PAID in out
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("cli.db*"))
    assert ZHANG_PHONE.encode() in raw and ZHANG_NAME.encode() in raw  # nothing was erased
    assert seeded.evidence_file.exists()


def test_customers_forget_leaves_no_phone_or_name_in_the_sqlite_file_and_keeps_the_money(tmp_path: Path) -> None:
    config, seeded = setup(tmp_path, settled=True)

    code, out = cli("customers", "forget", str(ZHANG), "--by", "王经理", "--config", config)

    assert code == 0, out
    assert "forgotten by cli:王经理" in out and "1 files removed" in out
    assert not seeded.evidence_file.exists()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("cli.db*"))  # the file and any -wal beside it
    assert ZHANG_PHONE.encode() not in raw and ZHANG_NAME.encode() not in raw
    assert OTHER_PHONE.encode() in raw  # the other customer is untouched
    rows = export_csv(config)
    assert (rows[PAID]["refunded_amount"], rows[PAID]["approved_amount"], rows[PAID]["buyer_contact"]) == (
        "20.00", "20.00", "")
    _, history = cli("cases", "show", PAID, "--config", config)
    assert "cli:王经理" in history and "erased" in history


def test_customers_forget_names_who_erases(tmp_path: Path) -> None:
    config, _ = setup(tmp_path, settled=True)

    code, out = cli("customers", "forget", str(ZHANG), "--by", " ", "--config", config)

    assert code == 2 and "say who" in out


def test_contacts_are_masked_to_a_hint() -> None:
    from bot.finance import mask_contact

    assert [mask_contact(c) for c in ("13812345678", "+86 138 1234 5678", "alice@qq.com", "12345", "")] == [
        "138****5678", "138****5678", "a***@qq.com", "*****", ""]
