"""Orders with cases keep their money and identity facts, on SQLite and PostgreSQL: an upsert that
would change them is refused (single, bulk, file import), an external refresh keeps them while the
other fields update, and only the audited correction changes them — never below what was refunded."""

from __future__ import annotations

import logging
from decimal import Decimal
from pathlib import Path

import pytest

import storage.orders
from dialogs import ledger
from dialogs.domain import (
    CaseStatus,
    DeliveryStatus,
    Order,
    PaymentChannel,
    Reason,
    RefundAttempt,
    RefundStatus,
)
from dialogs.order_facts import BelowRefunded, FactsLocked, NothingToCorrect, correct
from dialogs.service import RefundService
from dialogs.settings import CoreSettings
from storage.importer import import_orders
from storage.uow import Database
from tests.dialogs.customer import NOW, NUMBER, Customer
from tests.storage.factories import T0, make_case, make_order

CASE = "R20261124-0001"


async def _order_with_case(database: Database, *, amount: str = "99.50", status: CaseStatus = CaseStatus.SUBMITTED,
                           refunded: str | None = None, in_flight: str | None = None) -> None:
    async with database.uow() as uow:
        await uow.orders.upsert(make_order("A1001", amount=Decimal(amount)))
        await uow.cases.add(make_case(CASE, "A1001", amount=Decimal(amount), status=status))
        for key, value, state in (("1", refunded, RefundStatus.SUCCEEDED), ("2", in_flight, RefundStatus.REQUESTED)):
            if value is not None:
                await uow.refunds.add(RefundAttempt(case_no=CASE, idempotency_key=f"{CASE}-{key}", gateway="manual",
                                                    amount=Decimal(value), status=state, created_at=T0))
        await uow.commit()


async def _stored(database: Database, order_no: str = "A1001"):  # type: ignore[no-untyped-def]
    async with database.uow() as uow:
        return await uow.orders.get(order_no)


async def test_an_order_refunded_99_50_cannot_be_upserted_to_0_01(database: Database) -> None:
    # The fuzzer's finding: 200 OK, then a new case refunded 0.01 more ("paid 0.01, refunded 99.51").
    await _order_with_case(database, status=CaseStatus.REFUNDED, refunded="99.50")
    async with database.uow() as uow:
        with pytest.raises(FactsLocked) as refused:
            await uow.orders.upsert(make_order("A1001", amount=Decimal("0.01")))
    assert refused.value.fields == ("amount",)
    async with database.uow() as uow:
        balance = await ledger.order_balance(uow, "A1001")
    assert (balance.paid, balance.refunded, balance.remaining) == (Decimal("99.50"), Decimal("99.50"), Decimal("0.00"))


async def test_a_refunding_order_cannot_be_upserted_to_5000_and_another_buyer(database: Database) -> None:
    await _order_with_case(database, status=CaseStatus.REFUNDING, in_flight="99.50")
    other = make_order("A1001", amount=Decimal("5000.00"), buyer_phone="13900139000", buyer_telegram_id=214)
    async with database.uow() as uow:
        with pytest.raises(FactsLocked) as refused:
            await uow.orders.upsert(other)
    assert refused.value.fields == ("amount", "buyer_phone", "buyer_telegram_id")
    stored = await _stored(database)
    assert stored is not None
    assert (stored.amount, stored.buyer_phone, stored.buyer_telegram_id) == (Decimal("99.50"), "13800138000", 424242)


@pytest.mark.parametrize("fact", [{"buyer_contact": "someone@example.com"}, {"payment_channel": "wechat"},
                                  {"trade_no": "2026112422001"}])
async def test_each_identity_fact_is_kept(database: Database, fact: dict[str, str]) -> None:
    await _order_with_case(database)
    changes = {k: PaymentChannel(v) if k == "payment_channel" else v for k, v in fact.items()}
    async with database.uow() as uow:
        with pytest.raises(FactsLocked) as refused:
            await uow.orders.upsert(make_order("A1001", amount=Decimal("99.50"), **changes))
    assert refused.value.fields == tuple(fact)


