"""`refundbot agents add/remove/list` on a real SQLite database through Typer's runner, and the rule
the TOML seed keeps at every start: a member removed in the app is not brought back."""

from __future__ import annotations

import asyncio
from pathlib import Path

from typer.testing import CliRunner

from bot.app import seed_staff
from bot.cli import app
from bot.config import load_config
from dialogs.ports import StaffChange, StaffMember
from storage import migrate
from storage.uow import Database

AGENT, OTHER, SUPERVISOR, NEWBIE = 7001, 7002, 7009, 8001
runner = CliRunner()


def setup(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path}/cli.db"
    migrate.upgrade(url)
    path = tmp_path / "config.toml"
    path.write_text(f'[database]\nurl = "{url}"\n[desk]\nchat_id = -100500\nagents = [{AGENT}, {OTHER}]\n'
                    f'supervisors = [{SUPERVISOR}]\n[desk.aliases]\n{AGENT} = "小李"\n', encoding="utf-8")
    return str(path)


def stored(config: str) -> tuple[list[StaffMember], list[StaffChange]]:
    async def go() -> tuple[list[StaffMember], list[StaffChange]]:
        database = Database.from_url(load_config(Path(config)).database.url)
        async with database.uow() as uow:
            found = await uow.staff.members(), await uow.staff.changes()
        await database.dispose()
        return found
    return asyncio.run(go())


def agents(config: str, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["agents", *args, "-c", config])
    return result.exit_code, result.output


def test_list_shows_the_toml_staff_with_role_alias_and_who_added_them(tmp_path: Path) -> None:
    code, out = agents(setup(tmp_path), "list")
    assert code == 0
    lines = [line for line in out.splitlines() if str(AGENT) in line or str(SUPERVISOR) in line]
    assert "agent" in lines[0] and "小李" in lines[0] and "config" in lines[0]
    assert "supervisor" in lines[1] and "客服3号" in lines[1]


def test_add_makes_a_supervisor_with_an_alias_audited_with_who_did_it(tmp_path: Path) -> None:
    config = setup(tmp_path)
    code, out = agents(config, "add", str(NEWBIE), "--supervisor", "--alias", "老周", "--by", "ops")
    assert code == 0 and f"{NEWBIE} is now a supervisor (老周)." in out
    members, changes = stored(config)
    assert [(m.user_id, m.role, m.alias, m.added_by) for m in members][-1] == (NEWBIE, "supervisor", "老周", "cli:ops")
    assert (changes[0].user_id, changes[0].action, changes[0].by) == (NEWBIE, "add", "cli:ops")
    assert f"{NEWBIE}" in agents(config, "list")[1]


def test_remove_takes_someone_off_the_desk_and_the_toml_does_not_bring_them_back(tmp_path: Path) -> None:
    config = setup(tmp_path)
    code, out = agents(config, "remove", str(OTHER), "--by", "ops")
    assert code == 0 and f"{OTHER} removed." in out
    assert asyncio.run(seed_and_count(config)) == 0  # the bot starts again with the same TOML
    assert str(OTHER) not in agents(config, "list")[1]
    members, changes = stored(config)
    assert OTHER not in [m.user_id for m in members]
    assert (changes[0].user_id, changes[0].action, changes[0].by) == (OTHER, "remove", "cli:ops")


async def seed_and_count(config: str) -> int:
    settings = load_config(Path(config))
    database = Database.from_url(settings.database.url)
    try:
        return await seed_staff(database, settings)
    finally:
        await database.dispose()


def test_the_first_start_seeds_the_toml_staff_once(tmp_path: Path) -> None:
    config = setup(tmp_path)
    assert asyncio.run(seed_and_count(config)) == 3
    assert asyncio.run(seed_and_count(config)) == 0
    members, _ = stored(config)
    assert [(m.user_id, m.added_by) for m in members] == [(AGENT, "config"), (OTHER, "config"), (SUPERVISOR, "config")]


def test_removing_someone_not_on_the_desk_says_so_and_exits_3(tmp_path: Path) -> None:
    code, out = agents(setup(tmp_path), "remove", "424242", "--by", "ops")
    assert code == 3 and "424242 is not one of the desk's agents or supervisors." in out


def test_bad_input_is_refused_with_exit_2_and_changes_nothing(tmp_path: Path) -> None:
    config = setup(tmp_path)
    assert agents(config, "add", str(NEWBIE), "--by", "  ")[0] == 2
    assert agents(config, "add", "-5", "--by", "ops")[0] == 2
    assert agents(config, "add", str(NEWBIE), "--alias", "x" * 65, "--by", "ops")[0] == 2
    assert agents(config, "add", "abc", "--by", "ops")[0] == 2
    members, changes = stored(config)
    assert members == [] and changes == []


def test_cases_move_knows_people_by_the_database_not_the_toml(tmp_path: Path) -> None:
    config = setup(tmp_path)
    agents(config, "remove", str(OTHER), "--by", "ops")
    agents(config, "add", str(NEWBIE), "--by", "ops")
    removed = runner.invoke(app, ["cases", "move", "R20261124-0001", "start_review", "--by", str(OTHER), "-c", config])
    assert removed.exit_code == 2 and "is not one of" in removed.output
    added = runner.invoke(app, ["cases", "move", "R20261124-0001", "start_review", "--by", str(NEWBIE), "-c", config])
    assert added.exit_code == 3 and "No case R20261124-0001." in added.output  # known: the case is what is missing
