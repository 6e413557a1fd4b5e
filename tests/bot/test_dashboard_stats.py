"""storage.stats on SQLite and PostgreSQL, over cases moved by the real workflow: refunds paid, a review
deadline missed and fired by the timer sweeper, ratings, desk actions. Days are the platform's local days."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from bot.workers.timers import TimerSweeper
from dialogs.cases import CaseWorkflow
from dialogs.domain import CaseStatus, DeskItem, PaymentChannel
from dialogs.refunds import settle
from dialogs.settings import CoreSettings
from dialogs.workdays import WorkingCalendar
from storage.stats import dashboard_stats
from storage.uow import Database
from tests.storage.factories import CST, T0, make_case, make_order

WORKFLOW = CaseWorkflow(CoreSettings(), WorkingCalendar())
NOW = datetime(2026, 12, 3, 12, 0, tzinfo=CST)  # the repositories' clock: ratings are given "now"
TZ = "Asia/Shanghai"


@pytest.fixture
async def db(migrated_database_url: str) -> AsyncIterator[Database]:
    database = Database.from_url(migrated_database_url, clock=lambda: NOW)
    try:
        yield database
    finally:
        await database.dispose()


async def file(db: Database, case_no: str, order_no: str, amount: str, channel: PaymentChannel,
               at: datetime = T0) -> None:
    async with db.uow() as uow:
        order = make_order(order_no, amount=Decimal(amount), payment_channel=channel, tags=frozenset())
        await uow.orders.upsert(order)
        case = make_case(case_no, order_no, amount=Decimal(amount), created_at=at)
        await uow.cases.add(case)
        await WORKFLOW.filed(uow, case, order)
        await uow.commit()


async def refund(db: Database, case_no: str, at: datetime) -> None:
    async with db.uow() as uow:
        await WORKFLOW.move(uow, case_no, "start_review", actor="agent:501", at=at)
        await WORKFLOW.approve(uow, case_no, actor="agent:501", at=at)
        await uow.commit()
    async with db.uow() as uow:
        await settle(uow, WORKFLOW, case_no, succeeded=True, actor="platform", at=at + timedelta(hours=1))
        await uow.commit()


async def test_succeeded_refunds_are_summed_per_local_day_and_payment_channel(db: Database) -> None:
    await file(db, "R1", "A1", "30.00", PaymentChannel.ALIPAY)
    await file(db, "R2", "A2", "50.00", PaymentChannel.WECHAT)
    await file(db, "R3", "A3", "20.00", PaymentChannel.ALIPAY)
    await refund(db, "R1", T0)  # paid 2026-11-24 11:30 local
    await refund(db, "R2", T0 + timedelta(days=1))  # paid 2026-11-25
    await refund(db, "R3", datetime(2026, 11, 25, 22, 30, tzinfo=CST))  # paid 23:30 local (15:30 UTC)
    stats = await dashboard_stats(db, days=30, now=NOW, timezone=TZ)
    day = stats.days.index
    alipay, wechat = stats.refunded["alipay"], stats.refunded["wechat"]
    assert alipay[day(date(2026, 11, 24))] == Decimal("30.00")
    assert wechat[day(date(2026, 11, 25))] == Decimal("50.00")
    assert alipay[day(date(2026, 11, 25))] == Decimal("20.00")  # 22:30 + 1 h = 23:30 local, still the 25th
    assert sum(alipay) == Decimal("50.00") and sum(wechat) == Decimal("50.00")
    assert stats.refund_counts[day(date(2026, 11, 24))] == 1 and stats.refund_counts[day(date(2026, 11, 25))] == 2
    assert stats.refunded["bank_card"] == [Decimal("0.00")] * 30


async def test_a_refund_late_in_the_utc_day_counts_on_the_next_local_day(db: Database) -> None:
    await file(db, "R1", "A1", "30.00", PaymentChannel.BANK_CARD)
    await refund(db, "R1", datetime(2026, 11, 26, 16, 30, tzinfo=UTC))  # paid 17:30 UTC = 01:30 local on the 27th
    stats = await dashboard_stats(db, days=30, now=NOW, timezone=TZ)
    assert stats.refunded["bank_card"][stats.days.index(date(2026, 11, 27))] == Decimal("30.00")
    assert stats.refunded["bank_card"][stats.days.index(date(2026, 11, 26))] == Decimal("0.00")


async def test_open_cases_are_counted_by_status_and_closed_ones_are_not(db: Database) -> None:
    await file(db, "R1", "A1", "30.00", PaymentChannel.ALIPAY)
    await file(db, "R2", "A2", "30.00", PaymentChannel.ALIPAY)
    await file(db, "R3", "A3", "30.00", PaymentChannel.ALIPAY)
    await refund(db, "R3", T0)  # refunded: closed
    async with db.uow() as uow:
        await WORKFLOW.move(uow, "R2", "start_review", actor="agent:501", at=T0)
        await uow.commit()
    stats = await dashboard_stats(db, days=30, now=NOW, timezone=TZ)
    assert stats.open_by_status == {CaseStatus.SUBMITTED.value: 1, CaseStatus.IN_REVIEW.value: 1}


async def test_a_missed_review_deadline_counts_on_the_day_that_was_missed(db: Database) -> None:
    await file(db, "R1", "A1", "30.00", PaymentChannel.ALIPAY)
    await file(db, "R2", "A2", "30.00", PaymentChannel.ALIPAY)
    await refund(db, "R2", T0)  # decided in time: its review clock stops
    async with db.uow() as uow:
        case = await uow.cases.get("R1")
    assert case is not None
    missed = case.review_due
    assert await TimerSweeper(db.uow, WORKFLOW).run_once(NOW) == 1  # the sweeper fires the review timer
    stats = await dashboard_stats(db, days=30, now=NOW, timezone=TZ)
    assert stats.missed["review"][stats.days.index(missed)] == 1
    assert sum(stats.missed["review"]) == 1 and sum(stats.missed["credit"]) == 0


async def test_ratings_are_averaged_on_the_day_they_were_given(db: Database) -> None:
    for n, stars in ((1, 5), (2, 2)):
        await file(db, f"R{n}", f"A{n}", "30.00", PaymentChannel.ALIPAY)
        await refund(db, f"R{n}", T0)
        async with db.uow() as uow:
            await uow.cases.rate(f"R{n}", stars, None)
            await uow.commit()
    stats = await dashboard_stats(db, days=7, now=NOW, timezone=TZ)
    today = stats.days.index(date(2026, 12, 3))
    assert stats.rating_average[today] == 3.5 and stats.rating_counts[today] == 2
    assert [a for n, a in enumerate(stats.rating_average) if n != today] == [None] * 6


async def test_agents_are_credited_with_takeovers_decisions_and_what_they_hold_now(db: Database) -> None:
    await file(db, "R1", "A1", "30.00", PaymentChannel.ALIPAY)
    async with db.uow() as uow:
        await uow.desk.open(DeskItem(key="R1", chat_id=424242, user_id=424242, opened_at=T0, case_no="R1"))
        await uow.desk.take("R1", 502, at=T0)
        for actor, action, allowed in ((501, "take", True), (501, "approve", True), (501, "reject", True),
                                       (502, "take", True), (502, "note", True), (999, "approve", False)):
            await uow.desk.audit(actor_id=actor, key="R1", action=action, allowed=allowed, at=T0, detail="")
        await uow.commit()
    stats = await dashboard_stats(db, days=30, now=NOW, timezone=TZ)
    loads = {a.agent_id: (a.taken, a.decided, a.open) for a in stats.agents}
    assert loads == {501: (1, 2, 0), 502: (1, 0, 1)}  # a refused attempt by a stranger counts for nobody


async def test_the_window_leaves_out_what_happened_before_its_first_local_day(db: Database) -> None:
    await file(db, "R1", "A1", "30.00", PaymentChannel.ALIPAY)
    await refund(db, "R1", T0)  # 2026-11-24, nine days before NOW
    stats = await dashboard_stats(db, days=7, now=NOW, timezone=TZ)
    assert stats.days[0] == date(2026, 11, 27) and stats.days[-1] == date(2026, 12, 3)
    assert sum(stats.refund_counts) == 0


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize("days", [0, 367])
async def test_a_window_outside_one_to_366_days_is_refused(db: Database, days: int) -> None:
    with pytest.raises(ValueError, match="between 1 and 366"):
        await dashboard_stats(db, days=days, now=NOW, timezone=TZ)
