"""Moving a case writes its event and its notification in one transaction, on SQLite and PostgreSQL;
a forbidden move changes nothing. Auto-approval of confirmed cases; the working-day deadlines and
their timers, fired by the sweeper with explicit `now` values on the real database."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from bot.workers.timers import TimerSweeper
from dialogs import sla
from dialogs.cases import CaseWorkflow
from dialogs.domain import (
    Case,
    CaseStatus,
    Order,
    PaymentChannel,
    ProductKind,
    Reason,
    RefundStatus,
    TimerKind,
    Verdict,
)
from dialogs.lifecycle import ForbiddenTransition
from dialogs.refunds import settle
from dialogs.settings import AutoApproveSettings, CoreSettings, PolicySettings, SlaSettings
from dialogs.workdays import WorkingCalendar
from storage.models import CaseEventRow, CaseRow, OutboxRow
from storage.uow import Database
from tests.storage.factories import CST, T0, make_case, make_order

WORKFLOW = CaseWorkflow(CoreSettings(), WorkingCalendar())


async def move_case(uow, case_no: str, trigger: str, **kw):  # type: ignore[no-untyped-def]
    return await WORKFLOW.move(uow, case_no, trigger, **kw)


@pytest.fixture
async def case_no(database: Database) -> str:
    async with database.uow() as uow:
        await uow.orders.upsert(make_order("A1001"))
        await uow.cases.add(make_case("R20261124-0001", "A1001"))
        await uow.commit()
    return "R20261124-0001"


async def test_a_move_writes_the_event_and_one_notification(database: Database, case_no: str) -> None:
    async with database.uow() as uow:
        moved = await move_case(uow, case_no, "start_review", actor="agent:42", at=T0, note="taken")
        await uow.commit()
    assert moved.status is CaseStatus.IN_REVIEW
    async with database.uow() as uow:
        case = await uow.cases.get(case_no)
        assert case is not None and case.status is CaseStatus.IN_REVIEW and case.version == moved.version
        assert (await uow.cases.events(case_no))[-1] == ("submitted", "in_review", "agent:42")  # type: ignore[attr-defined]
        # The same news again (a replayed callback, a retried transaction) is not queued twice.
        assert not await uow.outbox.add(_notification(case_no, moved.version, "in_review"))


async def test_two_moves_queue_two_notifications(database: Database, case_no: str) -> None:
    async with database.uow() as uow:
        first = await move_case(uow, case_no, "start_review", actor="agent:42", at=T0)
        second = await move_case(uow, case_no, "ask_info", actor="agent:42", at=T0, note="order page")
        await uow.commit()
    assert second.version == first.version + 1 and second.status is CaseStatus.NEEDS_INFO


async def test_a_forbidden_move_raises_and_changes_nothing(database: Database, case_no: str) -> None:
    async with database.uow() as uow:
        with pytest.raises(ForbiddenTransition):
            await move_case(uow, case_no, "confirm_refund", actor="finance", at=T0)
        await uow.commit()
    async with database.uow() as uow:
        case = await uow.cases.get(case_no)
        assert case is not None and case.status is CaseStatus.SUBMITTED
        assert [e[1] for e in await uow.cases.events(case_no)] == ["submitted"]  # type: ignore[attr-defined]


async def test_an_unknown_case_raises(database: Database) -> None:
    async with database.uow() as uow:
        with pytest.raises(KeyError):
            await move_case(uow, "R20990101-0001", "withdraw", actor="customer", at=T0)


def _notification(case_no: str, version: int, status: str):  # type: ignore[no-untyped-def]
    from dialogs.domain import OutboxMessage

    return OutboxMessage(kind="case_card", chat_id=1, dedupe_key=f"case:{case_no}:v{version}:card",
                         payload={}, created_at=T0)


# --- auto-approval, deadlines and timers (dialogs.sla, bot.workers.timers) -------------------------

C = CaseStatus
K = TimerKind
SUPERVISORS = -100777
SLA_SETTINGS = CoreSettings(sla=SlaSettings(supervisors_chat_id=SUPERVISORS),
                            auto_approve=AutoApproveSettings(enabled=True, max_amount=Decimal(200)))
SLA = CaseWorkflow(SLA_SETTINGS, WorkingCalendar())
# T0 is Tuesday 2026-11-24 10:30 in Shanghai; make_case promises the review by Thursday the 26th.
REVIEW_OVER = datetime(2026, 11, 27, 0, 0, 5, tzinfo=CST)


def eod(day: date) -> datetime:
    return sla.end_of_day(day, SLA_SETTINGS)


def eligible(reason: Reason = Reason.CARD_INVALID, **changes: Any) -> Case:
    return make_case("R20261124-0002", "A2001", reason=reason, verdict=Verdict.ELIGIBLE,
                     rule_id="CARD_DEFECT_IN_WINDOW", **changes)


async def file(database: Database, case: Case, order: Order, workflow: CaseWorkflow = SLA) -> Case:
    async with database.uow() as uow:
        await uow.orders.upsert(order)
        await uow.cases.add(case)
        filed = await workflow.filed(uow, case, order)
        await uow.commit()
    return filed


async def moves(database: Database, case_no: str, *steps: tuple[str, datetime]) -> Case:
    """fail_refund: the gateway's answer for the open attempt (a case never fails with money in flight)."""
    async with database.uow() as uow:
        for trigger, at in steps:
            if trigger == "fail_refund":
                case = (await settle(uow, SLA, case_no, succeeded=False, actor="gateway", at=at,
                                     case_note=trigger)).case
            else:
                case = await SLA.move(uow, case_no, trigger, actor="agent:42", at=at, note=trigger)
        await uow.commit()
    return case


