"""`refundbot customers export | forget`: a customer's personal data on request (PIPL): hand over
everything we hold about a Telegram user, or erase it while keeping the money records."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bot.cli_base import ConfigOption, console, load_settings, on_database, person_named

if TYPE_CHECKING:
    from storage.uow import Database

EXIT_BAD_ARGUMENTS = 2
EXIT_REFUSED = 4

customers_app = typer.Typer(help="A customer's personal data (PIPL): export it, or erase it.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(customers_app, name="customers")


UserArgument = Annotated[int, typer.Argument(metavar="USER", help="The customer's Telegram user id.")]


@customers_app.command("export")
def customers_export(
    user: UserArgument,
    to: Annotated[Path | None, typer.Option("--to", file_okay=False, help=(
        "Folder to create (default ./customer-USER): data.json and evidence/ with the pictures."))] = None,
    as_zip: Annotated[bool, typer.Option("--zip", help="Pack the folder into FOLDER.zip and remove the folder.")] = False,
    config: ConfigOption = None,
) -> None:
    """Export everything we hold about a customer (PIPL).

    Writes everything we hold about a Telegram user: conversations, cases with their history and refund
    attempts, orders bound to them, agent requests, messages queued or sent to them, and their evidence
    files (copied into evidence/).

    Exit codes: 0 written (also when we hold nothing: the file says so), 2 the folder exists."""
    from storage.customers import customer_data

    folder = to if to is not None else Path(f"customer-{user}")
    if folder.exists() or (as_zip and folder.with_suffix(".zip").exists()):
        console.print(f"{folder} exists already; choose another --to.", markup=False)
        raise typer.Exit(EXIT_BAD_ARGUMENTS)
    settings = load_settings(config)
    found: list[dict[str, Any]] = []

    async def fetch(database: Database) -> int:
        found.append(await customer_data(database, user))
        return 0

    on_database(settings, fetch)
    document = found[0]
    evidence_dir = folder / "evidence"
    evidence_dir.mkdir(parents=True)
    missing = 0
    for item in document["evidence"]:
        source = Path(item["path"])
        if source.is_file():
            shutil.copy2(source, evidence_dir / source.name)
            item["exported_as"] = f"evidence/{source.name}"
        else:
            missing += 1  # purged by retention, or the path is relative to the bot's folder
            item["exported_as"] = None
    (folder / "data.json").write_text(json.dumps(document, ensure_ascii=False, indent=2), encoding="utf-8")
    where = folder
    if as_zip:
        where = Path(shutil.make_archive(str(folder), "zip", root_dir=folder))
        shutil.rmtree(folder)
    console.print(f"Customer {user}: {len(document['cases'])} cases, {len(document['orders'])} orders, "
                  f"{len(document['conversations'])} conversations, {len(document['evidence'])} evidence files"
                  f"{f' ({missing} no longer on disk)' if missing else ''} written to {where}.", markup=False,
                  soft_wrap=True)


@customers_app.command("forget")
def customers_forget(
    user: UserArgument,
    by: Annotated[str, typer.Option("--by", help=(
        "Who erases: an agent's Telegram id or alias from [desk] (any name when the desk has no staff). "
        "Kept in each case's history and the desk audit."))],
    config: ConfigOption = None,
) -> None:
    """Erase a customer's personal data; keep the money records.

    Erases their messages and conversations, their own words on cases,
    phone numbers and Telegram bindings on their orders, evidence rows and files. Case numbers, amounts,
    statuses, refund attempts and the agents' history stay for finance and audit. On SQLite the file is
    rewritten (VACUUM) so nothing erased lingers in it.

    Exit codes: 0 erased, 2 unknown person, 4 refused: a payout of theirs is in flight."""
    from dialogs.clock import utcnow
    from storage.customers import PayoutInFlight, forget_customer, scrub_sqlite

    settings = load_settings(config)
    done: list[Any] = []

    async def forget(database: Database) -> int:
        person = await person_named(database, settings, by)
        if person is None:
            return EXIT_BAD_ARGUMENTS
        done.append(person)
        try:
            done.append(await forget_customer(database, user, actor=person.actor, actor_id=person.agent_id,
                                              at=utcnow()))
        except PayoutInFlight as exc:
            console.print(f"Refused: {exc}.", markup=False, soft_wrap=True)
            return EXIT_REFUSED
        if database.sqlite_file is not None:
            done.append(scrub_sqlite(database.sqlite_file))
        return 0

    on_database(settings, forget)
    person, forgotten = done[0], done[1]
    removed = 0
    for name in forgotten.orphaned_files:
        path = Path(name)
        if path.is_file():
            path.unlink()
            removed += 1
    console.print(f"Customer {user} forgotten by {person.actor}: {forgotten.cases} cases kept without personal "
                  f"data, {forgotten.orders} orders without contact, {forgotten.conversations} conversations "
                  f"and {forgotten.evidence_rows} evidence rows deleted, {removed} files removed.",
                  markup=False, soft_wrap=True)
    if len(done) > 2 and not done[2]:
        console.print("The SQLite file was busy: run `refundbot customers forget` again later (or VACUUM it) so "
                      "erased values leave its free pages.", markup=False, soft_wrap=True)
