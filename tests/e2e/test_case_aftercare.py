"""After filing: the status card the relay keeps up to date, the news that needs the customer, and what
the customer does from the card — add material, withdraw, appeal, rate. Real bot, real relay, real
emulator; agents' decisions are made through the case workflow, as the desk will make them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from dialogs.domain import Case, CaseStatus
from dialogs.refunds import settle
from dialogs.texts import Texts
from dialogs.words import day
from tests.e2e.conftest import CASE_NO, BotHandle, Customer, buttons, png_bytes, texts

ZH, EN = Texts("zh_CN"), Texts("en")
XIAOMING, ALICE = 10001, 10002
Messages = list[dict[str, Any]]


async def eventually(customer: Customer, check: Callable[[Messages], bool], timeout: float = 10) -> Messages:
    """Every bot message of the chat, once `check` holds for them (the relay sends asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        messages = await customer.control.messages(customer.user_id)
        if check(messages):
            return messages
        assert time.monotonic() < deadline, f"not seen in {timeout}s; the bot said: {texts(messages)[-600:]}"
        await asyncio.sleep(0.05)


def card_of(messages: Messages, case_no: str) -> dict[str, Any] | None:
    cards = [m for m in messages if (m.get("text") or "").startswith("📋") and case_no in m["text"]]
    return cards[-1] if cards else None


async def file_case(customer: Customer, t: Texts, order_no: str = "KM20261101000001",
                    reason: str = "card_invalid", description: str = "输入卡密时游戏提示卡号无效，错误码1002") -> str:
    await customer.say(f"/start order_{order_no}")
    await customer.press(t(f"reason.{reason}"))
    await customer.press(t("btn_continue"))
    await customer.say(description)
    await customer.photo(png_bytes("red"))
    await customer.press(t("btn_done"))
    found = CASE_NO.search(texts(await customer.press(t("btn_submit"))))
    assert found
    return found.group(0)


async def move(bot: BotHandle, case_no: str, *triggers: str, note: str = "") -> Case:
    """An agent's decision, as the desk will take it: through the workflow, in one unit of work."""
    workflow = bot.running.service.workflow
    async with bot.running.database.uow() as uow:
        for trigger in triggers:
            if trigger == "approve":
                case = await workflow.approve(uow, case_no, actor="agent:7", at=datetime.now(UTC), note=note)
            elif trigger in ("confirm_refund", "fail_refund"):  # the gateway's answer for the open attempt
                case = (await settle(uow, workflow, case_no, succeeded=trigger == "confirm_refund", actor="gateway",
                                     at=datetime.now(UTC), case_note=note)).case
            else:
                case = await workflow.move(uow, case_no, trigger, actor="agent:7", at=datetime.now(UTC), note=note)
        await uow.commit()
    return case


async def stored(bot: BotHandle, case_no: str) -> Case:
    async with bot.running.database.uow() as uow:
        case = await uow.cases.get(case_no)
    assert case is not None
    return case


async def test_a_filed_case_gets_a_status_card_that_is_edited_in_place(bot, customer):
    c = await customer(XIAOMING)
    case_no = await file_case(c, ZH)
    first = card_of(await eventually(c, lambda m: card_of(m, case_no) is not None), case_no)
    assert first is not None and ZH("status.submitted") in first["text"]
    assert ZH("btn_withdraw") in buttons([first])

    await move(bot, case_no, "start_review")
    messages = await eventually(c, lambda m: ZH("status.in_review") in (card_of(m, case_no) or {}).get("text", ""))
    card = card_of(messages, case_no)
    assert card is not None and card["message_id"] == first["message_id"]  # the same message, edited
    assert len([m for m in messages if (m.get("text") or "").startswith("📋")]) == 1


async def test_needs_info_asks_the_customer_who_adds_material_from_the_card(bot, customer):
    c = await customer(XIAOMING)
    case_no = await file_case(c, ZH)
    await move(bot, case_no, "start_review", "ask_info", note="请提供充值记录截图")
    news = await eventually(c, lambda m: any("请提供充值记录截图" in (x.get("text") or "") for x in m))
    assert ZH("btn_add_info") in buttons(news)

    shown = await c.press(ZH("btn_add_info"))
    assert case_no in texts(shown)
    await c.say("这是充值记录，显示扣款成功但游戏内未到账")
    shown = await c.photo(png_bytes("blue"))
    assert ZH("btn_info_done") in buttons(shown)
    shown = await c.press(ZH("btn_info_done"))
    assert ZH("info_sent", case_no=case_no) in texts(shown)

    case = await stored(bot, case_no)
    assert case.status is CaseStatus.IN_REVIEW and len(case.evidence) == 2
    await eventually(c, lambda m: ZH("status.in_review") in (card_of(m, case_no) or {}).get("text", ""))


async def test_sending_material_with_nothing_in_it_is_refused_politely(bot, customer):
    c = await customer(XIAOMING)
    case_no = await file_case(c, ZH)
    await move(bot, case_no, "start_review", "ask_info", note="请补充截图")
    await eventually(c, lambda m: ZH("btn_add_info") in buttons(m))
    await c.press(ZH("btn_add_info"))
    shown = await c.press(ZH("btn_info_done"))
    assert texts(shown) == ZH("info_empty")
    assert (await stored(bot, case_no)).status is CaseStatus.NEEDS_INFO


async def test_the_customer_withdraws_an_open_case_from_its_card(bot, customer):
    c = await customer(ALICE, "en")
    case_no = await file_case(c, EN, order_no="KM20261101000004", description="The game says the code is invalid")
    await eventually(c, lambda m: card_of(m, case_no) is not None)
    shown = await c.press(EN("btn_withdraw"))
    assert EN("withdraw_confirm", case_no=case_no) in texts(shown)
    shown = await c.press(EN("btn_withdraw_yes"))
    assert EN("withdrawn", case_no=case_no) in texts(shown)
    assert (await stored(bot, case_no)).status is CaseStatus.WITHDRAWN
    messages = await eventually(c, lambda m: EN("status.withdrawn") in (card_of(m, case_no) or {}).get("text", ""))
    assert buttons([card_of(messages, case_no)]) == []  # nothing left to do with it


async def test_a_card_button_of_a_case_that_moved_on_changes_nothing(bot, customer):
    c = await customer(XIAOMING)
    case_no = await file_case(c, ZH)
    card = card_of(await eventually(c, lambda m: card_of(m, case_no) is not None), case_no)
    assert card is not None
    await move(bot, case_no, "start_review", "reject", note="卡密已被使用")
    await c.press_data(card["message_id"], f"c.{case_no}.withdraw")
    assert await c.toast() == ZH("case_moved_on", case_no=case_no, status=ZH("status.rejected"))
    assert (await stored(bot, case_no)).status is CaseStatus.REJECTED


async def test_someone_elses_card_button_is_refused(bot, customer):
    owner = await customer(XIAOMING)
    case_no = await file_case(owner, ZH)
    stranger = await customer(ALICE, "en")
    shown = await stranger.say("/help")
    await stranger.press_data(shown[-1]["message_id"], f"c.{case_no}.withdraw")
    assert await stranger.toast() == EN("stale_button")
    assert (await stored(bot, case_no)).status is CaseStatus.SUBMITTED


async def test_a_rejected_customer_appeals_with_a_reason_and_new_evidence(bot, customer):
    c = await customer(XIAOMING)
    case_no = await file_case(c, ZH)
    await move(bot, case_no, "start_review", "reject", note="卡密已被使用")
    news = await eventually(c, lambda m: "卡密已被使用" in texts(m))
    assert ZH("btn_appeal") in buttons(news)

    await c.press(ZH("btn_appeal"))
    shown = await c.say("不满意")
    assert texts(shown) == ZH("coach_appeal", example=ZH("appeal_example.card_code"))
    shown = await c.say("截图显示卡密在发货前已经被别人使用，不是我用的")
    assert ZH("btn_appeal_done") in buttons(shown)
    shown = await c.press(ZH("btn_appeal_done"))
    assert texts(shown) == ZH("appeal_needs_evidence")
    await c.photo(png_bytes("green"))
    shown = await c.press(ZH("btn_appeal_done"))
    assert case_no in texts(shown)

    case = await stored(bot, case_no)
    assert case.status is CaseStatus.APPEALED and len(case.evidence) == 2
    assert ZH("appeal_sent", case_no=case_no, due=day(ZH, case.review_due)) == texts(shown)


async def test_money_news_arrives_and_the_customer_rates_the_service(bot, customer):
    c = await customer(XIAOMING)
    case_no = await file_case(c, ZH)
    await move(bot, case_no, "start_review", "approve")
    case = await stored(bot, case_no)
    assert case.status is CaseStatus.REFUNDING and case.credit_due is not None
    await eventually(c, lambda m: day(ZH, case.credit_due) in texts(m) and "💸" in texts(m))

    await move(bot, case_no, "confirm_refund")
    news = await eventually(c, lambda m: "🎉" in texts(m))
    assert "5⭐" in buttons(news)
    shown = await c.press("5⭐")
    assert ZH("btn_skip_comment") in buttons(shown)
    shown = await c.say("处理很快，谢谢")
    assert texts(shown) == ZH("rating_thanks")

    case = await stored(bot, case_no)
    assert (case.rating, case.rating_comment) == (5, "处理很快，谢谢")
    messages = await eventually(c, lambda m: "⭐⭐⭐⭐⭐" in (card_of(m, case_no) or {}).get("text", ""))
    assert "5⭐" not in buttons([card_of(messages, case_no)])  # rated once


async def test_status_shows_the_same_card_with_its_buttons(bot, customer):
    c = await customer(XIAOMING)
    case_no = await file_case(c, ZH)
    shown = await c.say("/status")
    assert card_of(shown, case_no) is not None and ZH("btn_withdraw") in buttons(shown)


async def test_a_sticker_while_adding_material_gets_a_hint_and_changes_nothing(bot, customer):
    c = await customer(XIAOMING)
    case_no = await file_case(c, ZH)
    await move(bot, case_no, "start_review", "ask_info", note="请补充截图")
    await eventually(c, lambda m: ZH("btn_add_info") in buttons(m))
    await c.press(ZH("btn_add_info"))
    shown = await c.other("sticker")
    assert texts(shown) == ZH("hint.adding_info")
    case = await stored(bot, case_no)
    assert case.status is CaseStatus.NEEDS_INFO and len(case.evidence) == 1


async def test_a_forged_second_rating_is_refused_and_the_first_stays(bot, customer):
    c = await customer(XIAOMING)
    case_no = await file_case(c, ZH)
    await move(bot, case_no, "start_review", "approve")
    await move(bot, case_no, "confirm_refund")
    news = await eventually(c, lambda m: "5⭐" in buttons(m))
    await c.press("2⭐")
    await c.press(ZH("btn_skip_comment"))
    await c.press_data(news[-1]["message_id"], f"c.{case_no}.rate5")
    assert await c.toast() == ZH("case_moved_on", case_no=case_no, status=ZH("status.refunded"))
    assert (await stored(bot, case_no)).rating == 2
