"""The refundbot command line: orders import with its report, demo orders, db upgrade, run --workers checks."""

import json
import urllib.request

import pytest
from typer.testing import CliRunner

from bot.cli import app

CSV = """order_no,buyer_phone,buyer_telegram_id,product_name,product_kind,tags,amount,payment_channel,paid_at,delivered_at,delivery_status,card_redeemed,topup_credited
KM20261124000001,13800001234,10001,Q币卡,card_code,,30.00,alipay,2026-11-24T10:00:00+08:00,2026-11-24T10:01:00+08:00,delivered,false,
KM20261124000002,13800001234,,话费,direct_topup,"discount,custom",abc,wechat,2026-11-24T10:00:00+08:00,,failed,,false
KM20261124000003,13800001234,,会员,membership,,25,balance,2026-11-24T10:00:00,,pending,,
"""


def config_file(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(f'[database]\nurl = "sqlite:///{tmp_path}/cli.db"\n', encoding="utf-8")
    return path


def test_orders_import_reports_bad_rows_by_line_and_imports_the_rest(tmp_path):
    orders = tmp_path / "orders.csv"
    orders.write_text(CSV, encoding="utf-8")
    result = CliRunner().invoke(app, ["orders", "import", str(orders), "--config", str(config_file(tmp_path))])
    assert result.exit_code == 0, result.output
    assert "line 3" in result.output and "amount" in result.output
    assert "line 4" in result.output and "paid_at" in result.output
    assert "inserted 1, updated 0, rejected 2" in result.output
    again = CliRunner().invoke(app, ["orders", "import", str(orders), "--config", str(config_file(tmp_path))])
    assert "inserted 0, updated 1, rejected 2" in again.output


def test_demo_orders_and_db_upgrade(tmp_path):
    config = str(config_file(tmp_path))
    result = CliRunner().invoke(app, ["db", "upgrade", "--config", config])
    assert result.exit_code == 0 and "revision" in result.output
    result = CliRunner().invoke(app, ["orders", "demo", "--config", config])
    assert result.exit_code == 0 and "15 demo orders" in result.output


def test_chat_plays_a_demo_customer_against_a_running_emulator():
    from sandbox.server import Emulator

    emulator = Emulator(port=0)
    emulator.start_in_thread()
    try:
        result = CliRunner().invoke(app, ["chat", "--user", "10002", "--url", emulator.base_url],
                                    input="/help\n:quit\n")
        assert result.exit_code == 0, result.output
        assert "as Alice (id 10002)" in result.output
        with urllib.request.urlopen(f"{emulator.base_url}/control/chat?chat_id=10002") as resp:
            chat = json.load(resp)
        assert [m.get("text") for m in chat] == ["/help"]  # what the person typed reached Telegram
    finally:
        emulator.stop()


# --- cases: mark-refunded and export ------------------------------------------------------------


def _seed_cases(tmp_path):  # type: ignore[no-untyped-def]
    """A case waiting for its money (R20261124-0001, 30.00) and one still in review (R20261125-0001)."""
    import asyncio
    from datetime import timedelta
    from decimal import Decimal

    from dialogs.cases import CaseWorkflow
    from dialogs.domain import CaseStatus
    from dialogs.settings import CoreSettings
    from dialogs.workdays import WorkingCalendar
    from storage import migrate
    from storage.uow import Database
    from tests.storage.factories import T0, make_case, make_order

    url = f"sqlite:///{tmp_path}/cli.db"
    migrate.upgrade(url)

    async def seed() -> None:
        database = Database.from_url(url)
        try:
            async with database.uow() as uow:
                await uow.orders.upsert(make_order("A1001", amount=Decimal("30.00")))
                await uow.orders.upsert(make_order("A2002"))
                await uow.cases.add(make_case("R20261124-0001", "A1001", amount=Decimal("30.00"),
                                              status=CaseStatus.IN_REVIEW))
                await uow.cases.add(make_case("R20261125-0001", "A2002", status=CaseStatus.IN_REVIEW,
                                              created_at=T0 + timedelta(days=1)))
                await CaseWorkflow(CoreSettings(), WorkingCalendar()).approve(uow, "R20261124-0001", actor="agent:1",
                                                                              at=T0)
                await uow.commit()
        finally:
            await database.dispose()

    asyncio.run(seed())
    return str(config_file(tmp_path))


def test_cases_mark_refunded_confirms_once_and_says_why_it_refuses(tmp_path):
    config = _seed_cases(tmp_path)
    runner = CliRunner()
    done = runner.invoke(app, ["cases", "mark-refunded", "R20261124-0001", "--note", "支付宝 2026112422001",
                               "--config", config])
    assert done.exit_code == 0, done.output
    assert "R20261124-0001 is refunded" in done.output and "30.00" in done.output
    again = runner.invoke(app, ["cases", "mark-refunded", "R20261124-0001", "--config", config])
    assert again.exit_code == 0 and "already refunded" in again.output
    unknown = runner.invoke(app, ["cases", "mark-refunded", "R20990101-0001", "--config", config])
    assert unknown.exit_code == 3 and "No case R20990101-0001" in unknown.output
    in_review = runner.invoke(app, ["cases", "mark-refunded", "R20261125-0001", "--config", config])
    assert in_review.exit_code == 4 and "in_review" in in_review.output


def test_cases_export_writes_a_csv_filtered_by_status_and_day(tmp_path):
    import csv

    config = _seed_cases(tmp_path)
    runner = CliRunner()
    runner.invoke(app, ["cases", "mark-refunded", "R20261124-0001", "--config", config])
    out = tmp_path / "cases.csv"

    def export(*args: str) -> list[dict[str, str]]:
        result = runner.invoke(app, ["cases", "export", *args, "--output", str(out), "--config", config])
        assert result.exit_code == 0, result.output
        with open(out, newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))

    rows = export()
    assert [r["case_no"] for r in rows] == ["R20261124-0001", "R20261125-0001"]
    assert list(rows[0]) == ["case_no", "order_no", "user", "reason", "verdict", "rule_id", "amount",
                             "refunded_amount", "status", "created_at", "review_due", "credit_due", "rating",
                             "payment_channel", "buyer_contact", "approved_amount", "trade_no", "payout_ref",
                             "rail_status", "rail_error"]
    assert (rows[0]["status"], rows[0]["refunded_amount"]) == ("refunded", "30.00")
    assert [r["case_no"] for r in export("--status", "in_review")] == ["R20261125-0001"]
    assert [r["case_no"] for r in export("--status", "refunded", "--status", "in_review")] == [
        "R20261124-0001", "R20261125-0001"]
    assert [r["case_no"] for r in export("--since", "2026-11-25")] == ["R20261125-0001"]
    assert [r["case_no"] for r in export("--until", "2026-11-24")] == ["R20261124-0001"]
    assert export("--since", "2026-12-01") == []
    bad = runner.invoke(app, ["cases", "export", "--status", "paid", "--config", config])
    assert bad.exit_code == 2 and "refunded" in bad.output
    to_stdout = runner.invoke(app, ["cases", "export", "--status", "refunded", "--config", config])
    assert to_stdout.exit_code == 0 and to_stdout.output.splitlines()[1].startswith("R20261124-0001,")


