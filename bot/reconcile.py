"""Reconciliation: what the books say of each refund attempt against what its rail says (`refundbot
reconcile`, and daily by bot/workers/reconcile.py).

Each attempt of the window whose gateway can be asked is queried (RefundGateway.query, a few at a time)
and compared; nothing in the books changes. One line per attempt, and one more per order whose rail
paid out more than the books say (or more than the purchase cost):

    rail \\ books   pending    requested  succeeded  failed
    no refund      ok         missing    missing    ok
    processing     status     ok*        status     status
    paid           unbooked   unbooked   ok*        unbooked
    refused        status     status     status     ok
    no answer      unknown (whatever the books say)

ok*: `amount_differs` when the rail names another amount. A rail that says "paid" without an amount
is taken to have paid the attempt's amount.
"""

from __future__ import annotations

import asyncio
import csv
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, TextIO

from dialogs.domain import RefundStatus
from dialogs.ports import GatewayResult, RefundGateway

if TYPE_CHECKING:
    from storage.reconcile import BookedAttempt
    from storage.uow import Database

# Gateways whose `query` tells nothing about money: "manual" (finance pays by hand) and "http" (the
# platform deduplicates by key, so its query always answers "send it again").
UNASKABLE = frozenset({"manual", "http"})
CONCURRENCY = 4  # queries in flight at once: rails rate-limit their merchants


class Kind(StrEnum):
    OK = "ok"
    MISSING = "missing"  # the books say the rail took it (succeeded / requested); the rail has no such refund
    UNBOOKED = "unbooked"  # the rail paid; the books say pending, requested or failed
    AMOUNT_DIFFERS = "amount_differs"
    STATUS_DIFFERS = "status_differs"  # e.g. the rail still processing what the books call succeeded
    DOUBLED = "doubled"  # per order: the rail paid more than the books' succeeded sum, or than was paid
    UNKNOWN = "unknown"  # the rail could not answer (or its gateway is not configured)


CSV_COLUMNS = ("case_no", "order_no", "key", "gateway", "books_status", "books_amount", "rail_status",
               "rail_amount", "rail_refund_id", "kind", "note")


@dataclass(frozen=True, slots=True)
class Line:
    case_no: str
    order_no: str
    key: str  # the attempt's idempotency key ("" on an order's `doubled` line)
    gateway: str
    books_status: str
    books_amount: Decimal | None
    rail_status: str  # the rail's own word (or ours when it has none); "not_found"; "" when unknown
    rail_amount: Decimal | None
    rail_ref: str
    kind: Kind
    note: str = ""
    paid_on_rail: bool = False  # the rail said the money went out (rail_status is the rail's own word)

    def csv_row(self) -> list[str]:
        return [self.case_no, self.order_no, self.key, self.gateway, self.books_status, _money(self.books_amount),
                self.rail_status, _money(self.rail_amount), self.rail_ref, self.kind.value, self.note]


@dataclass(frozen=True, slots=True)
class Report:
    lines: list[Line]
    skipped: int  # attempts of gateways that cannot be asked (manual, http)

    @property
    def mismatches(self) -> list[Line]:
        return [line for line in self.lines if line.kind is not Kind.OK]


NOT_FOUND = "not_found"


def compare(booked: BookedAttempt, answer: GatewayResult | None | Exception) -> Line:
    """One attempt: the books against the rail's answer (None: no such refund; an exception: no answer)."""
    attempt = booked.attempt
    books = attempt.status

    def line(kind: Kind, rail_status: str = "", rail_amount: Decimal | None = None, ref: str = "",
             note: str = "", paid: bool = False) -> Line:
        return Line(attempt.case_no, booked.payment.order_no, attempt.idempotency_key, attempt.gateway,
                    books.value, attempt.amount, rail_status, rail_amount, ref, kind, note, paid)

    if isinstance(answer, Exception):
        return line(Kind.UNKNOWN, note=_first_line(answer) or type(answer).__name__)
    if answer is None:
        kind = Kind.MISSING if books in (RefundStatus.SUCCEEDED, RefundStatus.REQUESTED) else Kind.OK
        return line(kind, NOT_FOUND, note="the rail has no such refund" if kind is Kind.MISSING else "")
    rail = answer.status
    amount = answer.amount if answer.amount is not None else (attempt.amount if rail is RefundStatus.SUCCEEDED
                                                               else None)
    said = answer.rail_status or rail.value
    ref = answer.external_ref or ""
    if rail is RefundStatus.SUCCEEDED and books is not RefundStatus.SUCCEEDED:
        kind = Kind.UNBOOKED
    elif rail is books:
        kind = Kind.OK if rail is RefundStatus.FAILED or amount is None or amount == attempt.amount \
            else Kind.AMOUNT_DIFFERS
    else:
        kind = Kind.STATUS_DIFFERS
    return line(kind, said, amount, ref, answer.reason if kind is not Kind.OK else "",
                paid=rail is RefundStatus.SUCCEEDED)


