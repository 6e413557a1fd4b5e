"""A customer files a refund case in Telegram: every policy branch, in Chinese and in English."""

from __future__ import annotations

from datetime import date

import pytest

from dialogs.texts import Texts
from dialogs.words import day
from tests.e2e.conftest import CASE_NO, buttons, png_bytes, texts

ZH, EN = Texts("zh_CN"), Texts("en")
XIAOMING, ALICE, UNBOUND = 10001, 10002, 10003

# (user, order, reason, verdict, rule, screenshots)
BRANCHES = [
    (XIAOMING, "KM20261101000001", "card_invalid", "eligible", "CARD_DEFECT_IN_WINDOW", 1),
    (XIAOMING, "KM20261101000001", "card_not_received", "review", "DELIVERY_DISPUTED", 0),
    (XIAOMING, "KM20261101000002", "card_cannot_activate", "not_eligible", "CARD_DEFECT_LATE", 1),
    (XIAOMING, "KM20261101000003", "card_used", "not_eligible", "CARD_REDEEMED", 1),
    (ALICE, "KM20261101000004", "card_invalid", "review", "CARD_REDEEM_UNKNOWN", 1),
    (ALICE, "KM20261101000005", "card_not_received", "eligible", "NOT_DELIVERED", 0),
    (XIAOMING, "KM20261101000006", "topup_not_credited", "eligible", "TOPUP_NOT_CREDITED", 0),
    (XIAOMING, "KM20261101000007", "topup_not_credited", "not_eligible", "TOPUP_ALREADY_CREDITED", 0),
    (XIAOMING, "KM20261101000007", "topup_duplicate", "review", "PLATFORM_FAULT_CHECK", 1),
    (ALICE, "KM20261101000008", "topup_not_credited", "review", "TOPUP_CREDIT_UNKNOWN", 0),
    (XIAOMING, "KM20261101000009", "membership_not_activated", "eligible", "MEMBERSHIP_NOT_ACTIVATED", 0),
    (ALICE, "KM20261101000010", "membership_not_activated", "review", "MEMBERSHIP_ACTIVE", 0),
    (XIAOMING, "KM20261101000011", "card_invalid", "review", "SPECIAL_GOODS", 1),
    (ALICE, "KM20261101000012", "other", "review", "SPECIAL_GOODS", 0),
    (XIAOMING, "KM20261101000013", "not_as_described", "review", "HUMAN_JUDGEMENT", 1),
]
DESCRIPTION = {"zh_CN": "输入卡密时游戏提示卡号无效，错误码1002", "en": "The game says the code is invalid, error 1002"}
VERDICT_MARK = {"eligible": "✅", "review": "🔎", "not_eligible": "❌"}


async def stored(bot, case_no):
    async with bot.running.database.uow() as uow:
        return await uow.cases.get(case_no)


async def file_case(customer, t, order_no, reason, verdict, rule, screenshots, locale):
    shown = await customer.say(f"/start order_{order_no}")
    assert order_no in texts(shown)
    shown = await customer.press(t(f"reason.{reason}"))
    # The rule by its title; its id is for the desk.
    assert rule not in texts(shown) and VERDICT_MARK[verdict] in texts(shown)
    assert t(f"rule_title.{rule}", hours=24) in texts(shown) and t(f"rule.{rule}", hours=24) in texts(shown)
    shown = await customer.press(t("btn_ask_human") if verdict == "not_eligible" else t("btn_continue"))
    assert t("btn_cancel") in buttons(shown)
    shown = await customer.say(DESCRIPTION[locale])
    for i in range(screenshots):
        shown = await customer.photo(png_bytes(color=("red", "blue", "green")[i]))
    shown = await customer.press(t("btn_done") if screenshots else t("btn_skip"))
    assert order_no in texts(shown) and DESCRIPTION[locale] in texts(shown)
    return await customer.press(t("btn_submit"))


@pytest.mark.parametrize("locale", ["zh_CN", "en"])
@pytest.mark.parametrize(("user", "order_no", "reason", "verdict", "rule", "screenshots"), BRANCHES,
                         ids=[f"{b[4]}-{b[2]}" for b in BRANCHES])
