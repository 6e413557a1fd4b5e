"""What an operator sees when a command cannot do its job: one or two lines on standard error with the
fix, exit code 2, never a traceback; and a demo run's log at INFO that fits on a screen."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

pytestmark = pytest.mark.slow
SCREEN = 24  # lines


def refundbot(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "COLUMNS": "200"}, check=False)


def assert_short_error(result: subprocess.CompletedProcess[str]) -> list[str]:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert 1 <= len(lines) <= 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout and "Logging error" not in result.stderr
    return lines


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port something listens on (not refundbot)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_chat_with_no_bot_running_says_to_start_one(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    lines = assert_short_error(refundbot("chat", "--url", url))
    assert f"Nothing is listening at {url}" in lines[0] and "start `refundbot run`" in lines[0]


def test_a_second_run_on_a_taken_sandbox_port_names_the_port_and_the_setting(tmp_path, taken_port):
    config = tmp_path / "config.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{tmp_path}/db.sqlite"\n[sandbox]\nport = {taken_port}\n'
                      f'[telegram]\nlisten_port = 0\n', encoding="utf-8")
    lines = assert_short_error(refundbot("run", "--config", str(config)))
    assert lines[-1] == (f"refundbot cannot start: port {taken_port} is in use (another refundbot?): "
                         "stop it or set [sandbox] port")


def test_a_taken_listen_port_fails_before_the_banner_and_names_its_setting(tmp_path, taken_port):
    config = tmp_path / "config.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{tmp_path}/db.sqlite"\n[sandbox]\nport = 0\n'
                      f'[telegram]\nlisten_port = {taken_port}\n[storage]\nevidence_dir = "{tmp_path}/ev"\n',
                      encoding="utf-8")
    result = refundbot("run", "--config", str(config))
    lines = assert_short_error(result)
    assert lines[-1].endswith(f"port {taken_port} is in use (another refundbot?): stop it or set [telegram] listen_port")
    assert "Press Ctrl+C" not in result.stdout  # nothing claimed the bot was running


def test_a_missing_config_file_is_named_with_the_fix(tmp_path):
    missing = tmp_path / "nowhere.toml"
    lines = assert_short_error(refundbot("db", "current", "--config", str(missing)))
    assert f"no file at {missing}" in lines[0] and "config.example.toml" in lines[0]


def test_a_toml_syntax_error_names_the_line(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('[database]\nurl = "sqlite:///x.db"\n[telegram\n', encoding="utf-8")
    lines = assert_short_error(refundbot("db", "current", "--config", str(config)))
    assert "is not valid TOML" in lines[0] and "line 3" in lines[0]


def test_an_invalid_value_names_the_key_without_a_pydantic_dump(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('[sandbox]\nport = "eighty"\n', encoding="utf-8")
    lines = assert_short_error(refundbot("run", "--config", str(config)))
    assert lines[0].startswith("Cannot read the configuration: [sandbox] port:")
    assert "pydantic" not in "\n".join(lines) and "validation error" not in "\n".join(lines)


async def test_a_demo_run_logs_a_screenful_at_info_without_transitions_or_a_secret_warning(tmp_path):
    from sandbox.client import EmulatorClient
    from tests.e2e.test_process import demo_run

    process, _, base = await demo_run(tmp_path, stderr=asyncio.subprocess.PIPE)  # the log apart, to count it
    try:
        async with EmulatorClient(base) as tg:
            for text in ("/start", "KM20261101000001"):  # a conversation that moves its state machine
                sent = await tg.send_text(10001, text)
                await tg.wait_confirmed(sent["update_id"], timeout=20)
            assert await tg.bot_messages(10001)
    finally:
        process.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(process.communicate(), 30)
    log = err.decode()
    assert process.returncode == 0, log
    assert len(log.splitlines()) <= SCREEN, log
    assert " INFO " in log  # it does log at INFO: the counts above are of a real log
    assert "transitions" not in log and "alembic" not in log
    assert "secret" not in log
    assert "Logging error" not in log and "Traceback" not in log


def test_transitions_speaks_again_with_verbose(root_logger):
    import logging

    from bot.logs import configure_logging

    machine = logging.getLogger("transitions.extensions.asyncio")
    try:
        configure_logging("text", "INFO")
        assert machine.getEffectiveLevel() == logging.WARNING
        configure_logging("text", "DEBUG")
        assert machine.getEffectiveLevel() == logging.DEBUG
    finally:
        for name in ("transitions", "alembic"):
            logging.getLogger(name).setLevel(logging.NOTSET)
