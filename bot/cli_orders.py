"""`refundbot orders correct`: the audited correction of an order's money and identity facts
(dialogs.order_facts.correct), from the command line, as POST /api/v1/orders/{order_no}/correction does."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from bot.cli_base import ConfigOption, console, load_settings, on_database, person_named

if TYPE_CHECKING:
    from storage.uow import Database

EXIT_BAD_ARGUMENTS = 2
EXIT_UNKNOWN_ORDER = 3
EXIT_REFUSED = 4


def register(orders: typer.Typer) -> None:
    orders.command("correct")(correct)


def correct(
    order_no: Annotated[str, typer.Argument(help="The order number.")],
    reason: Annotated[str, typer.Option(help="Why (recorded on every case of the order).")],
    by: Annotated[str, typer.Option(help="Who decided it (an agent's id or alias when the desk has staff).")],
    amount: Annotated[str | None, typer.Option(help="The amount actually paid, CNY (e.g. 80.00).")] = None,
    buyer_phone: Annotated[str | None, typer.Option(help="The buyer's phone number.")] = None,
    trade_no: Annotated[str | None, typer.Option(help="The payment's transaction number.")] = None,
    config: ConfigOption = None,
) -> None:
    """Correct an order's amount, buyer phone or trade number, even with refund cases: never below
    what is refunded or on its way, and recorded on every case of the order."""
    from dialogs.clock import utcnow
    from dialogs.order_facts import BelowRefunded, NoSuchOrder, NothingToCorrect
    from dialogs.order_facts import correct as correct_order

    changes: dict[str, Any] = {}
    if amount is not None:
        try:
            value = Decimal(amount)
        except InvalidOperation:
            value = Decimal("NaN")
        if not value.is_finite() or value <= 0 or value != value.quantize(Decimal("0.01")) or "e" in amount.lower():
            console.print(f"[red]not an amount: {escape(amount)}[/red] (a plain decimal, at most 2 places)")
            raise typer.Exit(EXIT_BAD_ARGUMENTS)
        changes["amount"] = value.quantize(Decimal("0.01"))
    if buyer_phone is not None:
        if not buyer_phone.strip():
            console.print("[red]--buyer-phone may not be empty[/red] (an order always has one).")
            raise typer.Exit(EXIT_BAD_ARGUMENTS)
        changes["buyer_phone"] = buyer_phone.strip()
    if trade_no is not None:
        changes["trade_no"] = trade_no.strip() or None  # empty: the order has no trade number after all
    if not changes or not reason.strip():
        console.print("[red]Name a fact to correct (--amount, --buyer-phone, --trade-no) and a --reason.[/red]")
        raise typer.Exit(EXIT_BAD_ARGUMENTS)
    settings = load_settings(config)

    async def go(database: Database) -> int:
        person = await person_named(database, settings, by)
        if person is None:
            return EXIT_BAD_ARGUMENTS
        try:
            async with database.uow() as uow:
                order, fields, told = await correct_order(uow, order_no, changes, reason=reason,
                                                          actor=person.actor, at=utcnow())
                await uow.commit()
        except NoSuchOrder:
            console.print(f"[red]No order {escape(order_no)}.[/red]")
            return EXIT_UNKNOWN_ORDER
        except (BelowRefunded, NothingToCorrect) as exc:
            console.print(f"[red]Not corrected:[/red] {escape(str(exc))}.")
            return EXIT_REFUSED
        console.print(f"order {escape(order.order_no)}: corrected {', '.join(fields)}; "
                      f"told {len(told)} case(s){': ' + ', '.join(told) if told else ''}")
        return 0

    on_database(settings, go)
