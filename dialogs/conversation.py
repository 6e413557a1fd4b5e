"""The customer's refund conversation: a `transitions` state table and the model it drives.

The table is data (as in transitions' README); one `AsyncMachine` is shared by every chat and a
`Dialog` model is built per update, so a conversation costs a row, not a machine. Beside the table:
which trigger a button or a message fires (`BUTTON_TRIGGERS`, `MESSAGE_ROUTES`). docs/conversation.md
draws them (`python -m dialogs.diagrams`).
"""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple

from transitions.extensions.asyncio import AsyncMachine

from dialogs import codes, hours, ledger, policy, sla
from dialogs.case_actions import CASE_ACTION_BUTTONS, CASE_ACTION_TRANSITIONS, CaseActions
from dialogs.cases import CaseWorkflow
from dialogs.claims import OrderClaims
from dialogs.coaching import coaching_key, is_concrete
from dialogs.domain import (
    AgentRequest,
    Case,
    CaseStatus,
    Conversation,
    Order,
    OutboxMessage,
    Reason,
    Verdict,
)
from dialogs.evidence import EvidenceIntake
from dialogs.io import Button, Event, EventKind, Reply
from dialogs.ports import LookupTally, UnitOfWork
from dialogs.settings import CoreSettings
from dialogs.steps import Step
from dialogs.tables import plain_table
from dialogs.texts import Texts, money, when
from dialogs.words import day, examples, policy_link, rule_title
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
    {"trigger": "submit_order", "source": [S.IDLE, S.AWAITING_ORDER], "dest": S.AWAITING_CONTACT,
     "conditions": "proves_by_contact", "after": "ask_contact"},
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
    # The shop's way ([orders] proof = "contact_password"): the contact, then the 查询密码, judged together
    # and counted like phone digits.
    {"trigger": "submit_contact", "source": S.AWAITING_CONTACT, "dest": None,
     "unless": "contact_well_formed", "after": "say_contact_format"},
    {"trigger": "submit_contact", "source": S.AWAITING_CONTACT, "dest": S.AWAITING_PASSWORD,
     "after": "keep_contact_ask_password"},
    {"trigger": "submit_password", "source": S.AWAITING_PASSWORD, "dest": None,
     "unless": "password_well_formed", "after": "say_password_format"},
    {"trigger": "submit_password", "source": S.AWAITING_PASSWORD, "dest": S.AWAITING_ORDER,
     "prepare": "lock_pending_number", "unless": "number_open", "after": "say_number_paused"},
    {"trigger": "submit_password", "source": S.AWAITING_PASSWORD, "dest": S.IDLE,
     "prepare": ["load_pending_order", "load_claims"],
     "conditions": ["contact_and_password_match", "order_closed_to_claims"], "after": "say_order_closed"},
    {"trigger": "submit_password", "source": S.AWAITING_PASSWORD, "dest": S.CHOOSING_REASON,
     "prepare": "load_pending_order", "conditions": "contact_and_password_match", "after": "offer_reasons"},
    {"trigger": "submit_password", "source": S.AWAITING_PASSWORD, "dest": S.AWAITING_ORDER,
     "after": "say_not_found"},
    # The shop's signed deep link (/start rf_...): a valid one needs no other proof and passes the
    # pauses (they stop guessing, and 96 bits of HMAC are not guessed); a bad one counts like a guess.
    {"trigger": "open_link", "source": [S.IDLE, S.AWAITING_ORDER], "dest": S.IDLE,
     "prepare": ["load_link_order", "load_claims"], "conditions": ["link_opens_order", "order_closed_to_claims"],
     "after": "say_order_closed"},
    {"trigger": "open_link", "source": [S.IDLE, S.AWAITING_ORDER], "dest": S.CHOOSING_REASON,
     "conditions": "link_opens_order", "after": "offer_reasons"},
    {"trigger": "open_link", "source": [S.IDLE, S.AWAITING_ORDER], "dest": S.AWAITING_ORDER,
     "conditions": "link_order_missing", "after": "say_link_order_missing"},
    {"trigger": "open_link", "source": [S.IDLE, S.AWAITING_ORDER], "dest": S.AWAITING_ORDER,
     "unless": "lookups_allowed", "after": "say_cooling_down"},
    {"trigger": "open_link", "source": [S.IDLE, S.AWAITING_ORDER], "dest": S.AWAITING_ORDER,
     "prepare": "lock_link_number", "unless": "number_open", "after": "say_number_paused"},
    {"trigger": "open_link", "source": [S.IDLE, S.AWAITING_ORDER], "dest": S.AWAITING_ORDER,
     "after": "say_link_refused"},
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


class Route(NamedTuple):
    """What a message fires at a step."""

    trigger: str
    # The message starts a new request, but only when it looks like an order number (else the hint).
    opens_request: bool = False


