"""`refundbot agents ...`: the desk's agents and supervisors in the database (dialogs.roster).

`[desk] agents / supervisors / aliases` in the TOML only seed the database with people it has never
seen; someone removed here stays removed whatever the TOML says."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from bot.cli_base import ConfigOption, console
from bot.cli_base import load_settings as _config
from bot.cli_base import on_database as _on_database

if TYPE_CHECKING:
    from storage.uow import Database

agents_app = typer.Typer(help="The desk's agents and supervisors.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(agents_app, name="agents")


ByOption = Annotated[str, typer.Option("--by", help="Who makes the change (recorded in the staff audit).")]


def _who(by: str) -> str:
    name = by.strip()
    if not name:
        console.print("[red]Say who makes the change: --by <name>.[/red]")
        raise typer.Exit(2)
    return f"cli:{name[:56]}"


@agents_app.command("add")
def add(user_id: Annotated[int, typer.Argument(help="The person's Telegram user id.")], by: ByOption,
        supervisor: Annotated[bool, typer.Option("--supervisor", help="A supervisor (confirms big approvals).")] = False,
        alias: Annotated[str | None, typer.Option("--alias", help="The name customers see.")] = None,
        config: ConfigOption = None) -> None:
    """Add (or change) an agent or supervisor."""
    from dialogs import roster
    from dialogs.clock import utcnow

    settings, who = _config(config), _who(by)
    if user_id <= 0:
        console.print("[red]A Telegram user id is a positive number.[/red]")
        raise typer.Exit(2)
    if alias is not None and not 0 < len(alias.strip()) <= 64:
        console.print("[red]An alias has 1 to 64 characters.[/red]")
        raise typer.Exit(2)

    async def go(database: Database) -> int:
        async with database.uow() as uow:
            member = await roster.add(uow, settings.core.desk, user_id, supervisor=supervisor,
                                      alias=alias.strip() if alias else None, by=who, at=utcnow())
            await uow.commit()
        role = "an agent" if member.role == roster.AGENT else "a supervisor"
        console.print(f"{member.user_id} is now {role}" + (f" ({member.alias})." if member.alias else "."))
        return 0

    _on_database(settings, go)


@agents_app.command("remove")
def remove(user_id: Annotated[int, typer.Argument(help="The person's Telegram user id.")], by: ByOption,
           config: ConfigOption = None) -> None:
    """Remove an agent or supervisor: they act on the desk no more (the TOML does not bring them back)."""
    from dialogs import roster
    from dialogs.clock import utcnow

    settings, who = _config(config), _who(by)

    async def go(database: Database) -> int:
        async with database.uow() as uow:
            removed = await roster.remove(uow, settings.core.desk, user_id, by=who, at=utcnow())
            await uow.commit()
        if not removed:
            console.print(f"[red]{user_id} is not one of the desk's agents or supervisors.[/red]")
            return 3
        console.print(f"{user_id} removed.")
        return 0

    _on_database(settings, go)


@agents_app.command("list")
def list_(config: ConfigOption = None) -> None:
    """The current agents and supervisors."""
    from dialogs import roster
    from dialogs.clock import utcnow

    settings = _config(config)

    async def go(database: Database) -> int:
        async with database.uow() as uow:
            await roster.seed(uow, settings.core.desk, utcnow())
            members = await uow.staff.members()
            await uow.commit()
        desk = roster.with_staff(settings.core.desk, members)
        table = Table("id", "role", "alias", "added by", "added at")
        for m in members:
            table.add_row(str(m.user_id), m.role, desk.alias(m.user_id, settings.core.i18n.default_locale),
                          m.added_by, m.added_at.strftime("%Y-%m-%d %H:%M UTC"))
        console.print(table)
        return 0

    _on_database(settings, go)

