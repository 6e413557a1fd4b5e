"""Lifecycle: a background thread for sync callers, the CLI entry point, and the state model."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

from sandbox import Emulator, EmulatorState
from sandbox.errors import ControlError

ROOT = Path(__file__).resolve().parents[2]


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


def _post(url: str, body: dict) -> dict:
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())


def test_start_in_thread_serves_sync_callers() -> None:
    emu = Emulator(port=0).start_in_thread()
    try:
        assert emu.port != 0 and emu.base_url.startswith("http://127.0.0.1:")
        assert _get(f"{emu.api_url()}/getMe")["result"]["username"] == "refund_demo_bot"
        _post(f"{emu.control_url}/users", {"user_id": 5, "first_name": "Eve"})
        sent = _post(f"{emu.control_url}/send_text", {"user_id": 5, "text": "/start"})
        updates = _get(f"{emu.api_url('123:other-token')}/getUpdates?timeout=1")["result"]
        assert [u["update_id"] for u in updates] == [sent["update_id"]]
        assert "123:other-token" in _get(f"{emu.control_url}/state")["tokens"]
    finally:
        emu.stop()
    with Emulator(port=0) as again:  # the sync context manager wraps the same thread mode
        assert _get(f"{again.control_url}/ping")["ok"] is True


def test_cli_prints_the_url() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "sandbox", "--host", "127.0.0.1", "--port", "0"], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("Telegram Bot API emulator listening on http://127.0.0.1:")
        url = line.rsplit(" ", 1)[1].strip()
        assert _get(f"{url}/bot1:x/getMe")["ok"] is True
    finally:
        proc.terminate()
        proc.wait(5)
        if proc.stdout is not None:
            proc.stdout.close()


def test_state_model_without_http() -> None:
    state = EmulatorState(update_id_base=100)
    state.add_user(7, "Q")
    rec, msg = state.user_send_text(7, "hi")
    assert (rec.update_id, msg.message_id, state.chats[7].next_message_id) == (100, 1, 2)
    bot_msg = state.add_message(7, state.bot.id, True, text="yo")
    assert bot_msg.message_id == 2 and state.message_to_api(bot_msg)["from"]["is_bot"] is True
    raw = state.queue_raw({"update_id": 500, "message": {"chat": {"id": 7}}})
    assert raw.chat_key == "chat:7" and state.next_update_id == 501
    try:
        state.user_send_text(8, "unknown user")
    except ControlError as exc:
        assert exc.status == 404
    else:
        raise AssertionError("expected ControlError")
