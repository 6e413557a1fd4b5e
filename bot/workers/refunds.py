"""Money going back: the worker that hands recorded refund attempts to the gateway, the settlement of
an attempt (gateway answer, platform callback or finance's confirmation) and the CSV export for finance.

Crash safety: an attempt is recorded (PENDING, with its idempotency key) in the same transaction
that puts the case in refunding, before any call. The worker calls the gateway outside any
transaction and records the answer afterwards; a crash in between leaves the attempt PENDING and the
next run calls again under the same key, which the platform deduplicates.

Several workers on one database (`refundbot run --workers N`: one RefundWorker per process): each
pass claims a batch of its gateway's PENDING attempts under a lease with the worker's own owner id
(FOR UPDATE SKIP LOCKED, as the relay and the timer sweeper do), so no two workers call for the same
attempt while the lease lasts. A call starts only while the lease still covers it (call_timeout and
a margin to record the answer); the rest of the batch is released for the next pass, and so is
everything not yet sent when the worker stops. A settled attempt drops its lease; a worker that died
holding attempts leaves them to the others once its lease runs out. When the gateway is unavailable
the attempt is released with its backoff as a not-before (claim_until), which every worker respects.
Should a call outlast its lease all the same, the other worker's call uses the same key: the
platform pays once and only the first answer is recorded.
"""

from __future__ import annotations

import asyncio
import csv
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, TextIO
from zoneinfo import ZoneInfo

from bot.logs import log_context
from dialogs.cases import CaseWorkflow
from dialogs.domain import Case, CaseStatus, RefundAttempt, RefundStatus
from dialogs.ledger import IN_FLIGHT, open_attempt, refunded
from dialogs.lifecycle import ForbiddenTransition
from dialogs.ports import GatewayResult, GatewayUnavailable, RefundGateway, UnitOfWork, UnitOfWorkFactory

if TYPE_CHECKING:
    from bot.metrics import Metrics

log = logging.getLogger(__name__)



def utcnow() -> datetime:
    return datetime.now(UTC)


def owner_id() -> str:
    """Unique per refund worker: host, process and a random part (claimed_by holds 64 characters)."""
    return f"refunds:{socket.gethostname()[:32]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


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
                 external_ref: str | None = None, amount: Decimal | None = None) -> Settled:
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
    await uow.refunds.set_status(attempt.idempotency_key, target, at=at, external_ref=external_ref, note=note)
    return Settled(moved, replace(attempt, status=target, external_ref=external_ref or attempt.external_ref,
                                  note=note), changed=True)


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


