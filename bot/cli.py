"""The `refundbot` command line (Typer)."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from bot.config import AppConfig, load_config

app = typer.Typer(help="refundbot: a Telegram refund agent for card-union (卡盟) platforms.",
                  no_args_is_help=True, add_completion=False)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
orders_app = typer.Typer(help="Orders the bot can look up.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(orders_app, name="orders")
console = Console()

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="TOML settings (default ./config.toml, else built-in defaults).",
                 exists=True, dir_okay=False),
]


def _config(path: Path | None) -> AppConfig:
    try:
        return load_config(path)
    except Exception as exc:
        console.print(f"[red]Cannot read the configuration:[/red] {exc}")
        raise typer.Exit(2) from exc


def _run_until_signal(make_coro) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await make_coro(stop)

    asyncio.run(main())


@app.command()
def run(config: ConfigOption = None, verbose: bool = typer.Option(False, "--verbose", "-v")) -> None:
    """Run the bot: on Telegram with a token, else on the built-in emulator with demo orders."""
    from bot.app import StartupError
    from bot.app import run as run_app

    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = _config(config)
    try:
        _run_until_signal(lambda stop: run_app(settings, stop))
    except StartupError as exc:
        console.print(f"[red]refundbot cannot start:[/red] {exc}")
        raise typer.Exit(1) from exc


@app.command()
def chat(
    user: int = typer.Option(10001, help="Demo customer to play (10001 小明, 10002 Alice, 10003 小红)."),
    url: str | None = typer.Option(None, help="Emulator address (default: [sandbox] host and port)."),
    config: ConfigOption = None,
) -> None:
    """Play a demo customer in the terminal, against a running `refundbot run` without a token."""
    from bot.demo import CUSTOMERS
    from sandbox.terminal import run_terminal_chat

    settings = _config(config)
    base = url or f"http://{settings.sandbox.host}:{settings.sandbox.port}"
    who = next((c for c in CUSTOMERS if c.user_id == user), None)
    name, lang = (who.first_name, who.language_code) if who else (f"User {user}", "zh-hans")
    asyncio.run(run_terminal_chat(base, user, name, lang))


@db_app.command("upgrade")
def db_upgrade(config: ConfigOption = None) -> None:
    """Apply pending migrations."""
    from storage import migrate

    settings = _config(config)
    migrate.upgrade(settings.database.url)
    console.print(f"Database at {settings.database.url} is at revision {migrate.current_revision(settings.database.url)}.")


@db_app.command("current")
def db_current(config: ConfigOption = None) -> None:
    """Show the schema revision."""
    from storage import migrate

    settings = _config(config)
    console.print(f"current: {migrate.current_revision(settings.database.url)}  head: {migrate.head_revision()}")


@orders_app.command("import")
def orders_import(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="CSV or JSON Lines file.")],
    config: ConfigOption = None,
) -> None:
    """Insert or update orders by order_no; bad rows are reported and skipped."""
    from bot.app import open_database
    from storage.importer import count_rows, import_orders

    settings = _config(config)

    async def go() -> None:
        database = await open_database(settings)
        try:
            total = count_rows(file)
            with Progress(TextColumn("importing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                          console=console, disable=total < 1000) as progress:
                task = progress.add_task("import", total=total)
                report = await import_orders(database, file, progress=lambda n: progress.update(task, completed=n))
        finally:
            await database.dispose()
        for row in report.rejected[:50]:
            console.print(f"[yellow]line {row.line}:[/yellow] {row.reason}")
        if len(report.rejected) > 50:
            console.print(f"... and {len(report.rejected) - 50} more rejected rows")
        console.print(f"inserted {report.inserted}, updated {report.updated}, rejected {len(report.rejected)}")

    asyncio.run(go())


@orders_app.command("demo")
def orders_demo(config: ConfigOption = None) -> None:
    """Load the demo orders (one per policy branch, times relative to now)."""
    from bot.app import open_database, seed_demo_orders

    settings = _config(config)

    async def go() -> None:
        database = await open_database(settings)
        try:
            count = await seed_demo_orders(database)
        finally:
            await database.dispose()
        console.print(f"{count} demo orders loaded into {settings.database.url}")

    asyncio.run(go())


def main() -> None:
    app()