async def stored(database: Database, case_no: str) -> tuple[Case, list[tuple[TimerKind, datetime]]]:
    async with database.uow() as uow:
        case = await uow.cases.get(case_no)
        assert case is not None
        return case, await uow.timers.pending(case_no)


async def outbox(database: Database, *kinds: str) -> list[tuple[str, int | None, dict[str, Any]]]:
    async with database.uow() as uow:
        rows = await uow.session.execute(  # type: ignore[attr-defined]
            select(OutboxRow.kind, OutboxRow.chat_id, OutboxRow.payload).where(OutboxRow.kind.in_(kinds))
            .order_by(OutboxRow.id))
        return [(r.kind, r.chat_id, r.payload) for r in rows]


async def event_notes(database: Database, case_no: str) -> list[tuple[str, str, str]]:
    async with database.uow() as uow:
        rows = await uow.session.execute(  # type: ignore[attr-defined]
            select(CaseEventRow.to_status, CaseEventRow.actor, CaseEventRow.note)
            .join(CaseRow, CaseRow.id == CaseEventRow.case_id).where(CaseRow.case_no == case_no)
            .order_by(CaseEventRow.id))
        return [(r.to_status, r.actor, r.note) for r in rows]


CONFIRMED_FACTS = {
    "card code not redeemed": (Reason.CARD_INVALID, {"card_redeemed": False}),
    "top-up not credited": (Reason.TOPUP_NOT_CREDITED,
                            {"product_kind": ProductKind.DIRECT_TOPUP, "topup_credited": False,
                             "card_redeemed": None}),
    "duplicate charge": (Reason.TOPUP_DUPLICATE,
                         {"product_kind": ProductKind.DIRECT_TOPUP, "topup_credited": True, "card_redeemed": None}),
}


@pytest.mark.parametrize("fact", list(CONFIRMED_FACTS))
async def test_a_case_the_order_data_confirms_is_approved_and_refunding_with_its_rule(
        database: Database, fact: str) -> None:
    reason, order_facts = CONFIRMED_FACTS[fact]
    case = await file(database, eligible(reason), make_order("A2001", tags=frozenset(), **order_facts))
    assert case.status is C.REFUNDING
    assert await event_notes(database, case.case_no) == [
        ("submitted", "customer", ""),
        ("approved", "system", "auto-approved by rule CARD_DEFECT_IN_WINDOW"),
        ("refunding", "system", "CARD_DEFECT_IN_WINDOW"),
    ]
    async with database.uow() as uow:
        [attempt] = await uow.refunds.for_case(case.case_no)
    assert attempt.status is RefundStatus.PENDING and attempt.amount == Decimal("100.00")
    # Alipay: 3 working days from Tuesday; the review clock stopped, the credit clock runs.
    stored_case, timers = await stored(database, case.case_no)
    assert stored_case.credit_due == date(2026, 11, 27)
    assert timers == [(K.CREDIT_DUE, eod(date(2026, 11, 27)))]


