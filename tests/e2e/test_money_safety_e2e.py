"""The order's refund ledger as the customer meets it, through the real adapter and the emulator: an
order with an open case shows it, a refunded order files nothing, a partly refunded one claims the
rest, and nobody is shown another person's case."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal

from dialogs.texts import Texts
from tests.e2e.conftest import CASE_NO, buttons, png_bytes, texts
from tests.e2e.test_case_aftercare import eventually, file_case, move, stored

ZH = Texts("zh_CN")
XIAOMING, ALICE, XIAOHONG = 10001, 10002, 10003
CARD = "KM20261101000001"  # 小明's ¥100 card code, bound to his account


async def refunded(bot, case_no: str, amount: Decimal | None = None) -> None:  # type: ignore[no-untyped-def]
    from dialogs.refunds import settle

    workflow = bot.running.service.workflow
    async with bot.running.database.uow() as uow:
        await workflow.move(uow, case_no, "start_review", actor="agent:7", at=datetime.now(UTC))
        await workflow.approve(uow, case_no, actor="agent:7", at=datetime.now(UTC), amount=amount)
        await settle(uow, workflow, case_no, succeeded=True, actor="gateway", at=datetime.now(UTC))
        await uow.commit()


async def cases_of(bot, order_no: str) -> list:  # type: ignore[no-untyped-def]
    async with bot.running.database.uow() as uow:
        return await uow.cases.for_order(order_no)


async def test_a_fully_refunded_order_says_so_and_files_nothing_whatever_the_reason(bot, customer):
    c = await customer(XIAOMING)
    case_no = await file_case(c, ZH)
    await refunded(bot, case_no)
    shown = await c.say(f"/start order_{CARD}")
    assert texts(shown) == ZH("order_fully_refunded", refunded="¥100.00")
    assert not any(ZH(f"reason.{r}") in buttons(shown) for r in ("card_invalid", "card_cannot_activate"))
    assert len(await cases_of(bot, CARD)) == 1


async def test_after_a_partial_refund_only_the_remainder_is_claimed_and_said(bot, customer):
    c = await customer(XIAOMING)
    first = await file_case(c, ZH)
    await refunded(bot, first, Decimal("20.00"))
    shown = await c.say(f"/start order_{CARD}")
    assert ZH("order_partly_refunded", refunded="¥20.00", remaining="¥80.00") in texts(shown)
    second = await file_case(c, ZH, reason="card_cannot_activate")
    assert second != first
    assert (await stored(bot, second)).amount == Decimal("80.00")
    # An agent can approve at most the rest: the ledger caps it across the order's cases.
    await move(bot, second, "start_review")
    async with bot.running.database.uow() as uow:
        from dialogs.ledger import refundable
        assert await refundable(uow, await uow.cases.get(second)) == Decimal("80.00")


async def test_a_new_try_on_an_order_with_a_case_in_flight_shows_that_case(bot, customer):
    c = await customer(XIAOMING)
    case_no = await file_case(c, ZH)
    await move(bot, case_no, "start_review", "approve")  # refunding: money in flight
    shown = await c.say(f"/start order_{CARD}")
    assert case_no in texts(shown) and ZH("status.refunding") in texts(shown)
    await eventually(c, lambda m: "💸" in texts(m))


async def test_nobody_is_shown_another_persons_case(bot, customer):
    xiaohong = await customer(XIAOHONG)
    await xiaohong.say("KM20261101000014")  # unbound: her phone's last digits open it
    await xiaohong.say("9999")
    await xiaohong.press(ZH("reason.membership_not_activated"))
    await xiaohong.press(ZH("btn_continue"))
    await xiaohong.say("会员一直没有开通，显示订单处理中")
    await xiaohong.photo(png_bytes("red"))
    await xiaohong.press(ZH("btn_done"))
    shown = await xiaohong.press(ZH("btn_submit"))
    case_no = CASE_NO.search(texts(shown)).group(0)
    stranger = await customer(ALICE, "zh-hans")
    await stranger.say("KM20261101000014")
    shown = await stranger.say("9999")
    assert texts(shown) == ZH("order_case_elsewhere") and case_no not in texts(shown)


async def test_two_people_submitting_on_one_order_at_once_file_one_case(bot, customer, control):
    """小红 and someone with her phone digits both reach Submit on her unbound order and press it at the
    same moment: the order's claims are read again under its lock, so one case is filed and the
    other person is told a case is in progress — without its number."""
    people = [await customer(XIAOHONG), await customer(ALICE, "zh-hans")]
    for c in people:
        await c.say("KM20261101000014")
        await c.say("9999")
        await c.press(ZH("reason.membership_not_activated"))
        await c.press(ZH("btn_continue"))
        await c.say("会员一直没有开通，显示订单处理中")
        await c.photo(png_bytes("red"))
        await c.press(ZH("btn_done"))
    submits = [await c.message_with_button(ZH("btn_submit")) for c in people]
    pressed = await asyncio.gather(*(control.post("press", user_id=c.user_id, message_id=m["message_id"],
                                                  button_text=ZH("btn_submit"))
                                     for c, m in zip(people, submits, strict=True)))
    await control.wait(max(int(p["update_id"]) for p in pressed))
    filed = await cases_of(bot, "KM20261101000014")
    assert len(filed) == 1
    answers = [texts(await c.read()) for c in people]
    assert sum(filed[0].case_no in a for a in answers) == 1
    assert sum(a == ZH("order_case_elsewhere") for a in answers) == 1
