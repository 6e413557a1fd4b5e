"""Working hours, FAQ auto-replies and agents' macros, end to end: the real bot on both frameworks
against the emulator, the desk in a forum supergroup (see tests/e2e/test_desk_actions.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.config import AppConfig
from dialogs.outbox import CUSTOMER_TEXT
from dialogs.settings import FaqEntry, HoursSettings, Macro
from dialogs.texts import Texts
from tests.e2e.conftest import Control, texts
from tests.e2e.test_case_aftercare import eventually
from tests.e2e.test_desk_actions import (
    AGENT,
    AGENT2,
    DESK,
    STRANGER,
    SUPER,
    SUPER2,
    XIAOMING,
    Desk,
    Person,
    desk_config,
    has,
    on_the_desk,
)

ZH, EN = Texts("zh_CN"), Texts("en")
OFFICE = HoursSettings(start="09:00", end="21:00", days="workdays", typical_reply_minutes=15)
SATURDAY_NIGHT = datetime(2026, 12, 5, 15, 0, tzinfo=UTC)  # 23:00 in Shanghai
WHEN = FaqEntry(keywords_zh_CN=("多久到账",), keywords_en=("how long",),
                zh_CN="审核通过后原路退回，通常 1–5 个工作日到账。",
                en="Once approved, the money goes back the way you paid, usually within 1-5 working days.")
MACROS = (Macro(key="checking", zh_CN="您好，我是{alias}，正在核实退款单 {case_no}（订单 {order_no}），可退 {refundable}。",
                en="Hello, this is {alias}, checking case {case_no} (order {order_no}); up to {refundable}."),)


@pytest.fixture
def desk_with(start_bot, control: Control, tmp_path: Path):  # type: ignore[no-untyped-def]
    """The desk of test_desk_actions, with [[faq]] entries too."""
    async def make(faq: tuple[FaqEntry, ...] = (), **desk: Any) -> Desk:
        people = ((AGENT, "Wang"), (AGENT2, "Li"), (SUPER, "Zhao"), (SUPER2, "Qian"), (STRANGER, "Mallory"))
        for user_id, name in people:
            await control.post("users", user_id=user_id, first_name=name, language_code="zh-hans")
        await control.post("groups", title="退款客服台", chat_id=DESK, is_forum=True, creator_id=SUPER,
                           members=[{"user_id": u, "status": "member"} for u, _ in people if u != SUPER])
        config: AppConfig = desk_config(tmp_path, **desk).model_copy(update={"faq": faq})
        bot = await start_bot(config)
        return Desk(bot, control, *(Person(control, u) for u, _ in people))

    return make


async def test_agent_off_hours_tells_the_customer_the_next_opening(desk_with, customer):
    desk = await desk_with(hours=OFFICE)
    desk.bot.running.service.clock = lambda: SATURDAY_NIGHT
    c = await customer(XIAOMING)
    shown = texts(await c.say("/agent"))
    assert shown == (f"{ZH('agent_recorded')}\n人工客服工作时间为工作日 09:00–21:00。现在是休息时间，"
                     "客服将于 12月7日（周一）09:00 起为您处理；您可以先留言，我们会按顺序回复。")
    english = await customer(XIAOMING + 1, "en")
    assert "from Mon 7 Dec, 09:00" in texts(await english.say("/agent"))


async def test_a_faq_keyword_at_idle_gets_the_answer_in_the_customers_language(desk_with, customer):
    await desk_with(faq=(WHEN,))
    chinese = await customer(XIAOMING)
    assert texts(await chinese.say("请问退款多久到账？")) == WHEN.zh_CN
    english = await customer(XIAOMING + 1, "en")
    assert texts(await english.say("How long until I get my money?")) == WHEN.en


async def test_a_faq_keyword_during_a_takeover_goes_to_the_agent_not_the_faq(desk_with, customer):
    desk = await desk_with(faq=(WHEN,))
    c = await customer(XIAOMING)
    case_no = await on_the_desk(c)
    topic = await desk.topic(case_no)
    await desk.agent.send("/take", topic)
    await eventually(c, has(ZH("desk.customer_joined", alias="小王")))
    said = await c.say("请问多久到账")
    assert WHEN.zh_CN not in texts(said)  # the agent reads it, the bot does not answer
    await desk.seen_in_topic(case_no, has("请问多久到账"))
    assert WHEN.zh_CN not in texts(await c.control.messages(XIAOMING))


async def test_a_macro_reaches_the_customer_filled_in_and_the_topic_shows_it(desk_with, customer):
    desk = await desk_with(macros=MACROS)
    c = await customer(XIAOMING)
    case_no = await on_the_desk(c)
    topic = await desk.topic(case_no)
    await desk.agent.send("/take", topic)
    await desk.agent.send("/m checking", topic)
    sent = f"您好，我是小王，正在核实退款单 {case_no}（订单 KM20261101000001），可退 ¥100.00。"
    await eventually(c, has(sent))
    await desk.seen_in_topic(case_no, has(ZH("desk.macro.sent", name="checking", text=sent)))


async def test_a_macro_list_and_refusals_stay_in_the_topic_and_send_nothing(desk_with, customer):
    desk = await desk_with(macros=MACROS)
    c = await customer(XIAOMING)
    case_no = await on_the_desk(c)
    topic = await desk.topic(case_no)
    await desk.agent.send("/m checking", topic)  # nobody took the case over
    await desk.seen_in_topic(case_no, has(ZH("desk.macro.not_owner", case=case_no)))
    await desk.agent.send("/take", topic)
    await desk.agent.send("/m thanks", topic)
    await desk.seen_in_topic(case_no, has(ZH("desk.macro.unknown", name="thanks")))
    await desk.agent.send("/m", topic)
    await desk.seen_in_topic(case_no, has("• checking: 您好，我是{alias}"))
    assert [row for row in await desk.outbox(CUSTOMER_TEXT) if row[2]["text_key"] == "desk.macro.to_customer"] == []


async def test_a_macro_naming_a_case_is_refused_on_a_request_without_one(desk_with, customer):
    desk = await desk_with(macros=MACROS)
    c = await customer(XIAOMING)
    await c.say("/agent")
    key = f"chat:{XIAOMING}"
    topic = await desk.topic(key)
    await desk.agent.send("/take", topic)
    await desk.agent.send("/m checking", topic)
    missing = "{case_no}, {order_no}, {refundable}"
    await desk.seen_in_topic(key, has(ZH("desk.macro.missing", name="checking", missing=missing)))
    assert [row for row in await desk.outbox(CUSTOMER_TEXT) if row[2]["text_key"] == "desk.macro.to_customer"] == []
