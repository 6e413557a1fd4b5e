"""The daily reconciliation (`[platform] reconcile_at`): once a day, after that local time, yesterday's
refund attempts are checked against their rails (bot/reconcile.py) and any mismatch is told to the
supervisors' chat.

The day last reconciled is remembered in memory only: a restart after reconcile_at (or a second worker
process) reconciles the same day again. That is harmless: reconciliation only reads, and the alert's
outbox dedupe key (one per day) keeps the supervisors from hearing of the same day twice.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from datetime import date, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from bot.finance import local_range
from bot.reconcile import Kind, Report, reconcile
from bot.workers.base import Sweep
from dialogs.clock import Clock, utcnow
from dialogs.domain import OutboxMessage
from dialogs.outbox import SUPERVISOR_ALERT
from dialogs.ports import RefundGateway

if TYPE_CHECKING:
    from storage.uow import Database

log = logging.getLogger(__name__)

ALERT_KEY = "alert.reconcile"


class DailyReconcile(Sweep[None]):
    """Looks every `interval` seconds whether yesterday is due (it is after `at`, local time, and not done)."""

    what = "daily reconciliation"
    log = log

    def __init__(self, database: Database, gateways: Mapping[str, RefundGateway], *, at: str, timezone: str,
                 supervisors_chat_id: int, call_timeout: float = 30.0, clock: Clock = utcnow,
                 interval: float = 60.0) -> None:
        super().__init__(database.uow, interval=interval, clock=clock)
        self.database, self.gateways = database, gateways
        hours, minutes = at.split(":")
        self.at, self.zone, self.timezone = time(int(hours), int(minutes)), ZoneInfo(timezone), timezone
        self.supervisors_chat_id, self.call_timeout = supervisors_chat_id, call_timeout
        self.last_day: date | None = None  # the day last reconciled

    async def run_once(self, now: object = None) -> int:
        local = self.clock().astimezone(self.zone)
        day = local.date() - timedelta(days=1)
        if local.time() < self.at or self.last_day == day:
            return 0
        report = await reconcile(self.database, self.gateways, *local_range(day, day, self.timezone),
                                 call_timeout=self.call_timeout)
        self.last_day = day
        mismatches = report.mismatches
        if not mismatches:
            log.info("reconciled %s: %d refund attempts agree with their rails", day, len(report.lines))
            return 0
        log.warning("reconciled %s: %d mismatches of %d lines (refundbot reconcile --since %s --until %s)",
                    day, len(mismatches), len(report.lines), day, day)
        await self._alert(day, report)
        return 0

    async def _alert(self, day: date, report: Report) -> None:
        if not self.supervisors_chat_id:
            return
        kinds = Counter(line.kind for line in report.mismatches)
        params = {"day": day.isoformat(), "checked": sum(1 for line in report.lines if line.key),
                  "mismatches": len(report.mismatches), **{kind.value: kinds[kind] for kind in Kind if kind is not Kind.OK}}
        async with self.uow() as uow:
            # A summary, told through the first mismatching case (a supervisor's alert names one).
            await uow.outbox.add(OutboxMessage(
                kind=SUPERVISOR_ALERT, chat_id=self.supervisors_chat_id, dedupe_key=f"reconcile:{day.isoformat()}",
                payload={"case_no": report.mismatches[0].case_no, "text_key": ALERT_KEY, "params": params},
                created_at=self.clock()))
            await uow.commit()
