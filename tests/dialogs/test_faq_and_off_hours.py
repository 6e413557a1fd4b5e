"""FAQ auto-replies (dialogs/faq.py through the router) and the off-hours notice of /agent and of a case
going to a person, on the fakes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dialogs.domain import CaseStatus
from dialogs.settings import CoreSettings, DeskSettings, FaqEntry, HoursSettings
from dialogs.steps import Step
from dialogs.texts import Texts
from tests.dialogs.customer import NUMBER, ZH, Customer, service, with_case, with_order
from tests.dialogs.test_case_actions import REASON, press
from tests.dialogs.test_conversation import describing
from tests.fakes import FakeDatabase

EN = Texts("en")
WHEN = FaqEntry(keywords_zh_CN=("多久到账",), keywords_en=("how long",),
                zh_CN="审核通过后原路退回，通常 1–5 个工作日到账。", en="Once approved, it takes 1-5 working days.",
                zh_CN_with_case="退款单 {case_no} 预计 {deadline} 前有结果。", en_with_case="Case {case_no}: news by {deadline}.")
FAQ = CoreSettings(faq=(WHEN,))
HINT = ZH("hint.idle", example=CoreSettings().orders.number_example)


def test_entries_need_a_keyword_and_only_known_variables() -> None:
    with pytest.raises(ValueError, match="keyword"):
        FaqEntry(zh_CN="a", en="b")
    with pytest.raises(ValueError, match="unknown variable"):
        FaqEntry(keywords_en=("x",), zh_CN="a", en="b", en_with_case="{amount}")
    with pytest.raises(ValueError, match="unknown variable"):
        FaqEntry(keywords_en=("x",), zh_CN="{case_no}", en="b")  # the plain answer has no case to name


async def test_a_chinese_keyword_at_idle_gets_the_answer(database: FakeDatabase) -> None:
    customer = Customer(service(database, FAQ))
    await customer.says("请问退款多久到账？")
    assert customer.texts() == [WHEN.zh_CN]


async def test_an_english_keyword_gets_the_answer_in_the_customers_language(database: FakeDatabase) -> None:
    english = Customer(service(database, FAQ), chat_id=5001, language="en")
    await english.says("How long does a refund take?")
    assert english.texts() == [WHEN.en]
    chinese = Customer(service(database, FAQ), chat_id=5002)
    await chinese.says("how long")
    assert chinese.texts() == [WHEN.zh_CN]


async def test_a_customer_with_an_open_case_gets_the_answer_naming_it(database: FakeDatabase) -> None:
    case = await with_case(database, CaseStatus.SUBMITTED)
    customer = Customer(service(database, FAQ))
    await customer.says("多久到账")
    assert customer.texts() == [f"退款单 {case.case_no} 预计 {case.review_due.isoformat()} 前有结果。"]


async def test_text_without_a_keyword_still_gets_the_idle_hint(database: FakeDatabase) -> None:
    customer = Customer(service(database, FAQ))
    await customer.says("你好")
    assert customer.texts() == [HINT]


async def test_a_description_with_a_keyword_is_a_description_not_a_question(database: FakeDatabase) -> None:
    await with_order(database)
    customer = Customer(service(database, FAQ))
    await describing(customer)
    shown = await customer.says("卡密提示无效，错误码1002，请问多久到账")
    assert shown.step == Step.COLLECTING_EVIDENCE and WHEN.zh_CN not in "".join(customer.texts())


async def test_an_order_number_is_never_taken_for_a_question(database: FakeDatabase) -> None:
    await with_order(database)
    number_is_a_keyword = CoreSettings(faq=(WHEN.model_copy(update={"keywords_en": ("km2026",)}),))
    customer = Customer(service(database, number_is_a_keyword))
    shown = await customer.says(NUMBER)
    assert shown.step == Step.CHOOSING_REASON


OFFICE = CoreSettings(desk=DeskSettings(hours=HoursSettings(start="09:00", end="21:00", days="workdays",
                                                            typical_reply_minutes=15)))
SATURDAY_NIGHT = datetime(2026, 12, 5, 15, 0, tzinfo=UTC)  # 23:00 in Shanghai
MONDAY_MORNING = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
CLOSED = ("人工客服工作时间为工作日 09:00–21:00。现在是休息时间，客服将于 12月7日（周一）09:00 起为您处理；"
          "您可以先留言，我们会按顺序回复。")


async def test_agent_off_hours_says_when_the_desk_opens(database: FakeDatabase) -> None:
    customer = Customer(service(database, OFFICE, at=SATURDAY_NIGHT))
    await customer.command("agent")
    assert customer.texts() == [f"{ZH('agent_recorded')}\n{CLOSED}"]


async def test_agent_in_hours_promises_the_typical_reply_time(database: FakeDatabase) -> None:
    customer = Customer(service(database, OFFICE, at=MONDAY_MORNING), language="en")
    await customer.command("agent")
    assert customer.texts() == [f"{EN('agent_recorded')}\n{EN('hours.typical_reply', minutes=15)}"]


async def test_a_case_filed_off_hours_for_a_person_says_when_the_desk_opens(database: FakeDatabase) -> None:
    await with_order(database)
    customer = Customer(service(database, OFFICE, at=SATURDAY_NIGHT))
    await describing(customer)
    await customer.says("卡密输入后提示无效，已经试了三次，截图里有错误码")
    await customer.photo("shot1")
    await customer.presses(customer.button("done"))
    filed = await customer.presses(customer.button("submit"))
    assert filed.step == Step.IDLE
    [text] = customer.texts()
    assert text.startswith("退款单 ") and text.endswith(CLOSED)


async def test_an_appeal_sent_off_hours_says_when_the_desk_opens(database: FakeDatabase) -> None:
    await with_case(database, CaseStatus.REJECTED)
    customer = Customer(service(database, OFFICE, at=SATURDAY_NIGHT))
    await customer.presses(press("appeal"))
    await customer.says(REASON)
    await customer.photo("AQAD7")
    await customer.presses(customer.button("appeal_done"))
    [text] = customer.texts()
    assert text.startswith("申诉已提交") and text.endswith(CLOSED)
