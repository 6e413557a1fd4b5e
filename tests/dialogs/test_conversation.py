"""The customer's refund conversation (dialogs/conversation.py), step by step on the fakes."""

from __future__ import annotations

from datetime import timedelta

import pytest

from dialogs.domain import CaseStatus
from dialogs.settings import CoreSettings
from dialogs.steps import Step
from dialogs.texts import when
from dialogs.words import day
from tests.dialogs.customer import (
    NOW,
    NUMBER,
    STRANGER,
    ZH,
    Customer,
    conversation,
    service,
    with_case,
    with_order,
)
from tests.fakes import FakeDatabase

CONCRETE = "卡密输入后提示无效，已经试了三次，截图里有错误码"


@pytest.fixture
async def customer(database: FakeDatabase) -> Customer:
    await with_order(database)
    return Customer(service(database))


async def describing(customer: Customer) -> None:
    await customer.says(NUMBER)
    await customer.presses(customer.button("r.card_invalid"))
    await customer.presses(customer.button("go"))
    assert customer.last.step == Step.DESCRIBING


async def test_the_customers_own_order_number_offers_the_reasons_for_its_product(customer: Customer) -> None:
    shown = await customer.says(NUMBER.lower())
    assert shown.step == Step.CHOOSING_REASON
    assert customer.button("r.card_invalid") and customer.button("cancel")


async def test_a_malformed_number_while_asked_for_one_is_refused_with_an_example(customer: Customer) -> None:
    await customer.command("refund")
    shown = await customer.says("12345")
    assert shown.step == Step.AWAITING_ORDER
    assert customer.texts() == [ZH("order_malformed", example=CoreSettings().orders.number_example)]


async def test_an_order_number_not_bound_to_the_customer_asks_for_phone_digits_found_or_not(
        database: FakeDatabase) -> None:
    await with_order(database)
    for chat, number in ((STRANGER, NUMBER), (STRANGER + 1, "KM20991231000009")):
        stranger = Customer(service(database), chat_id=chat)
        shown = await stranger.says(number)
        assert shown.step == Step.AWAITING_PHONE and stranger.texts() == [ZH("ask_phone")]


async def test_wrong_phone_digits_count_a_failure_against_the_number(database: FakeDatabase) -> None:
    await with_order(database, buyer_telegram_id=None)
    stranger = Customer(service(database), chat_id=STRANGER)
    await stranger.says(NUMBER)
    shown = await stranger.says("0000")
    assert shown.step == Step.AWAITING_ORDER
    async with database.uow() as uow:
        tally = await uow.lookups.get(NUMBER)
    assert tally is not None and tally.failures == 1


async def test_the_right_phone_digits_open_an_unbound_order(database: FakeDatabase) -> None:
    await with_order(database, buyer_telegram_id=None)
    stranger = Customer(service(database), chat_id=STRANGER)
    await stranger.says(NUMBER)
    assert (await stranger.says("8000")).step == Step.CHOOSING_REASON  # make_order's phone ends in 8000


async def test_a_chat_that_failed_too_often_is_paused(database: FakeDatabase) -> None:
    await with_order(database, buyer_telegram_id=None)
    stranger = Customer(service(database), chat_id=STRANGER)
    for _ in range(CoreSettings().orders.max_failed_lookups):
        await stranger.says(NUMBER)
        await stranger.says("0000")
    orders = CoreSettings().orders
    paused = ZH("cooling_down", minutes=orders.cooldown_minutes,
                until=when(NOW + timedelta(minutes=orders.cooldown_minutes), CoreSettings().i18n.timezone))
    assert stranger.texts() == [paused]
    shown = await stranger.says(NUMBER)
    assert shown.step == Step.AWAITING_ORDER and stranger.texts() == [paused]


