"""The refundbot command line: orders import with its report, demo orders, db upgrade."""

import json
import urllib.request

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
