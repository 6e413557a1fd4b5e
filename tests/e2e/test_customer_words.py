"""The words the customer sees, through the emulator on both frameworks: the format hint for a mistyped
number at idle, the policy link on /help and on a rejection, the close date of a request for material,
an appeal example that fits a top-up."""

from __future__ import annotations

from dialogs.domain import TimerKind
from dialogs.settings import PolicySettings
from dialogs.texts import Texts
from dialogs.words import moment
from tests.e2e.conftest import make_config, texts
from tests.e2e.test_case_aftercare import eventually, file_case, move

ZH, EN = Texts("zh_CN"), Texts("en")
XIAOMING, ALICE = 10001, 10002
EXAMPLE = "KM20261124000001"
POLICY_URL = "https://shop.example/refund-policy"


async def test_a_mistyped_order_number_at_idle_gets_the_format_hint(bot, customer):
    c = await customer(XIAOMING)
    assert texts(await c.say("KM2026")) == ZH("order_malformed", example=EXAMPLE)
    assert texts(await c.say("订单123")) == ZH("order_malformed", example=EXAMPLE)


async def test_a_greeting_at_idle_still_gets_the_general_hint(bot, customer):
    c = await customer(XIAOMING, "en")
    assert texts(await c.say("hello")) == EN("hint.idle", example=EXAMPLE)


async def test_help_carries_the_policy_link_when_configured(start_bot, customer, tmp_path):
    config = make_config(tmp_path)
    await start_bot(config.model_copy(update={"policy": PolicySettings(url=POLICY_URL)}))
    for user, language, t in ((XIAOMING, "zh-hans", ZH), (ALICE, "en", EN)):
        c = await customer(user, language)
        said = texts(await c.say("/help"))
        assert said.endswith(t("policy_link", url=POLICY_URL))


async def test_a_rejection_carries_the_policy_link_when_configured(start_bot, customer, tmp_path):
    config = make_config(tmp_path)
    bot = await start_bot(config.model_copy(update={"policy": PolicySettings(url=POLICY_URL)}))
    c = await customer(XIAOMING)
    case_no = await file_case(c, ZH)
    await move(bot, case_no, "start_review", "reject", note="卡密已被兑换")
    news = await eventually(c, lambda m: "卡密已被兑换" in texts(m))
    rejection = next(m["text"] for m in news if "卡密已被兑换" in (m.get("text") or ""))
    assert rejection.startswith("❌") and rejection.endswith(ZH("policy_link", url=POLICY_URL))


async def test_a_request_for_material_names_the_day_it_closes(bot, customer):
    c = await customer(XIAOMING)
    case_no = await file_case(c, ZH)
    await move(bot, case_no, "start_review", "ask_info", note="请提供激活报错截图")
    async with bot.running.database.uow() as uow:
        [close] = [due for kind, due in await uow.timers.pending(case_no) if kind is TimerKind.INFO_CLOSE]
    when = moment(ZH, close, "Asia/Shanghai")
    news = await eventually(c, lambda m: "请提供激活报错截图" in texts(m))
    assert f"如在{when}前仍未补充" in texts(news)


async def test_a_top_up_appeal_example_talks_about_top_ups(bot, customer):
    c = await customer(XIAOMING)
    case_no = await file_case(c, ZH, order_no="KM20261101000007", reason="topup_duplicate",
                              description="同一笔订单 12:01 和 12:02 各扣了 50 元")
    await move(bot, case_no, "start_review", "reject", note="支付记录只有一笔扣款")
    await eventually(c, lambda m: "支付记录只有一笔扣款" in texts(m))
    said = texts(await c.press(ZH("btn_appeal")))
    assert ZH("appeal_example.direct_topup") in said and "卡密" not in said
