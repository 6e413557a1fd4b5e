"""The customer's refund conversation: a `transitions` state table and the model it drives.

The table is data (as in transitions' README); one `AsyncMachine` is shared by every chat and a
`Dialog` model is built per update, so a conversation costs a row, not a machine.
"""

from __future__ import annotations

import math
import re
import secrets
import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from transitions.extensions.asyncio import AsyncMachine

from dialogs import ledger, policy, sla
from dialogs.case_actions import CASE_ACTION_BUTTONS, CASE_ACTION_TRANSITIONS, CaseActions
from dialogs.cases import CaseWorkflow
from dialogs.coaching import is_concrete
from dialogs.domain import (
    OPEN_STATUSES,
    AgentRequest,
    Case,
    CaseStatus,
    Conversation,
    EvidenceItem,
    Order,
    OutboxMessage,
    Reason,
    Verdict,
)
from dialogs.io import Button, Event, Reply
from dialogs.ports import LookupTally, UnitOfWork
from dialogs.settings import CoreSettings
from dialogs.steps import Step
from dialogs.tables import plain_table
from dialogs.texts import Texts, money, when
from dialogs.workdays import WorkingCalendar

S = Step
_IN_FLOW = [s.value for s in Step if s is not Step.IDLE]

# trigger, source, dest, conditions, after — read top to bottom: the first row whose conditions hold wins.
TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "begin", "source": "*", "dest": S.AWAITING_ORDER, "after": "ask_order"},
    {"trigger": "cancel", "source": _IN_FLOW, "dest": S.IDLE, "after": "say_cancelled"},
    {"trigger": "submit_order", "source": [S.IDLE, S.AWAITING_ORDER], "dest": None,
     "unless": "lookups_allowed", "after": "say_cooling_down"},
    {"trigger": "submit_order", "source": [S.IDLE, S.AWAITING_ORDER], "dest": None,
     "unless": "well_formed_order", "after": "say_malformed_order"},
    {"trigger": "submit_order", "source": [S.IDLE, S.AWAITING_ORDER], "dest": S.IDLE,
     "prepare": ["load_order", "load_claims"], "conditions": ["order_bound_to_user", "order_closed_to_claims"],
     "after": "say_order_closed"},
    {"trigger": "submit_order", "source": [S.IDLE, S.AWAITING_ORDER], "dest": S.CHOOSING_REASON,
     "prepare": "load_order", "conditions": "order_bound_to_user", "after": "offer_reasons"},
    {"trigger": "submit_order", "source": [S.IDLE, S.AWAITING_ORDER], "dest": None,
     "prepare": "load_number_tally", "unless": "number_open", "after": "say_cooling_down"},
    {"trigger": "submit_order", "source": [S.IDLE, S.AWAITING_ORDER], "dest": S.AWAITING_PHONE,
     "after": "ask_phone"},
    {"trigger": "submit_phone", "source": S.AWAITING_PHONE, "dest": None,
     "unless": "four_digits", "after": "say_phone_format"},
    {"trigger": "submit_phone", "source": S.AWAITING_PHONE, "dest": S.AWAITING_ORDER,
     "prepare": "lock_pending_number", "unless": "number_open", "after": "say_number_paused"},
    {"trigger": "submit_phone", "source": S.AWAITING_PHONE, "dest": S.IDLE,
     "prepare": ["load_pending_order", "load_claims"], "conditions": ["phone_matches", "order_closed_to_claims"],
     "after": "say_order_closed"},
    {"trigger": "submit_phone", "source": S.AWAITING_PHONE, "dest": S.CHOOSING_REASON,
     "prepare": "load_pending_order", "conditions": "phone_matches", "after": "offer_reasons"},
    {"trigger": "submit_phone", "source": S.AWAITING_PHONE, "dest": S.AWAITING_ORDER,
     "after": "say_not_found"},
    {"trigger": "choose_reason", "source": S.CHOOSING_REASON, "dest": None,
     "prepare": "take_reason", "unless": "reason_fits", "after": "refuse_button"},
    {"trigger": "choose_reason", "source": S.CHOOSING_REASON, "dest": S.IDLE,
     "prepare": "load_claims", "conditions": "order_closed_to_claims", "after": "say_order_closed"},
    {"trigger": "choose_reason", "source": S.CHOOSING_REASON, "dest": S.REVIEWING_VERDICT,
     "after": "show_verdict"},
    {"trigger": "proceed", "source": S.REVIEWING_VERDICT, "dest": S.DESCRIBING,
     "conditions": "verdict_allows_filing", "after": "ask_description"},
    {"trigger": "ask_human", "source": S.REVIEWING_VERDICT, "dest": S.DESCRIBING,
     "after": ["mark_wants_human", "ask_description"]},
    {"trigger": "describe", "source": S.DESCRIBING, "dest": S.COLLECTING_EVIDENCE,
     "conditions": "description_is_concrete", "after": ["keep_description", "ask_evidence"]},
    {"trigger": "describe", "source": S.DESCRIBING, "dest": None, "after": "coach_description"},
    {"trigger": "add_evidence", "source": S.COLLECTING_EVIDENCE, "dest": None,
     "prepare": "take_evidence", "unless": "evidence_full", "after": "say_evidence_progress"},
    {"trigger": "add_evidence", "source": S.COLLECTING_EVIDENCE, "dest": S.CONFIRMING,
     "after": "show_summary"},
    {"trigger": "finish_evidence", "source": S.COLLECTING_EVIDENCE, "dest": S.CONFIRMING,
     "prepare": "count_evidence", "conditions": "enough_evidence", "after": "show_summary"},
    {"trigger": "finish_evidence", "source": S.COLLECTING_EVIDENCE, "dest": None,
     "after": "say_evidence_required"},
    {"trigger": "confirm", "source": S.CONFIRMING, "dest": S.IDLE,
     "prepare": "lock_claims", "conditions": "order_closed_to_claims", "after": "say_order_closed"},
    {"trigger": "confirm", "source": S.CONFIRMING, "dest": S.IDLE, "after": "file_case"},
    *CASE_ACTION_TRANSITIONS,
]