class RefundWorker:
    """Hands PENDING attempts of its gateway to it and records the answers (see the module doc).

    `lease_seconds`: how long a claimed batch is this worker's. `call_timeout`: the longest one
    gateway call may take before it counts as unavailable (HttpGateway's own `[platform]
    timeout_seconds`, 10 s by default, normally ends it first); no call starts unless the lease
    still covers it and `record_margin` seconds to record the answer.
    """

    def __init__(self, uow_factory: UnitOfWorkFactory, workflow: CaseWorkflow, gateway: RefundGateway, *,
                 clock: Callable[[], datetime] = utcnow, metrics: Metrics | None = None, batch_size: int = 50,
                 retry_base_seconds: float = 5.0, retry_max_seconds: float = 600.0,
                 monotonic: Callable[[], float] = time.monotonic, owner: str | None = None,
                 lease_seconds: float = 300.0, call_timeout: float = 60.0, record_margin: float = 15.0) -> None:
        if lease_seconds <= call_timeout + record_margin:
            raise ValueError(f"lease_seconds ({lease_seconds:g}) must exceed call_timeout + record_margin "
                             f"({call_timeout + record_margin:g}): no call could start")
        self.uow_factory, self.workflow, self.gateway = uow_factory, workflow, gateway
        self.clock, self.metrics, self.batch_size = clock, metrics, batch_size
        self.retry_base, self.retry_max, self.monotonic = retry_base_seconds, retry_max_seconds, monotonic
        self.owner = owner or owner_id()
        self.lease_seconds, self.call_timeout, self.record_margin = lease_seconds, call_timeout, record_margin
        # key -> failed calls in a row by this worker (the backoff's exponent). The not-before itself
        # is in the database (claim_until), so every worker waits it out.
        self._failures: dict[str, int] = {}
        self._stop: asyncio.Event | None = None

    async def run(self, stop: asyncio.Event, every: float = 2.0) -> None:
        """Until `stop` is set: a pass over the pending attempts every `every` seconds. Once `stop`
        is set, the call in flight finishes and is recorded, and the attempts claimed but not yet
        sent are released for the other workers."""
        self._stop = stop
        while not stop.is_set():
            try:
                await self.run_once()
            except Exception:  # a database hiccup must not end the loop
                log.exception("refund worker pass failed")
            try:
                await asyncio.wait_for(stop.wait(), every)
            except TimeoutError:
                pass

    async def run_once(self) -> int:
        """One pass: claim a batch and see it through; returns how many attempts got an answer recorded."""
        lease_end = self.monotonic() + self.lease_seconds
        async with self.uow_factory() as uow:
            attempts = await uow.refunds.claim_pending(gateway=self.gateway.name, owner=self.owner,
                                                       now=self.clock(), lease_seconds=self.lease_seconds,
                                                       limit=self.batch_size)
            await uow.commit()
        answered = 0
        left = list(attempts)
        try:
            while left:
                if self._stop is not None and self._stop.is_set():
                    break  # stopping: the rest goes back to the others
                if self.monotonic() + self.call_timeout + self.record_margin > lease_end:
                    break  # a call now could outlast the lease: the rest goes back for the next pass
                attempt = left.pop(0)
                if await self._process(attempt):
                    answered += 1
        finally:
            if left:
                await self._release_unsent(left)
        return answered

    async def _release_unsent(self, attempts: list[RefundAttempt]) -> None:
        try:
            async with self.uow_factory() as uow:
                for attempt in attempts:
                    await uow.refunds.release(attempt.idempotency_key, owner=self.owner)
                await uow.commit()
        except Exception:  # the lease runs out all the same; then another worker takes them
            log.exception("could not release %d refund attempts; they come back when the lease ends", len(attempts))

    async def _process(self, attempt: RefundAttempt) -> bool:
        with log_context(case=attempt.case_no):
            return await self._process_in_context(attempt)

    async def _process_in_context(self, attempt: RefundAttempt) -> bool:
        key = attempt.idempotency_key
        async with self.uow_factory() as uow:
            current = await _attempt(uow, attempt.case_no, key)
            if current is None or current.status is not RefundStatus.PENDING:
                self._failures.pop(key, None)
                return False  # settled meanwhile (finance, a callback)
            case = await uow.cases.get(attempt.case_no)
            if case is None or case.status is not CaseStatus.REFUNDING:
                # Nothing may be paid for a case that left refunding; say why on the attempt.
                status = case.status.value if case is not None else "gone"
                await uow.refunds.set_status(key, RefundStatus.FAILED, at=self.clock(),
                                             note=f"not sent: the case is {status}")
                await uow.commit()
                self._failures.pop(key, None)
                log.warning("refund %s not sent: case %s is %s", key, attempt.case_no, status)
                return True
            order_no = case.order_no
        try:
            async with asyncio.timeout(self.call_timeout):
                result = await self.gateway.refund(current, order_no)
        except (GatewayUnavailable, TimeoutError) as exc:
            failures = self._failures.get(key, 0)
            delay = min(self.retry_base * 2 ** failures, self.retry_max)
            self._failures[key] = failures + 1
            # The backoff as a not-before that every worker respects (none: claimable at once).
            until = self.clock() + timedelta(seconds=delay) if delay > 0 else None
            async with self.uow_factory() as uow:
                await uow.refunds.release(key, owner=self.owner, until=until)
                await uow.commit()
            why = exc if isinstance(exc, GatewayUnavailable) else f"no answer within {self.call_timeout:g} s"
            log.warning("refund %s: %s; trying again in %.0f s with the same key", key, why, delay)
            self._count("unavailable")
            return False
        self._failures.pop(key, None)
        self._count(result.status.value)
        await self._record(current, result)
        return True

    async def _record(self, attempt: RefundAttempt, result: GatewayResult) -> None:
        key = attempt.idempotency_key
        at = self.clock()
        async with self.uow_factory() as uow:
            current = await _attempt(uow, attempt.case_no, key)
            if current is None or current.status is not RefundStatus.PENDING:
                log.warning("refund %s: the gateway said %s but the attempt was settled meanwhile (%s)", key,
                            result.status.value, current.status.value if current else "gone")
                return
            if result.status is RefundStatus.REQUESTED:
                await uow.refunds.set_status(key, RefundStatus.REQUESTED, at=at, external_ref=result.external_ref,
                                             note=result.reason)
            else:
                try:
                    await settle(uow, self.workflow, attempt.case_no, succeeded=result.status is RefundStatus.SUCCEEDED,
                                 actor="gateway", at=at, note=result.reason, idempotency_key=key,
                                 external_ref=result.external_ref)
                except ForbiddenTransition as exc:
                    # The case moved on while the gateway worked; what happened to the money stays true.
                    log.error("refund %s: gateway said %s, but %s; recorded on the attempt only",
                              key, result.status.value, exc)
                    await uow.refunds.set_status(key, result.status, at=at, external_ref=result.external_ref,
                                                 note=f"{result.reason} (case was not refunding)".strip())
            await uow.commit()

    def _count(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.refund_calls.labels(outcome=outcome).inc()


async def _attempt(uow: UnitOfWork, case_no: str, key: str) -> RefundAttempt | None:
    return next((a for a in await uow.refunds.for_case(case_no) if a.idempotency_key == key), None)


# --- finance export ---------------------------------------------------------------------------

EXPORT_COLUMNS = ("case_no", "order_no", "user", "reason", "verdict", "rule_id", "amount", "refunded_amount",
                  "status", "created_at", "review_due", "credit_due", "rating")


def local_range(since: date | None, until: date | None, timezone: str) -> tuple[datetime | None, datetime | None]:
    """Inclusive local dates → [start, end) instants: `until` 2026-11-30 includes that whole day."""
    zone = ZoneInfo(timezone)
    start = datetime.combine(since, datetime.min.time(), zone) if since is not None else None
    end = datetime.combine(until + timedelta(days=1), datetime.min.time(), zone) if until is not None else None
    return start, end


async def export_cases(uow_factory: UnitOfWorkFactory, out: TextIO, *, statuses: Iterable[CaseStatus] = (),
                       since: datetime | None = None, until: datetime | None = None,
                       timezone: str = "Asia/Shanghai") -> int:
    """Write a CSV (header + one row per case created in [since, until), oldest first) for finance;
    returns the number of cases. Times are shown in `timezone`; refunded_amount sums the attempts
    that paid out."""
    zone = ZoneInfo(timezone)
    async with uow_factory() as uow:
        cases = await uow.cases.search(statuses=tuple(statuses), since=since, until=until)
        paid_back: dict[str, Decimal] = {}
        for case in cases:
            attempts = await uow.refunds.for_case(case.case_no)
            paid_back[case.case_no] = refunded(attempts)
    writer = csv.writer(out)
    writer.writerow(EXPORT_COLUMNS)
    for case in cases:
        writer.writerow([
            case.case_no, case.order_no, case.user_id, case.reason.value, case.verdict.value, case.rule_id,
            f"{case.amount:.2f}", f"{paid_back[case.case_no]:.2f}", case.status.value,
            case.created_at.astimezone(zone).isoformat(timespec="seconds"), case.review_due.isoformat(),
            case.credit_due.isoformat() if case.credit_due else "", case.rating if case.rating is not None else "",
        ])
    return len(cases)
