"""refundbot inside an operator's own bot: the two runnable examples in docs/examples (an aiogram shop
bot and a python-telegram-bot shop bot), started as processes against the emulator. The shop's own
command stays the shop's; a customer files a card-code refund through refundbot inside it, it is
approved by rule, the platform's signed callback says the money is back, and the customer is told."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

from bot.app import open_database, seed_demo_orders
from bot.platform import signed_headers
from dialogs.texts import Texts
from storage.uow import Database
from tests.e2e.conftest import TOKEN, make_config, texts
from tests.e2e.test_case_aftercare import eventually, file_case
from tests.scale.cluster import free_port

ZH = Texts("zh_CN")
ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = {"aiogram": ROOT / "docs/examples/aiogram_shop_bot.py", "ptb": ROOT / "docs/examples/ptb_shop_bot.py"}
SECRET = "shop-platform-secret"
pytestmark = pytest.mark.slow


def write_config(tmp_path: Path, api_base: str, port: int) -> Path:
    path = tmp_path / "refundbot.toml"
    path.write_text(f"""
[telegram]
token = "{TOKEN}"
api_base = "{api_base}"
poll_timeout = 1
listen_port = {port}

[database]
url = "sqlite:///{tmp_path}/refundbot.db"

[storage]
evidence_dir = "{tmp_path}/evidence"

[auto_approve]
enabled = true

[platform]
secret = "{SECRET}"
""", encoding="utf-8")
    return path


async def refund_key(tmp_path: Path, case_no: str) -> str:
    database = Database.from_url(f"sqlite:///{tmp_path}/refundbot.db")
    try:
        async with database.uow() as uow:
            return (await uow.refunds.for_case(case_no))[0].idempotency_key
    finally:
        await database.dispose()


async def test_the_example_shop_bot_keeps_its_command_and_completes_a_refund_through_refundbot(
        emulator, customer, tmp_path, framework):
    database = await open_database(make_config(tmp_path))
    await seed_demo_orders(database)
    await database.dispose()
    port = free_port()
    config = write_config(tmp_path, emulator.base_url, port)
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(EXAMPLES[framework]), "--config", str(config), cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        c = await customer(10001)
        c.settle = 0.3
        shop = await c.say("/shop")
        assert [m["text"] for m in shop] == ["本店商品：王者荣耀点券卡、话费直充、视频会员。退款请发送 /refund"]

        case_no = await file_case(c, ZH)

        body = json.dumps({"event": "credited", "case_no": case_no,
                           "idempotency_key": await refund_key(tmp_path, case_no)}).encode()
        headers = {**signed_headers(SECRET, body), "Content-Type": "application/json"}
        async with aiohttp.ClientSession() as http, http.post(
                f"http://127.0.0.1:{port}/api/v1/callbacks/refund", data=body, headers=headers) as resp:
            assert resp.status == 200, await resp.text()
        news = await eventually(c, lambda m: "🎉" in texts(m))
        assert case_no in texts(news)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            out, _ = await asyncio.wait_for(process.communicate(), 20)
        except TimeoutError:
            process.kill()
            raise
    assert process.returncode in (0, -signal.SIGINT), out.decode()[-2000:]