def doubled(booked: Iterable[BookedAttempt], lines: Iterable[Line],
            refunded_in_books: Mapping[str, Decimal]) -> list[Line]:
    """Per order: a `doubled` line when the rail paid more for the attempts asked than the books say they
    paid, or when that plus what the books paid back otherwise (other attempts, other days, by hand)
    passes what the purchase cost."""
    paid_for = {b.payment.order_no: b.payment.paid for b in booked}
    first_case: dict[str, str] = {}
    rail_paid: dict[str, Decimal] = {}
    books_paid: dict[str, Decimal] = {}
    for line in lines:
        first_case.setdefault(line.order_no, line.case_no)
        if line.kind is Kind.UNKNOWN:
            continue
        if line.books_status == RefundStatus.SUCCEEDED.value and line.books_amount is not None:
            books_paid[line.order_no] = books_paid.get(line.order_no, Decimal(0)) + line.books_amount
        if line.paid_on_rail and line.rail_amount is not None:
            rail_paid[line.order_no] = rail_paid.get(line.order_no, Decimal(0)) + line.rail_amount
    found: list[Line] = []
    for order_no, out in rail_paid.items():
        in_books = books_paid.get(order_no, Decimal(0))
        elsewhere = refunded_in_books.get(order_no, Decimal(0)) - in_books
        total, paid = out + elsewhere, paid_for[order_no]
        if out > in_books or total > paid:
            found.append(Line(first_case[order_no], order_no, "", "", RefundStatus.SUCCEEDED.value, in_books,
                              RefundStatus.SUCCEEDED.value, out, "", Kind.DOUBLED,
                              f"the rail paid back {out:.2f} against {in_books:.2f} in the books; "
                              f"{total:.2f} paid back in all of {paid:.2f} paid", paid_on_rail=True))
    return found


async def reconcile(database: Database, gateways: Mapping[str, RefundGateway], since: datetime | None,
                    until: datetime | None, *, only: str | None = None, concurrency: int = CONCURRENCY,
                    call_timeout: float = 30.0) -> Report:
    """Ask each attempt's rail about every attempt created in [since, until) (of gateway `only`, when
    given) and compare; `gateways` are the built gateways by name. Never changes the books."""
    from storage.reconcile import attempts_between, booked_refunded

    booked = await attempts_between(database, since, until, [only] if only else ())
    asked = [b for b in booked if b.attempt.gateway not in UNASKABLE]
    limit = asyncio.Semaphore(concurrency)

    async def ask(item: BookedAttempt) -> Line:
        gateway = gateways.get(item.attempt.gateway)
        if gateway is None:
            return compare(item, LookupError(f"gateway {item.attempt.gateway!r} is not configured"))
        async with limit:
            answer: GatewayResult | None | Exception
            try:
                async with asyncio.timeout(call_timeout):
                    answer = await gateway.query(item.attempt, item.payment)
            except TimeoutError:
                answer = TimeoutError(f"no answer within {call_timeout:g} s")
            except Exception as exc:  # noqa: BLE001 - GatewayUnavailable, or an answer it could not read: unknown
                answer = exc
        return compare(item, answer)

    lines = list(await asyncio.gather(*(ask(item) for item in asked)))
    totals = await booked_refunded(database, sorted({line.order_no for line in lines}))
    return Report(lines + doubled(asked, lines, totals), skipped=len(booked) - len(asked))


def write_csv(report: Report, out: TextIO) -> None:
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for line in report.lines:
        writer.writerow(line.csv_row())


def _money(amount: Decimal | None) -> str:
    return f"{amount:.2f}" if amount is not None else ""


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0]
