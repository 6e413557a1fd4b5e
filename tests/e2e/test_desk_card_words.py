"""What an agent sees of a case on the desk, end to end (both frameworks, against the emulator): the
topic's name in the group's topic list, the card's history in words, each person named once, and the
card's buttons while an approval waits for a supervisor."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tests.e2e.conftest import Control, buttons
from tests.e2e.test_desk_actions import (  # noqa: F401 - desk_factory is a fixture
    AGENT,
    DESK,
    XIAOMING,
    ZH,
    Desk,
    desk_factory,
    has,
    on_the_desk,
    until,
)


async def card_shown(desk: Desk, case_no: str, check: Any) -> dict[str, Any]:
    """The case's card as the topic shows it, once `check(card)` holds (the relay edits it in place)."""
    topic, card_id = await desk.topic(case_no), await desk.card(case_no)
    card: dict[str, Any] = {}

    async def holds() -> bool:
        nonlocal card
        card = next(m for m in await desk.control.get("chat", chat_id=DESK, message_thread_id=topic)
                    if m["message_id"] == card_id)
        return bool(check(card))
    await until(holds, 10, lambda: str(card.get("text")))
    return card


async def test_the_topic_list_shows_the_amount_the_reason_and_the_short_case_number(
        desk_factory, control: Control, customer) -> None:  # noqa: F811
    desk: Desk = await desk_factory()
    case_no = await on_the_desk(await customer(XIAOMING))
    thread = await desk.topic(case_no)
    names = {t["message_thread_id"]: t["name"] for t in await control.get("topics", chat_id=DESK)}
    assert names[thread] == f"¥100 卡密无效 · R…{case_no[-4:]}"


async def test_the_card_history_says_in_words_who_took_the_case_over(desk_factory, customer) -> None:  # noqa: F811
    desk: Desk = await desk_factory()
    case_no = await on_the_desk(await customer(XIAOMING))
    await desk.agent.press(await desk.card(case_no), label=ZH("dk.btn.take"))
    card = await card_shown(desk, case_no, lambda c: "小王 接手" in c["text"])
    history = card["text"].split(ZH("dk.card.history"), 1)[1]
    assert "客户 提交了退款单" in history and "小王 开始审核" in history
    assert "take" not in history and "→" not in history


async def test_an_agent_whose_telegram_name_is_their_alias_is_named_once(desk_factory, customer) -> None:  # noqa: F811
    desk: Desk = await desk_factory(aliases={AGENT: "Wang"})  # the agent's Telegram first name is Wang too
    case_no = await on_the_desk(await customer(XIAOMING))
    await desk.agent.send("/take", await desk.topic(case_no))
    messages = await desk.seen_in_topic(case_no, has(ZH("desk.took", agent="Wang")))
    assert not any("Wang (Wang)" in (m.get("text") or "") for m in messages)
    card = await card_shown(desk, case_no, lambda c: "处理人：" in c["text"] and "待认领" not in c["text"])
    assert f"处理人：Wang（{AGENT}）" in card["text"] and "Wang · " not in card["text"]


async def test_while_a_supervisor_must_confirm_the_card_offers_confirm_and_no_approve_or_reject(
        desk_factory, customer) -> None:  # noqa: F811
    desk: Desk = await desk_factory(confirm_above=Decimal(20))
    case_no = await on_the_desk(await customer(XIAOMING))
    await desk.agent.press(await desk.card(case_no), label=ZH("dk.btn.approve"))
    card = await card_shown(desk, case_no, lambda c: ZH("dk.btn.confirm") in buttons([c]))
    shown = buttons([card])
    assert ZH("dk.btn.approve") not in shown and ZH("dk.btn.reject") not in shown and ZH("dk.btn.ask") not in shown
    assert shown == [ZH("dk.btn.confirm"), ZH("dk.btn.take"), ZH("dk.btn.note")]
    assert "小王 申请通过 ¥100.00（待主管确认）" in card["text"]
    assert "⏳ 待主管确认：小王 申请退款 ¥100.00" in card["text"]