async def test_a_reason_the_product_does_not_offer_is_refused_and_nothing_is_chosen(
        customer: Customer, database: FakeDatabase) -> None:
    await customer.says(NUMBER)
    nonce = customer.button("cancel").split(".")[0]
    shown = await customer.presses(f"{nonce}.r.topup_duplicate")  # a top-up reason, for a card code
    assert shown.toast == ZH("stale_button") and shown.step == Step.CHOOSING_REASON
    conv = await conversation(database)
    assert conv is not None and "reason" not in conv.data


async def test_a_button_of_an_older_prompt_is_stale_and_changes_nothing(customer: Customer) -> None:
    await customer.says(NUMBER)
    old = customer.button("r.card_invalid")
    await customer.presses(old)
    shown = await customer.presses(old)
    assert shown.toast == ZH("stale_button") and shown.step == Step.REVIEWING_VERDICT


async def test_a_vague_description_is_coached_and_the_step_stays(customer: Customer) -> None:
    await describing(customer)
    shown = await customer.says("我要退款")
    assert shown.step == Step.DESCRIBING
    assert customer.texts() == [ZH("coach.refund", examples=ZH("examples.card_invalid"))]


async def test_a_concrete_description_is_kept_and_evidence_is_asked_for(
        customer: Customer, database: FakeDatabase) -> None:
    await describing(customer)
    shown = await customer.says(CONCRETE)
    assert shown.step == Step.COLLECTING_EVIDENCE
    conv = await conversation(database)
    assert conv is not None and conv.data["description"] == CONCRETE


async def test_the_same_photo_twice_is_kept_once(customer: Customer, database: FakeDatabase) -> None:
    await describing(customer)
    await customer.says(CONCRETE)
    await customer.photo("AQAD1")
    await customer.photo("AQAD1")
    conv = await conversation(database)
    assert conv is not None
    async with database.uow() as uow:
        assert len(await uow.evidence.list_draft(conv.data["draft_id"])) == 1


async def test_a_file_that_is_not_an_image_is_refused_with_the_reason(customer: Customer) -> None:
    await describing(customer)
    await customer.says(CONCRETE)
    await customer.photo("AQAD1", ok=False)
    policy = CoreSettings().policy
    assert customer.texts() == [ZH("evidence_problem.not_image", max_photo_mb=policy.max_photo_mb,
                                   max_document_mb=policy.max_document_mb,
                                   max_pixels_mp=round(policy.max_pixels / 1_000_000), max=policy.max_evidence)]


async def test_submitting_files_the_case_with_its_evidence_and_clears_the_draft(
        customer: Customer, database: FakeDatabase) -> None:
    await describing(customer)
    await customer.says(CONCRETE)
    await customer.photo("AQAD1")
    await customer.presses(customer.button("done"))
    shown = await customer.presses(customer.button("submit"))
    assert shown.step == Step.IDLE
    async with database.uow() as uow:
        [filed] = await uow.cases.for_order(NUMBER)
        case = await uow.cases.get(filed.case_no)  # with its evidence
    assert case is not None and case.status is CaseStatus.SUBMITTED and case.description == CONCRETE
    assert [e.file_unique_id for e in case.evidence] == ["AQAD1"]
    conv = await conversation(database)
    assert conv is not None and "draft_id" not in conv.data
    assert [r.kind for r in database.outbox_rows()] == ["case_card"]


async def test_an_order_with_an_open_case_takes_no_second_claim(customer: Customer, database: FakeDatabase) -> None:
    case = await with_case(database, CaseStatus.IN_REVIEW)
    shown = await customer.says(NUMBER)
    assert shown.step == Step.IDLE
    assert customer.texts() == [ZH("case_exists", case_no=case.case_no, status=ZH("status.in_review"),
                                   deadline=ZH("card.review_due", due=day(ZH, case.review_due)))]


async def test_cancel_forgets_the_draft_but_not_the_failures(customer: Customer, database: FakeDatabase) -> None:
    await describing(customer)
    shown = await customer.command("cancel")
    assert shown.step == Step.IDLE and customer.texts() == [ZH("cancelled")]
    conv = await conversation(database)
    assert conv is not None and conv.data == {}
