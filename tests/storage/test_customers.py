"""A customer's personal data (storage/customers.py) on SQLite and PostgreSQL: the export holds all of
it; forget erases it, keeps the money records and the other customers, and refuses while a payout of
theirs is in flight."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from storage.customers import PayoutInFlight, customer_data, forget_customer
from storage.models import (
    CaseEventRow,
    CaseRow,
    ConversationRow,
    DeskAuditRow,
    EvidenceRow,
    OrderRow,
    OutboxRow,
)
from storage.uow import Database
from tests.storage.factories import T0
from tests.storage.people import (
    OTHER_PHONE,
    PAID,
    STRANGER,
    WAITING,
    ZHANG,
    ZHANG_NAME,
    ZHANG_PHONE,
    seed_people,
    settle_payout,
)


async def test_the_export_holds_their_cases_orders_conversation_evidence_and_messages(
        database: Database, tmp_path: Path) -> None:
    seeded = await seed_people(database, tmp_path)

    data = await customer_data(database, ZHANG)

    assert [c["case_no"] for c in data["cases"]] == [PAID, WAITING]
    assert {o["order_no"]: o["buyer_phone"] for o in data["orders"]} == {"A1001": ZHANG_PHONE, "A2002": ZHANG_PHONE}
    assert data["conversations"][0]["data"]["description"].startswith(ZHANG_NAME)
    assert [e["path"] for e in data["evidence"]] == [str(seeded.evidence_file)]
    assert data["cases"][0]["refund_attempts"][0]["amount"] == "20.00"
    assert [m["payload"]["text"] for m in data["messages_to_them"] if m["kind"] == "customer_text"] == [
        f"{ZHANG_NAME}您好"]
    assert {m["kind"] for m in data["messages_to_them"]} >= {"case_card", "customer_text"}
    assert STRANGER not in json.dumps(data, ensure_ascii=False)  # nothing of another customer
    assert json.loads(json.dumps(data)) == data  # JSON as it stands


async def test_forget_is_refused_while_a_payout_is_in_flight_and_changes_nothing(
        database: Database, tmp_path: Path) -> None:
    await seed_people(database, tmp_path)

    with pytest.raises(PayoutInFlight, match=PAID):
        await forget_customer(database, ZHANG, actor="cli:王经理", actor_id=None, at=T0)

    assert (await customer_data(database, ZHANG))["conversations"] != []


async def test_forget_erases_personal_data_and_keeps_the_money_records(database: Database, tmp_path: Path) -> None:
    await seed_people(database, tmp_path)
    await settle_payout(database)

    done = await forget_customer(database, ZHANG, actor="cli:王经理", actor_id=None, at=T0)

    assert (done.cases, done.orders, done.conversations, done.evidence_rows) == (2, 2, 1, 1)
    async with database.uow() as uow:
        s = uow.session
        assert (await s.scalars(select(ConversationRow.chat_id))).all() == []
        assert (await s.scalars(select(EvidenceRow.id))).all() == []
        assert (await s.scalars(select(OutboxRow.id).where(OutboxRow.chat_id == ZHANG))).all() == []
        phones = dict((await s.execute(select(OrderRow.order_no, OrderRow.buyer_phone))).tuples().all())
        assert phones == {"A1001": "", "A2002": "", "B3003": OTHER_PHONE}
        cases = {r.case_no: r for r in (await s.scalars(select(CaseRow))).all()}
        assert (cases[PAID].status, cases[PAID].amount, cases[PAID].description) == ("refunded", Decimal("30.00"), "")
        assert cases[STRANGER].description == "不能用"
        notes = (await s.scalars(select(CaseEventRow.note))).all()
        assert not [n for n in notes if ZHANG_NAME in n]
        actors = (await s.scalars(select(CaseEventRow.actor).where(CaseEventRow.case_id == cases[PAID].id))).all()
        assert actors[-1] == "cli:王经理"
        audit = (await s.scalars(select(DeskAuditRow.detail).where(DeskAuditRow.action == "forget_customer"))).all()
        assert audit == [f"user {ZHANG} by cli:王经理: 2 cases, 1 evidence rows"]
    async with database.uow() as uow:
        attempts = await uow.refunds.for_case(PAID)
    assert [(a.amount, a.status.value) for a in attempts] == [(Decimal("20.00"), "succeeded")]


async def test_forget_names_the_files_no_other_row_uses(database: Database, tmp_path: Path) -> None:
    seeded = await seed_people(database, tmp_path)
    await settle_payout(database)

    done = await forget_customer(database, ZHANG, actor="cli:王经理", actor_id=None, at=T0)

    assert done.orphaned_files == (str(seeded.evidence_file),)
