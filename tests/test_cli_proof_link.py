"""`refundbot orders link`: the signed start parameter the shop's 申请退款 button opens, and its t.me link."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dialogs.proof import LinkProblem, check_link
from sandbox.server import Emulator
from tests.cli_support import cli

SECRET = "shop-secret"
NUMBER = "KM20261124000001"


def config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def printed(output: str) -> str:
    found = re.search(r"start parameter: (\S+)", output)
    assert found, output
    return found[1]


def test_the_printed_parameter_opens_the_order_for_the_hours_asked(tmp_path: Path) -> None:
    path = config(tmp_path, f'[orders]\nlink_secret = "{SECRET}"\n[telegram]\nusername = "@shop_refund_bot"\n')
    code, output = cli("orders", "link", NUMBER, "--hours", "2", "--config", path)
    assert code == 0, output
    parameter = printed(output)
    now = datetime.now(UTC)
    assert check_link(SECRET, parameter, now).order_no == NUMBER
    assert check_link(SECRET, parameter, now).problem is None
    assert check_link(SECRET, parameter, now + timedelta(hours=2, minutes=1)).problem is LinkProblem.EXPIRED
    assert f"https://t.me/shop_refund_bot?start={parameter}" in output


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    emulator = Emulator(port=0)
    emulator.start_in_thread()
    try:
        yield emulator
    finally:
        emulator.stop()


def test_without_a_configured_username_the_bot_is_asked_who_it_is(tmp_path: Path, emulator: Emulator) -> None:
    path = config(tmp_path, f'[orders]\nlink_secret = "{SECRET}"\n[telegram]\ntoken = "7000000001:link-token"\n'
                            f'api_base = "{emulator.base_url}"\n')
    code, output = cli("orders", "link", NUMBER, "--config", path)
    assert code == 0, output
    assert f"https://t.me/refund_demo_bot?start={printed(output)}" in output  # the emulator's getMe


def test_without_a_secret_no_link_is_made(tmp_path: Path) -> None:
    code, output = cli("orders", "link", NUMBER, "--config", config(tmp_path, ""))
    assert code == 2 and "link_secret" in output and "REFUNDBOT_ORDER_LINK_SECRET" in output


def test_an_order_number_too_long_for_telegram_is_refused(tmp_path: Path) -> None:
    path = config(tmp_path, f'[orders]\nlink_secret = "{SECRET}"\n')
    code, output = cli("orders", "link", "A" * 26, "--config", path)
    assert code == 2 and "start parameter" in output


def test_the_secret_may_come_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REFUNDBOT_ORDER_LINK_SECRET", SECRET)
    code, output = cli("orders", "link", NUMBER, "--config", config(tmp_path, ""))
    assert code == 0 and check_link(SECRET, printed(output), datetime.now(UTC)).problem is None
