"""The order-facts rule in the core: which facts an upsert may not change, how the fake store applies it
(same as storage.orders), and how a correction reads in a case's history."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from dialogs.desk.history import PHRASES, event_words
from dialogs.domain import PaymentChannel
from dialogs.order_facts import CORRECTION, FACTS, FactsLocked, changed_facts, correction_note, keep_facts
from dialogs.ports import CaseEventRecord
from dialogs.texts import Texts
from tests.fakes import FakeDatabase
from tests.storage.factories import make_case, make_order

AT = datetime(2026, 11, 24, 2, 30, tzinfo=UTC)


def test_changed_facts_names_money_and_identity_only() -> None:
    stored = make_order()
    new = make_order(amount=Decimal("0.01"), buyer_telegram_id=214, payment_channel=PaymentChannel.WECHAT,
                     card_redeemed=True, product_name="other")
    assert changed_facts(stored, new) == ("amount", "buyer_telegram_id", "payment_channel")
    kept = keep_facts(stored, new)
    assert changed_facts(stored, kept) == () and kept.card_redeemed is True and kept.product_name == "other"


async def test_the_fake_store_refuses_and_keeps_as_the_sql_one_does(database: FakeDatabase) -> None:
    async with database.uow() as uow:
        await uow.orders.upsert(make_order())
        await uow.cases.add(make_case())
        with pytest.raises(FactsLocked):
            await uow.orders.upsert(make_order(amount=Decimal("0.01")))
        await uow.orders.upsert(make_order(amount=Decimal("0.01"), card_redeemed=True), facts="keep")
        stored = await uow.orders.get("A1001")
    assert stored is not None and stored.amount == Decimal("100.00") and stored.card_redeemed is True


@pytest.mark.parametrize(("locale", "words"), [
    ("zh_CN", "小周 更正了订单信息：实付金额 ¥99.50 → ¥80.00、买家手机号（原因：商家录错金额）"),
    ("en", "小周 corrected the order: amount paid ¥99.50 → ¥80.00, buyer's phone number (reason: 商家录错金额)"),
])
def test_a_correction_reads_as_who_changed_what_and_why(locale: str, words: str) -> None:
    note = correction_note(make_order(amount=Decimal("99.50")), make_order(amount=Decimal("80.00")),
                           ("amount", "buyer_phone"), "商家录错金额")
    event = CaseEventRecord(at=AT, actor="platform:zhou", from_status="in_review", to_status="in_review", note=note)
    assert event_words(event, "小周", Texts(locale), 200) == words


@pytest.mark.parametrize("locale", ["zh_CN", "en"])
def test_every_fact_has_a_name_in_the_desks_words(locale: str) -> None:
    t = Texts(locale)
    assert CORRECTION in PHRASES
    for name in FACTS:
        assert t(f"of.field.{name}", default="") not in ("", f"of.field.{name}")
