"""RefundService.handle over events (dialogs/service.py): claims, retries, replies kept until Telegram
took them, membership, the order source, commands. On the fakes."""

from __future__ import annotations

from dataclasses import replace

from dialogs.domain import Order
from dialogs.io import Event, EventKind, FileRef
from dialogs.ports import ConcurrentUpdate, OrderSourceUnavailable, UnitOfWork
from dialogs.service import RefundService
from dialogs.settings import CoreSettings
from dialogs.steps import Step
from tests.dialogs.customer import (
    CUSTOMER,
    NOW,
    NUMBER,
    STRANGER,
    ZH,
    Customer,
    conversation,
    service,
    with_order,
)
from tests.fakes import FakeDatabase, FakeUnitOfWork
from tests.storage.factories import make_order


async def test_a_repeated_update_does_nothing_the_second_time(database: FakeDatabase) -> None:
    await with_order(database, buyer_telegram_id=None)
    stranger = Customer(service(database), chat_id=STRANGER)
    await stranger.says(NUMBER)
    wrong = stranger.event(EventKind.TEXT, "0000")
    await stranger.send(wrong)
    await stranger.service.settle_replies(STRANGER, wrong.update_id)  # Telegram took the answer
    again = await stranger.send(wrong)
    assert again.duplicate and again.replies == ()
    async with database.uow() as uow:
        tally = await uow.lookups.get(NUMBER)
    assert tally is not None and tally.failures == 1


async def test_replies_are_kept_unconfirmed_until_telegram_took_them(database: FakeDatabase) -> None:
    refunds = service(database)
    customer = Customer(refunds)
    shown = await customer.command("refund")
    assert shown.unconfirmed
    conv = await conversation(database)
    assert conv is not None and conv.unconfirmed == shown.replies
    await refunds.settle_replies(CUSTOMER, conv.unconfirmed_update or 0)
    settled = await conversation(database)
    assert settled is not None and settled.unconfirmed == () and settled.version == conv.version


async def test_a_repeated_update_whose_replies_never_went_out_sends_them_again(database: FakeDatabase) -> None:
    customer = Customer(service(database))
    start = customer.event(EventKind.COMMAND, "refund")
    first = await customer.send(start)
    again = await customer.send(start)  # this process committed them and is not sending them: lost
    assert again.duplicate and again.replies == first.replies and again.unconfirmed


async def test_a_concurrent_update_is_replayed_on_the_fresh_state(database: FakeDatabase) -> None:
    collisions = [ConcurrentUpdate("another worker saved the chat first")]

    class Colliding(FakeUnitOfWork):
        async def commit(self) -> None:
            if collisions:
                raise collisions.pop()
            await super().commit()

    def uow() -> UnitOfWork:
        return Colliding(database)

    customer = Customer(RefundService(uow, CoreSettings(), clock=lambda: NOW))
    shown = await customer.command("refund")
    assert shown.step == Step.AWAITING_ORDER and not collisions
    conv = await conversation(database)
    assert conv is not None and conv.version == 1


async def test_a_message_in_a_group_that_is_not_the_desk_is_none_of_our_business(database: FakeDatabase) -> None:
    customer = Customer(service(database), chat_id=-100777)
    shown = await customer.send(replace(customer.event(EventKind.TEXT, NUMBER), private=False))
    assert shown.replies == () and database.tables.updates == {}


async def test_a_customer_who_blocks_the_bot_is_held_and_writing_again_opens_the_chat(
        database: FakeDatabase) -> None:
    customer = Customer(service(database))
    await customer.send(customer.event(EventKind.MEMBER, "kicked"))
    assert CUSTOMER in database.tables.blocked_chats
    await customer.says("hello")
    assert CUSTOMER not in database.tables.blocked_chats


async def test_an_unavailable_order_source_says_so_and_claims_nothing(database: FakeDatabase) -> None:
    class Down:
        async def get(self, order_no: str) -> Order | None:
            raise OrderSourceUnavailable(order_no)

    customer = Customer(RefundService(database.uow, CoreSettings(), clock=lambda: NOW, orders=Down()))
    shown = await customer.says(NUMBER)
    assert [r.text for r in shown.replies] == [ZH("orders_unavailable")]
    assert database.tables.updates == {}  # the update may come again and be answered then


async def test_an_order_from_the_platform_is_kept_locally_and_opens_the_flow(database: FakeDatabase) -> None:
    class Platform:
        async def get(self, order_no: str) -> Order | None:
            return make_order(order_no)

    customer = Customer(RefundService(database.uow, CoreSettings(), clock=lambda: NOW, orders=Platform()))
    shown = await customer.says(NUMBER)
    assert shown.step == Step.CHOOSING_REASON and NUMBER in database.tables.orders


async def test_agent_records_the_request_and_queues_it_for_the_agents(database: FakeDatabase) -> None:
    customer = Customer(service(database))
    await customer.command("agent")
    assert customer.texts() == [ZH("agent_recorded")]
    [row] = database.outbox_rows("agent_requested")
    assert row.chat_id is None and row.payload["chat_id"] == CUSTOMER
    await customer.command("agent")
    assert customer.texts() == [ZH("agent_recorded_again")]


async def test_lang_switches_the_conversation_to_the_other_catalog(database: FakeDatabase) -> None:
    customer = Customer(service(database))
    shown = await customer.command("lang")
    assert shown.locale == "en"
    conv = await conversation(database)
    assert conv is not None and conv.locale == "en"


async def test_status_without_cases_says_there_are_none(database: FakeDatabase) -> None:
    customer = Customer(service(database))
    await customer.command("status")
    assert customer.texts() == [ZH("status_none")]


async def test_an_unknown_command_gets_the_hint_of_the_step(database: FakeDatabase) -> None:
    customer = Customer(service(database))
    await customer.command("frobnicate")
    assert customer.texts() == [ZH("hint.idle", example=CoreSettings().orders.number_example)]


async def test_a_file_is_downloaded_only_at_a_step_that_takes_files(database: FakeDatabase) -> None:
    fetched: list[Event] = []

    async def fetch(event: Event) -> Event:
        fetched.append(event)
        return event

    customer = Customer(service(database))
    photo = customer.event(EventKind.PHOTO, file=FileRef("f1", "u1"))
    await customer.service.handle(photo, fetch)
    assert fetched == []
    async with database.uow() as uow:
        conv = await uow.conversations.load(CUSTOMER)
        assert conv is not None
        conv.step = Step.COLLECTING_EVIDENCE
        conv.data.update(draft_id="d1", reason="card_invalid", nonce="n1")
        await uow.conversations.save(conv)
        await uow.commit()
    await customer.service.handle(replace(photo, update_id=photo.update_id + 10_000), fetch)
    assert len(fetched) == 1