async def _stays_for_review(database: Database, case: Case, order: Order, workflow: CaseWorkflow = SLA) -> None:
    filed = await file(database, case, order, workflow)
    assert filed.status is C.SUBMITTED
    stored_case, timers = await stored(database, case.case_no)
    assert stored_case.status is C.SUBMITTED and stored_case.credit_due is None
    assert timers == [(K.REVIEW_DUE, eod(date(2026, 11, 26)))]
    async with database.uow() as uow:
        assert await uow.refunds.for_case(case.case_no) == []


async def test_with_auto_approval_off_a_confirmed_case_waits_for_review(database: Database) -> None:
    off = CaseWorkflow(CoreSettings(), WorkingCalendar())
    await _stays_for_review(database, eligible(), make_order("A2001", tags=frozenset()), off)


async def test_a_case_above_the_amount_cap_waits_for_review(database: Database) -> None:
    await _stays_for_review(database, eligible(amount=Decimal("200.01")),
                            make_order("A2001", tags=frozenset(), amount=Decimal("300.00")))


async def test_special_goods_wait_for_review(database: Database) -> None:
    await _stays_for_review(database, eligible(), make_order("A2001", tags=frozenset({"custom"})))


async def test_an_unconfirmed_fact_waits_for_review(database: Database) -> None:
    await _stays_for_review(database, eligible(), make_order("A2001", tags=frozenset(), card_redeemed=None))


async def test_a_case_that_asked_for_a_person_waits_for_review(database: Database) -> None:
    await _stays_for_review(database, eligible(wants_human=True), make_order("A2001", tags=frozenset()))


async def test_a_forbidden_move_leaves_deadlines_timers_and_outbox_alone(database: Database) -> None:
    case = await file(database, make_case(), make_order())
    await moves(database, case.case_no, ("start_review", T0))
    before = await stored(database, case.case_no), await outbox(database, "case_card", "case_news")
    async with database.uow() as uow:
        with pytest.raises(ForbiddenTransition):
            await SLA.move(uow, case.case_no, "retry_refund", actor="finance", at=T0)
        await uow.commit()
    assert (await stored(database, case.case_no), await outbox(database, "case_card", "case_news")) == before


async def test_needs_info_reminds_after_24_and_72_hours_then_closes_after_7_days(database: Database) -> None:
    case = await file(database, make_case(), make_order())
    asked = T0 + timedelta(hours=1)  # Tuesday 11:30
    await moves(database, case.case_no, ("start_review", T0), ("ask_info", asked))
    sweeper = TimerSweeper(database.uow, SLA)
    close = "2026-12-01 11:30"

    await sweeper.run_once(asked + timedelta(hours=23, minutes=59))
    assert await outbox(database, "info_reminder") == []
    await sweeper.run_once(asked + timedelta(hours=24))
    await sweeper.run_once(asked + timedelta(hours=25))
    assert await outbox(database, "info_reminder") == [
        ("info_reminder", 424242, {"case_no": case.case_no, "close": close})]
    await sweeper.run_once(asked + timedelta(hours=72))
    assert len(await outbox(database, "info_reminder")) == 2
    await sweeper.run_once(asked + timedelta(days=7, seconds=-1))
    assert (await stored(database, case.case_no))[0].status is C.NEEDS_INFO

    await sweeper.run_once(asked + timedelta(days=7))
    closed, timers = await stored(database, case.case_no)
    assert closed.status is C.CLOSED and timers == []
    assert (await event_notes(database, case.case_no))[-1] == ("closed", "system", "no answer within 7 days")
    assert (await outbox(database, "case_news"))[-1][2]["to"] == "closed"
    # The review promise was paused while the customer was asked: no apology for it.
    assert await outbox(database, "deadline_moved", "supervisor_alert") == []


