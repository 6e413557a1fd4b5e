"""The `refundbot` command line (Typer)."""

from __future__ import annotations

import asyncio
import signal
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from bot import cli_backup, cli_cases, cli_customers, cli_orders, cli_reconcile, cli_staff
from bot.cli_base import ConfigOption, console, person_named
from bot.cli_base import load_settings as _config
from bot.cli_base import on_database as _on_database
from bot.cli_errors import errors
from bot.config import AppConfig
from bot.logs import configure_logging
from dialogs.domain import CaseStatus

if TYPE_CHECKING:
    from storage.uow import Database

app = typer.Typer(help="refundbot: a Telegram refund agent for card-union (卡盟) platforms.",
                  no_args_is_help=True, add_completion=False)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
orders_app = typer.Typer(help="Orders the bot can look up.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(orders_app, name="orders")
cli_orders.register(orders_app)  # orders correct

VERBOSE_HELP = "Log at DEBUG, with the state machines' and the migrations' chatter."


class LogFormat(StrEnum):
    text = "text"
    json = "json"


LogFormatOption = Annotated[
    LogFormat | None,
    typer.Option("--log-format", case_sensitive=False,
                 help="text lines, or one JSON object per line for a log collector (default: \\[log] format in the config)."),
]


def _run_until_signal(make_coro) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await make_coro(stop)

    asyncio.run(main())


@app.command()
def run(config: ConfigOption = None, verbose: bool = typer.Option(False, "--verbose", "-v", help=VERBOSE_HELP),
        log_format: LogFormatOption = None,
        workers: int = typer.Option(1, "--workers", "-w", min=1, max=64,
                                    help="Worker processes on one webhook port (webhook mode, PostgreSQL)."),
        reuse_port: bool = typer.Option(False, "--reuse-port",
                                        help="Share listen_port with other refundbot processes (SO_REUSEPORT).")) -> None:
    """Run the bot: on Telegram with a token, else on the built-in emulator with demo orders."""
    settings = _config(config)
    if reuse_port:
        settings = settings.model_copy(update={"telegram": settings.telegram.model_copy(update={"reuse_port": True})})
    if workers == 1:
        _run(settings, verbose, log_format)
        return
    problem = _workers_problem(settings)
    if problem:
        console.print(f"[red]--workers {workers}:[/red] {problem}")
        raise typer.Exit(2)
    argv = ["run", "--reuse-port", *(["--config", str(config)] if config else []), *(["-v"] if verbose else []),
            *(["--log-format", log_format.value] if log_format else [])]
    _supervise(settings, argv, workers, verbose, log_format)


def _workers_problem(settings: AppConfig) -> str:
    if not settings.telegram.token:
        return "several workers need a Telegram token (the sandbox runs one process)."
    if settings.telegram.mode != "webhook":
        return 'several workers need [telegram] mode = "webhook" (Telegram gives long polling to one client only).'
    if not settings.database.url.startswith(("postgresql", "postgres")):
        return "several workers need PostgreSQL ([database] url = \"postgresql://...\"); SQLite is for one process."
    return ""


def _supervise(settings: AppConfig, argv: list[str], workers: int, verbose: bool,
               log_format: LogFormat | None) -> None:
    from bot.app import StartupError, open_database
    from bot.supervisor import Supervisor

    configure_logging(log_format.value if log_format else settings.log.format,
                      "DEBUG" if verbose else settings.log.level, order_pattern=settings.orders.number_pattern)

    async def main(stop: asyncio.Event) -> int:
        database = await open_database(settings)  # migrations once, before N processes would race them
        await database.dispose()
        return await Supervisor(argv, workers).run(stop)

    codes: list[int] = []
    try:
        _run_until_signal(lambda stop: _record(main(stop), codes))
    except StartupError as exc:
        console.print(f"[red]refundbot cannot start:[/red] {exc}")
        raise typer.Exit(1) from exc
    raise typer.Exit(codes[0] if codes else 1)


async def _record(work, codes: list[int]) -> None:  # type: ignore[no-untyped-def]
    codes.append(await work)


@app.command()
def sandbox(config: ConfigOption = None, verbose: bool = typer.Option(False, "--verbose", "-v", help=VERBOSE_HELP),
            log_format: LogFormatOption = None) -> None:
    """Try refundbot without Telegram, whatever the config says about a token.

    The built-in emulator, demo orders and a web page with a customer and the agents' desk side by side."""
    settings = _config(config)
    _run(settings.model_copy(update={"telegram": settings.telegram.model_copy(update={"token": ""})}), verbose,
         log_format)


def _run(settings: AppConfig, verbose: bool, log_format: LogFormat | None = None) -> None:
    from bot.app import PortInUse, StartupError
    from bot.app import run as run_app

    configure_logging(log_format.value if log_format else settings.log.format,
                      "DEBUG" if verbose else settings.log.level, order_pattern=settings.orders.number_pattern)
    try:
        _run_until_signal(lambda stop: run_app(settings, stop))
    except PortInUse as exc:
        errors.print(f"[red]refundbot cannot start:[/red] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(2) from None
    except StartupError as exc:
        console.print(f"[red]refundbot cannot start:[/red] {exc}")
        raise typer.Exit(1) from exc


@app.command()
def chat(
    user: int = typer.Option(10001, help="Demo customer to play (10001 小明, 10002 Alice, 10003 小红)."),
    url: str | None = typer.Option(None, help=(
        "The emulator's address (default: http://HOST:PORT from \\[sandbox] host and port, "
        "http://127.0.0.1:8081 unless the config changes them).")),
    config: ConfigOption = None,
) -> None:
    """Play a demo customer in the terminal, against a running `refundbot run` without a token."""
    import aiohttp

    from bot.demo import CUSTOMERS
    from sandbox.terminal import run_terminal_chat

    settings = _config(config)
    base = url or f"http://{settings.sandbox.host}:{settings.sandbox.port}"
    who = next((c for c in CUSTOMERS if c.user_id == user), None)
    name, lang = (who.first_name, who.language_code) if who else (f"User {user}", "zh-hans")
    try:
        asyncio.run(run_terminal_chat(base, user, name, lang))
    except aiohttp.ClientConnectionError:
        errors.print(f"[red]Nothing is listening at {escape(base)}:[/red] start `refundbot run` (without a token) "
                     "or `refundbot sandbox` first, or point --url at it.", soft_wrap=True)
        raise typer.Exit(2) from None


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
    from storage.importer import count_rows, import_orders

    settings = _config(config)

    async def go(database: Database) -> int:
        total = count_rows(file)
        with Progress(TextColumn("importing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      console=console, disable=total < 1000) as progress:
            task = progress.add_task("import", total=total)
            report = await import_orders(database, file, progress=lambda n: progress.update(task, completed=n))
        for row in report.rejected[:50]:
            console.print(f"[yellow]line {row.line}:[/yellow] {row.reason}")
        if len(report.rejected) > 50:
            console.print(f"... and {len(report.rejected) - 50} more rejected rows")
        console.print(f"inserted {report.inserted}, updated {report.updated}, rejected {len(report.rejected)}")
        return 0

    _on_database(settings, go)


@orders_app.command("demo")
def orders_demo(config: ConfigOption = None) -> None:
    """Load the demo orders (one per policy branch, times relative to now)."""
    from bot.app import seed_demo_orders

    settings = _config(config)

    async def go(database: Database) -> int:
        count = await seed_demo_orders(database)
        console.print(f"{count} demo orders loaded into {settings.database.url}")
        return 0

    _on_database(settings, go)


@orders_app.command("link")
def orders_link(
    order_no: Annotated[str, typer.Argument(help="The order number, exactly as the shop shows it.")],
    hours: Annotated[float, typer.Option("--hours", min=0.01, help="How long the link stays valid.")] = 72,
    config: ConfigOption = None,
) -> None:
    """Print the signed start parameter and t.me link that open ORDER with no other proof (what the
    shop's 申请退款 button links to; README "Signed refund link")."""
    import time

    from dialogs.proof import link_parameter

    settings = _config(config)
    expires = int(time.time() + hours * 3600)
    try:
        parameter = link_parameter(settings.orders.link_secret, order_no.strip(), expires)
    except ValueError as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(2) from None
    console.print(f"start parameter: {parameter}", soft_wrap=True)
    console.print(f"expires: {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(expires))}")
    username = settings.telegram.username.lstrip("@") or asyncio.run(_bot_username(settings))
    if username:
        console.print(f"link: https://t.me/{username}?start={parameter}", soft_wrap=True)
    else:
        console.print("[yellow]no link: set \\[telegram] username (or a token, to ask Telegram's getMe)[/yellow]")


async def _bot_username(settings: AppConfig) -> str:
    """The bot's username from getMe, or "" without a token or an answer."""
    import aiohttp

    from bot.doctor import BotApi

    if not settings.telegram.token:
        return ""
    api = BotApi(settings.telegram.api_base, settings.telegram.token)
    try:
        good, me, _, why = await api.call("getMe")
    except (aiohttp.ClientError, TimeoutError) as exc:
        console.print(f"[yellow]getMe failed: {escape(str(exc) or type(exc).__name__)}[/yellow]")
        return ""
    finally:
        await api.close()
    if not good:
        console.print(f"[yellow]getMe failed: {escape(why)}[/yellow]")
        return ""
    return str(me.get("username") or "")
@orders_app.command("check")
def orders_check(
    order: Annotated[str, typer.Argument(help="An order number, as a customer would type it.")],
    config: ConfigOption = None,
) -> None:
    """Show what the order source (\\[orders] source: a shop's database, the platform, the local table) sees of
    one order: its fields, the 卡密 masked, whether a 查询密码 is set. Exit 3: not found; 5: shop unreachable."""
    from bot.shops.check import check_order

    settings = _config(config)
    if settings.orders.source == "local" and settings.platform.orders != "http":
        async def on_local(database: Database) -> int:
            async def local(order_no: str):  # type: ignore[no-untyped-def]
                async with database.uow() as uow:
                    return await uow.orders.get(order_no)

            return await check_order(settings, order, console.print, local)

        _on_database(settings, on_local)
        return
    code = asyncio.run(check_order(settings, order, console.print))
    if code:
        raise typer.Exit(code)


# --- cases: finance's side of refunds ---------------------------------------------------------

cases_app = typer.Typer(help="Refund cases: decisions, finance's confirmations and exports.", no_args_is_help=True)
app.add_typer(cases_app, name="cases")

EXIT_UNKNOWN_CASE = 3
EXIT_FORBIDDEN = 4
# What a desk decision leaves a case in when it went through (the desk refused otherwise).
_DECIDED = {"approve": {CaseStatus.REFUNDING, CaseStatus.REFUNDED}, "confirm": {CaseStatus.REFUNDING, CaseStatus.REFUNDED},
            "reject": {CaseStatus.REJECTED, CaseStatus.REJECTED_FINAL}, "reject_final": {CaseStatus.REJECTED_FINAL},
            "ask_info": {CaseStatus.NEEDS_INFO}}


def _workflow(settings: AppConfig):  # type: ignore[no-untyped-def]
    from dialogs.cases import CaseWorkflow

    return CaseWorkflow.for_settings(settings.core, settings.platform.gateway, settings.platform.rails)


def _mark(config: Path | None, case_no: str, *, succeeded: bool, by: str, note: str) -> None:
    """mark-refunded / mark-failed: a person states the outcome of the case's open refund attempt."""
    from dialogs import staff
    from dialogs.lifecycle import ForbiddenTransition
    from dialogs.refunds import AttemptSettled, NothingInFlight, mark_settled

    settings = _config(config)
    outcome = "refunded" if succeeded else "refund_failed"

    async def go(database: Database) -> int:
        person = staff.Person(by) if succeeded else await person_named(database, settings, by)
        if person is None:
            return 2
        try:
            done = await mark_settled(database.uow, _workflow(settings), case_no, succeeded=succeeded,
                                      actor=person.actor, note=note)
        except KeyError:
            console.print(f"[red]No case {case_no}.[/red]")
            return EXIT_UNKNOWN_CASE
        except (ForbiddenTransition, AttemptSettled, NothingInFlight) as exc:
            console.print(f"[red]Cannot mark {case_no} {outcome}:[/red] {exc} (only a case in refunding can be).")
            return EXIT_FORBIDDEN
        if not done.changed:
            console.print(f"{case_no} was already {outcome}; nothing changed.")
        else:
            console.print(f"{case_no} is {outcome} ({done.attempt.amount} CNY, attempt {done.attempt.idempotency_key}); "
                          "the customer will be told.")
        return 0

    _on_database(settings, go)


@cases_app.command("mark-refunded")
def cases_mark_refunded(
    case_no: Annotated[str, typer.Argument(metavar="CASE", help="Case number, e.g. R20261124-0001.")],
    note: Annotated[str, typer.Option("--note", help="Shown to the customer with the news, e.g. a payout reference.")] = "",
    actor: Annotated[str, typer.Option("--actor", "--by", help="Who confirms (kept in the case history).")] = "finance",
    config: ConfigOption = None,
) -> None:
    """Finance paid the money back: the case goes from refunding to refunded and the customer is told.

    Exit codes: 0 done (or already refunded), 3 no such case, 4 the case is not waiting for money."""
    _mark(config, case_no, succeeded=True, by=actor, note=note)


@cases_app.command("move")
def cases_move(
    case_no: Annotated[str, typer.Argument(metavar="CASE", help="Case number, e.g. R20261124-0001.")],
    trigger: Annotated[str, typer.Argument(metavar="ACTION", help=(
        "start_review, ask_info, approve (the refund starts at once, or waits for a supervisor's confirm above "
        "\\[desk] confirm_above), confirm (a supervisor's second signature), reject, reject_final, retry_refund, "
        "hand_to_human, fail_refund (only when no refund attempt is in flight), close_silent."))],
    by: Annotated[str, typer.Option("--by", help=(
        "Who decides: an agent's Telegram id or alias from \\[desk] (any name when the desk has no staff). "
        "Kept in the case history."))],
    note: Annotated[str, typer.Option("--note", help="Shown to the customer with the news (why, what is needed).")] = "",
    amount: Annotated[str | None, typer.Option("--amount", help="approve: refund only this much (CNY).")] = None,
    config: ConfigOption = None,
) -> None:
    """Move a case as a support agent would, under the desk's rules.

    The case's owner decides, and an approval above confirm_above needs two people. The case event,
    the customer's status card and news, the desk card, deadlines and the refund follow as for any move.

    Exit codes: 0 moved (or waiting for a supervisor), 2 unknown action or person, 3 no such case,
    4 refused (the case's status, the desk's rules or the order's refund ledger do not allow it)."""
    from decimal import Decimal, InvalidOperation

    from dialogs import staff
    from dialogs.clock import utcnow
    from dialogs.desk import DeskService
    from dialogs.ledger import AttemptInFlight, ExceedsRefundable, NothingToRefund
    from dialogs.lifecycle import TRIGGERS, ForbiddenTransition

    if trigger != "confirm" and (trigger not in TRIGGERS or trigger in (
            "withdraw", "appeal", "provide_info", "confirm_refund", "auto_approve", "start_refund")):
        console.print(f"[red]Unknown action {trigger!r}[/red] (customers withdraw, appeal and add material "
                      "themselves; finance uses mark-refunded and mark-failed).")
        raise typer.Exit(2)
    settings = _config(config)
    try:
        wanted = Decimal(amount) if amount is not None else None
    except InvalidOperation:
        console.print(f"[red]not an amount: {amount}[/red]")
        raise typer.Exit(2) from None
    workflow = _workflow(settings)
    desk = DeskService(settings.core, workflow) if settings.core.desk.chat_id else None

    async def go(database: Database) -> int:
        person = await person_named(database, settings, by)
        if person is None:
            return 2
        try:
            async with database.uow() as uow:
                at = utcnow()
                if trigger in staff.DESK_COMMANDS:
                    done = await staff.decide(uow, workflow, desk, case_no, trigger, person=person, at=at,
                                              note=note, amount=wanted)
                    status, waiting, said = done.status, done.waiting, done.said
                else:
                    status = (await workflow.move(uow, case_no, trigger, actor=person.actor, at=at, note=note)).status
                    waiting, said = False, ()
                await uow.commit()
        except KeyError:
            console.print(f"[red]No case {case_no}.[/red]")
            return EXIT_UNKNOWN_CASE
        except (ForbiddenTransition, AttemptInFlight, NothingToRefund, ExceedsRefundable,
                staff.NeedsSecondPerson) as exc:
            console.print(f"[red]Not allowed:[/red] {exc}.")
            return EXIT_FORBIDDEN
        for line in said:
            console.print(line, markup=False)
        if trigger == "approve" and waiting and status is not CaseStatus.REFUNDING:
            console.print(f"{case_no} waits for a supervisor: refundbot cases move {case_no} confirm --by <supervisor>.")
            return 0
        if trigger in staff.DESK_COMMANDS and status not in _DECIDED[trigger]:
            return EXIT_FORBIDDEN  # the desk refused (it said why above)
        console.print(f"{case_no} is now {status.value}; the customer will be told.")
        return 0

    _on_database(settings, go)


@cases_app.command("mark-failed")
def cases_mark_failed(
    case_no: Annotated[str, typer.Argument(metavar="CASE", help="Case number, e.g. R20261124-0001.")],
    by: Annotated[str, typer.Option("--by", help="Who states that the payout failed (kept in the case history).")],
    note: Annotated[str, typer.Option("--note", help="Why it failed, shown to the customer with the news.")] = "",
    config: ConfigOption = None,
) -> None:
    """The payout of the case's open refund attempt failed: the case goes to refund_failed.

    Finance or the payment channel says so: the attempt is failed, and the case is ready for a retry
    under a new key. Use it only once the outcome is known: an attempt the channel may still pay must
    not be failed.

    Exit codes: 0 done (or already failed), 2 unknown person, 3 no such case, 4 the case is not waiting
    for money."""
    _mark(config, case_no, succeeded=False, by=by, note=note)


cli_cases.register(cases_app)
cli_backup.register(app)
cli_customers.register(app)
cli_staff.register(app)
cli_reconcile.register(app)


# --- the setup: doctor and calendar (bot.cli_doctor) ---------------------------------------------

from bot.cli_doctor import calendar, doctor  # registered here, written there

app.command()(doctor)
app.command()(calendar)


def main() -> None:
    app()
