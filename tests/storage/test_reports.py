"""The operators' read-only views (storage/reports.py) on SQLite and PostgreSQL: `cases list` filters
and amounts, `cases show`'s history, attempts and evidence, the finance export's money facts."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from dialogs.domain import CaseStatus, DeskItem
from storage.reports import case_detail, list_cases, money_facts
from storage.uow import Database
from tests.storage.factories import T0
from tests.storage.people import (
    A1001_TRADE_NO,
    OTHER,
    PAID,
    STRANGER,
    WAITING,
    ZHANG,
    ZHANG_PHONE,
    seed_people,
)


async def test_list_filters_by_status_order_and_customer_and_shows_the_approved_amount(
        database: Database, tmp_path: Path) -> None:
    await seed_people(database, tmp_path)

    by_status = await list_cases(database, statuses=[CaseStatus.REFUNDING])
    assert [(c.case_no, c.amount, c.approved) for c in by_status] == [(PAID, Decimal("30.00"), Decimal("20.00"))]
    assert [c.case_no for c in await list_cases(database, order_no="A2002")] == [WAITING]
    assert sorted(c.case_no for c in await list_cases(database, user_id=ZHANG)) == [PAID, WAITING]
    assert [c.case_no for c in await list_cases(database, user_id=OTHER)] == [STRANGER]
    assert len(await list_cases(database, limit=2)) == 2


async def test_list_names_the_desk_agent_who_owns_a_case(database: Database, tmp_path: Path) -> None:
    await seed_people(database, tmp_path)
    async with database.uow() as uow:
        await uow.desk.open(DeskItem(key=WAITING, chat_id=ZHANG, user_id=ZHANG, opened_at=T0, case_no=WAITING))
        await uow.desk.take(WAITING, 7001, at=T0)
        await uow.commit()

    owners = {c.case_no: c.owner_id for c in await list_cases(database)}

    assert owners == {PAID: None, WAITING: 7001, STRANGER: None}


async def test_detail_has_the_history_the_attempt_and_the_evidence_on_disk(database: Database, tmp_path: Path) -> None:
    seeded = await seed_people(database, tmp_path)

    paid = await case_detail(database, PAID)
    waiting = await case_detail(database, WAITING)

    assert paid is not None and waiting is not None
    assert [(e.actor, e.from_status, e.to_status) for e in paid.events] == [
        ("customer", None, "in_review"), ("agent:7001", "in_review", "approved"), ("system", "approved", "refunding")]
    assert [(a.status, a.amount, a.gateway) for a in paid.attempts] == [("pending", Decimal("20.00"), "manual")]
    assert [(e.path, e.size) for e in waiting.evidence] == [(str(seeded.evidence_file), seeded.evidence_size)]
    assert paid.credit_due is not None and paid.timers  # the credit deadline is set and timed
    assert await case_detail(database, "R20990101-0001") is None


async def test_money_facts_bring_the_channel_trade_number_phone_approved_amount_and_payout_reference(
        database: Database, tmp_path: Path) -> None:
    await seed_people(database, tmp_path)

    facts = await money_facts(database, [(PAID, "A1001"), (WAITING, "A2002")])

    assert (facts[PAID].payment_channel, facts[PAID].trade_no, facts[PAID].buyer_phone, facts[PAID].approved) == (
        "alipay", A1001_TRADE_NO, ZHANG_PHONE, Decimal("20.00"))
    assert (facts[WAITING].payment_channel, facts[WAITING].approved, facts[WAITING].trade_no,
            facts[WAITING].payout_ref) == ("wechat", None, "", "")
