"""An order's money and identity facts, and who may change them once the order has cases.

A case is filed against what the order said then: what was paid, by whom, through which channel and
trade number. A later upsert (the platform's order callback, a file import, a refresh from an external
order source) must not rewrite those facts under the case — a ¥99.50 order "corrected" to ¥0.01 after
a refund, or handed to another buyer while its refund is under way. Only an explicit, audited
correction (`correct`) may, and never below what is already refunded or on its way.

The rule lives here; storage.orders applies it in every upsert path (single, bulk, keep-facts refresh).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from dialogs import ledger
from dialogs.domain import Order, PaymentChannel
from dialogs.ports import FactsMode, UnitOfWork
from dialogs.texts import Texts, money

# What a case was filed against: an upsert of an order with cases may not change these.
FACTS = ("amount", "buyer_phone", "buyer_telegram_id", "buyer_contact", "payment_channel", "trade_no")

# How an upsert treats an order that has cases (FactsMode): "refuse" raises FactsLocked when a fact would
# change; "keep" stores the other fields and keeps the stored facts (an external source's refresh);
# "correct" changes them (only `correct` below, which checks and records it, passes this).
__all__ = ["FACTS", "FactsLocked", "FactsMode", "changed_facts", "correct", "keep_facts"]

CORRECTION = "order_correction"  # the case event's action name (dialogs.desk.history words it)


class FactsLocked(Exception):
    """An upsert would change facts of an order that has cases."""

    def __init__(self, order_no: str, fields: tuple[str, ...]) -> None:
        super().__init__(f"order {order_no} has refund cases: {', '.join(fields)} cannot change by an upsert "
                         f"(use the audited correction)")
        self.order_no, self.fields = order_no, fields


class NoSuchOrder(Exception):
    pass


class NothingToCorrect(Exception):
    """The correction names no fact, or every fact it names is already so."""


class BelowRefunded(Exception):
    """A corrected amount below what the order already refunded or has on its way."""

    def __init__(self, order_no: str, amount: Decimal, committed: Decimal) -> None:
        super().__init__(f"order {order_no}: amount {amount} is below the {committed} CNY already refunded "
                         f"or on its way")
        self.order_no, self.amount, self.committed = order_no, amount, committed


def changed_facts(stored: Order, new: Order) -> tuple[str, ...]:
    """The facts `new` would change, in FACTS order."""
    return tuple(name for name in FACTS if getattr(stored, name) != getattr(new, name))


def keep_facts(stored: Order, new: Order) -> Order:
    """`new` with the stored order's facts: everything else (delivery, redeemed, credited...) updates."""
    return replace(new, **{name: getattr(stored, name) for name in FACTS})


def corrected(stored: Order, changes: Mapping[str, Any]) -> Order:
    """The stored order with `changes` (fact name -> value; None clears an optional fact) applied."""
    unknown = sorted(set(changes) - set(FACTS))
    if unknown:
        raise ValueError(f"not a correctable fact: {', '.join(unknown)}")
    values = dict(changes)
    if "payment_channel" in values and not isinstance(values["payment_channel"], PaymentChannel):
        values["payment_channel"] = PaymentChannel(values["payment_channel"])
    return replace(stored, **values)


def correction_note(stored: Order, new: Order, fields: tuple[str, ...], reason: str) -> str:
    """The case event's note: which facts changed (amounts with both values; personal data by name
    only, so the history never repeats a phone number) and why."""
    said = [f"amount {stored.amount:.2f} -> {new.amount:.2f}" if name == "amount" else name for name in fields]
    return f"{CORRECTION}: {', '.join(said)}; {reason.strip()}"


def correction_words(detail: str, t: Texts) -> str:
    """A correction's note (after "order_correction:") in the desk's language: the facts by their names,
    the amount with both values, then the reason."""
    changes, _, reason = detail.partition(";")
    said: list[str] = []
    for item in (part.strip() for part in changes.split(",")):
        name, _, values = item.partition(" ")
        before, _, after = values.partition(" -> ")
        label = t(f"of.field.{name}", default=name)
        try:
            said.append(t("of.changed_amount", field=label, before=money(Decimal(before)), after=money(Decimal(after)))
                        if after else label)
        except ArithmeticError:  # not what correction_note writes: as it was written
            said.append(item)
    return t("of.correction", fields=t("of.separator").join(said), reason=reason.strip())


async def correct(uow: UnitOfWork, order_no: str, changes: Mapping[str, Any], *, reason: str, actor: str,
                  at: datetime) -> tuple[Order, tuple[str, ...], list[str]]:
    """Change facts of an order on purpose: under the order's lock, never below what is refunded or in
    flight, recorded on every case of the order. Returns (the order now, the facts changed, the case
    numbers told). Raises NoSuchOrder, NothingToCorrect, BelowRefunded, ValueError (a bad field)."""
    stored = await uow.orders.lock(order_no)
    if stored is None:
        raise NoSuchOrder(order_no)
    new = corrected(stored, changes)
    fields = changed_facts(stored, new)
    if not fields:
        raise NothingToCorrect(f"order {order_no}: the correction changes nothing")
    if "amount" in fields:
        balance = await ledger.order_balance(uow, order_no)  # the order is locked already
        committed = balance.refunded + balance.in_flight
        if new.amount < committed:
            raise BelowRefunded(order_no, new.amount, committed)
    await uow.orders.upsert(new, facts="correct")
    note = correction_note(stored, new, fields, reason)
    cases = await uow.cases.for_order(order_no)
    for case in cases:
        await uow.cases.log(case.case_no, actor=actor, at=at, note=note)
    return new, fields, [case.case_no for case in cases]
