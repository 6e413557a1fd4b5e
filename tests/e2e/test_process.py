"""refundbot as a real process: killed mid-dialog and restarted, refusing a stale schema, the
no-token sandbox run."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

from bot.app import open_database, seed_demo_orders
from dialogs.texts import Texts
from tests.e2e.conftest import CASE_NO, TOKEN, make_config, png_bytes, texts

ZH = Texts("zh_CN")
pytestmark = pytest.mark.slow


def write_config(tmp_path: Path, api_base: str, framework: str, **database: object) -> Path:
    path = tmp_path / "config.toml"
    db = {"url": f"sqlite:///{tmp_path}/refundbot.db", **database}
    lines = ["[telegram]", f'token = "{TOKEN}"', f'api_base = "{api_base}"', "poll_timeout = 1",
             f'framework = "{framework}"', "listen_port = 0", "",
             "[database]"] + [f"{k} = {str(v).lower() if isinstance(v, bool) else repr(v)}" for k, v in db.items()] + [
             "", "[storage]", f'evidence_dir = "{tmp_path / "evidence"}"']
    path.write_text("\n".join(lines).replace("'", '"') + "\n", encoding="utf-8")
    return path


async def spawn(*args: str, stderr: int = asyncio.subprocess.STDOUT) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", *args, stdout=asyncio.subprocess.PIPE, stderr=stderr,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})


async def demo_run(tmp_path: Path, framework: str = "aiogram", *,
                   stderr: int = asyncio.subprocess.STDOUT) -> tuple[asyncio.subprocess.Process, str, str]:
    """`refundbot run` without a token, on free ports: (the process, its banner, the emulator's URL)."""
    config = tmp_path / "config.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{tmp_path}/db.sqlite"\n[sandbox]\nport = 0\n'
                      f'[telegram]\nlisten_port = 0\nframework = "{framework}"\n'
                      f'[storage]\nevidence_dir = "{tmp_path}/ev"\n', encoding="utf-8")
    process = await spawn("run", "--config", str(config), stderr=stderr)
    banner = ""
    while "Ctrl+C" not in banner:
        line = await asyncio.wait_for(process.stdout.readline(), 60)  # type: ignore[union-attr]
        assert line, banner
        banner += line.decode()
    match = re.search(r"Open (http://127\.0\.0\.1:\d+)/ in a browser", banner)  # the emulator, not the API
    assert match, banner
    return process, banner, match.group(1)


async def test_bot_killed_after_evidence_upload_continues_at_the_same_step_with_the_evidence(
        emulator, customer, tmp_path, framework):
    database = await open_database(make_config(tmp_path))
    await seed_demo_orders(database)
    await database.dispose()
    config = write_config(tmp_path, emulator.base_url, framework)

    process = await spawn("run", "--config", str(config))
    try:
        c = await customer()
        await c.say("/start order_KM20261101000001")
        await c.press(ZH("reason.card_invalid"))
        await c.press(ZH("btn_continue"))
        await c.say("输入卡密时游戏提示卡号无效，错误码1002")
        shown = await c.photo(png_bytes("red"))
        assert "第 1 张" in texts(shown)
    finally:
        process.kill()  # SIGKILL: no cleanup of any kind
        await process.wait()

    process = await spawn("run", "--config", str(config))
    try:
        shown = await c.press(ZH("btn_done"))
        assert "截图：1 张" in texts(shown)
        shown = await c.press(ZH("btn_submit"))
        assert CASE_NO.search(texts(shown))
    finally:
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 15) == 0
    assert len(list((tmp_path / "evidence").rglob("*.png"))) == 1


async def test_bot_refuses_to_start_on_an_old_schema_without_auto_upgrade(tmp_path, framework):
    config = write_config(tmp_path, "http://127.0.0.1:9", framework, auto_upgrade=False)
    process = await spawn("run", "--config", str(config))
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 1
    assert "refundbot db upgrade" in out.decode()
    process = await spawn("db", "upgrade", "--config", str(config))
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, out.decode()


async def test_run_without_a_token_starts_the_emulator_with_demo_orders_and_says_how_to_talk(tmp_path, framework):
    process, banner, base = await demo_run(tmp_path, framework)
    try:
        assert "refundbot chat" in banner and "15 demo orders" in banner
        from sandbox.client import EmulatorClient
        async with EmulatorClient(base) as client:
            await client.create_user(10001, "小明", language_code="zh-hans")
            sent = await client.send_text(10001, "KM20261101000001")
            await client.wait_confirmed(sent["update_id"], timeout=20)
            said = [m["text"] for m in await client.bot_messages(10001)]
            assert any("王者荣耀点券卡" in s for s in said)
            directory = await client.directory()  # what the web page shows: customers and the agents' desk
            # The page's Reset: chats cleared, the bot's data wiped and the demo orders back.
            await client.demo_reset()
            assert await client.bot_messages(10001) == []
            sent = await client.send_text(10001, "KM20261101000002")
            await client.wait_confirmed(sent["update_id"], timeout=20)
            assert any("KM20261101000002" in m["text"] for m in await client.bot_messages(10001))
        page = re.search(r"Open (http://\S+) in a browser", banner)
        assert page is not None
        async with aiohttp.ClientSession() as http, http.get(page.group(1)) as resp:
            assert resp.status == 200 and "<html" in (await resp.text()).lower()
        assert {10001, 10002, 10003} <= {u["id"] for u in directory["users"]}
        desk = [g for g in directory["groups"] if g["title"].startswith("退款客服台")]
        assert desk and {20001, 20002} <= {m["user_id"] for m in desk[0]["members"]}
    finally:
        process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), 15) == 0
