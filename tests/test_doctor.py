"""`refundbot doctor` against the emulator: a good setup passes, each broken one names its problem and
the fix and exits 1."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bot.cli import app
from sandbox.client import EmulatorClient
from sandbox.server import Emulator

TOKEN = "7000000001:doctor-token"
AGENT, SUPERVISOR, STRANGER = 20001, 20002, 20003


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    emulator = Emulator(port=0)
    emulator.start_in_thread()
    try:
        yield emulator
    finally:
        emulator.stop()


def stage(emulator: Emulator, *, agents_in_desk: tuple[int, ...] = (AGENT, SUPERVISOR), **group: Any) -> int:
    """Users and a desk group as the test wants them; returns the group's id."""

    async def go() -> int:
        async with EmulatorClient(emulator.base_url) as tg:
            for user_id in (AGENT, SUPERVISOR, STRANGER):
                await tg.create_user(user_id, f"Staff {user_id}")
            made = await tg.create_group("退款客服台", members=[
                {"user_id": user_id, "status": "member"} for user_id in agents_in_desk], **group)
            return int(made["chat"]["id"])

    return asyncio.run(go())


def write_config(tmp_path: Path, emulator: Emulator, database_url: str, desk: int = 0, *,
                 agents: tuple[int, ...] = (AGENT,), token: str = TOKEN, telegram: str = "") -> Path:
    path = tmp_path / "doctor.toml"
    lines = ["[telegram]", f'token = "{token}"', f'api_base = "{emulator.base_url}"', telegram, "",
             "[database]", f'url = "{database_url}"', "",
             "[desk]", f"chat_id = {desk}", f"agents = {list(agents)}", f"supervisors = [{SUPERVISOR}]"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def doctor(config: Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["doctor", "--config", str(config)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.output


def line_of(output: str, check: str, mark: str) -> str:
    found = [line for line in output.splitlines() if line.startswith(f"{mark} {check}:")]
    assert found, output
    return " ".join(found)


def test_a_good_setup_passes_every_check(tmp_path, emulator, migrated_database_url):
    desk = stage(emulator)
    code, output = doctor(write_config(tmp_path, emulator, migrated_database_url, desk))
    assert code == 0, output
    assert "✗" not in output
    assert "migrated to head" in line_of(output, "database", "✓")
    assert "@" in line_of(output, "token", "✓")
    assert "polling, and no webhook is set" in line_of(output, "webhook", "✓")
    desk_lines = line_of(output, "desk", "✓")
    assert "forum supergroup" in desk_lines and "administrator with 'Manage topics'" in desk_lines
    staff = line_of(output, "agents", "✓")
    assert f"agent {AGENT}" in staff and f"supervisor {SUPERVISOR}" in staff


def test_a_wrong_token_is_named_with_botfather_as_the_fix(tmp_path, emulator, migrated_database_url):
    desk = stage(emulator)
    asyncio.run(_fault(emulator, "getMe", 401))
    code, output = doctor(write_config(tmp_path, emulator, migrated_database_url, desk))
    assert code == 1
    assert "the token is wrong" in line_of(output, "token", "✗") and "@BotFather" in output


async def _fault(emulator: Emulator, method: str, code: int) -> None:
    async with EmulatorClient(emulator.base_url) as tg:
        await tg.add_fault(method, code, description="Unauthorized", count=5)


def test_a_desk_that_is_not_a_forum_is_named_with_how_to_turn_topics_on(tmp_path, emulator,
                                                                          migrated_database_url):
    desk = stage(emulator, is_forum=False)
    code, output = doctor(write_config(tmp_path, emulator, migrated_database_url, desk))
    assert code == 1
    assert "is not a forum: turn on Topics" in line_of(output, "desk", "✗")


def test_a_bot_without_manage_topics_is_told_which_right_is_missing(tmp_path, emulator, migrated_database_url):
    desk = stage(emulator, bot_rights={"can_manage_topics": False})
    code, output = doctor(write_config(tmp_path, emulator, migrated_database_url, desk))
    assert code == 1
    assert "without the right 'Manage topics'" in line_of(output, "desk", "✗")


def test_a_bot_that_is_only_a_member_of_the_desk_is_told_to_be_promoted(tmp_path, emulator,
                                                                          migrated_database_url):
    desk = stage(emulator, bot_status="member")
    code, output = doctor(write_config(tmp_path, emulator, migrated_database_url, desk))
    assert code == 1
    assert "is member in the desk, not an administrator: promote it" in line_of(output, "desk", "✗")


def test_an_agent_outside_the_desk_group_is_a_warning_naming_them(tmp_path, emulator, migrated_database_url):
    desk = stage(emulator, agents_in_desk=(SUPERVISOR,))
    code, output = doctor(write_config(tmp_path, emulator, migrated_database_url, desk, agents=(AGENT,)))
    assert code == 0, output  # a warning alone
    assert f"agent {AGENT}" in line_of(output, "agents", "!") and "not in the desk group" in output


def test_an_unmigrated_database_says_to_run_db_upgrade(tmp_path, emulator, database_url):
    desk = stage(emulator)
    code, output = doctor(write_config(tmp_path, emulator, database_url, desk))
    assert code == 1
    assert "run `refundbot db upgrade`" in line_of(output, "database", "✗")


def set_webhook(emulator: Emulator, url: str) -> None:
    request = urllib.request.Request(f"{emulator.base_url}/bot{TOKEN}/setWebhook",
                                     data=json.dumps({"url": url}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as answer:
        assert json.load(answer)["ok"]


def test_polling_with_a_webhook_set_warns_of_409(tmp_path, emulator, migrated_database_url):
    desk = stage(emulator)
    set_webhook(emulator, "https://elsewhere.example/hook")
    code, output = doctor(write_config(tmp_path, emulator, migrated_database_url, desk))
    assert code == 1
    problem = line_of(output, "webhook", "✗")
    assert "https://elsewhere.example/hook" in problem and "polling will fail with 409" in problem


def test_no_token_says_it_would_run_on_the_emulator_and_passes(tmp_path, emulator, migrated_database_url):
    code, output = doctor(write_config(tmp_path, emulator, migrated_database_url, token=""))
    assert code == 0, output
    assert "would run on the built-in emulator" in line_of(output, "token", "!")


def test_a_config_with_a_bad_value_fails_on_the_first_line_naming_the_key(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[telegram]\nmode = "carrier-pigeon"\n', encoding="utf-8")
    code, output = doctor(path)
    assert code == 1
    assert output.splitlines()[0].startswith("✗ config: [telegram] mode")


def test_an_http_gateway_without_a_secret_or_a_listener_is_named(tmp_path, emulator, migrated_database_url):
    import socket

    with socket.socket() as probe:  # a free port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    path = write_config(tmp_path, emulator, migrated_database_url, token="")
    path.write_text(path.read_text(encoding="utf-8") +
                    f'\n[platform]\ngateway = "http"\nrefund_url = "http://127.0.0.1:{port}/refund"\n',
                    encoding="utf-8")
    code, output = doctor(path)
    assert code == 1
    platform = line_of(output, "platform", "✗")
    assert "need [platform] secret" in platform and f"http://127.0.0.1:{port}/refund: nothing answers" in platform


def test_webhook_mode_with_telegram_posting_elsewhere_names_both_urls(tmp_path, emulator, migrated_database_url):
    desk = stage(emulator)
    set_webhook(emulator, "https://old.example/hook")
    ours = 'mode = "webhook"\nwebhook_url = "https://bot.example/telegram/webhook"\nwebhook_secret = "s3cret"'
    code, output = doctor(write_config(tmp_path, emulator, migrated_database_url, desk, telegram=ours))
    assert code == 1
    problem = line_of(output, "webhook", "✗")
    assert "posts this bot's updates to https://old.example/hook" in problem
    assert "https://bot.example/telegram/webhook" in problem


def test_webhook_mode_with_its_url_registered_passes_and_says_the_secret_is_set(tmp_path, emulator,
                                                                                migrated_database_url):
    desk = stage(emulator)
    set_webhook(emulator, "https://bot.example/telegram/webhook")
    ours = 'mode = "webhook"\nwebhook_url = "https://bot.example/telegram/webhook"\nwebhook_secret = "s3cret"'
    code, output = doctor(write_config(tmp_path, emulator, migrated_database_url, desk, telegram=ours))
    assert code == 0, output
    assert "secret token is set" in line_of(output, "webhook", "✓")


def test_a_bot_removed_from_the_desk_is_told_to_be_added_back(tmp_path, emulator, migrated_database_url):
    desk = stage(emulator, bot_status="left")
    code, output = doctor(write_config(tmp_path, emulator, migrated_database_url, desk))
    assert code == 1
    assert "the bot is not in the desk group (left): add it as an administrator" in line_of(output, "desk", "✗")


def test_an_unknown_supervisors_chat_is_named(tmp_path, emulator, migrated_database_url):
    desk = stage(emulator)
    path = write_config(tmp_path, emulator, migrated_database_url, desk)
    path.write_text(path.read_text(encoding="utf-8") + "\n[sla]\nsupervisors_chat_id = -1009999999999\n",
                    encoding="utf-8")
    code, output = doctor(path)
    assert code == 1
    assert "[sla] supervisors_chat_id -1009999999999: 400" in line_of(output, "desk", "✗")


def test_a_platform_url_that_never_answers_is_named_as_a_timeout(tmp_path, emulator, migrated_database_url):
    import socket

    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/orders"
        path = write_config(tmp_path, emulator, migrated_database_url, token="")
        path.write_text(path.read_text(encoding="utf-8") + f'\n[platform]\norders = "http"\norders_url = "{url}"\n'
                        'secret = "shared"\ntimeout_seconds = 0.5\n', encoding="utf-8")
        code, output = doctor(path)
    assert code == 1
    assert f"orders_url {url} did not answer within 0.5 s ([platform] timeout_seconds)" in line_of(
        output, "platform", "✗")


def test_a_platform_url_that_answers_passes_whatever_it_thinks_of_a_get(tmp_path, emulator, migrated_database_url):
    url = f"{emulator.base_url}/shop/orders"  # someone listens there: a 404 is still an answer
    path = write_config(tmp_path, emulator, migrated_database_url, token="")
    path.write_text(path.read_text(encoding="utf-8") + f'\n[platform]\norders = "http"\norders_url = "{url}"\n'
                    'secret = "shared"\n', encoding="utf-8")
    code, output = doctor(path)
    assert code == 0, output
    assert f"orders_url {url} answers (HTTP 404 to a signed GET)" in line_of(output, "platform", "✓")


def test_an_agent_added_in_the_app_is_checked_and_one_removed_is_not(tmp_path, emulator, migrated_database_url):
    from dialogs import roster
    from dialogs.clock import utcnow
    from dialogs.settings import DeskSettings
    from storage.uow import Database

    newcomer = AGENT + 100
    desk = stage(emulator, agents_in_desk=(SUPERVISOR,))

    async def change_staff() -> None:
        database = Database.from_url(migrated_database_url)
        try:
            async with database.uow() as uow:
                toml = DeskSettings(agents=(AGENT,), supervisors=(SUPERVISOR,))
                await roster.seed(uow, toml, utcnow())
                await roster.add(uow, toml, newcomer, supervisor=False, alias=None, by="test", at=utcnow())
                await roster.remove(uow, toml, AGENT, by="test", at=utcnow())
                await uow.commit()
        finally:
            await database.dispose()

    asyncio.run(change_staff())
    code, output = doctor(write_config(tmp_path, emulator, migrated_database_url, desk, agents=(AGENT,)))

    assert code == 0, output
    assert f"agent {newcomer}" in line_of(output, "agents", "!")  # in the database, not in the desk group
    assert f"agent {AGENT} " not in output  # removed in the app: the TOML no longer brings them back