async def test_an_answer_in_time_stops_the_reminders_and_resumes_the_review_promise(database: Database) -> None:
    case = await file(database, make_case(), make_order())
    await moves(database, case.case_no, ("start_review", T0), ("ask_info", T0),
                ("provide_info", T0 + timedelta(hours=5)))
    back, timers = await stored(database, case.case_no)
    assert back.status is C.IN_REVIEW and back.review_due == date(2026, 11, 26)
    assert timers == [(K.REVIEW_DUE, eod(date(2026, 11, 26)))]
    sweeper = TimerSweeper(database.uow, SLA)
    await sweeper.run_once(T0 + timedelta(hours=25))
    assert await outbox(database, "info_reminder") == []


async def test_an_answer_after_the_review_date_gets_a_fresh_review_period(database: Database) -> None:
    case = await file(database, make_case(), make_order())
    answered = datetime(2026, 11, 30, 9, 0, tzinfo=CST)  # Monday, after the 26th
    await moves(database, case.case_no, ("start_review", T0), ("ask_info", T0), ("provide_info", answered))
    back, timers = await stored(database, case.case_no)
    assert back.review_due == date(2026, 12, 3)
    assert timers == [(K.REVIEW_DUE, eod(date(2026, 12, 3)))]


async def test_an_overdue_review_apologises_alerts_and_moves_the_date_once_with_two_sweepers(
        database: Database) -> None:
    case = await file(database, make_case(), make_order())
    await moves(database, case.case_no, ("start_review", T0))
    first, second = TimerSweeper(database.uow, SLA), TimerSweeper(database.uow, SLA)
    assert first.owner != second.owner

    await asyncio.gather(first.run_once(REVIEW_OVER), second.run_once(REVIEW_OVER))
    await asyncio.gather(first.run_once(REVIEW_OVER), second.run_once(REVIEW_OVER))
    # Missed Thursday the 26th: two working days later is Monday the 30th.
    assert await outbox(database, "deadline_moved", "supervisor_alert") == [
        ("deadline_moved", 424242, {"case_no": case.case_no, "deadline": "review", "new_due": "2026-11-30"}),
        ("supervisor_alert", SUPERVISORS,
         {"case_no": case.case_no, "deadline": "review", "due": "2026-11-26", "new_due": "2026-11-30"}),
    ]
    assert first.fired + second.fired == 1
    moved, timers = await stored(database, case.case_no)
    assert moved.review_due == date(2026, 11, 30) and moved.status is C.IN_REVIEW
    assert timers == [(K.REVIEW_DUE, eod(date(2026, 11, 30)))]

    # Missed again: again exactly one apology, with the next date.
    await first.run_once(eod(date(2026, 11, 30)))
    assert len(await outbox(database, "deadline_moved")) == 2
    assert (await stored(database, case.case_no))[0].review_due == date(2026, 12, 2)


async def test_a_review_decided_in_time_is_no_overdue(database: Database) -> None:
    case = await file(database, make_case(), make_order())
    await moves(database, case.case_no, ("start_review", T0), ("reject", T0))
    await TimerSweeper(database.uow, SLA).run_once(REVIEW_OVER)
    assert await outbox(database, "deadline_moved", "supervisor_alert") == []


async def test_no_supervisors_chat_means_no_alert_but_still_the_apology(database: Database) -> None:
    quiet = CaseWorkflow(CoreSettings(), WorkingCalendar())
    case = await file(database, make_case(), make_order(), quiet)
    await TimerSweeper(database.uow, quiet).run_once(REVIEW_OVER)
    assert [k for k, _, _ in await outbox(database, "deadline_moved", "supervisor_alert")] == ["deadline_moved"]
    assert (await stored(database, case.case_no))[0].review_due == date(2026, 11, 30)


