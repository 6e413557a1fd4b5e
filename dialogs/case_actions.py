"""What a customer does with a filed case, from its status card: withdraw it, add material the agent
asked for (needs_info), appeal a rejection with a reason and new evidence (平台介入), rate the service.

Card buttons carry `c.<case_no>.<action>` (dialogs.notify.card_token). They work in any step: the
press is checked against the case's owner and current status, never against the dialog's prompt.
The rows below join the conversation's state table; the callbacks are mixed into `Dialog`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dialogs.cases import CaseWorkflow
from dialogs.dialog_part import DialogPart
from dialogs.domain import Case, CaseStatus, OutboxMessage
from dialogs.io import Button
from dialogs.lifecycle import ForbiddenTransition
from dialogs.notify import APPEALABLE, INFO_ADDABLE, RATEABLE, WITHDRAWABLE
from dialogs.outbox import CASE_CARD
from dialogs.steps import Step
from dialogs.words import appeal_example, day

S = Step

# Card action -> (the conversation trigger it fires, the statuses it is valid in): those the case
# trigger the action ends in may fire from (withdraw, provide_info, appeal), read off the lifecycle table.
CARD_ACTIONS: dict[str, tuple[str, frozenset[CaseStatus]]] = {
    "withdraw": ("start_withdraw", WITHDRAWABLE),
    "info": ("start_info", INFO_ADDABLE),
    "appeal": ("start_appeal", APPEALABLE),
    **{f"rate{n}": ("rate", RATEABLE) for n in range(1, 6)},
}

CASE_ACTION_TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "start_withdraw", "source": "*", "dest": S.CONFIRMING_WITHDRAW, "after": "ask_withdraw"},
    {"trigger": "confirm_withdraw", "source": S.CONFIRMING_WITHDRAW, "dest": S.IDLE, "after": "withdraw_case"},
    {"trigger": "keep_case", "source": S.CONFIRMING_WITHDRAW, "dest": S.IDLE, "after": "say_kept"},
    {"trigger": "start_info", "source": "*", "dest": S.ADDING_INFO, "after": "ask_info"},
    {"trigger": "add_info_text", "source": S.ADDING_INFO, "dest": None, "after": "take_info_text"},
    {"trigger": "add_case_file", "source": [S.ADDING_INFO, S.APPEAL_EVIDENCE], "dest": None,
     "prepare": "take_evidence", "after": "say_case_file_progress"},
    {"trigger": "finish_info", "source": S.ADDING_INFO, "dest": None, "unless": "has_info",
     "after": "say_info_empty"},
    {"trigger": "finish_info", "source": S.ADDING_INFO, "dest": S.IDLE, "after": "submit_info"},
    {"trigger": "start_appeal", "source": "*", "dest": S.APPEAL_REASON, "after": "ask_appeal_reason"},
    {"trigger": "describe", "source": S.APPEAL_REASON, "dest": S.APPEAL_EVIDENCE,
     "conditions": "description_is_concrete", "after": ["keep_appeal_reason", "ask_appeal_evidence"]},
    {"trigger": "describe", "source": S.APPEAL_REASON, "dest": None, "after": "coach_appeal"},
    {"trigger": "finish_appeal", "source": S.APPEAL_EVIDENCE, "dest": None, "prepare": "count_evidence",
     "unless": "has_case_files", "after": "say_appeal_needs_evidence"},
    {"trigger": "finish_appeal", "source": S.APPEAL_EVIDENCE, "dest": S.IDLE, "after": "submit_appeal"},
    {"trigger": "rate", "source": "*", "dest": S.RATING_COMMENT, "after": "save_rating"},
    {"trigger": "describe", "source": S.RATING_COMMENT, "dest": S.IDLE, "after": "save_rating_comment"},
    {"trigger": "skip_comment", "source": S.RATING_COMMENT, "dest": S.IDLE, "after": "say_rating_thanks"},
]

CASE_ACTION_BUTTONS = {
    "wd_yes": "confirm_withdraw",
    "wd_no": "keep_case",
    "info_done": "finish_info",
    "appeal_done": "finish_appeal",
    "no_comment": "skip_comment",
}


def parse_card_token(token: str) -> tuple[str, str] | None:
    """(case_no, action) of a card button, or None when the token is not one."""
    prefix, _, rest = token.partition(".")
    case_no, _, action = rest.rpartition(".")
    if prefix != "c" or not case_no or action not in CARD_ACTIONS:
        return None
    return case_no, action


class CaseActions(DialogPart):
    """Callbacks of the case-action rows; mixed into dialogs.conversation.Dialog."""

    state: str
    workflow: CaseWorkflow

    if TYPE_CHECKING:  # provided by Dialog
        def evidence_limits(self) -> dict[str, Any]: ...
        async def count_evidence(self) -> None: ...

    def case_no(self) -> str:
        return str(self.data["case_no"])

    def actor(self) -> str:
        return f"customer:{self.event.user_id}"

    def begin_case_action(self, case: Case, action: str) -> None:
        """Called by the router before the action's trigger: a fresh draft bound to this case."""
        self.start_draft()
        self.data["case_no"] = case.case_no
        self.data["reason"] = case.reason.value
        if action.startswith("rate"):
            self.data["rating"] = int(action[len("rate"):])

    def say_moved_on(self, case: Case | None) -> None:
        status = self.t(f"status.{case.status.value}") if case else ""
        self.say("case_moved_on", case_no=self.case_no(), status=status)

    async def _move(self, trigger: str, note: str = "") -> Case | None:
        """Move the case; None (and the customer told) when it has moved on since the button."""
        try:
            return await self.workflow.move(self.uow, self.case_no(), trigger, actor=self.actor(), at=self.now,
                                            note=note)
        except ForbiddenTransition:
            self.say_moved_on(await self.uow.cases.get(self.case_no()))
            return None

    def done_buttons(self, done_key: str, action: str) -> tuple[tuple[Button, ...], ...]:
        return ((self.button(done_key, action),), (self.button("btn_cancel", "cancel"),))

    # -- withdraw ---------------------------------------------------------------------------
    async def ask_withdraw(self) -> None:
        self.new_nonce()
        self.say("withdraw_confirm", ((self.button("btn_withdraw_yes", "wd_yes"),),
                                      (self.button("btn_withdraw_no", "wd_no"),)), case_no=self.case_no())

    async def withdraw_case(self) -> None:
        if await self._move("withdraw", note="withdrawn by the customer"):
            self.say("withdrawn", case_no=self.case_no())
        self.clear_draft()

    async def say_kept(self) -> None:
        self.say("kept", case_no=self.case_no())
        self.clear_draft()

    # -- needs_info: add material -----------------------------------------------------------
    async def ask_info(self) -> None:
        self.new_nonce()
        self.say("ask_info", self.done_buttons("btn_info_done", "info_done"), case_no=self.case_no(),
                 max=self.settings.policy.max_evidence)

    async def take_info_text(self) -> None:
        text = self.event.text.strip()
        limit = self.settings.policy.max_description_chars
        self.data["info_text"] = ("\n".join(filter(None, [self.data.get("info_text", ""), text])))[:limit]
        self.say("info_noted", self.done_buttons("btn_info_done", "info_done"))

    async def has_case_files(self) -> bool:
        return self.evidence_count > 0

    async def has_info(self) -> bool:
        await self.count_evidence()
        return bool(self.data.get("info_text")) or self.evidence_count > 0

    async def say_case_file_progress(self) -> None:
        buttons = (self.done_buttons("btn_appeal_done", "appeal_done") if self.state == S.APPEAL_EVIDENCE
                   else self.done_buttons("btn_info_done", "info_done"))
        if self._evidence_problem:
            self.say(f"evidence_problem.{self._evidence_problem}", buttons, **self.evidence_limits())
        else:
            self.say("case_file_received", buttons, count=self.evidence_count, max=self.settings.policy.max_evidence)

    async def say_info_empty(self) -> None:
        self.say("info_empty", self.done_buttons("btn_info_done", "info_done"))

    async def submit_info(self) -> None:
        text = self.data.get("info_text", "")
        if await self._move("provide_info", note=text or self.t("info_note_files", count=self.evidence_count)):
            await self.uow.evidence.attach(self.data["draft_id"], self.case_no())
            self.say("info_sent", case_no=self.case_no())
        self.clear_draft()

    # -- appeal (平台介入) ---------------------------------------------------------------------
    async def ask_appeal_reason(self) -> None:
        self.new_nonce()
        self.say("ask_appeal_reason", ((self.button("btn_cancel", "cancel"),),), case_no=self.case_no(),
                 example=await self.appeal_example())

    async def coach_appeal(self) -> None:
        self.say("coach_appeal", ((self.button("btn_cancel", "cancel"),),), example=await self.appeal_example())

    async def appeal_example(self) -> str:
        """An appeal reason in the words of the case's product (a top-up's is about top-ups)."""
        case = await self.uow.cases.get(self.case_no())
        order = await self.uow.orders.get(case.order_no) if case is not None else None
        return appeal_example(self.t, order.product_kind if order is not None else None)

    async def keep_appeal_reason(self) -> None:
        self.data["appeal_reason"] = self.event.text.strip()[: self.settings.policy.max_description_chars]

    async def ask_appeal_evidence(self) -> None:
        self.new_nonce()
        self.say("ask_appeal_evidence", self.done_buttons("btn_appeal_done", "appeal_done"),
                 max=self.settings.policy.max_evidence)

    async def say_appeal_needs_evidence(self) -> None:
        self.say("appeal_needs_evidence", self.done_buttons("btn_appeal_done", "appeal_done"))

    async def submit_appeal(self) -> None:
        moved = await self._move("appeal", note=self.data.get("appeal_reason", ""))
        if moved:
            await self.uow.evidence.attach(self.data["draft_id"], self.case_no())
            fresh = await self.uow.cases.get(self.case_no())
            due = (fresh or moved).review_due
            self.say("appeal_sent", case_no=self.case_no(), due=day(self.t, due))
            self.add_off_hours_notice()
        self.clear_draft()

    # -- rating -----------------------------------------------------------------------------
    async def save_rating(self) -> None:
        rating = int(self.data["rating"])
        await self.uow.cases.rate(self.case_no(), rating, None)
        # The card loses its stars and shows the rating.
        self.outbox.append(OutboxMessage(kind=CASE_CARD, chat_id=self.event.chat_id,
                                         dedupe_key=f"case:{self.case_no()}:rated:card",
                                         payload={"case_no": self.case_no()}, created_at=self.now))
        self.new_nonce()
        self.say("ask_rating_comment", ((self.button("btn_skip_comment", "no_comment"),),), stars="⭐" * rating)

    async def save_rating_comment(self) -> None:
        comment = self.event.text.strip()[: self.settings.policy.max_description_chars]
        await self.uow.cases.rate(self.case_no(), int(self.data["rating"]), comment)
        await self.say_rating_thanks()

    async def say_rating_thanks(self) -> None:
        self.say("rating_thanks")
        self.clear_draft()
