"""What the customer reads (dialogs/words.py and its callers): rule titles, promised days with their
weekday, coaching by vague phrase, examples that fit the product, the format hint for a mistyped
number at idle, the policy link."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from dialogs.cases import CaseWorkflow
from dialogs.domain import CaseStatus, Delivery, DeliveryStatus, ProductKind, TimerKind
from dialogs.notify import card_text, compose
from dialogs.settings import CoreSettings, OrderSettings, PolicySettings
from dialogs.steps import Step
from dialogs.texts import Texts
from dialogs.words import day, looks_like_order_number, moment
from tests.dialogs.customer import (
    NOW,
    NUMBER,
    ZH,
    Customer,
    case_of,
    conversation,
    service,
    with_case,
    with_order,
)
from tests.fakes import FakeDatabase

EN = Texts("en")
EXAMPLE = OrderSettings().number_example
POLICY_URL = "https://shop.example/refund-policy"
WITH_URL = CoreSettings(policy=PolicySettings(url=POLICY_URL))
CASE = "R20261124-0001"


async def at_verdict(customer: Customer, reason: str) -> str:
    await customer.says(NUMBER)
    await customer.presses(customer.button(f"r.{reason}"))
    return customer.texts()[0]


async def describing(database: FakeDatabase, reason: str, **order: object) -> Customer:
    await with_order(database, tags=frozenset(), **order)
    customer = Customer(service(database))
    await at_verdict(customer, reason)
    await customer.presses(customer.button("go"))
    assert customer.last.step == Step.DESCRIBING
    return customer


# -- rule titles --------------------------------------------------------------------------------------

async def test_the_verdict_names_the_rule_by_its_title_with_the_window(database: FakeDatabase) -> None:
    await with_order(database, tags=frozenset())
    said = await at_verdict(Customer(service(database)), "card_invalid")
    assert ZH("rule_title.CARD_DEFECT_IN_WINDOW", hours=24) in said and "卡密问题 24 小时内申报" in said
    assert "CARD_DEFECT_IN_WINDOW" not in said


async def test_the_summary_names_the_rule_by_its_title_and_the_case_keeps_the_id(database: FakeDatabase) -> None:
    customer = await describing(database, "card_not_received", delivery_status=DeliveryStatus.PENDING)
    await customer.says("订单显示已付款，但一直没有收到卡密")
    await customer.presses(customer.button("done"))
    summary = customer.texts()[0]
    assert ZH("rule_title.NOT_DELIVERED") in summary and "NOT_DELIVERED" not in summary
    await customer.presses(customer.button("submit"))
    async with database.uow() as uow:
        case = await uow.cases.get(CASE)
    assert case is not None and case.rule_id == "NOT_DELIVERED"


# -- dates ------------------------------------------------------------------------------------------

def test_a_day_reads_with_its_weekday_in_both_languages() -> None:
    assert day(ZH, date(2026, 12, 9)) == "12月9日（周三）"
    assert day(EN, date(2026, 12, 9)) == "Wed 9 Dec"


def test_a_moment_is_shown_in_the_platform_time_zone() -> None:
    assert moment(ZH, datetime(2026, 12, 9, 16, 5, tzinfo=ZoneInfo("UTC")), "Asia/Shanghai") == "12月10日（周四）00:05"


async def test_a_filed_case_promises_its_review_day_with_the_weekday(database: FakeDatabase) -> None:
    customer = await describing(database, "card_not_received", delivery_status=DeliveryStatus.PENDING)
    await customer.says("订单显示已付款，但一直没有收到卡密")
    await customer.presses(customer.button("done"))
    await customer.presses(customer.button("submit"))
    case = await case_of(database)
    assert f"最晚{day(ZH, case.review_due)}前给出结果" in customer.texts()[0]
    assert case.review_due.isoformat() not in customer.texts()[0]


async def test_the_status_card_says_when_the_review_result_comes(database: FakeDatabase) -> None:
    await with_case(database, CaseStatus.IN_REVIEW, review_due=date(2026, 12, 9))
    text = card_text(await case_of(database), None, ZH)
    assert "预计12月9日（周三）前给出审核结果" in text and "工作日）" not in text


async def test_needs_info_news_gives_the_close_date_of_the_timer(database: FakeDatabase) -> None:
    await with_case(database, CaseStatus.IN_REVIEW)
    settings = CoreSettings()
    async with database.uow() as uow:
        await CaseWorkflow.for_settings(settings).move(uow, CASE, "ask_info", actor="agent:1", at=NOW,
                                                       note="请补充充值记录")
        await uow.commit()
    async with database.uow() as uow:
        closes = [due for kind, due in await uow.timers.pending(CASE) if kind is TimerKind.INFO_CLOSE]
        row = next(r for r in database.outbox_rows("case_news"))
        notice = await compose(uow, Delivery(row.id, row.kind, row.chat_id, row.dedupe_key, row.payload,
                                             row.attempts, row.created_at), settings)
    assert closes == [NOW + timedelta(days=settings.sla.needs_info_close_days)]
    assert notice is not None and f"如在{moment(ZH, closes[0], 'Asia/Shanghai')}前仍未补充" in notice.text


# -- coaching ---------------------------------------------------------------------------------------

async def test_不满意_and_商品不好_are_coached_differently_and_kindly(database: FakeDatabase) -> None:
    customer = await describing(database, "card_invalid")
    said = []
    for vague in ("不满意", "商品不好"):
        await customer.says(vague)
        assert customer.last.step == Step.DESCRIBING
        said.append(customer.texts()[0])
    assert said[0] != said[1]
    assert said[0] == ZH("coach.unsatisfied", examples=ZH("examples.card_invalid"))
    assert said[1] == ZH("coach.bad_product", examples=ZH("examples.card_invalid"))
    for text in said:
        assert "具体" in text and "卡号无效" in text and "而不是" not in text


async def test_a_vague_english_description_is_coached_in_english(database: FakeDatabase) -> None:
    await with_order(database, tags=frozenset())
    customer = Customer(service(database), language="en")
    await at_verdict(customer, "card_invalid")
    await customer.presses(customer.button("go"))
    await customer.says("it doesn't work")
    assert customer.texts() == [EN("coach.not_working", examples=EN("examples.card_invalid"))]


async def test_a_reason_any_product_has_gets_an_example_of_that_product(database: FakeDatabase) -> None:
    customer = await describing(database, "not_as_described", product_kind=ProductKind.DIRECT_TOPUP,
                                product_name="王者荣耀 点券 100")
    asked = customer.texts()[0]
    assert ZH("examples.not_as_described.direct_topup") in asked
    assert ZH("examples.not_as_described.membership") not in asked


# -- a mistyped number at idle --------------------------------------------------------------------

@pytest.mark.parametrize("typed", ["KM2026", "订单123", "km2026112400", "my order 12345"])
async def test_a_mistyped_order_number_at_idle_gets_the_format_hint(database: FakeDatabase, typed: str) -> None:
    customer = Customer(service(database))
    shown = await customer.says(typed)
    assert shown.step == Step.IDLE and customer.texts() == [ZH("order_malformed", example=EXAMPLE)]
    conv = await conversation(database)
    assert conv is None or not conv.data.get("failures")  # not a failed lookup


async def test_a_greeting_at_idle_gets_the_general_hint(database: FakeDatabase) -> None:
    customer = Customer(service(database))
    await customer.says("您好")
    assert customer.texts() == [ZH("hint.idle", example=EXAMPLE)]


def test_what_looks_like_an_order_number() -> None:
    orders = OrderSettings()
    assert looks_like_order_number("km123", orders) and looks_like_order_number("单号 20261124", orders)
    assert not looks_like_order_number("hello", orders) and not looks_like_order_number("在吗", orders)


# -- appeals --------------------------------------------------------------------------------------

async def test_a_top_up_appeal_example_talks_about_top_ups(database: FakeDatabase) -> None:
    await with_order(database, product_kind=ProductKind.DIRECT_TOPUP)
    await with_case(database, CaseStatus.REJECTED)  # on the top-up order above
    customer = Customer(service(database))
    await customer.presses(f"c.{CASE}.appeal")
    asked = customer.texts()[0]
    assert ZH("appeal_example.direct_topup") in asked and "充值" in asked and "卡密" not in asked


# -- the policy link ------------------------------------------------------------------------------

async def test_help_links_the_policy_when_configured(database: FakeDatabase) -> None:
    customer = Customer(service(database, WITH_URL))
    await customer.command("help")
    assert customer.texts()[0].endswith(ZH("policy_link", url=POLICY_URL))


async def test_help_has_no_link_when_none_is_configured(database: FakeDatabase) -> None:
    customer = Customer(service(database))
    await customer.command("help")
    assert "http" not in customer.texts()[0]


async def test_a_not_eligible_verdict_links_the_policy(database: FakeDatabase) -> None:
    await with_order(database, tags=frozenset(), card_redeemed=True)
    said = await at_verdict(Customer(service(database, WITH_URL)), "card_used")
    assert said.startswith("❌") and ZH("policy_link", url=POLICY_URL) in said


async def test_a_rejection_links_the_policy(database: FakeDatabase) -> None:
    await with_case(database, CaseStatus.IN_REVIEW)
    async with database.uow() as uow:
        await CaseWorkflow.for_settings(WITH_URL).move(uow, CASE, "reject", actor="agent:1", at=NOW,
                                                       note="卡密已兑换")
        await uow.commit()
    async with database.uow() as uow:
        row = next(r for r in database.outbox_rows("case_news"))
        notice = await compose(uow, Delivery(row.id, row.kind, row.chat_id, row.dedupe_key, row.payload,
                                             row.attempts, row.created_at), WITH_URL)
    assert notice is not None and notice.text.startswith("❌")
    assert notice.text.endswith(ZH("policy_link", url=POLICY_URL))


def test_a_policy_url_must_be_a_web_address() -> None:
    with pytest.raises(ValueError, match="https://"):
        PolicySettings(url="shop.example/policy")
