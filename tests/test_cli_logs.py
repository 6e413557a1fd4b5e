"""`refundbot run --log-format json`: the running bot's log lines are JSON objects."""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
from pathlib import Path

from typer.testing import CliRunner

from bot.cli import app


class _Started(logging.Handler):
    """Sets `event` when the bot says where its web app listens: by then Ctrl+C is the bot's to handle."""

    def __init__(self) -> None:
        super().__init__()
        self.event = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if "platform API" in record.getMessage():
            self.event.set()


def test_run_with_log_format_json_logs_json_lines(tmp_path: Path, root_logger: logging.Logger) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        f'[telegram]\npoll_timeout = 1\nlisten_port = 0\n[database]\nurl = "sqlite:///{tmp_path}/run.db"\n'
        f'[storage]\nevidence_dir = "{tmp_path}/evidence"\n[sandbox]\nport = 0\n', encoding="utf-8")
    started = _Started()
    root_logger.addHandler(started)
    done = threading.Event()

    def interrupt_once_started() -> None:
        started.event.wait(60)
        if not done.is_set():
            os.kill(os.getpid(), signal.SIGINT)  # the bot's own handler sets its stop event

    watcher = threading.Thread(target=interrupt_once_started, daemon=True)
    watcher.start()
    try:
        result = CliRunner().invoke(app, ["run", "--log-format", "json", "--config", str(config)])
    finally:
        done.set()
        watcher.join(5)
    assert result.exit_code == 0, result.output
    assert started.event.is_set(), result.stderr
    records = [json.loads(line) for line in result.stderr.splitlines() if line.strip()]  # every line
    assert all({"ts", "level", "logger", "msg"} <= set(r) for r in records)
    assert any(r["logger"] == "bot.app" and "platform API" in r["msg"] for r in records)
