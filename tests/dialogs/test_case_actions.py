"""What a customer does with a filed case from its status card (dialogs/case_actions.py): withdraw,
add material, appeal, rate. Buttons are checked against the case's owner and status. On the fakes."""

from __future__ import annotations

import pytest

from dialogs.case_actions import parse_card_token
from dialogs.cases import CaseWorkflow
from dialogs.domain import CaseStatus
from dialogs.notify import card_token
from dialogs.steps import Step
from dialogs.words import day
from tests.dialogs.customer import (
    NOW,
    STRANGER,
    ZH,
    Customer,
    case_of,
    conversation,
    service,
    with_case,
)
from tests.fakes import FakeDatabase

CASE = "R20261124-0001"
C = CaseStatus
REASON = "截图里是另一个订单的兑换记录，请重新核对"


def press(action: str) -> str:
    return card_token(CASE, action)


@pytest.fixture
def customer(database: FakeDatabase) -> Customer:
    return Customer(service(database))


def test_a_card_token_names_a_case_and_a_known_action_or_is_none() -> None:
    assert parse_card_token("c.R20261124-0001.withdraw") == (CASE, "withdraw")
    assert parse_card_token("c.R20261124-0001.rate5") == (CASE, "rate5")
    for token in ("c.R1.explode", "c..withdraw", "x.R1.withdraw", "c.withdraw", "n1.r.card_invalid"):
        assert parse_card_token(token) is None, token


async def test_a_card_button_of_someone_elses_case_is_refused_and_changes_nothing(database: FakeDatabase) -> None:
    await with_case(database, C.IN_REVIEW)
    stranger = Customer(service(database), chat_id=STRANGER)
    shown = await stranger.presses(press("withdraw"))
    assert shown.toast == ZH("stale_button") and shown.step == Step.IDLE
    assert (await case_of(database)).status is C.IN_REVIEW


async def test_a_card_button_for_a_status_the_case_has_left_says_where_it_is(
        customer: Customer, database: FakeDatabase) -> None:
    await with_case(database, C.REFUNDING)
    shown = await customer.presses(press("withdraw"))
    assert shown.toast == ZH("case_moved_on", case_no=CASE, status=ZH("status.refunding"))
    assert shown.step == Step.IDLE


async def test_withdrawing_asks_first_and_then_withdraws(customer: Customer, database: FakeDatabase) -> None:
    await with_case(database, C.IN_REVIEW)
    asked = await customer.presses(press("withdraw"))
    assert asked.step == Step.CONFIRMING_WITHDRAW and (await case_of(database)).status is C.IN_REVIEW
    done = await customer.presses(customer.button("wd_yes"))
    assert done.step == Step.IDLE and customer.texts() == [ZH("withdrawn", case_no=CASE)]
    assert (await case_of(database)).status is C.WITHDRAWN


async def test_keeping_the_case_leaves_it_as_it_was(customer: Customer, database: FakeDatabase) -> None:
    await with_case(database, C.IN_REVIEW)
    await customer.presses(press("withdraw"))
    await customer.presses(customer.button("wd_no"))
    assert customer.texts() == [ZH("kept", case_no=CASE)]
    assert (await case_of(database)).status is C.IN_REVIEW


async def test_a_withdrawal_confirmed_after_the_case_moved_on_is_refused(
        customer: Customer, database: FakeDatabase) -> None:
    await with_case(database, C.IN_REVIEW)
    await customer.presses(press("withdraw"))
    async with database.uow() as uow:  # an agent approves meanwhile
        await CaseWorkflow.for_settings(customer.service.settings).move(uow, CASE, "approve", actor="agent:1", at=NOW)
        await uow.commit()
    await customer.presses(customer.button("wd_yes"))
    assert customer.texts() == [ZH("case_moved_on", case_no=CASE, status=ZH("status.approved"))]
    assert (await case_of(database)).status is C.APPROVED


