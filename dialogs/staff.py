"""Decisions taken outside Telegram (the CLI) by a named person, under the desk's rules.

With an agents' desk, the person must be on its staff (dialogs.roster: the database, seeded from
`[desk] agents` / `supervisors`; by Telegram id or alias) and the decision goes through `DeskService`
exactly as if they had typed the command to the bot in a private chat: the owner rule and the two-person rule are checked under the case's lock, the
desk card and the customer hear of it, the audit records it. Without a desk, any name is recorded,
and an approval above `[desk] confirm_above` is refused: two people cannot be told apart.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from dialogs import ledger
from dialogs.cases import CaseWorkflow
from dialogs.desk import DeskService
from dialogs.domain import CaseStatus
from dialogs.io import Event, EventKind
from dialogs.ports import UnitOfWork
from dialogs.settings import DeskSettings

# CLI action -> the desk command that carries it out.
DESK_COMMANDS = {"approve": "approve", "confirm": "confirm", "reject": "reject", "reject_final": "reject",
                 "ask_info": "ask"}


class UnknownPerson(ValueError):
    """`--by` names nobody the desk knows."""


class NeedsSecondPerson(Exception):
    """An approval above confirm_above with no desk to confirm it on."""


@dataclass(frozen=True, slots=True)
class Person:
    actor: str  # as the case history records it: "agent:<id>" or "cli:<name>"
    agent_id: int | None = None


def identify(desk: DeskSettings, by: str) -> Person:
    """The person `by` names: an agent's Telegram id or alias when the desk has staff, else any name."""
    name = by.strip()
    if not name:
        raise UnknownPerson("say who decides: --by <agent id or alias>")
    staff = tuple(dict.fromkeys(desk.agents + desk.supervisors))
    if not staff:
        return Person(f"cli:{name[:56]}")
    if name.isdigit() and int(name) in staff:
        return Person(f"agent:{name}", int(name))
    by_alias = [agent for agent, alias in desk.aliases.items() if alias == name and agent in staff]
    if by_alias:
        return Person(f"agent:{by_alias[0]}", by_alias[0])
    raise UnknownPerson(f"{name!r} is not one of [desk] agents or supervisors (give a Telegram id or an alias)")


@dataclass(frozen=True, slots=True)
class Decision:
    said: tuple[str, ...]  # what the desk answered, for the person to read
    status: CaseStatus
    waiting: bool  # an approval waits for a supervisor's confirmation


async def decide(uow: UnitOfWork, workflow: CaseWorkflow, desk: DeskService | None, case_no: str, action: str, *,
                 person: Person, at: datetime, note: str = "", amount: Decimal | None = None) -> Decision:
    """Carry out a desk decision (DESK_COMMANDS) on `case_no` in the caller's unit of work. Raises
    KeyError for an unknown case; lifecycle and ledger refusals come back as the desk's answer (with
    a desk) or raise as from CaseWorkflow (without one)."""
    case = await uow.cases.get(case_no, for_update=True)
    if case is None:
        raise KeyError(case_no)
    said: tuple[str, ...] = ()
    if desk is not None and person.agent_id is not None:
        command = DESK_COMMANDS[action]
        args = case_no + (f" {amount}" if command == "approve" and amount is not None else "")
        args += f" {note}" if command in ("reject", "ask") and note else ""
        # A private chat with the bot, from the person: the desk's rules cannot tell it from Telegram.
        event = Event(update_id=-time.time_ns(), chat_id=person.agent_id, user_id=person.agent_id,
                      kind=EventKind.COMMAND, at=at, text=command, args=args, private=True)
        outcome = await desk.handle(uow, event, at)
        said = tuple(r.text for r in outcome.replies) + ((outcome.toast,) if outcome.toast else ())
    elif action == "approve":
        room = await ledger.refundable(uow, case, lock=True)
        if min(amount or room, room) > workflow.settings.desk.confirm_above:
            raise NeedsSecondPerson(f"approving more than {workflow.settings.desk.confirm_above} CNY needs a "
                                    "second person: set up the agents' desk with [desk] supervisors")
        await workflow.approve(uow, case_no, actor=person.actor, at=at, note=note, amount=amount)
    elif action == "confirm":
        raise NeedsSecondPerson("nothing to confirm without the agents' desk")
    else:
        trigger = "reject_final" if action == "reject" and case.status is CaseStatus.APPEALED else action
        await workflow.move(uow, case_no, trigger, actor=person.actor, at=at, note=note)
    after = await uow.cases.get(case_no)
    assert after is not None
    waiting = desk is not None and await uow.desk.pending_approval(case_no) is not None
    return Decision(said, after.status, waiting)
