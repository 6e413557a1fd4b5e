"""`refundbot reconcile` through the real CLI on a real SQLite file, with a scripted rail built from the
configuration (BUILDERS): its exit codes and CSV; the rail's refund id, status and refusal in the finance
export and `cases show`; `[platform] reconcile_at` refused when it is not a time of day."""

from __future__ import annotations

import asyncio
import csv
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from bot.config import load_config
from bot.rails import BUILDERS
from dialogs.domain import RailError, RefundStatus
from dialogs.ports import GatewayUnavailable
from storage import migrate
from storage.uow import Database
from tests.bot.test_reconcile import PAID_30, QueryRail, book
from tests.cli_support import cli, seeded_sqlite
from tests.storage.factories import T0
from tests.storage.people import PAID, seed_people

DAY = ["--since", "2026-11-24", "--until", "2026-11-24"]


@pytest.fixture
def rail(monkeypatch: pytest.MonkeyPatch) -> Iterator[QueryRail]:
    """The rail `[platform.rails] alipay = "scripted"` builds."""
    scripted = QueryRail(name="scripted")
    monkeypatch.setitem(BUILDERS, "scripted", lambda config: scripted)
    yield scripted


def setup(tmp_path: Path, *books: tuple[str, RefundStatus, dict[str, object]]) -> tuple[str, list[str]]:
    async def seed(database: Database) -> list[str]:
        return [await book(database, case_no, status, gateway="scripted", **extra)  # type: ignore[arg-type]
                for case_no, status, extra in books]

    return seeded_sqlite(tmp_path, seed, '\n[platform.rails]\nalipay = "scripted"\n')


def test_a_window_that_agrees_exits_0_and_says_how_many_were_asked(tmp_path: Path, rail: QueryRail) -> None:
    config, [key] = setup(tmp_path, ("R20261124-0001", RefundStatus.SUCCEEDED, {}))
    rail.answers[key] = PAID_30

    code, out = cli("reconcile", *DAY, "--config", config)

    assert code == 0, out
    assert "1 refund attempts asked, 0 mismatches" in out and "REFUND_SUCCESS" in out


def test_a_mismatch_exits_1_and_the_csv_has_every_line(tmp_path: Path, rail: QueryRail) -> None:
    config, [paid, missing, unknown] = setup(
        tmp_path, ("R20261124-0001", RefundStatus.SUCCEEDED, {}),
        ("R20261124-0002", RefundStatus.SUCCEEDED, {"order_no": "A1002"}),
        ("R20261124-0003", RefundStatus.REQUESTED, {"order_no": "A1003"}))
    rail.answers.update({paid: PAID_30, missing: None, unknown: GatewayUnavailable("alipay: 502")})
    out_file = tmp_path / "reconcile.csv"

    code, out = cli("reconcile", *DAY, "-o", str(out_file), "--config", config)

    assert code == 1, out
    assert "3 refund attempts asked, 2 mismatches (missing 1, unknown 1)" in out
    with open(out_file, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["case_no", "order_no", "key", "gateway", "books_status", "books_amount", "rail_status",
                             "rail_amount", "rail_refund_id", "kind", "note"]
    assert [(r["key"], r["kind"]) for r in rows] == [(paid, "ok"), (missing, "missing"), (unknown, "unknown")]
    assert rows[0] == {"case_no": "R20261124-0001", "order_no": "A1001", "key": paid, "gateway": "scripted",
                            "books_status": "succeeded", "books_amount": "30.00", "rail_status": "REFUND_SUCCESS",
                            "rail_amount": "30.00", "rail_refund_id": "2026112422001400001", "kind": "ok", "note": ""}
    assert rows[2]["note"] == "alipay: 502"


def test_without_since_it_is_yesterday(tmp_path: Path, rail: QueryRail) -> None:
    config, [key] = setup(tmp_path, ("R20261124-0001", RefundStatus.SUCCEEDED, {}))  # long before yesterday
    rail.answers[key] = None

    code, out = cli("reconcile", "--config", config)

    assert (code, rail.asked) == (0, []), out
    assert "0 refund attempts asked, 0 mismatches" in out


@pytest.mark.parametrize(("args", "said"), [
    (["--since", "24.11.2026"], "--since 24.11.2026: not a date (YYYY-MM-DD)."),
    (["--since", "2026-11-25", "--until", "2026-11-24"], "--since 2026-11-25 is after --until 2026-11-24."),
    (["--gateway", "manual"], "--gateway manual: not a gateway that can be asked (configured and askable: scripted)."),
    (["--gateway", "wechat"], "--gateway wechat: not a gateway that can be asked"),
])
def test_bad_arguments_exit_2_naming_the_problem_and_ask_nothing(tmp_path: Path, rail: QueryRail, args: list[str],
                                                                 said: str) -> None:
    config, _ = setup(tmp_path, ("R20261124-0001", RefundStatus.SUCCEEDED, {}))

    code, out = cli("reconcile", *args, "--config", config)

    assert (code, rail.asked) == (2, [])
    assert said in out


def test_a_reconcile_time_that_is_not_a_time_of_day_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[platform]\nreconcile_at = "4 am"\n', encoding="utf-8")

    with pytest.raises(ValueError, match="not a time of day"):
        load_config(config)
    config.write_text('[platform]\nreconcile_at = "04:00"\n', encoding="utf-8")
    assert load_config(config).platform.reconcile_at == "04:00"


# --- the rail's words in the export and `cases show` ---------------------------------------------------


def refused_payout(tmp_path: Path) -> str:
    """seed_people's PAID case, its ¥20 attempt refused by the rail (a closed trade)."""
    url = f"sqlite:///{tmp_path}/cli.db"
    migrate.upgrade(url)
    config = tmp_path / "config.toml"
    config.write_text(f'[database]\nurl = "{url}"\n', encoding="utf-8")

    async def seed() -> None:
        database = Database.from_url(url)
        try:
            await seed_people(database, tmp_path / "evidence")
            async with database.uow() as uow:
                await uow.refunds.set_status(f"{PAID}-1", RefundStatus.FAILED, at=T0 + timedelta(hours=1),
                                             external_ref="2026112422001400077", note="交易已关闭",
                                             rail_status="ACQ.TRADE_HAS_CLOSE", error=RailError.TRADE_CLOSED)
                await uow.commit()
        finally:
            await database.dispose()

    asyncio.run(seed())
    return str(config)


def test_the_export_ends_with_the_rail_s_status_and_refusal(tmp_path: Path) -> None:
    config = refused_payout(tmp_path)

    code, out = cli("cases", "export", "--config", config)

    assert code == 0, out
    rows = list(csv.DictReader(out.splitlines()))
    assert list(rows[0])[-3:] == ["payout_ref", "rail_status", "rail_error"]
    paid = next(r for r in rows if r["case_no"] == PAID)
    assert (paid["payout_ref"], paid["rail_status"], paid["rail_error"]) == (
        "2026112422001400077", "ACQ.TRADE_HAS_CLOSE", "trade_closed")
    assert all(r["rail_status"] == r["rail_error"] == "" for r in rows if r["case_no"] != PAID)


def test_cases_show_says_what_the_rail_said_of_each_attempt(tmp_path: Path) -> None:
    config = refused_payout(tmp_path)

    code, out = cli("cases", "show", PAID, "--config", config)

    assert code == 0, out
    assert "2026112422001400077" in out
    assert f"{PAID}-1: rail status ACQ.TRADE_HAS_CLOSE, refused trade_closed" in out

