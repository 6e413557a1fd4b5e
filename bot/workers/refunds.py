"""Money going back: the worker (a `Sweep`) that hands recorded refund attempts to the gateway and
settles each with the gateway's answer (dialogs.refunds.settle).

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
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from bot.logs import log_context
from bot.workers.base import Sweep, owner_id
from dialogs.cases import CaseWorkflow
from dialogs.clock import utcnow
from dialogs.domain import CaseStatus, RefundAttempt, RefundStatus
from dialogs.lifecycle import ForbiddenTransition
from dialogs.ports import (
    GatewayResult,
    GatewayUnavailable,
    Payment,
    RailBusy,
    RefundGateway,
    UnitOfWork,
    UnitOfWorkFactory,
)
from dialogs.refunds import rail_busy, settle

if TYPE_CHECKING:
    from bot.metrics import Metrics

log = logging.getLogger(__name__)


class RefundWorker(Sweep[RefundAttempt]):
    """Hands PENDING attempts of its gateway to it and records the answers (see the module doc).

    `lease_seconds`: how long a claimed batch is this worker's. `call_timeout`: the longest one
    gateway call may take before it counts as unavailable (HttpGateway's own `[platform]
    timeout_seconds`, 10 s by default, normally ends it first); no call starts unless the lease
    still covers it and `record_margin` seconds to record the answer. A pass every `interval` seconds.
    """

    what = "refund worker pass"
    log = log

    def __init__(self, uow_factory: UnitOfWorkFactory, workflow: CaseWorkflow, gateway: RefundGateway, *,
                 clock: Callable[[], datetime] = utcnow, metrics: Metrics | None = None, batch_size: int = 50,
                 retry_base_seconds: float = 5.0, retry_max_seconds: float = 600.0,
                 monotonic: Callable[[], float] = time.monotonic, owner: str | None = None,
                 lease_seconds: float = 300.0, call_timeout: float = 60.0, record_margin: float = 15.0,
                 interval: float = 2.0) -> None:
        if lease_seconds <= call_timeout + record_margin:
            raise ValueError(f"lease_seconds ({lease_seconds:g}) must exceed call_timeout + record_margin "
                             f"({call_timeout + record_margin:g}): no call could start")
        super().__init__(uow_factory, interval=interval, clock=clock)
        self.workflow, self.gateway = workflow, gateway
        self.metrics, self.batch_size = metrics, batch_size
        self.retry_base, self.retry_max, self.monotonic = retry_base_seconds, retry_max_seconds, monotonic
        self.owner = owner or owner_id("refunds")
        self.lease_seconds, self.call_timeout, self.record_margin = lease_seconds, call_timeout, record_margin
        # key -> failed calls in a row by this worker (the backoff's exponent). The not-before itself
        # is in the database (claim_until), so every worker waits it out.
        self._failures: dict[str, int] = {}

    async def run(self, stop: asyncio.Event | None = None, every: float | None = None) -> None:
        """Until stopped: a pass over the pending attempts every `every` seconds (default: `interval`).
        Once stopping, the call in flight finishes and is recorded, and the attempts claimed but not
        yet sent are released for the other workers."""
        if every is not None:
            self.interval = every
        await super().run(stop)

    async def run_once(self) -> int:
        """One pass: claim a batch and see it through; returns how many attempts got an answer recorded."""
        lease_end = self.monotonic() + self.lease_seconds
        async with self.uow() as uow:
            attempts = await uow.refunds.claim_pending(gateway=self.gateway.name, owner=self.owner,
                                                       now=self.clock(), lease_seconds=self.lease_seconds,
                                                       limit=self.batch_size)
            await uow.commit()
        answered = 0
        left = list(attempts)
        try:
            while left:
                if self.stopping:
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
            async with self.uow() as uow:
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
        async with self.uow() as uow:
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
            payment = Payment.of(case.order_no, await uow.orders.get(case.order_no), fallback_paid=case.amount)
        try:
            async with asyncio.timeout(self.call_timeout):
                result = await self._pay(current, payment)
        except (GatewayUnavailable, TimeoutError) as exc:
            failures = self._failures.get(key, 0)
            delay = min(self.retry_base * 2 ** failures, self.retry_max)
            self._failures[key] = failures + 1
            # The backoff as a not-before that every worker respects (none: claimable at once).
            until = self.clock() + timedelta(seconds=delay) if delay > 0 else None
            async with self.uow() as uow:
                await uow.refunds.release(key, owner=self.owner, until=until)
                if isinstance(exc, RailBusy):  # the rail answered "not now": people must act (top the account up)
                    await rail_busy(uow, self.workflow.settings, current, str(exc), self.clock())
                await uow.commit()
            why = exc if isinstance(exc, GatewayUnavailable) else f"no answer within {self.call_timeout:g} s"
            log.warning("refund %s: %s; asking again in %.0f s (same key)", key, why, delay)
            self._count("busy" if isinstance(exc, RailBusy) else "unavailable")
            return False
        self._failures.pop(key, None)
        self._count(result.status.value)
        await self._record(current, result)
        return True

    async def _pay(self, attempt: RefundAttempt, payment: Payment) -> GatewayResult:
        """Query before retry: an attempt sent before whose outcome is unknown (a timeout, a crash) is
        asked about first, and sent again (under the same key) only when the rail has no such refund."""
        if attempt.sent_at is not None:
            known = await self.gateway.query(attempt, payment)
            if known is not None:
                return known
            log.info("refund %s: the rail has no such refund; sending it again with the same key",
                     attempt.idempotency_key)
        async with self.uow() as uow:
            await uow.refunds.mark_sent(attempt.idempotency_key, self.clock())
            await uow.commit()
        return await self.gateway.refund(attempt, payment)

    async def _record(self, attempt: RefundAttempt, result: GatewayResult) -> None:
        key = attempt.idempotency_key
        at = self.clock()
        async with self.uow() as uow:
            current = await _attempt(uow, attempt.case_no, key)
            if current is None or current.status is not RefundStatus.PENDING:
                log.warning("refund %s: the gateway said %s but the attempt was settled meanwhile (%s)", key,
                            result.status.value, current.status.value if current else "gone")
                return
            if result.status is RefundStatus.REQUESTED:
                await uow.refunds.set_status(key, RefundStatus.REQUESTED, at=at, external_ref=result.external_ref,
                                             note=result.reason, rail_status=result.rail_status or None)
            else:
                try:
                    await settle(uow, self.workflow, attempt.case_no, succeeded=result.status is RefundStatus.SUCCEEDED,
                                 actor="gateway", at=at, note=result.reason, idempotency_key=key,
                                 external_ref=result.external_ref, rail_status=result.rail_status or None,
                                 error=result.error, case_note=_case_note(result))
                except ForbiddenTransition as exc:
                    # The case moved on while the gateway worked; what happened to the money stays true.
                    log.error("refund %s: gateway said %s, but %s; recorded on the attempt only",
                              key, result.status.value, exc)
                    await uow.refunds.set_status(key, result.status, at=at, external_ref=result.external_ref,
                                                 note=f"{result.reason} (case was not refunding)".strip(),
                                                 rail_status=result.rail_status or None, error=result.error)
            await uow.commit()

    def _count(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.refund_calls.labels(outcome=outcome).inc()


async def _attempt(uow: UnitOfWork, case_no: str, key: str) -> RefundAttempt | None:
    return next((a for a in await uow.refunds.for_case(case_no) if a.idempotency_key == key), None)


def _case_note(result: GatewayResult) -> str:
    """What the case's history says of a settled attempt: the rail's refusal by name, with its words."""
    if result.error is None:
        return ""
    return f"{result.error.value}: {result.reason}"[:500] if result.reason else result.error.value