async def test_stale_timers_do_nothing(database: Database) -> None:
    case = await file(database, make_case(), make_order())
    await moves(database, case.case_no, ("start_review", T0), ("ask_info", T0))
    async with database.uow() as uow:  # timers left behind by earlier versions and dates
        await uow.timers.schedule(case.case_no, K.INFO_CLOSE, T0, version=1)
        await uow.timers.schedule(case.case_no, K.INFO_REMINDER, T0, version=2)
        await uow.timers.schedule(case.case_no, K.REVIEW_DUE, T0, version=3)
        await uow.timers.schedule(case.case_no, K.CREDIT_DUE, T0, version=3)
        await uow.commit()
    sweeper = TimerSweeper(database.uow, SLA)
    assert await sweeper.run_once(T0 + timedelta(minutes=1)) == 4
    assert sweeper.fired == 4
    unchanged, _ = await stored(database, case.case_no)
    assert unchanged.status is C.NEEDS_INFO and unchanged.review_due == date(2026, 11, 26)
    assert await outbox(database, "info_reminder", "deadline_moved", "supervisor_alert") == []


async def test_an_overdue_credit_apologises_even_after_a_failed_refund(database: Database) -> None:
    case = await file(database, eligible(), make_order("A2001", tags=frozenset()))
    await moves(database, case.case_no, ("fail_refund", T0 + timedelta(days=1)))
    await TimerSweeper(database.uow, SLA).run_once(eod(date(2026, 11, 27)))
    assert await outbox(database, "deadline_moved", "supervisor_alert") == [
        ("deadline_moved", 424242, {"case_no": case.case_no, "deadline": "credit", "new_due": "2026-12-01"}),
        ("supervisor_alert", SUPERVISORS,
         {"case_no": case.case_no, "deadline": "credit", "due": "2026-11-27", "new_due": "2026-12-01"}),
    ]
    moved, timers = await stored(database, case.case_no)
    assert moved.credit_due == date(2026, 12, 1) and timers == [(K.CREDIT_DUE, eod(date(2026, 12, 1)))]


async def test_a_retried_refund_gets_the_channels_credit_period_again(database: Database) -> None:
    case = await file(database, eligible(), make_order("A2001", tags=frozenset()))
    retried = datetime(2026, 11, 26, 15, 0, tzinfo=CST)
    await moves(database, case.case_no, ("fail_refund", T0 + timedelta(days=1)), ("retry_refund", retried))
    again, timers = await stored(database, case.case_no)
    # Alipay, 3 working days from Thursday: Friday, Monday, Tuesday (not the 27th first promised).
    assert again.status is C.REFUNDING and again.credit_due == date(2026, 12, 1)
    assert timers == [(K.CREDIT_DUE, eod(date(2026, 12, 1)))]
    async with database.uow() as uow:
        assert [a.idempotency_key for a in await uow.refunds.for_case(case.case_no)] == [
            f"{case.case_no}-1", f"{case.case_no}-2"]


async def test_a_retry_never_brings_a_promised_date_forward(database: Database) -> None:
    case = await file(database, eligible(), make_order("A2001", tags=frozenset()))
    async with database.uow() as uow:
        await uow.cases.set_due(case.case_no, credit_due=date(2026, 12, 10))
        await uow.commit()
    await moves(database, case.case_no, ("fail_refund", T0), ("retry_refund", T0))
    again, timers = await stored(database, case.case_no)
    assert again.credit_due == date(2026, 12, 10) and timers == [(K.CREDIT_DUE, eod(date(2026, 12, 10)))]


async def test_a_failed_refund_handed_to_a_person_gets_fresh_review_and_credit_dates(database: Database) -> None:
    case = await file(database, eligible(), make_order("A2001", tags=frozenset()))
    handed = datetime(2026, 12, 10, 9, 0, tzinfo=CST)  # Thursday
    await moves(database, case.case_no, ("fail_refund", T0), ("hand_to_human", handed))
    review, timers = await stored(database, case.case_no)
    assert review.status is C.IN_REVIEW and review.review_due == date(2026, 12, 15)
    assert timers == [(K.REVIEW_DUE, eod(date(2026, 12, 15)))]

    await moves(database, case.case_no, ("approve", handed + timedelta(days=1)),
                ("start_refund", handed + timedelta(days=1)))
    refunding, timers = await stored(database, case.case_no)
    assert refunding.credit_due == date(2026, 12, 16)  # not the 27 November of the first transfer
    assert timers == [(K.CREDIT_DUE, eod(date(2026, 12, 16)))]