async def test_adding_info_with_nothing_added_is_not_sent(customer: Customer, database: FakeDatabase) -> None:
    await with_case(database, C.NEEDS_INFO)
    await customer.presses(press("info"))
    shown = await customer.presses(customer.button("info_done"))
    assert shown.step == Step.ADDING_INFO and customer.texts() == [ZH("info_empty")]
    assert (await case_of(database)).status is C.NEEDS_INFO


async def test_added_text_goes_with_the_case_back_to_review_as_its_note(
        customer: Customer, database: FakeDatabase) -> None:
    await with_case(database, C.NEEDS_INFO)
    await customer.presses(press("info"))
    await customer.says("充值记录截图在这里")
    await customer.photo("AQAD9")
    shown = await customer.presses(customer.button("info_done"))
    assert shown.step == Step.IDLE and customer.texts() == [ZH("info_sent", case_no=CASE)]
    case = await case_of(database)
    assert case.status is C.IN_REVIEW and [e.file_unique_id for e in case.evidence] == ["AQAD9"]
    async with database.uow() as uow:
        history = await uow.desk.history(CASE)
    assert (history[-1].to_status, history[-1].note) == ("in_review", "充值记录截图在这里")


async def test_a_vague_appeal_reason_is_coached(customer: Customer, database: FakeDatabase) -> None:
    await with_case(database, C.REJECTED)
    await customer.presses(press("appeal"))
    shown = await customer.says("不服")
    # The demo order is a card code: the example talks about card codes.
    assert shown.step == Step.APPEAL_REASON
    assert customer.texts() == [ZH("coach_appeal", example=ZH("appeal_example.card_code"))]


async def test_an_appeal_needs_new_evidence_before_it_goes(customer: Customer, database: FakeDatabase) -> None:
    await with_case(database, C.REJECTED)
    await customer.presses(press("appeal"))
    await customer.says(REASON)
    shown = await customer.presses(customer.button("appeal_done"))
    assert shown.step == Step.APPEAL_EVIDENCE and customer.texts() == [ZH("appeal_needs_evidence")]
    assert (await case_of(database)).status is C.REJECTED


async def test_an_appeal_with_evidence_is_sent_with_its_reason(customer: Customer, database: FakeDatabase) -> None:
    await with_case(database, C.REJECTED)
    await customer.presses(press("appeal"))
    await customer.says(REASON)
    await customer.photo("AQAD7")
    shown = await customer.presses(customer.button("appeal_done"))
    case = await case_of(database)
    assert shown.step == Step.IDLE and case.status is C.APPEALED
    assert customer.texts() == [ZH("appeal_sent", case_no=CASE, due=day(ZH, case.review_due))]
    async with database.uow() as uow:
        assert (await uow.desk.history(CASE))[-1].note == REASON


async def test_a_rating_is_saved_and_the_card_redrawn_without_its_stars(
        customer: Customer, database: FakeDatabase) -> None:
    await with_case(database, C.REFUNDED)
    shown = await customer.presses(press("rate4"))
    assert shown.step == Step.RATING_COMMENT and (await case_of(database)).rating == 4
    [card] = database.outbox_rows("case_card")
    assert card.chat_id == customer.chat_id and card.payload == {"case_no": CASE}
    await customer.says("处理得很快")
    case = await case_of(database)
    assert (case.rating, case.rating_comment) == (4, "处理得很快") and customer.texts() == [ZH("rating_thanks")]


async def test_a_case_is_rated_once(customer: Customer, database: FakeDatabase) -> None:
    await with_case(database, C.REFUNDED)
    await customer.presses(press("rate4"))
    await customer.presses(customer.button("no_comment"))
    shown = await customer.presses(press("rate1"))
    assert shown.toast == ZH("case_moved_on", case_no=CASE, status=ZH("status.refunded"))
    assert (await case_of(database)).rating == 4
    conv = await conversation(database)
    assert conv is not None and conv.step == Step.IDLE
