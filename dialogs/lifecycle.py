"""The case lifecycle: a `transitions` state table from submitted to refunded (or rejected, withdrawn,
closed). Forbidden moves raise and change nothing.

The table is the one truth: docs/lifecycle.md draws it (`python -m dialogs.diagrams`), and the status
sets that say where a trigger may fire from are read off it (`sources`, `dests`), never restated.
"""

from __future__ import annotations

from typing import Any

from transitions import Machine, MachineError

from dialogs.domain import CaseStatus
from dialogs.tables import plain_table

C = CaseStatus

# trigger, source, dest — who may fire a trigger is the caller's business (customer, agent, system).
CASE_TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "start_review", "source": C.SUBMITTED, "dest": C.IN_REVIEW},
    {"trigger": "auto_approve", "source": C.SUBMITTED, "dest": C.APPROVED},
    {"trigger": "ask_info", "source": C.IN_REVIEW, "dest": C.NEEDS_INFO},
    {"trigger": "provide_info", "source": C.NEEDS_INFO, "dest": C.IN_REVIEW},
    {"trigger": "approve", "source": [C.IN_REVIEW, C.APPEALED], "dest": C.APPROVED},
    {"trigger": "reject", "source": C.IN_REVIEW, "dest": C.REJECTED},
    {"trigger": "appeal", "source": C.REJECTED, "dest": C.APPEALED},
    {"trigger": "reject_final", "source": C.APPEALED, "dest": C.REJECTED_FINAL},
    {"trigger": "start_refund", "source": C.APPROVED, "dest": C.REFUNDING},
    {"trigger": "confirm_refund", "source": C.REFUNDING, "dest": C.REFUNDED},
    {"trigger": "fail_refund", "source": C.REFUNDING, "dest": C.REFUND_FAILED},
    {"trigger": "retry_refund", "source": C.REFUND_FAILED, "dest": C.REFUNDING},
    {"trigger": "hand_to_human", "source": C.REFUND_FAILED, "dest": C.IN_REVIEW},
    {"trigger": "withdraw", "source": [C.SUBMITTED, C.IN_REVIEW, C.NEEDS_INFO], "dest": C.WITHDRAWN},
    {"trigger": "close_silent", "source": C.NEEDS_INFO, "dest": C.CLOSED},
]


CASE_TRANSITIONS = plain_table(CASE_TRANSITIONS)
TRIGGERS: tuple[str, ...] = tuple(dict.fromkeys(row["trigger"] for row in CASE_TRANSITIONS))

_MACHINE = Machine(
    model=None,
    states=[s.value for s in CaseStatus],
    transitions=CASE_TRANSITIONS,
    initial=C.SUBMITTED.value,
    auto_transitions=False,
    ignore_invalid_triggers=False,
)


class ForbiddenTransition(Exception):
    def __init__(self, status: CaseStatus, trigger: str) -> None:
        super().__init__(f"a case that is {status.value} cannot {trigger}")
        self.status, self.trigger = status, trigger


class _Case:
    def __init__(self, status: CaseStatus) -> None:
        self.state = status.value


def next_status(status: CaseStatus, trigger: str) -> CaseStatus:
    """Where `trigger` takes a case that is `status`; ForbiddenTransition if it may not."""
    if trigger not in _MACHINE.events:
        raise ForbiddenTransition(status, trigger)
    model = _Case(status)
    try:
        _MACHINE.events[trigger].trigger(model)
    except MachineError as exc:
        raise ForbiddenTransition(status, trigger) from exc
    return CaseStatus(model.state)


def allowed_triggers(status: CaseStatus) -> list[str]:
    return [t for t in _MACHINE.get_triggers(status.value) if t in TRIGGERS]


def sources(trigger: str) -> frozenset[CaseStatus]:
    """The statuses `trigger` may fire from, read off the table (status sets are derived, never restated)."""
    if trigger not in TRIGGERS:
        raise KeyError(trigger)
    found: set[CaseStatus] = set()
    for row in CASE_TRANSITIONS:
        if row["trigger"] == trigger:
            source = row["source"]
            found.update(CaseStatus(s) for s in (source if isinstance(source, list) else [source]))
    return frozenset(found)


def dests(*triggers: str) -> frozenset[CaseStatus]:
    """The statuses the given triggers lead to."""
    unknown = set(triggers) - set(TRIGGERS)
    if unknown:
        raise KeyError(", ".join(sorted(unknown)))
    return frozenset(CaseStatus(row["dest"]) for row in CASE_TRANSITIONS if row["trigger"] in triggers)
