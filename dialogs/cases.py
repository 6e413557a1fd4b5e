"""Moving a case through its lifecycle: the rule check, the case event and the customer's
notification in one unit of work, so none exists without the others."""

from __future__ import annotations

from datetime import datetime

from dialogs.domain import Case, OutboxMessage
from dialogs.lifecycle import next_status
from dialogs.ports import UnitOfWork


async def move_case(uow: UnitOfWork, case_no: str, trigger: str, *, actor: str, at: datetime,
                    note: str = "") -> Case:
    """Apply `trigger` to a case inside the caller's unit of work (the caller commits).

    Raises KeyError for an unknown case and ForbiddenTransition for a move the lifecycle does not
    allow; in both cases nothing was written.
    """
    case = await uow.cases.get(case_no)
    if case is None:
        raise KeyError(case_no)
    status = next_status(case.status, trigger)
    moved = await uow.cases.set_status(case_no, status, actor=actor, at=at, note=note)
    await uow.outbox.add(OutboxMessage(
        kind="case_status",
        chat_id=moved.chat_id,
        # One notification per status version: a retried transaction or a replayed callback
        # cannot queue the same news twice.
        dedupe_key=f"case:{case_no}:v{moved.version}:{status.value}",
        payload={"case_no": case_no, "from": case.status.value, "to": status.value, "note": note,
                 "locale": moved.locale},
        created_at=at,
    ))
    return moved
