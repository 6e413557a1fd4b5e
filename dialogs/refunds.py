"""Money rules: settling a refund attempt (it paid out, or it failed) and what that does to the case.

Every settlement goes through `settle`: the refund worker with the gateway's answer, the platform's
callback (bot.api) and finance's confirmation (`refundbot cases mark-refunded` / `mark-failed`). So an
attempt is settled once, for its own amount, and the case moves with it in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from dialogs.cases import CaseWorkflow
from dialogs.clock import utcnow
from dialogs.domain import Case, CaseStatus, OutboxMessage, RailError, RefundAttempt, RefundStatus
from dialogs.ledger import IN_FLIGHT, open_attempt
from dialogs.lifecycle import ForbiddenTransition
from dialogs.outbox import SUPERVISOR_ALERT
from dialogs.ports import UnitOfWork, UnitOfWorkFactory
from dialogs.settings import CoreSettings


class UnknownAttempt(KeyError):
    """The case has no refund attempt with that idempotency key."""


class AttemptSettled(Exception):
    """The attempt was already settled the other way (credited after failed, or failed after credited)."""


class NothingInFlight(Exception):
    """The case has no refund attempt waiting for its money."""


class AmountMismatch(Exception):
    """A settlement names an amount other than the attempt's (more would be a second payout)."""


@dataclass(frozen=True, slots=True)
class Settled:
    case: Case
    attempt: RefundAttempt
    changed: bool  # False: this settlement was already recorded (a re-sent callback)


async def settle(uow: UnitOfWork, workflow: CaseWorkflow, case_no: str, *, succeeded: bool, actor: str,
                 at: datetime, note: str = "", case_note: str = "", idempotency_key: str | None = None,
                 external_ref: str | None = None, amount: Decimal | None = None, rail_status: str | None = None,
                 error: RailError | None = None) -> Settled:
    """Record that a refund attempt paid out (`succeeded`) or failed, and move the case
    (confirm_refund / fail_refund) — in the caller's unit of work.

    Without `idempotency_key` the case's open attempt is meant. `note` goes on the attempt,
    `case_note` on the case event (the customer's news shows it). Raises KeyError (unknown case),
    UnknownAttempt, AmountMismatch, AttemptSettled, NothingInFlight or ForbiddenTransition (the
    case is not refunding); in every one of them nothing was written.
    """
    case = await uow.cases.get(case_no)
    if case is None:
        raise KeyError(case_no)
    attempts = await uow.refunds.for_case(case_no)
    trigger = "confirm_refund" if succeeded else "fail_refund"
    if idempotency_key is not None:
        found = next((a for a in attempts if a.idempotency_key == idempotency_key), None)
        if found is None:
            raise UnknownAttempt(idempotency_key)
        attempt = found
    else:
        in_flight = open_attempt(attempts)
        settled_as = CaseStatus.REFUNDED if succeeded else CaseStatus.REFUND_FAILED
        if in_flight is None and attempts and case.status is settled_as:
            return Settled(case, attempts[-1], changed=False)  # said twice (finance ran the command again)
        if in_flight is None:
            if case.status is not CaseStatus.REFUNDING:
                raise ForbiddenTransition(case.status, trigger)
            raise NothingInFlight(case_no)
        attempt = in_flight
    if amount is not None and amount != attempt.amount:
        raise AmountMismatch(f"attempt {attempt.idempotency_key} is for {attempt.amount}, not {amount}")
    target = RefundStatus.SUCCEEDED if succeeded else RefundStatus.FAILED
    if attempt.status is target:
        return Settled(case, attempt, changed=False)
    if attempt.status not in IN_FLIGHT:
        raise AttemptSettled(f"attempt {attempt.idempotency_key} is already {attempt.status.value}")
    moved = await workflow.move(uow, case_no, trigger, actor=actor, at=at, note=case_note, settling=True)
    await uow.refunds.set_status(attempt.idempotency_key, target, at=at, external_ref=external_ref, note=note,
                                 rail_status=rail_status, error=error)
    return Settled(moved, replace(attempt, status=target, external_ref=external_ref or attempt.external_ref,
                                  note=note, rail_status=rail_status or attempt.rail_status, error=error),
                   changed=True)


async def mark_settled(uow_factory: UnitOfWorkFactory, workflow: CaseWorkflow, case_no: str, *,
                       succeeded: bool, actor: str, note: str = "", at: datetime | None = None) -> Settled:
    """A person states the outcome of the case's open attempt (finance paid it by hand, or the channel
    said it failed). `note` is shown to the customer with the news. Raises as `settle`."""
    async with uow_factory() as uow:
        done = await settle(uow, workflow, case_no, succeeded=succeeded, actor=actor, at=at or utcnow(),
                            note=note or f"confirmed by {actor}", case_note=note)
        await uow.commit()
    return done


async def mark_refunded(uow_factory: UnitOfWorkFactory, workflow: CaseWorkflow, case_no: str, *,
                        actor: str = "finance", note: str = "", at: datetime | None = None) -> Settled:
    """Finance paid the money back (ManualGateway, or by hand): the case is refunded."""
    return await mark_settled(uow_factory, workflow, case_no, succeeded=True, actor=actor, note=note, at=at)


async def rail_busy(uow: UnitOfWork, settings: CoreSettings, attempt: RefundAttempt, why: str, at: datetime) -> None:
    """The rail cannot pay `attempt` now (the merchant balance is too low; the worker tries again later):
    tell the supervisors' chat, once a day per attempt."""
    if not settings.sla.supervisors_chat_id:
        return
    await uow.outbox.add(OutboxMessage(
        kind=SUPERVISOR_ALERT, chat_id=settings.sla.supervisors_chat_id,
        dedupe_key=f"rail_busy:{attempt.idempotency_key}:{at.date().isoformat()}",
        payload={"case_no": attempt.case_no, "text_key": "alert.rail_busy",
                 "params": {"amount": str(attempt.amount), "gateway": attempt.gateway, "why": why[:200]}},
        created_at=at))
