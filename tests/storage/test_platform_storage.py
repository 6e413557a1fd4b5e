"""The refund ledger and the callback nonce ledger keep their promises on SQLite and PostgreSQL; the
attempt a case gets on entering refunding never asks for more than was paid."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest

from dialogs.cases import CaseWorkflow, NothingToRefund
from dialogs.domain import CaseStatus, RefundAttempt, RefundStatus
from dialogs.settings import CoreSettings
from dialogs.workdays import WorkingCalendar
from storage.uow import Database
from tests.storage.factories import T0, make_case, make_order

WORKFLOW = CaseWorkflow(CoreSettings(), WorkingCalendar(), "http")


def attempt(key: str = "R20261124-0001-1", **changes: object) -> RefundAttempt:
    base = RefundAttempt(case_no="R20261124-0001", idempotency_key=key, gateway="http", amount=Decimal("30.50"),
                         status=RefundStatus.PENDING, created_at=T0)
    return replace(base, **changes)  # type: ignore[arg-type]


async def test_an_idempotency_key_is_recorded_once(database: Database) -> None:
    async with database.uow() as uow:
        assert await uow.refunds.add(attempt()) is True
        assert await uow.refunds.add(attempt(amount=Decimal(99))) is False
        await uow.commit()
    async with database.uow() as uow:
        assert await uow.refunds.add(attempt()) is False
        [stored] = await uow.refunds.for_case("R20261124-0001")
    assert stored.amount == Decimal("30.50") and stored.status is RefundStatus.PENDING


async def test_pending_lists_only_unsent_attempts_oldest_first(database: Database) -> None:
    async with database.uow() as uow:
        for n in (1, 2, 3):
            await uow.refunds.add(attempt(f"R20261124-0001-{n}"))
        await uow.refunds.set_status("R20261124-0001-2", RefundStatus.REQUESTED, at=T0, external_ref="P-2")
        await uow.commit()
    async with database.uow() as uow:
        assert [a.idempotency_key for a in await uow.refunds.pending()] == ["R20261124-0001-1", "R20261124-0001-3"]
        assert [a.idempotency_key for a in await uow.refunds.pending(limit=1)] == ["R20261124-0001-1"]


async def test_set_status_keeps_the_external_ref_when_given_none(database: Database) -> None:
    async with database.uow() as uow:
        await uow.refunds.add(attempt())
        await uow.refunds.set_status("R20261124-0001-1", RefundStatus.REQUESTED, at=T0, external_ref="P-1")
        await uow.refunds.set_status("R20261124-0001-1", RefundStatus.SUCCEEDED, at=T0, note="paid")
        await uow.commit()
    async with database.uow() as uow:
        [stored] = await uow.refunds.for_case("R20261124-0001")
    assert (stored.status, stored.external_ref, stored.note) == (RefundStatus.SUCCEEDED, "P-1", "paid")


async def test_set_status_of_an_unknown_key_raises(database: Database) -> None:
    async with database.uow() as uow:
        with pytest.raises(KeyError):
            await uow.refunds.set_status("nope", RefundStatus.FAILED, at=T0)


async def test_a_signature_is_remembered_once_and_only_when_committed(database: Database) -> None:
    async with database.uow() as uow:
        assert await uow.nonces.remember("a" * 64, T0) is True  # rolled back: never happened
    async with database.uow() as uow:
        assert await uow.nonces.remember("a" * 64, T0) is True
        assert await uow.nonces.remember("a" * 64, T0) is False
        await uow.commit()
    async with database.uow() as uow:
        assert await uow.nonces.remember("a" * 64, T0 + timedelta(minutes=1)) is False


async def test_prune_forgets_only_older_signatures(database: Database) -> None:
    async with database.uow() as uow:
        await uow.nonces.remember("old", T0)
        await uow.nonces.remember("new", T0 + timedelta(minutes=20))
        await uow.commit()
    async with database.uow() as uow:
        assert await uow.nonces.prune(T0 + timedelta(minutes=10)) == 1
        await uow.commit()
    async with database.uow() as uow:
        assert await uow.nonces.remember("old", T0) is True
        assert await uow.nonces.remember("new", T0) is False


async def _refunding_case(database: Database, *, paid: str, claimed: str) -> str:
    async with database.uow() as uow:
        await uow.orders.upsert(make_order("A1001", amount=Decimal(paid)))
        await uow.cases.add(make_case("R20261124-0001", "A1001", amount=Decimal(claimed),
                                      status=CaseStatus.IN_REVIEW))
        await WORKFLOW.approve(uow, "R20261124-0001", actor="agent:1", at=T0)
        await uow.commit()
    return "R20261124-0001"


async def test_the_refund_attempt_never_exceeds_the_paid_amount(database: Database) -> None:
    case_no = await _refunding_case(database, paid="30.00", claimed="45.00")
    async with database.uow() as uow:
        [first] = await uow.refunds.for_case(case_no)
    assert first.amount == Decimal("30.00") and first.idempotency_key == f"{case_no}-1"


async def test_nothing_is_asked_again_once_the_paid_amount_went_back(database: Database) -> None:
    case_no = await _refunding_case(database, paid="30.00", claimed="30.00")
    async with database.uow() as uow:
        # The platform paid, yet the case ended in refund_failed (e.g. a late, contradicting answer).
        await uow.refunds.set_status(f"{case_no}-1", RefundStatus.SUCCEEDED, at=T0)
        await WORKFLOW.move(uow, case_no, "fail_refund", actor="gateway", at=T0)
        with pytest.raises(NothingToRefund):  # 30.00 of 30.00 already paid back
            await WORKFLOW.move(uow, case_no, "retry_refund", actor="agent:1", at=T0)


async def test_a_retry_gets_a_new_key_and_the_remaining_amount(database: Database) -> None:
    case_no = await _refunding_case(database, paid="30.00", claimed="30.00")
    async with database.uow() as uow:
        await uow.refunds.set_status(f"{case_no}-1", RefundStatus.FAILED, at=T0)
        await WORKFLOW.move(uow, case_no, "fail_refund", actor="gateway", at=T0)
        await WORKFLOW.move(uow, case_no, "retry_refund", actor="agent:1", at=T0)
        await uow.commit()
    async with database.uow() as uow:
        attempts = await uow.refunds.for_case(case_no)
    assert [(a.idempotency_key, a.amount, a.status) for a in attempts] == [
        (f"{case_no}-1", Decimal("30.00"), RefundStatus.FAILED),
        (f"{case_no}-2", Decimal("30.00"), RefundStatus.PENDING),
    ]
