"""What a status change queues and what an outbox row says (dialogs/notify.py): the news to the right
chat, composed from the case as it is now, and what the relay books once Telegram answered."""

from __future__ import annotations

from decimal import Decimal

from dialogs.cases import CaseWorkflow
from dialogs.domain import CaseStatus, Delivery, DeskItem, OutboxMessage
from dialogs.notify import Notice, Sent, card_text, compose, delivered, topic_gone
from dialogs.settings import CoreSettings, DeskSettings
from dialogs.texts import Texts, money
from tests.dialogs.customer import CUSTOMER, NOW, case_of, with_case
from tests.fakes import FakeDatabase

CASE = "R20261124-0001"
C = CaseStatus
DESK = -1001000000001
SETTINGS = CoreSettings()
DESK_SETTINGS = CoreSettings(desk=DeskSettings(chat_id=DESK, agents=(501,)))
ZH = Texts("zh_CN")


async def move(database: FakeDatabase, trigger: str, *, note: str = "", amount: Decimal | None = None) -> None:
    async with database.uow() as uow:
        workflow = CaseWorkflow.for_settings(SETTINGS)
        if trigger == "approve":
            await workflow.approve(uow, CASE, actor="agent:1", at=NOW, note=note, amount=amount)
        else:
            await workflow.move(uow, CASE, trigger, actor="agent:1", at=NOW, note=note)
        await uow.commit()


def claimed(database: FakeDatabase, kind: str, to: str | None = None) -> Delivery:
    """The oldest row of `kind` (news: of the move `to` that status), as a relay holds it."""
    row = next(r for r in database.outbox_rows(kind) if to is None or r.payload.get("to") == to)
    return Delivery(id=row.id, kind=row.kind, chat_id=row.chat_id, dedupe_key=row.dedupe_key, payload=row.payload,
                    attempts=row.attempts, created_at=row.created_at)


async def composed(database: FakeDatabase, delivery: Delivery, settings: CoreSettings = SETTINGS) -> Notice | None:
    async with database.uow() as uow:
        return await compose(uow, delivery, settings)


async def test_a_status_the_customer_must_act_on_queues_the_card_and_news_to_their_chat(
        database: FakeDatabase) -> None:
    await with_case(database, C.IN_REVIEW)
    await move(database, "ask_info", note="请补充充值记录")
    rows = [(r.kind, r.chat_id, r.payload) for r in database.outbox_rows()]
    assert rows == [("case_card", CUSTOMER, {"case_no": CASE}),
                    ("case_news", CUSTOMER, {"case_no": CASE, "from": "in_review", "to": "needs_info",
                                             "note": "请补充充值记录"})]


async def test_a_status_that_asks_nothing_of_the_customer_only_redraws_the_card(database: FakeDatabase) -> None:
    await with_case(database, C.SUBMITTED)
    await move(database, "start_review")
    assert [r.kind for r in database.outbox_rows()] == ["case_card"]


async def test_the_status_card_is_edited_in_place_once_it_was_sent(database: FakeDatabase) -> None:
    case = await with_case(database, C.IN_REVIEW)
    await move(database, "ask_info")
    async with database.uow() as uow:
        await uow.cases.set_status_message(CASE, 4242)
        await uow.commit()
    notice = await composed(database, claimed(database, "case_card"))
    assert notice is not None and (notice.edit_message_id, notice.card_of, notice.chat_id) == (4242, CASE, CUSTOMER)
    async with database.uow() as uow:
        order = await uow.orders.get(case.order_no)
    assert notice.text == card_text(await case_of(database), order, ZH)  # the case as it is now: needs_info


async def test_refund_news_names_the_amount_of_a_partial_approval(database: FakeDatabase) -> None:
    await with_case(database, C.IN_REVIEW)
    await move(database, "approve", amount=Decimal("30.00"))
    notice = await composed(database, claimed(database, "case_news", to="refunding"))
    assert notice is not None and money(Decimal("30.00")) in notice.text and money(Decimal("100.00")) not in notice.text


async def test_a_needs_info_reminder_for_a_case_that_moved_on_says_nothing(database: FakeDatabase) -> None:
    await with_case(database, C.IN_REVIEW)
    reminder = Delivery(id=1, kind="info_reminder", chat_id=CUSTOMER, dedupe_key="r", attempts=0, created_at=NOW,
                        payload={"case_no": CASE, "close": "2026-11-30 10:00"})
    assert await composed(database, reminder) is None


async def test_a_customer_text_is_rendered_in_the_locale_it_was_queued_with(database: FakeDatabase) -> None:
    text = Delivery(id=1, kind="customer_text", chat_id=CUSTOMER, dedupe_key="t", attempts=0, created_at=NOW,
                    payload={"text_key": "desk.customer_joined", "params": {"alias": "Wang"}, "locale": "en"})
    notice = await composed(database, text)
    assert notice == Notice(CUSTOMER, Texts("en")("desk.customer_joined", alias="Wang"))


async def test_delivering_a_status_card_marks_the_row_sent_and_remembers_the_message(database: FakeDatabase) -> None:
    await with_case(database, C.IN_REVIEW)
    await move(database, "ask_info")
    card = claimed(database, "case_card")
    notice = await composed(database, card)
    async with database.uow() as uow:
        await delivered(uow, card, notice, Sent(message_id=77), NOW)
        await uow.commit()
    assert database.tables.outbox[card.id].sent_at == NOW and database.tables.outbox[card.id].message_id == 77
    assert (await case_of(database)).status_message_id == 77


async def test_a_later_card_of_the_same_desk_item_is_sent_with_the_first_and_not_again(
        database: FakeDatabase) -> None:
    await with_case(database, C.SUBMITTED)
    async with database.uow() as uow:
        await uow.desk.open(DeskItem(key=CASE, chat_id=CUSTOMER, user_id=CUSTOMER, opened_at=NOW, case_no=CASE))
        await uow.desk.set_topic(CASE, thread_id=9, card_message_id=10)
        for n in (1, 2):
            await uow.outbox.add(OutboxMessage(kind="desk_card", chat_id=DESK, dedupe_key=f"card{n}",
                                               payload={"key": CASE}, created_at=NOW))
        await uow.commit()
    first, second = database.outbox_rows("desk_card")
    notice = await composed(database, claimed(database, "desk_card"), DESK_SETTINGS)
    assert notice is not None and notice.batch == (second.id,) and notice.edit_message_id == 10
    async with database.uow() as uow:
        await delivered(uow, claimed(database, "desk_card"), notice, Sent(message_id=10, edited=True), NOW)
        await uow.commit()
    assert [r.sent_at for r in database.outbox_rows("desk_card")] == [NOW, NOW]
    assert first.id < second.id


async def test_a_gone_topic_is_forgotten_unless_it_was_replaced_meanwhile(database: FakeDatabase) -> None:
    async with database.uow() as uow:
        await uow.desk.open(DeskItem(key="chat:1", chat_id=1, user_id=1, opened_at=NOW))
        await uow.desk.set_topic("chat:1", thread_id=9, card_message_id=10)
        await topic_gone(uow, "chat:1", 8)  # an older topic
        assert (await uow.desk.get("chat:1")).thread_id == 9  # type: ignore[union-attr]
        await topic_gone(uow, "chat:1", 9)
        item = await uow.desk.get("chat:1")
    assert item is not None and (item.thread_id, item.card_message_id) == (None, None)
