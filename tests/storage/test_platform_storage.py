"""The refund ledger and the callback nonce ledger keep their promises on SQLite and PostgreSQL; the
attempt a case gets on entering refunding never asks for more than was paid; a refund worker's claim
is a lease that two workers never share."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from dialogs.cases import CaseWorkflow, NothingToRefund
from dialogs.domain import CaseStatus, RefundAttempt, RefundStatus
from dialogs.settings import CoreSettings
from dialogs.workdays import WorkingCalendar
from storage.models import RefundAttemptRow
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


async def add_attempts(database: Database, *keys: str, gateway: str = "http") -> None:
    async with database.uow() as uow:
        for key in keys:
            await uow.refunds.add(attempt(key, gateway=gateway))
        await uow.commit()


async def claim(database: Database, owner: str, minutes: float, *, lease: float = 60, limit: int = 10,
                gateway: str = "http") -> list[str]:
    """The keys `owner` claims at T0 + `minutes`."""
    async with database.uow() as uow:
        claimed = await uow.refunds.claim_pending(gateway=gateway, owner=owner, now=T0 + timedelta(minutes=minutes),
                                                  lease_seconds=lease, limit=limit)
        await uow.commit()
    return [a.idempotency_key for a in claimed]


async def lease(database: Database, key: str) -> tuple[str | None, object]:
    async with database.uow() as uow:
        row = (await uow.session.execute(select(RefundAttemptRow.claimed_by, RefundAttemptRow.claim_until)
                                         .where(RefundAttemptRow.idempotency_key == key))).one()
    return row.claimed_by, row.claim_until


async def test_claim_takes_only_pending_attempts_of_its_gateway_oldest_first(database: Database) -> None:
    await add_attempts(database, "R20261124-0001-1", "R20261124-0001-2", "R20261124-0001-3")
    await add_attempts(database, "R20261124-0001-4", gateway="manual")
    async with database.uow() as uow:
        await uow.refunds.set_status("R20261124-0001-2", RefundStatus.REQUESTED, at=T0, external_ref="P-2")
        claimed = await uow.refunds.claim_pending(gateway="http", owner="a", now=T0, lease_seconds=60, limit=10)
        await uow.commit()
    assert claimed == [attempt("R20261124-0001-1"), attempt("R20261124-0001-3")]
    assert await claim(database, "b", 0, gateway="manual") == ["R20261124-0001-4"]
    assert await lease(database, "R20261124-0001-1") == ("a", T0 + timedelta(seconds=60))


async def test_a_claimed_attempt_is_nobody_elses_until_its_lease_runs_out(database: Database) -> None:
    await add_attempts(database, "R20261124-0001-1")
    assert await claim(database, "dead-worker", 0, lease=60) == ["R20261124-0001-1"]
    assert await claim(database, "b", 0) == []
    assert await claim(database, "b", 1) == []  # exactly at the end of the lease: still held
    assert await claim(database, "b", 1.5) == ["R20261124-0001-1"]  # the first worker died: it comes back
    assert await claim(database, "c", 2) == []  # and is b's now


async def test_two_owners_claiming_at_once_get_disjoint_attempts(database: Database) -> None:
    keys = [f"R20261124-{n:04d}-1" for n in range(1, 31)]
    await add_attempts(database, *keys)
    holding = asyncio.Event()

    async def slow_claimer() -> list[str]:
        async with database.uow() as uow:
            got = await uow.refunds.claim_pending(gateway="http", owner="a", now=T0, lease_seconds=60, limit=12)
            holding.set()
            await asyncio.sleep(0.2)  # the other one claims meanwhile (PostgreSQL) or waits (SQLite)
            await uow.commit()
        return [a.idempotency_key for a in got]

    async def other_claimer() -> list[str]:
        await holding.wait()
        return await claim(database, "b", 0, limit=12)

    a, b = await asyncio.gather(slow_claimer(), other_claimer())
    rest = await claim(database, "c", 0, limit=30)
    assert len(a) == 12 and len(b) == 12 and len(rest) == 6
    assert sorted(a + b + rest) == keys  # every attempt once, none twice


async def test_a_release_with_until_holds_the_attempt_back_from_everyone_until_then(database: Database) -> None:
    await add_attempts(database, "R20261124-0001-1")
    await claim(database, "a", 0, lease=600)
    async with database.uow() as uow:
        assert await uow.refunds.release("R20261124-0001-1", owner="b") is False  # not b's to give up
        assert await uow.refunds.release("R20261124-0001-1", owner="a", until=T0 + timedelta(minutes=2)) is True
        assert await uow.refunds.release("R20261124-0001-1", owner="a") is False  # not a's any more
        await uow.commit()
    assert await lease(database, "R20261124-0001-1") == (None, T0 + timedelta(minutes=2))
    assert await claim(database, "a", 1) == [] and await claim(database, "b", 2) == []
    assert await claim(database, "b", 3) == ["R20261124-0001-1"]


async def test_a_release_without_until_makes_the_attempt_claimable_at_once(database: Database) -> None:
    await add_attempts(database, "R20261124-0001-1")
    await claim(database, "a", 0, lease=600)
    async with database.uow() as uow:
        assert await uow.refunds.release("R20261124-0001-1", owner="a") is True
        await uow.commit()
    assert await lease(database, "R20261124-0001-1") == (None, None)
    assert await claim(database, "b", 0) == ["R20261124-0001-1"]


async def test_a_settled_attempt_drops_its_lease_and_is_never_claimed(database: Database) -> None:
    await add_attempts(database, "R20261124-0001-1")
    await claim(database, "a", 0, lease=60)
    async with database.uow() as uow:
        await uow.refunds.set_status("R20261124-0001-1", RefundStatus.SUCCEEDED, at=T0, note="paid")
        assert await uow.refunds.release("R20261124-0001-1", owner="a") is False
        await uow.commit()
    assert await lease(database, "R20261124-0001-1") == (None, None)
    assert await claim(database, "b", 600) == []


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