# A message as routing sees it: typed text, or a file (a photo, a document or a video).
TEXT, FILE = "text", "file"
MESSAGE_KINDS = {EventKind.TEXT: TEXT, EventKind.PHOTO: FILE, EventKind.DOCUMENT: FILE, EventKind.VIDEO: FILE}

# (step, message) -> the trigger it fires; any other message gets the step's hint (dialogs.router;
# commands and buttons route there by their name).
MESSAGE_ROUTES: dict[tuple[Step, str], Route] = {
    (S.IDLE, TEXT): Route("submit_order", opens_request=True),
    (S.AWAITING_ORDER, TEXT): Route("submit_order"),
    (S.AWAITING_PHONE, TEXT): Route("submit_phone"),
    (S.AWAITING_CONTACT, TEXT): Route("submit_contact"),
    (S.AWAITING_PASSWORD, TEXT): Route("submit_password"),
    (S.DESCRIBING, TEXT): Route("describe"),
    (S.APPEAL_REASON, TEXT): Route("describe"),
    (S.RATING_COMMENT, TEXT): Route("describe"),
    (S.ADDING_INFO, TEXT): Route("add_info_text"),
    (S.COLLECTING_EVIDENCE, FILE): Route("add_evidence"),
    (S.ADDING_INFO, FILE): Route("add_case_file"),
    (S.APPEAL_EVIDENCE, FILE): Route("add_case_file"),
}

# The steps that take a photo or a document: anywhere else a file is not even downloaded
# (dialogs.service.takes_file).
FILE_STEPS = frozenset(step for step, message in MESSAGE_ROUTES if message == FILE)

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


class Dialog(OrderClaims, EvidenceIntake, CaseActions):
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

    def add_off_hours_notice(self) -> None:
        """A case just went to a person: off the desk's hours, the last reply says when one is there."""
        notice = hours.off_hours_notice(self.now, self.settings, self.calendar, self.t)
        if notice is not None and self.replies:
            last = self.replies[-1]
            self.replies[-1] = Reply(f"{last.text}\n\n{notice}", last.buttons)

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

    # -- reason and verdict -------------------------------------------------------------------
    async def offer_reasons(self) -> None:
        order = self.order
        assert order is not None
        self.data.pop("pending_order", None)
        self.data.pop("pending_contact", None)
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
        if decision.verdict is Verdict.NOT_ELIGIBLE:
            note += policy_link(self.t, self.settings.policy)
        # The customer reads the rule's title; its id stays on the case for the desk and exports.
        self.say(f"verdict.{decision.verdict.value}", buttons, why=why, note=note,
                 title=rule_title(self.t, decision.rule_id, self.settings.policy))

    async def verdict_allows_filing(self) -> bool:
        return self.data.get("verdict") != Verdict.NOT_ELIGIBLE.value

    async def mark_wants_human(self) -> None:
        self.data["wants_human"] = True

    async def ask_description(self) -> None:
        self.new_nonce()
        self.say("ask_description", ((self.button("btn_cancel", "cancel"),),),
                 examples=await self.examples())

    async def examples(self) -> str:
        order = await self.draft_order()
        return examples(self.t, self.chosen_reason(), order.product_kind if order else None)

    # -- description --------------------------------------------------------------------------
    async def description_is_concrete(self) -> bool:
        return is_concrete(self.event.text, self.settings.policy)

    async def coach_description(self) -> None:
        # Answers what the vague phrase says ("不满意" is not "商品不好"), with an example for the product.
        self.say(coaching_key(self.event.text, self.settings.policy), examples=await self.examples())

    async def keep_description(self) -> None:
        self.data["description"] = self.event.text.strip()[: self.settings.policy.max_description_chars]

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
            product=codes.with_masked_codes(order.product_name, self.t, codes.snapshot(order)),
            amount=money(Decimal(self.data["amount"])),
            reason=self.t(f"reason.{self.chosen_reason().value}"),
            verdict=self.t(f"verdict_short.{self.data['verdict']}"),
            title=rule_title(self.t, self.data["rule_id"], self.settings.policy),
            description=self.data["description"],
            count=self.evidence_count,
        )

    async def file_case(self) -> None:
        filed_on = sla.local_day(self.now, self.settings)
        case_no = await self.uow.cases.next_case_no(filed_on.strftime("%Y%m%d"))
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
            delivered_codes=codes.snapshot(await self.draft_order()),
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
            due=day(self.t, review_due),
            next_steps=self.t(f"next_steps.{case.verdict.value}"),
        )
        if case.status is CaseStatus.SUBMITTED:  # not auto-approved: a person reviews it
            self.add_off_hours_notice()
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