async def test_every_policy_branch_files_a_case(bot, customer, locale, user, order_no, reason, verdict, rule,
                                                screenshots):
    t = Texts(locale)
    c = await customer(user, "zh-hans" if locale == "zh_CN" else "en")
    shown = await file_case(c, t, order_no, reason, verdict, rule, screenshots, locale)
    said = texts(shown)
    case_no = CASE_NO.search(said)
    assert case_no, said
    assert t(f"next_steps.{verdict}") in said
    case = await stored(bot, case_no.group(0))
    assert case.review_due > date.today() and day(t, case.review_due) in said  # a working-day deadline, dated
    status = texts(await c.say("/status"))
    assert case_no.group(0) in status and t("status.submitted") in status


async def test_unbound_order_is_proven_by_the_last_four_phone_digits(bot, customer):
    c = await customer(UNBOUND)
    shown = await c.say("KM20261101000014")
    assert texts(shown) == ZH("ask_phone")
    shown = await c.say("9999")
    assert "KM20261101000014" in texts(shown)
    assert ZH("reason.membership_not_activated") in buttons(shown)


async def test_not_found_and_not_yours_read_the_same(bot, customer):
    c = await customer(ALICE, "en")
    # An order of someone else (bound to 小明) and an order that does not exist.
    replies = []
    for number in ("KM20261101000001", "KM29991231999999"):
        assert texts(await c.say(number)) == EN("ask_phone")
        replies.append(texts(await c.say("5678")))
    assert replies[0].split(".")[0] == replies[1].split(".")[0]
    assert "couldn't find" in replies[0]


async def test_malformed_order_number_is_answered_with_an_example(bot, customer):
    c = await customer(XIAOMING)
    await c.say("/refund")
    shown = await c.say("订单123")
    assert texts(shown) == ZH("order_malformed", example="KM20261124000001")


async def test_five_failed_lookups_pause_lookups_and_say_so(bot, customer):
    c = await customer(UNBOUND, "en")
    for _ in range(4):
        await c.say("KM20261101000014")
        assert "tries left" in texts(await c.say("0000"))
    await c.say("KM20261101000014")
    said = texts(await c.say("0000"))
    assert "paused" in said and "min" in said
    # Even the right digits wait for the cool-down now.
    assert "paused" in texts(await c.say("KM20261101000014"))


async def test_vague_description_is_coached_then_concrete_one_accepted(bot, customer):
    c = await customer(XIAOMING)
    await c.say("/start order_KM20261101000001")
    await c.press(ZH("reason.card_invalid"))
    await c.press(ZH("btn_continue"))
    coached = []
    for vague in ("不满意", "商品不好"):
        shown = await c.say(vague)
        assert "具体" in texts(shown) and "卡号无效" in texts(shown)
        coached.append(texts(shown))
    assert coached[0] != coached[1]  # each answers what the customer said
    shown = await c.say("卡密激活失败，提示卡号无效")
    assert "截图" in texts(shown)


async def test_second_try_for_an_order_with_an_open_case_shows_that_case_whatever_the_reason(bot, customer):
    c = await customer(XIAOMING, "en")
    t = EN
    first = texts(await file_case(c, t, "KM20261101000007", "topup_duplicate", "review",
                                  "PLATFORM_FAULT_CHECK", 1, "en"))
    case_no = CASE_NO.search(first).group(0)
    for reason_of_the_new_try in ("topup_duplicate", "topup_not_credited"):
        shown = await c.say("/start order_KM20261101000007")  # shown as soon as the order is named
        assert case_no in texts(shown) and "already has an open refund case" in texts(shown), reason_of_the_new_try
        assert t(f"reason.{reason_of_the_new_try}") not in buttons(shown)


async def test_required_screenshots_cannot_be_skipped(bot, customer):
    c = await customer(XIAOMING)
    await c.say("/start order_KM20261101000001")
    await c.press(ZH("reason.card_invalid"))
    await c.press(ZH("btn_continue"))
    shown = await c.say("输入卡密时游戏提示卡号无效")
    assert ZH("btn_skip") not in buttons(shown)
    shown = await c.press(ZH("btn_done"))
    assert texts(shown) == ZH("evidence_required", needed=1, count=0)