async def test_an_appeal_is_a_new_review_promise(database: Database) -> None:
    case = await file(database, make_case(), make_order())
    appealed_at = datetime(2026, 12, 3, 20, 0, tzinfo=CST)  # Thursday evening
    await moves(database, case.case_no, ("start_review", T0), ("reject", T0))
    assert (await stored(database, case.case_no))[1] == []  # rejected: no clock runs
    await moves(database, case.case_no, ("appeal", appealed_at))
    appealed, timers = await stored(database, case.case_no)
    assert appealed.review_due == date(2026, 12, 8)
    assert timers == [(K.REVIEW_DUE, eod(date(2026, 12, 8)))]
    # The first review's date passing does nothing to the appeal.
    await TimerSweeper(database.uow, SLA).run_once(REVIEW_OVER)
    assert await outbox(database, "deadline_moved") == []


async def test_deadlines_and_timers_survive_a_restart(migrated_database_url: str) -> None:
    before = Database.from_url(migrated_database_url)
    try:
        case = await file(before, make_case(), make_order())
        await moves(before, case.case_no, ("start_review", T0), ("ask_info", T0))
        review_case = await file(before, replace(make_case("R20261124-0003", "A3001"), created_at=T0),
                                 make_order("A3001"))
    finally:
        await before.dispose()

    after = Database.from_url(migrated_database_url)  # a new process on the same database
    try:
        kept, timers = await stored(after, review_case.case_no)
        assert kept.review_due == date(2026, 11, 26) and timers == [(K.REVIEW_DUE, eod(date(2026, 11, 26)))]
        sweeper = TimerSweeper(after.uow, SLA)
        await sweeper.run_once(T0 + timedelta(hours=24))
        assert len(await outbox(after, "info_reminder")) == 1
        await sweeper.run_once(REVIEW_OVER)
        assert (await stored(after, review_case.case_no))[0].review_due == date(2026, 11, 30)
    finally:
        await after.dispose()


async def test_a_credit_date_in_a_year_the_calendar_does_not_know_uses_the_configured_holidays(
        database: Database) -> None:
    settings = SLA_SETTINGS.model_copy(update={"policy": PolicySettings(extra_holidays=(date(2027, 1, 1),))})
    workflow = CaseWorkflow(settings, WorkingCalendar(settings.policy.extra_holidays))
    filed_at = datetime(2026, 12, 30, 18, 0, tzinfo=CST)
    case = await file(database, eligible(created_at=filed_at, review_due=date(2027, 1, 5)),
                      make_order("A2001", tags=frozenset(), payment_channel=PaymentChannel.BANK_CARD), workflow)
    # Bank card, 5 working days: 31 Dec, then 2027 (weekdays but the configured 1 January): 4..7 Jan.
    assert case.status is C.REFUNDING
    stored_case, timers = await stored(database, case.case_no)
    assert stored_case.credit_due == date(2027, 1, 7) and timers == [(K.CREDIT_DUE, eod(date(2027, 1, 7)))]


async def test_two_conflicting_moves_at_once_let_exactly_one_through(database: Database, case_no: str) -> None:
    # An agent approves while the customer withdraws: each is allowed from in_review, neither after the
    # other. The case row is locked before the rule check, so the second sees the first's status.
    async with database.uow() as uow:
        await move_case(uow, case_no, "start_review", actor="agent:42", at=T0)
        await uow.commit()

    async def withdraw() -> str:
        try:
            async with database.uow() as uow:
                await move_case(uow, case_no, "withdraw", actor="customer", at=T0)
                await uow.commit()
                return "moved"
        except ForbiddenTransition:
            return "refused"

    async with database.uow() as agent:
        await move_case(agent, case_no, "approve", actor="agent:42", at=T0)
        customer = asyncio.create_task(withdraw())
        await asyncio.sleep(0.3)
        assert not customer.done()  # waiting for the agent's transaction
        await agent.commit()
    assert await customer == "refused"
    async with database.uow() as uow:
        events = [e[1] for e in await uow.cases.events(case_no)]  # type: ignore[attr-defined]
    assert events == ["submitted", "in_review", "approved"]
