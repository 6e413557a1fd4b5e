"""The delivered 卡密 end to end: the real bot on the emulator asks a local fake shop (which checks our
signature) whether the codes were redeemed before the verdict; the customer sees the codes masked; an
agent's 查看卡密 posts them whole in the case's topic and the case history says who looked. Neither the
customer's chat nor our logs ever carry a whole code."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.config import AppConfig
from dialogs.desk.history import event_name
from dialogs.domain import CaseStatus
from dialogs.proof import mask_code
from dialogs.settings import AutoApproveSettings
from dialogs.texts import Texts
from tests.e2e.conftest import BotHandle, Customer, make_config, texts
from tests.e2e.test_case_aftercare import eventually, file_case, stored
from tests.e2e.test_desk_actions import AGENT, STRANGER, XIAOMING, desk_factory, has  # noqa: F401 - a fixture
from tests.fakes.redeem_shop import SECRET, FakeRedeemShop
from tests.storage.factories import make_order

ZH = Texts("zh_CN")
UNUSED = "KM20261205880001"
USED = "KM20261205880002"
UNKNOWN = "KM20261205880003"
CODES = {UNUSED: ("STEAM-7H3K-9QX2-ABCD",), USED: ("STEAM-1Z8Y-4PL0-WXYZ",), UNKNOWN: ("PSN-55AA-77BB-99CC",)}
ALL_CODES = [code for codes in CODES.values() for code in codes]


@pytest.fixture
async def shop() -> AsyncIterator[FakeRedeemShop]:
    fake = await FakeRedeemShop(redeemed={CODES[UNUSED][0]: False, CODES[USED][0]: True}).start()
    try:
        yield fake
    finally:
        await fake.close()


def checked(config: AppConfig, shop: FakeRedeemShop) -> AppConfig:
    orders = config.orders.model_copy(update={"redeem_check": config.orders.redeem_check.model_copy(
        update={"url": shop.url, "secret": SECRET, "timeout_seconds": 2})})
    return config.model_copy(update={"orders": orders, "auto_approve": AutoApproveSettings(enabled=True)})


async def seed_code_orders(bot: BotHandle) -> None:
    """Card-code orders of XIAOMING, delivered an hour ago, that the store itself knows nothing about
    (card_redeemed unknown): only the shop's check can make them auto-approvable."""
    now = datetime.now(UTC)
    async with bot.running.database.uow() as uow:
        for order_no, codes in CODES.items():
            await uow.orders.upsert(replace(
                make_order(order_no, buyer_telegram_id=XIAOMING, product_name="Steam 充值卡 100元", tags=frozenset()),
                paid_at=now - timedelta(hours=1), delivered_at=now - timedelta(minutes=59), card_redeemed=None,
                delivered_codes=codes))
        await uow.commit()


def no_code_in(text: str) -> bool:
    return not any(code in text for code in ALL_CODES)


async def test_unredeemed_codes_are_auto_approved_and_the_customer_sees_them_masked(
        start_bot, customer, shop: FakeRedeemShop, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    bot = await start_bot(checked(make_config(tmp_path), shop))
    await seed_code_orders(bot)
    c: Customer = await customer(XIAOMING)
    case_no = await file_case(c, ZH, order_no=UNUSED)
    case = await stored(bot, case_no)
    assert case.rule_id == "CARD_DEFECT_IN_WINDOW" and case.status is CaseStatus.REFUNDING  # auto-approved
    assert case.delivered_codes == CODES[UNUSED]
    assert shop.calls == [{"order_no": UNUSED, "codes": list(CODES[UNUSED])}] and shop.bad_signatures == 0
    masked = mask_code(CODES[UNUSED][0])
    messages = await eventually(c, lambda m: any(masked in (x.get("text") or "") and x["text"].startswith("📋")
                                                 for x in m))
    assert masked in texts(messages) and no_code_in(texts(messages))  # the summary and the status card
    assert no_code_in(caplog.text)


async def test_redeemed_codes_are_not_eligible_and_a_shop_that_is_down_sends_the_case_to_review(
        start_bot, customer, shop: FakeRedeemShop, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    bot = await start_bot(checked(make_config(tmp_path), shop))
    await seed_code_orders(bot)
    c: Customer = await customer(XIAOMING)
    await c.say(f"/start order_{USED}")
    verdict = texts(await c.press(ZH("reason.card_invalid")))
    assert ZH("rule_title.CARD_REDEEMED") in verdict
    async with bot.running.database.uow() as uow:
        conv = await uow.conversations.load(XIAOMING)
    assert conv is not None and conv.data["rule_id"] == "CARD_REDEEMED"
    await c.press(ZH("btn_cancel"))

    shop.mode = "down"  # the check fails: unknown, never an auto-approval
    case_no = await file_case(c, ZH, order_no=UNKNOWN)
    case = await stored(bot, case_no)
    assert case.rule_id == "CARD_REDEEM_UNKNOWN" and case.status is CaseStatus.SUBMITTED
    assert "redeem check for order" in caplog.text and UNKNOWN in caplog.text
    assert no_code_in(caplog.text)
    assert no_code_in(texts(await c.control.messages(XIAOMING)))


async def test_an_agents_show_codes_posts_them_in_the_topic_and_the_history_says_who_looked(
        desk_factory, customer, shop: FakeRedeemShop, tmp_path: Path,  # noqa: F811
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    shop.mode = "down"  # to review, so the case is on the desk
    desk = await desk_factory()
    await seed_code_orders(desk.bot)
    c: Customer = await customer(XIAOMING)
    case_no = await file_case(c, ZH, order_no=UNKNOWN)
    card = await desk.card(case_no)
    code = CODES[UNKNOWN][0]
    first = await desk.seen_in_topic(case_no, lambda m: bool(m))
    assert no_code_in(texts(first)) and mask_code(code) in texts(first)  # the card: masked, and the button

    assert await desk.stranger.press(card, label=ZH("dk.btn.codes")) == ZH("desk.refused")
    assert await desk.agent.press(card, label=ZH("dk.btn.codes")) == ZH("dk.codes.posted")
    topic = await desk.seen_in_topic(case_no, has(code))
    shown = [m for m in topic if code in (m.get("text") or "")]
    assert len(shown) == 1 and "小王" in shown[0]["text"]  # one post, by the one agent who asked
    await desk.seen_in_topic(case_no, has("小王 查看了卡密"))  # the card's history, redrawn
    async with desk.bot.running.database.uow() as uow:
        history = await uow.desk.history(case_no)
    viewed = [(e.actor, event_name(e)[0]) for e in history if event_name(e)[0] == "codes"]
    assert viewed == [(f"agent:{AGENT}", "codes")]  # the stranger's press left no trace in the history
    refused = [(a, x) for a, x, _, ok in await desk.audit() if not ok]
    assert refused == [(STRANGER, "codes")]
    assert no_code_in(texts(await c.control.messages(XIAOMING)))
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.split(".")[0] in ("bot", "dialogs", "storage"))
    assert no_code_in(ours)