def test_cases_move_decides_like_an_agent_and_refuses_what_the_status_does_not_allow(tmp_path):
    config = _seed_cases(tmp_path)  # R20261125-0001 is in review
    runner = CliRunner()
    asked = runner.invoke(app, ["cases", "move", "R20261125-0001", "ask_info", "--note", "请提供充值记录截图",
                                "--by", "小李", "--config", config])
    assert asked.exit_code == 0, asked.output
    assert "R20261125-0001 is now needs_info" in asked.output
    refused = runner.invoke(app, ["cases", "move", "R20261125-0001", "approve", "--by", "小李", "--config", config])
    assert refused.exit_code == 4 and "needs_info" in refused.output
    customer_only = runner.invoke(app, ["cases", "move", "R20261125-0001", "withdraw", "--by", "小李", "--config", config])
    assert customer_only.exit_code == 2
    unknown = runner.invoke(app, ["cases", "move", "R20990101-0001", "start_review", "--by", "小李", "--config", config])
    assert unknown.exit_code == 3
    closed = runner.invoke(app, ["cases", "move", "R20261125-0001", "close_silent", "--by", "小李", "--config", config])
    assert closed.exit_code == 0 and "closed" in closed.output


def test_several_workers_are_refused_without_a_token_webhook_mode_or_postgresql(tmp_path):
    def run(settings: str) -> str:
        path = tmp_path / "workers.toml"
        path.write_text(settings, encoding="utf-8")
        result = CliRunner().invoke(app, ["run", "--workers", "2", "--config", str(path)])
        assert result.exit_code == 2, result.output
        return " ".join(result.output.split())

    assert "need a Telegram token" in run("")
    assert 'mode = "webhook"' in run('[telegram]\ntoken = "1:x"\n')
    assert "need PostgreSQL" in run('[telegram]\ntoken = "1:x"\nmode = "webhook"\nwebhook_secret = "s"\n'
                                    f'[database]\nurl = "sqlite:///{tmp_path}/x.db"\n')


def _run_process(tmp_path, settings: str, *args: str, **env: str):
    import os
    import subprocess
    import sys

    path = tmp_path / "webhook.toml"
    path.write_text(settings, encoding="utf-8")
    environ = {k: v for k, v in os.environ.items() if not k.startswith("REFUNDBOT_")}
    return subprocess.run([sys.executable, "-m", "bot", "run", "--config", str(path), *args],
                          capture_output=True, text=True, timeout=60, check=False, env={**environ, **env, "COLUMNS": "80"})


WEBHOOK = ('[telegram]\ntoken = "1:x"\nmode = "webhook"\nframework = "{framework}"\n'
           '[database]\nurl = "postgresql://refundbot@127.0.0.1/refundbot"\n')


@pytest.mark.parametrize("workers", [[], ["--workers", "2"]], ids=["one_process", "workers"])
@pytest.mark.parametrize("framework", ["aiogram", "ptb"])
def test_webhook_mode_without_a_secret_refuses_to_start_with_a_one_line_reason(tmp_path, framework, workers):
    done = _run_process(tmp_path, WEBHOOK.format(framework=framework), *workers)
    assert done.returncode != 0
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in lines[0], lines
    assert "webhook_secret" in lines[0] and "REFUNDBOT_WEBHOOK_SECRET" in lines[0]


@pytest.mark.parametrize("secret", ["has space", "x" * 257, "秘密", "a+b"])
def test_a_webhook_secret_telegram_would_refuse_is_named_with_the_rule(tmp_path, secret):
    done = _run_process(tmp_path, WEBHOOK.format(framework="aiogram"), REFUNDBOT_WEBHOOK_SECRET=secret)
    assert done.returncode != 0
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert len(lines) == 1 and "[telegram] webhook_secret" in lines[0] and "A-Z, a-z, 0-9, _ and -" in lines[0]
    assert secret not in lines[0]  # the configuration's values are never echoed: they may be secrets
