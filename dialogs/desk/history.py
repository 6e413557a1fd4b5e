"""A case's history on the desk card, in words: "11-24 10:35 小王 接手", "小王 申请通过 ¥648.00（待主管确认）".

Every line of the history is one event: the case being filed, a lifecycle move (named by its trigger,
found from the move's statuses in the lifecycle table) or a desk action that moved nothing (take, note,
an approval waiting for a supervisor...: `DeskBase._record` writes them as "action" or "action: detail").
`PHRASES` names the catalog id of each event's phrase; tests/dialogs/test_desk_cards.py fails an event
the lifecycle or the desk can record that has none.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation

from dialogs.lifecycle import CASE_TRANSITIONS
from dialogs.order_facts import CORRECTION, correction_words
from dialogs.ports import CaseEventRecord
from dialogs.texts import Texts, money

FILED = "filed"  # the case's first event: it has no status before

# Event name -> the catalog id of its phrase (dk.ev.* in desk_words.po). Each phrase takes {actor};
# a desk action's detail fills its other fields (see _DETAILS).
PHRASES: dict[str, str] = {
    FILED: "dk.ev.filed",
    # the lifecycle's triggers (dialogs.lifecycle.CASE_TRANSITIONS)
    "start_review": "dk.ev.start_review",
    "auto_approve": "dk.ev.auto_approve",
    "ask_info": "dk.ev.ask_info",
    "provide_info": "dk.ev.provide_info",
    "approve": "dk.ev.approve",
    "reject": "dk.ev.reject",
    "appeal": "dk.ev.appeal",
    "reject_final": "dk.ev.reject_final",
    "start_refund": "dk.ev.start_refund",
    "confirm_refund": "dk.ev.confirm_refund",
    "fail_refund": "dk.ev.fail_refund",
    "retry_refund": "dk.ev.retry_refund",
    "hand_to_human": "dk.ev.hand_to_human",
    "withdraw": "dk.ev.withdraw",
    "close_silent": "dk.ev.close_silent",
    # the desk's own actions (DeskBase._record)
    "take": "dk.ev.take",
    "release": "dk.ev.release",
    "close": "dk.ev.close",
    "note": "dk.ev.note",
    "approve_request": "dk.ev.approve_request",
    "idle_release": "dk.ev.idle_release",
    "macro": "dk.ev.macro",  # dialogs.desk.macros: the macro's key
    "ban": "dk.ev.ban",  # dialogs.desk.staffing: the reason
    "mute": "dk.ev.mute",  # dialogs.desk.staffing: the hours
    "unban": "dk.ev.unban",
    "codes": "dk.ev.codes",  # dialogs.desk.codes: an agent viewed the delivered 卡密
    "codes_cli": "dk.ev.codes_cli",  # `refundbot cases show --reveal`
    CORRECTION: "dk.ev.order_correction",  # dialogs.order_facts.correct: the facts changed and why
}


def _trigger_table() -> dict[tuple[str, str], str]:
    """(from, to) -> trigger: each pair of statuses belongs to one trigger of the lifecycle."""
    table: dict[tuple[str, str], str] = {}
    for row in CASE_TRANSITIONS:
        sources = row["source"] if isinstance(row["source"], list) else [row["source"]]
        for source in sources:
            table[(str(source), str(row["dest"]))] = str(row["trigger"])
    return table


_TRIGGERS = _trigger_table()


def _amount(detail: str) -> dict[str, str]:
    try:
        return {"amount": money(Decimal(detail.strip()))}
    except InvalidOperation:
        return {"amount": detail}


def _minutes(detail: str) -> dict[str, str]:
    found = re.search(r"\d+", detail)  # "quiet for 21 min"
    return {"minutes": found.group(0) if found else "?"}


# A desk action's detail, as _record wrote it, to its phrase's fields.
_DETAILS: dict[str, Callable[[str], dict[str, str]]] = {
    "note": lambda detail: {"text": detail},
    "approve_request": _amount,
    "idle_release": _minutes,
    "macro": lambda detail: {"macro": detail},
    "ban": lambda detail: {"text": detail},
    "mute": lambda detail: {"text": detail},
}

# The core's own notes (in English, for auditors) that the phrase says already: what is left of them
# (the `rest` group) is shown, or nothing.
_SAID = {
    "auto_approve": re.compile(r"auto-approved by rule (?P<rest>.+)"),  # dialogs.cases: the rule
    "withdraw": re.compile(r"withdrawn by the customer"),  # dialogs.case_actions
    "close_silent": re.compile(r"no answer within \d+ days"),  # dialogs.sla
}


def event_name(event: CaseEventRecord) -> tuple[str, str]:
    """(the event's name, its detail): a desk action's detail, or a lifecycle move's note. The name
    is "" for a move the lifecycle does not know (old data)."""
    if event.from_status is None:
        return FILED, event.note
    if event.from_status == event.to_status:
        action, _, detail = event.note.partition(":")
        return action.strip(), detail.strip()
    trigger = _TRIGGERS.get((event.from_status, event.to_status), "")
    said = _SAID.get(trigger)
    found = said.fullmatch(event.note.strip()) if said else None
    if found is None:
        return trigger, event.note
    return trigger, found.groupdict().get("rest") or ""


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"


def event_words(event: CaseEventRecord, actor: str, t: Texts, note_max: int) -> str:
    """What happened, in the desk's language: who did what (and the note, shortened to note_max)."""
    name, detail = event_name(event)
    phrase = PHRASES.get(name)
    if phrase is None:  # not one of ours: what the record says, plainly
        note = _clip(event.note, note_max)
        if event.from_status == event.to_status:
            return t("dk.card.event_action", note=note, actor=actor)
        return (t("dk.card.event", before=t(f"status.{event.from_status}", default=event.from_status or ""),
                  after=t(f"status.{event.to_status}", default=event.to_status), actor=actor)
                + (t("dk.card.event_note", note=note) if note else ""))
    clipped = _clip(detail, note_max)
    if event.from_status == event.to_status:  # a desk action: its detail fills the phrase, or is not for the card
        if name == CORRECTION:  # its detail names facts, each in the desk's words
            return t(phrase, actor=actor, text=_clip(correction_words(detail, t), note_max))
        fields = _DETAILS.get(name)
        return t(phrase, actor=actor, **(fields(clipped) if fields else {}))
    return t(phrase, actor=actor) + (t("dk.card.event_note", note=clipped) if clipped else "")