async def test_an_order_with_cases_still_takes_delivery_news(database: Database) -> None:
    await _order_with_case(database)
    async with database.uow() as uow:
        assert await uow.orders.upsert(make_order("A1001", amount=Decimal("99.50"), card_redeemed=True,
                                                  delivery_status=DeliveryStatus.FAILED)) is False
        await uow.commit()
    stored = await _stored(database)
    assert stored is not None and stored.card_redeemed is True and stored.delivery_status is DeliveryStatus.FAILED


async def test_an_order_without_cases_may_change_anything(database: Database) -> None:
    async with database.uow() as uow:
        await uow.orders.upsert(make_order("A1001", amount=Decimal("99.50")))
        await uow.commit()
    async with database.uow() as uow:
        await uow.orders.upsert(make_order("A1001", amount=Decimal("0.01"), buyer_telegram_id=214))
        await uow.commit()
    stored = await _stored(database)
    assert stored is not None and (stored.amount, stored.buyer_telegram_id) == (Decimal("0.01"), 214)


async def test_a_refresh_keeps_the_facts_and_updates_the_rest_logging_no_personal_data(
        database: Database, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(storage.orders, "_kept_logged", set())  # said once per process: start afresh
    await _order_with_case(database, status=CaseStatus.REFUNDING, in_flight="99.50")
    refreshed = make_order("A1001", amount=Decimal("5000.00"), buyer_phone="13900139000", topup_credited=True)
    with caplog.at_level(logging.WARNING, logger="storage.orders"):
        for _ in range(2):
            async with database.uow() as uow:
                await uow.orders.upsert(refreshed, facts="keep")
                await uow.commit()
    stored = await _stored(database)
    assert stored is not None
    assert (stored.amount, stored.buyer_phone, stored.topup_credited) == (Decimal("99.50"), "13800138000", True)
    said = [r.getMessage() for r in caplog.records if r.name == "storage.orders"]
    assert len(said) == 1 and "A1001" in said[0] and "buyer_phone" in said[0]
    assert "13900139000" not in said[0] and "13800138000" not in said[0] and "5000" not in said[0]


async def test_a_bulk_upsert_refuses_only_the_rows_that_would_change_facts(database: Database) -> None:
    await _order_with_case(database)
    batch = [make_order("A1001", amount=Decimal("0.01")), make_order("A1002"),
             make_order("A1001", amount=Decimal("99.50"), card_redeemed=True)]
    async with database.uow() as uow:
        done = await uow.orders.upsert_many(batch)
        await uow.commit()
    assert (done.inserted, done.updated, done.refused) == (1, 1, ((0, ("amount",)),))
    stored = await _stored(database)
    assert stored is not None and stored.amount == Decimal("99.50") and stored.card_redeemed is True


async def test_the_file_import_reports_a_fact_change_per_row(database: Database, tmp_path: Path) -> None:
    await _order_with_case(database, status=CaseStatus.REFUNDED, refunded="99.50")
    path = tmp_path / "orders.jsonl"
    row = ('{"order_no": "%s", "buyer_phone": "13800138000", "buyer_telegram_id": 424242, "product_name": "Steam card 100", '
           '"product_kind": "card_code", "amount": "%s", "payment_channel": "alipay", '
           '"paid_at": "2026-11-24T10:30:00+08:00", "delivery_status": "delivered"}')
    path.write_text("\n".join([row % ("A1002", "10.00"), row % ("A1001", "0.01"), "", row % ("A1003", "12.00")]) + "\n")
    report = await import_orders(database, path, batch_size=2)
    assert (report.inserted, report.updated) == (2, 0)
    assert [(r.line, r.reason) for r in report.rejected] == [
        (2, "order has refund cases: amount cannot change by an import (use the audited correction)")]
    stored = await _stored(database)
    assert stored is not None and stored.amount == Decimal("99.50")


async def test_a_correction_changes_the_facts_and_tells_every_case(database: Database) -> None:
    await _order_with_case(database, refunded="20.00")
    async with database.uow() as uow:
        await uow.cases.add(make_case("R20261124-0002", "A1001", amount=Decimal("79.50"), reason=Reason.CARD_USED))
        await uow.commit()
    async with database.uow() as uow:
        order, fields, told = await correct(uow, "A1001", {"amount": Decimal("80.00"), "buyer_phone": "13900139000"},
                                            reason="shop typo, ticket 77", actor="platform:alice", at=T0)
        await uow.commit()
    assert fields == ("amount", "buyer_phone") and told == [CASE, "R20261124-0002"]
    stored = await _stored(database)
    assert stored == order and stored.amount == Decimal("80.00")
    async with database.uow() as uow:
        notes = [[(e.actor, e.note) for e in await uow.desk.history(case_no) if e.from_status == e.to_status]
                 for case_no in told]
    expected = ("platform:alice", "order_correction: amount 99.50 -> 80.00, buyer_phone; shop typo, ticket 77")
    assert notes == [[expected], [expected]]
    async with database.uow() as uow:  # each case keeps what was paid when it was filed
        assert [(await uow.cases.get(case_no)).order_paid for case_no in told] == [Decimal("99.50")] * 2  # type: ignore[union-attr]
        balance = await ledger.order_balance(uow, "A1001")
    assert (balance.paid, balance.refunded, balance.remaining) == (Decimal("80.00"), Decimal("20.00"), Decimal("60.00"))


async def test_a_correction_never_goes_below_what_is_refunded_or_on_its_way(database: Database) -> None:
    await _order_with_case(database, refunded="20.00", in_flight="30.00")
    async with database.uow() as uow:
        with pytest.raises(BelowRefunded) as refused:
            await correct(uow, "A1001", {"amount": Decimal("49.99")}, reason="r", actor="platform:a", at=T0)
    assert refused.value.committed == Decimal("50.00")
    async with database.uow() as uow:
        await correct(uow, "A1001", {"amount": Decimal("50.00")}, reason="r", actor="platform:a", at=T0)
        await uow.commit()
    stored = await _stored(database)
    assert stored is not None and stored.amount == Decimal("50.00")


async def test_a_correction_that_changes_nothing_is_refused(database: Database) -> None:
    await _order_with_case(database)
    async with database.uow() as uow:
        with pytest.raises(NothingToCorrect):
            await correct(uow, "A1001", {"amount": Decimal("99.50")}, reason="r", actor="platform:a", at=T0)


async def test_the_services_refresh_from_an_external_source_keeps_the_facts(database: Database) -> None:
    # The customer names the order again while its case is refunding; the platform now says ¥5,000
    # and another buyer. The case's facts stay; the delivery news is taken; the customer is answered.
    async with database.uow() as uow:
        await uow.orders.upsert(make_order(NUMBER, amount=Decimal("99.50")))
        await uow.cases.add(make_case(CASE, NUMBER, amount=Decimal("99.50"), status=CaseStatus.REFUNDING))
        await uow.commit()

    class Platform:
        async def get(self, order_no: str) -> Order | None:
            return make_order(order_no, amount=Decimal("5000.00"), buyer_telegram_id=214, card_redeemed=True)

    customer = Customer(RefundService(database.uow, CoreSettings(), clock=lambda: NOW, orders=Platform()))
    shown = await customer.says(NUMBER)
    assert shown.replies  # answered, not skipped
    stored = await _stored(database, NUMBER)
    assert stored is not None
    assert (stored.amount, stored.buyer_telegram_id, stored.card_redeemed) == (Decimal("99.50"), 424242, True)
