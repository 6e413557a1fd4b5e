"""Which order a customer may claim, as callbacks of the conversation's table (mixed into `Dialog`).

The lookup and its cool-downs (per chat, and per number across chats); ownership (an order bound to
the account opens for it alone; an unbound one for the last four digits of the buyer's phone, or the
shop's way: the checkout e-mail / contact plus the 查询密码; any order for the shop's signed deep link,
dialogs.proof); and the claim rules: one open case per order, never a claim on money already refunded or on its way.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from dialogs import ledger, proof
from dialogs.dialog_part import DialogPart
from dialogs.domain import OPEN_STATUSES, Case, Order
from dialogs.ports import LookupTally
from dialogs.texts import money, when
from dialogs.words import deadline_line


class OrderClaims(DialogPart):
    """Callbacks of the lookup, ownership and claim rows; mixed into dialogs.conversation.Dialog."""

    order: Order | None
    tally: LookupTally | None
    existing: Case | None
    balance: ledger.Balance | None

    if TYPE_CHECKING:  # provided by Dialog
        async def draft_order(self) -> Order | None: ...

    # -- lookup, cool-downs and ownership ------------------------------------------------------
    async def ask_order(self) -> None:
        self.start_draft()
        self.say("ask_order", example=self.settings.orders.number_example)

    def order_text(self) -> str:
        return self.event.text.strip().upper()

    def recent_failures(self) -> list[datetime]:
        window = timedelta(minutes=self.settings.orders.failed_lookup_window_minutes)
        stamps = [datetime.fromisoformat(s) for s in self.data.get("failures", [])]
        return [s for s in stamps if self.now - s < window]

    def cooldown_until(self) -> datetime | None:
        """This chat's pause: too many failures here, whatever the numbers."""
        failures = self.recent_failures()
        if len(failures) < self.settings.orders.max_failed_lookups:
            return None
        return self._pause_end(max(failures))

    def number_paused_until(self) -> datetime | None:
        """The pause of the number in play: too many failures on it from any chats together."""
        tally = self.tally
        if tally is None or tally.last_failed_at is None or tally.failures < self.settings.orders.max_failed_lookups:
            return None
        return self._pause_end(tally.last_failed_at)

    def _pause_end(self, last_failure: datetime) -> datetime | None:
        until = last_failure + timedelta(minutes=self.settings.orders.cooldown_minutes)
        return until if until > self.now else None

    async def lookups_allowed(self) -> bool:
        return self.cooldown_until() is None

    async def say_cooling_down(self) -> None:
        # One text for both pauses: a paused number reads the same whether its order exists or not.
        until = max(u for u in (self.cooldown_until(), self.number_paused_until()) if u is not None)
        minutes = max(1, math.ceil((until - self.now).total_seconds() / 60))
        self.say("cooling_down", minutes=minutes, until=when(until, self.settings.i18n.timezone))

    async def well_formed_order(self) -> bool:
        return re.fullmatch(self.settings.orders.number_pattern, self.order_text()) is not None

    async def say_malformed_order(self) -> None:
        self.say("order_malformed", example=self.settings.orders.number_example)

    async def load_order(self) -> None:
        if self.order is None or self.order.order_no != self.order_text():
            self.order = await self.uow.orders.get(self.order_text())

    async def order_bound_to_user(self) -> bool:
        return self.order is not None and self.order.buyer_telegram_id == self.event.user_id

    async def load_number_tally(self) -> None:
        self.tally = await self.uow.lookups.get(self.order_text())

    async def number_open(self) -> bool:
        return self.number_paused_until() is None

    async def ask_phone(self) -> None:
        # Asked for any well-formed number not bound to this account, found or not: the answer
        # must not tell a stranger whether an order exists.
        self.data["pending_order"] = self.order_text()
        self.say("ask_phone")

    async def four_digits(self) -> bool:
        text = self.event.text.strip()
        return len(text) == 4 and text.isascii() and text.isdigit()

    async def say_phone_format(self) -> None:
        self.say("phone_format")

    def pending_number(self) -> str:
        return str(self.data.get("pending_order", ""))

    async def lock_pending_number(self) -> None:
        # Held until the update commits: chats checking digits for this number take turns, so the
        # check below and the failure it may record are one step for the limit.
        self.tally = await self.uow.lookups.lock(self.pending_number(), now=self.now)

    async def say_number_paused(self) -> None:
        self.data.pop("pending_order", None)
        self.data.pop("pending_contact", None)
        await self.say_cooling_down()

    async def load_pending_order(self) -> None:
        wanted = self.pending_number()
        if self.order is None or self.order.order_no != wanted:
            self.order = await self.uow.orders.get(wanted)

    async def phone_matches(self) -> bool:
        # Phone digits prove only an unbound order: a bound one opens for its own account alone; an
        # erased phone number (retention, `customers forget`) proves nothing.
        order = self.order
        return (order is not None and order.buyer_telegram_id is None and len(order.buyer_phone) >= 4
                and order.buyer_phone[-4:] == self.event.text.strip())

    async def count_failure(self) -> int:
        """One failed proof, against this chat and against the number in play (when there is one); the
        guesses left before the pause."""
        orders = self.settings.orders
        self.data.setdefault("failures", []).append(self.now.isoformat())
        window = timedelta(minutes=orders.failed_lookup_window_minutes)
        failures = len(self.recent_failures())
        if self.pending_number():
            self.tally = await self.uow.lookups.record(
                self.pending_number(), at=self.now, window=window,
                forget_before=self.now - max(window, timedelta(minutes=orders.cooldown_minutes)))
            failures = max(failures, self.tally.failures)
        self.data.pop("pending_order", None)
        self.data.pop("pending_contact", None)
        return orders.max_failed_lookups - failures

    async def say_not_found(self) -> None:
        left = await self.count_failure()
        if left <= 0:
            await self.say_cooling_down()
        else:
            # One text whatever was wrong (number, contact or password): it names none of them.
            key = "order_not_found" if self.settings.orders.proof == "phone" else "proof.not_found"
            self.say(key, example=self.settings.orders.number_example, left=left)

    # -- the shop's way: checkout contact, then 查询密码 ----------------------------------------
    async def proves_by_contact(self) -> bool:
        return self.settings.orders.proof == "contact_password"

    async def ask_contact(self) -> None:
        # Asked for any well-formed number not bound to this account, found or not (as ask_phone).
        self.data["pending_order"] = self.order_text()
        self.say("proof.ask_contact")

    async def contact_well_formed(self) -> bool:
        return proof.plausible_contact(self.event.text)

    async def say_contact_format(self) -> None:
        self.say("proof.contact_format")

    async def keep_contact_ask_password(self) -> None:
        # Nothing is checked yet: the password is asked whatever the contact, so the contact alone
        # tells a stranger nothing; both are judged together below.
        self.data["pending_contact"] = self.event.text.strip()
        self.say("proof.ask_password")

    async def password_well_formed(self) -> bool:
        return proof.plausible_password(self.event.text)

    async def say_password_format(self) -> None:
        self.say("proof.password_format", max=proof.MAX_PASSWORD)

    async def contact_and_password_match(self) -> bool:
        # As with phone digits, only an unbound order; an order without a 查询密码 at the shop is
        # proven by its contact alone (the password was still asked: the questions never depend on
        # the order).
        order = self.order
        if order is None or order.buyer_telegram_id is not None:
            return False
        if not proof.contact_matches(order.buyer_contact, str(self.data.get("pending_contact", ""))):
            return False
        return not order.query_secret or proof.password_matches(order.order_no, order.query_secret, self.event.text)

    # -- the shop's signed deep link (/start rf_<ORDER>_<EXPIRES>_<SIG>) ------------------------
    def link(self) -> proof.LinkCheck:
        return proof.check_link(self.settings.orders.link_secret, self.event.text, self.now)

    async def load_link_order(self) -> None:
        check = self.link()
        if check.order_no:
            self.data["pending_order"] = check.order_no.upper()
        if check.problem is None:
            await self.load_pending_order()

    async def link_valid(self) -> bool:
        return self.link().problem is None

    async def link_opens_order(self) -> bool:
        # The shop vouches for whoever holds its link, but an order bound to another Telegram account
        # still opens for that account alone.
        order = self.order
        return (self.link().problem is None and order is not None
                and order.buyer_telegram_id in (None, self.event.user_id))

    async def link_order_missing(self) -> bool:
        return self.link().problem is None and self.order is None

    async def say_link_order_missing(self) -> None:
        # Signed by the shop, so it exists there; not here yet (an import or a connector lagging).
        self.data.pop("pending_order", None)
        self.say("proof.link_order_missing")

    async def lock_link_number(self) -> None:
        if self.pending_number():
            await self.lock_pending_number()

    async def say_link_refused(self) -> None:
        left = await self.count_failure()
        if left <= 0:
            await self.say_cooling_down()
        else:
            self.say("proof.link_expired")

    # -- claims: one open case per order, never on refunded money ------------------------------
    async def load_claims(self, lock: bool = False) -> None:
        """The order's open case (any reason) and refund ledger: one open case per order, and never a
        claim on money already refunded or on its way."""
        order_no = self.order.order_no if self.order is not None else self.data.get("order_no", "")
        if not order_no or (self.balance is not None and not lock):
            return
        self.balance = await ledger.order_balance(self.uow, order_no, lock=lock,
                                                  fallback_paid=self.order.amount if self.order else ledger.ZERO)
        open_cases = [c for c in await self.uow.cases.for_order(order_no) if c.status in OPEN_STATUSES]
        self.existing = open_cases[-1] if open_cases else None

    async def lock_claims(self) -> None:
        await self.draft_order()
        await self.load_claims(lock=True)  # the ledger is read again under the order's lock before filing

    async def order_closed_to_claims(self) -> bool:
        return self.existing is not None or (self.balance is not None and self.balance.remaining <= 0)

    async def say_order_closed(self) -> None:
        case = self.existing
        if case is None:
            assert self.balance is not None
            self.say("order_fully_refunded", refunded=money(self.balance.paid - self.balance.remaining))
        elif case.user_id != self.event.user_id:
            self.say("order_case_elsewhere")  # someone else's case: not even its number
        else:
            self.say("case_exists", case_no=case.case_no, status=self.t(f"status.{case.status.value}"),
                     deadline=deadline_line(self.t, case))
        self.clear_draft()