TRANSITIONS = plain_table(TRANSITIONS)

# Button actions the core hands out, mapped to the trigger they fire.
BUTTON_TRIGGERS = {
    "go": "proceed",
    "human": "ask_human",
    "cancel": "cancel",
    "done": "finish_evidence",
    "submit": "confirm",
    **CASE_ACTION_BUTTONS,
}

class SequentialAsyncMachine(AsyncMachine):
    """Runs a transition's callbacks one after another in the table's order, each awaited in place.

    AsyncMachine gathers them as concurrent tasks; ours share one unit of work, must not
    interleave, and a task per callback would hand the event loop away mid-transaction."""

    @staticmethod
    async def await_all(callables: list[Any]) -> list[Any]:
        return [await func() for func in callables]


MACHINE = SequentialAsyncMachine(
    model=None,
    states=[s.value for s in Step],
    transitions=TRANSITIONS,
    initial=S.IDLE.value,
    auto_transitions=False,
    send_event=False,
    ignore_invalid_triggers=False,
)


class Dialog(CaseActions):
    """The model of one update: the conversation, the event and what the callbacks produce."""

    def __init__(
        self,
        conv: Conversation,
        event: Event,
        uow: UnitOfWork,
        workflow: CaseWorkflow,
        texts: Texts,
        now: datetime,
    ) -> None:
        self.conv = conv
        self.state: str = conv.step
        self.event = event
        self.uow = uow
        self.workflow = workflow
        self.settings: CoreSettings = workflow.settings
        self.calendar: WorkingCalendar = workflow.calendar
        self.t = texts
        self.now = now
        self.replies: list[Reply] = []
        self.order: Order | None = None
        self.tally: LookupTally | None = None  # failed digit checks of the number in play, from any chat
        self.existing: Case | None = None
        self.balance: ledger.Balance | None = None  # the order's refund ledger, once read
        self.evidence_count = 0
        self.filed: Case | None = None
        self.outbox: list[OutboxMessage] = []
        self.forged = False
        self.hinted = False  # the only answer is a hint at what this step expects
        self._evidence_problem: str | None = None

    # -- helpers ------------------------------------------------------------------------------
    @property
    def data(self) -> dict[str, Any]:
        return self.conv.data

    def say(self, key: str, buttons: tuple[tuple[Button, ...], ...] = (), **kw: Any) -> None:
        self.replies.append(Reply(self.t(key, **kw), buttons))

    def new_nonce(self) -> str:
        """A fresh prompt id: buttons of older prompts stop working."""
        nonce = secrets.token_urlsafe(4)
        self.data["nonce"] = nonce
        return nonce

    def button(self, key: str, action: str, **kw: Any) -> Button:
        return Button(self.t(key, **kw), f"{self.data['nonce']}.{action}")

    def clear_draft(self) -> None:
        """Forget the request being built; failed lookups stay, so a cool-down survives a restart."""
        keep = {k: self.data[k] for k in ("failures",) if k in self.data}
        self.data.clear()
        self.data.update(keep)

    def start_draft(self) -> None:
        self.clear_draft()
        self.data["draft_id"] = uuid.uuid4().hex

    # -- order lookup -------------------------------------------------------------------------
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
        await self.say_cooling_down()

    async def load_pending_order(self) -> None:
        wanted = self.pending_number()
        if self.order is None or self.order.order_no != wanted:
            self.order = await self.uow.orders.get(wanted)

    async def phone_matches(self) -> bool:
        # Phone digits prove only an unbound order: a bound one opens for its own account alone.
        order = self.order
        return (order is not None and order.buyer_telegram_id is None
                and order.buyer_phone[-4:] == self.event.text.strip())

    async def say_not_found(self) -> None:
        orders = self.settings.orders
        self.data.setdefault("failures", []).append(self.now.isoformat())
        window = timedelta(minutes=orders.failed_lookup_window_minutes)
        self.tally = await self.uow.lookups.record(
            self.pending_number(), at=self.now, window=window,
            forget_before=self.now - max(window, timedelta(minutes=orders.cooldown_minutes)))
        self.data.pop("pending_order", None)
        left = orders.max_failed_lookups - max(len(self.recent_failures()), self.tally.failures)
        if left <= 0:
            await self.say_cooling_down()
        else:
            self.say("order_not_found", example=orders.number_example, left=left)

    async def offer_reasons(self) -> None:
        order = self.order
        assert order is not None
        self.data.pop("pending_order", None)
        self.data["order_no"] = order.order_no
        balance = self.balance or await ledger.order_balance(self.uow, order.order_no, fallback_paid=order.amount)
        if balance.remaining < balance.paid:  # part went back (or is on its way): only the rest can be claimed
            self.say("order_partly_refunded", refunded=money(balance.paid - balance.remaining),
                     remaining=money(balance.remaining))
        nonce = self.new_nonce()
        reasons = policy.reasons_for(order.product_kind)
        rows = tuple(
            (Button(self.t(f"reason.{r.value}"), f"{nonce}.r.{r.value}"),) for r in reasons
        ) + ((self.button("btn_cancel", "cancel"),),)
        self.say(
            "order_found",
            rows,
            order_no=order.order_no,
            product=order.product_name,
            amount=money(order.amount),
            paid_at=when(order.paid_at, self.settings.i18n.timezone),
            status=self.t(f"delivery.{order.delivery_status.value}"),
        )

    # -- reason and verdict -------------------------------------------------------------------
    async def draft_order(self) -> Order | None:
        """The order of the draft, read once per update."""
        if self.order is None or self.order.order_no != self.data.get("order_no"):
            self.order = await self.uow.orders.get(self.data.get("order_no", ""))
        return self.order

    async def take_reason(self) -> None:
        await self.draft_order()
        value = self.event.text.rsplit(".", 1)[-1]
        if self.order is not None and value in {r.value for r in policy.reasons_for(self.order.product_kind)}:
            self.data["reason"] = value

    async def reason_fits(self) -> bool:
        return "reason" in self.data

    async def refuse_button(self) -> None:
        self.forged = True

    def chosen_reason(self) -> Reason:
        return Reason(self.data["reason"])

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
                     due=case.review_due.isoformat())
        self.clear_draft()

    async def show_verdict(self) -> None:
        order = await self.draft_order()
        assert order is not None
        decision = policy.decide(order, self.chosen_reason(), self.now, self.settings.policy)
        self.data["verdict"] = decision.verdict.value
        self.data["rule_id"] = decision.rule_id
        await self.load_claims()
        assert self.balance is not None
        self.data["amount"] = str(self.balance.remaining)  # the claim: what the order has left
        self.new_nonce()
        why = self.t(f"rule.{decision.rule_id}", hours=self.settings.policy.card_claim_window_hours)
        note = ""
        for tag in sorted(order.tags & set(self.settings.policy.special_tags)):
            note += "\n" + self.t("special_note", note=self.t(f"tag_note.{tag}", default=tag))
        if decision.verdict is Verdict.NOT_ELIGIBLE:
            buttons = ((self.button("btn_ask_human", "human"),), (self.button("btn_cancel", "cancel"),))
        else:
            buttons = ((self.button("btn_continue", "go"),), (self.button("btn_cancel", "cancel"),))
        self.say(f"verdict.{decision.verdict.value}", buttons, rule=decision.rule_id, why=why, note=note)

    async def verdict_allows_filing(self) -> bool:
        return self.data.get("verdict") != Verdict.NOT_ELIGIBLE.value

    async def mark_wants_human(self) -> None:
        self.data["wants_human"] = True

    async def ask_description(self) -> None:
        self.new_nonce()
        self.say("ask_description", (( self.button("btn_cancel", "cancel"),),),
                 examples=self.t(f"examples.{self.chosen_reason().value}"))

    # -- description --------------------------------------------------------------------------
    async def description_is_concrete(self) -> bool:
        return is_concrete(self.event.text, self.settings.policy)

    async def coach_description(self) -> None:
        self.say("coach_description", examples=self.t(f"examples.{self.chosen_reason().value}"))

    async def keep_description(self) -> None:
        self.data["description"] = self.event.text.strip()[: self.settings.policy.max_description_chars]

    def evidence_prompt_buttons(self) -> tuple[tuple[Button, ...], ...]:
        needed = self.settings.policy.evidence_needed(self.chosen_reason())
        done_key = "btn_skip" if needed == 0 and self.evidence_count == 0 else "btn_done"
        return ((self.button(done_key, "done"),), (self.button("btn_cancel", "cancel"),))

    async def ask_evidence(self) -> None:
        self.new_nonce()
        needed = self.settings.policy.evidence_needed(self.chosen_reason())
        key = "ask_evidence_required" if needed else "ask_evidence_optional"
        self.say(key, self.evidence_prompt_buttons(), needed=needed, max=self.settings.policy.max_evidence,
                 kinds=self.t(f"evidence_kinds.{self.chosen_reason().value}"))

    # -- evidence -----------------------------------------------------------------------------
    async def take_evidence(self) -> None:
        """Store the file if it is acceptable; the reply says why not otherwise."""
        self.evidence_count = len(await self.uow.evidence.list_draft(self.data["draft_id"]))
        file = self.event.file
        if file is None or file.inspection is None:
            self._evidence_problem = "unreadable"
            return
        if self.evidence_count >= self.settings.policy.max_evidence:
            self._evidence_problem = "too_many"
            return
        found = file.inspection
        if not found.ok:
            self._evidence_problem = found.problem or "unreadable"
            return
        item = EvidenceItem(
            file_unique_id=file.file_unique_id, file_id=file.file_id, path=found.path, sha256=found.sha256,
            mime_type=found.mime_type, width=found.width, height=found.height, size=found.size,
        )
        if await self.uow.evidence.add_draft(self.data["draft_id"], self.event.chat_id, item):
            self.evidence_count += 1
        else:
            self._evidence_problem = "duplicate"

    async def evidence_full(self) -> bool:
        return self._evidence_problem is None and self.evidence_count >= self.settings.policy.max_evidence

    def evidence_limits(self) -> dict[str, Any]:
        return {
            "max_photo_mb": self.settings.policy.max_photo_mb,
            "max_document_mb": self.settings.policy.max_document_mb,
            "max_pixels_mp": round(self.settings.policy.max_pixels / 1_000_000),
            "max": self.settings.policy.max_evidence,
        }

    async def say_evidence_progress(self) -> None:
        if self._evidence_problem:
            self.say(f"evidence_problem.{self._evidence_problem}", self.evidence_prompt_buttons(),
                     **self.evidence_limits())
        else:
            self.say("evidence_received", self.evidence_prompt_buttons(), count=self.evidence_count,
                     **self.evidence_limits())

    async def count_evidence(self) -> None:
        self.evidence_count = len(await self.uow.evidence.list_draft(self.data["draft_id"]))

    async def enough_evidence(self) -> bool:
        return self.evidence_count >= self.settings.policy.evidence_needed(self.chosen_reason())

    async def say_evidence_required(self) -> None:
        needed = self.settings.policy.evidence_needed(self.chosen_reason())
        self.say("evidence_required", self.evidence_prompt_buttons(), needed=needed, count=self.evidence_count)

    # -- confirm and file ---------------------------------------------------------------------
    async def show_summary(self) -> None:
        self.evidence_count = len(await self.uow.evidence.list_draft(self.data["draft_id"]))
        order = await self.draft_order()
        assert order is not None
        self.new_nonce()
        buttons = ((self.button("btn_submit", "submit"),), (self.button("btn_cancel", "cancel"),))
        self.say(
            "summary",
            buttons,
            order_no=order.order_no,
            product=order.product_name,
            amount=money(Decimal(self.data["amount"])),
            reason=self.t(f"reason.{self.chosen_reason().value}"),
            verdict=self.t(f"verdict_short.{self.data['verdict']}"),
            rule=self.data["rule_id"],
            description=self.data["description"],
            count=self.evidence_count,
        )

    async def file_case(self) -> None:
        day = sla.local_day(self.now, self.settings)
        case_no = await self.uow.cases.next_case_no(day.strftime("%Y%m%d"))
        review_due = sla.review_due(self.now, self.settings, self.calendar)
        evidence = tuple(await self.uow.evidence.list_draft(self.data["draft_id"]))
        case = Case(
            case_no=case_no,
            order_no=self.data["order_no"],
            chat_id=self.event.chat_id,
            user_id=self.event.user_id,
            reason=self.chosen_reason(),
            verdict=Verdict(self.data["verdict"]),
            rule_id=self.data["rule_id"],
            description=self.data["description"],
            amount=min(Decimal(self.data["amount"]), self.balance.remaining if self.balance else ledger.ZERO),
            locale=self.conv.locale,
            status=CaseStatus.SUBMITTED,
            created_at=self.now,
            review_due=review_due,
            evidence=evidence,
            wants_human=bool(self.data.get("wants_human")),
        )
        await self.uow.cases.add(case)
        await self.uow.evidence.attach(self.data["draft_id"], case_no)
        case = await self.workflow.filed(self.uow, case, await self.draft_order())
        self.filed = case
        self.say(
            "case_filed",
            case_no=case_no,
            min_days=self.settings.policy.review_min_working_days,
            max_days=self.settings.policy.review_working_days,
            due=review_due.isoformat(),
            next_steps=self.t(f"next_steps.{case.verdict.value}"),
        )
        self.clear_draft()

    async def say_cancelled(self) -> None:
        self.clear_draft()
        self.say("cancelled")


def agent_request(conv: Conversation, event: Event) -> AgentRequest:
    return AgentRequest(
        chat_id=event.chat_id,
        user_id=event.user_id,
        created_at=event.at,
        order_no=conv.data.get("order_no"),
        step=conv.step,
    )
