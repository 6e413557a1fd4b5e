"""The daily reconciliation (bot/workers/reconcile.py, `[platform] reconcile_at`): yesterday's refunds,
once a day after the set local time, and the supervisors' alert on a mismatch, as the relay would send it."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import cast

import pytest

from bot.app import opened_core, running_workers
from bot.config import AppConfig, DatabaseConfig, PlatformConfig
from bot.rails import BUILDERS
from bot.sending import Sender
from bot.workers.reconcile import DailyReconcile
from dialogs.clock import utcnow
from dialogs.domain import CaseStatus, RefundAttempt, RefundStatus
from dialogs.outbox import SUPERVISOR_ALERT
from storage.uow import Database
from tests.bot.test_rail_worker import said
from tests.bot.test_reconcile import PAID_30, QueryRail, book
from tests.storage.factories import T0, make_case, make_order

NEXT_MORNING = T0.replace(hour=4, minute=0) + timedelta(days=1)  # 2026-11-25 04:00 +08:00


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def sweep(database: Database, rail: QueryRail, clock: Clock) -> DailyReconcile:
    return DailyReconcile(database, {rail.name: rail}, at="04:00", timezone="Asia/Shanghai",
                          supervisors_chat_id=-1009, clock=clock)


async def test_nothing_is_asked_before_the_set_time(database: Database) -> None:
    key = await book(database, "R20261124-0001", RefundStatus.SUCCEEDED)
    rail = QueryRail({key: None})

    await sweep(database, rail, Clock(NEXT_MORNING - timedelta(minutes=1))).run_once()

    assert rail.asked == []


async def test_yesterday_is_reconciled_once_after_the_set_time_and_a_mismatch_alerts_the_supervisors(
        database: Database) -> None:
    key = await book(database, "R20261124-0001", RefundStatus.SUCCEEDED)
    rail, clock = QueryRail({key: None}), Clock(NEXT_MORNING + timedelta(minutes=1))
    daily = sweep(database, rail, clock)

    await daily.run_once()
    clock.now += timedelta(hours=5)
    await daily.run_once()  # the same day: not again

    assert [k for k, _ in rail.asked] == [key]
    [alert] = await said(database, SUPERVISOR_ALERT)
    assert alert.chat_id == -1009
    assert alert.text.startswith("⚠️ 对账异常：2026-11-24 的退款与支付渠道核对后有 1 处不一致（共核对 1 笔）")
    assert "渠道查无此退款 1，" in alert.text and "R20261124-0001" in alert.text
    assert "refundbot reconcile --since 2026-11-24 --until 2026-11-24" in alert.text


async def test_the_next_day_reconciles_its_own_yesterday(database: Database) -> None:
    first = await book(database, "R20261124-0001", RefundStatus.SUCCEEDED)
    second = await book(database, "R20261125-0001", RefundStatus.SUCCEEDED, order_no="A1002", day=1)
    rail, clock = QueryRail({first: PAID_30, second: PAID_30}), Clock(NEXT_MORNING)
    daily = sweep(database, rail, clock)

    await daily.run_once()
    clock.now += timedelta(days=1)
    await daily.run_once()

    assert [k for k, _ in rail.asked] == [first, second]


async def test_a_day_that_agrees_alerts_nobody(database: Database) -> None:
    key = await book(database, "R20261124-0001", RefundStatus.SUCCEEDED)

    await sweep(database, QueryRail({key: PAID_30}), Clock(NEXT_MORNING)).run_once()

    assert await said(database, SUPERVISOR_ALERT) == []


async def test_a_restart_reconciles_the_day_again_but_alerts_once(database: Database) -> None:
    key = await book(database, "R20261124-0001", RefundStatus.SUCCEEDED)
    rail = QueryRail({key: None})

    for _ in range(2):  # two processes (or a restart) the same morning
        await sweep(database, rail, Clock(NEXT_MORNING)).run_once()

    assert len(rail.asked) == 2
    assert len(await said(database, SUPERVISOR_ALERT)) == 1


async def test_the_workers_reconcile_daily_when_reconcile_at_is_set(monkeypatch: pytest.MonkeyPatch,
                                                                     tmp_path: Path) -> None:
    rail = QueryRail(name="scripted")
    monkeypatch.setitem(BUILDERS, "scripted", lambda config: rail)
    config = AppConfig(database=DatabaseConfig(url=f"sqlite:///{tmp_path}/bot.db"),
                       platform=PlatformConfig(rails={"alipay": "scripted"}, reconcile_at="00:00"))
    async with opened_core(config) as (core, gateways):
        async with core.database.uow() as uow:  # made yesterday ([i18n] timezone), on the rail
            await uow.orders.upsert(make_order("A1001"))
            await uow.cases.add(make_case("R20261124-0001", "A1001", status=CaseStatus.REFUNDED))
            await uow.refunds.add(RefundAttempt("R20261124-0001", "R20261124-0001-1", "scripted", Decimal("30.00"),
                                                RefundStatus.SUCCEEDED, created_at=utcnow() - timedelta(days=1)))
            await uow.commit()
        rail.answers["R20261124-0001-1"] = PAID_30
        async with running_workers(core, gateways, config, cast(Sender, object()), lambda: 0):
            for _ in range(100):
                if rail.asked:
                    break
                await asyncio.sleep(0.05)

    assert [key for key, _ in rail.asked] == ["R20261124-0001-1"]
