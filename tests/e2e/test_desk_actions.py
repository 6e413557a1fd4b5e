"""The agents' desk, action side, end to end: the real bot (aiogram adapter, SQLite) against the
emulator, the agents in a forum supergroup where the bot is an administrator, customers in their
private chats. What agents do goes through Telegram (presses, commands, messages in topics, edits);
what the bot answers directly (toasts, replies in General and private chats) and what customers get
through the relay is read back from the emulator, the rest from the bot's database."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.config import AppConfig, RelayConfig
from bot.workers.desk_idle import DeskSweeper
from dialogs.desk import TAKEOVER, desk_token
from dialogs.domain import CaseStatus, DeskItem
from dialogs.settings import DeskSettings
from dialogs.texts import Texts
from storage.models import DeskAuditRow, OutboxRow
from tests.e2e.conftest import BotHandle, Control, Customer, buttons, make_config, png_bytes, texts
from tests.e2e.test_case_aftercare import eventually, file_case, stored

ZH, EN = Texts("zh_CN"), Texts("en")
XIAOMING = 10001
DESK = -1001987650001
AGENT, AGENT2, SUPER, SUPER2, STRANGER = 7001, 7002, 7101, 7102, 7999


def desk_config(tmp_path: Path, **desk: Any) -> AppConfig:
    settings = {"chat_id": DESK, "agents": (AGENT, AGENT2), "supervisors": (SUPER, SUPER2), "aliases": {AGENT: "小王"},
                **desk}
    # The group's 20 messages a minute is the relay's business (tested there); here it would only be slow.
    relay = RelayConfig(per_chat_per_second=20, per_group_per_minute=6000, idle_poll_seconds=0.05)
    return make_config(tmp_path).model_copy(update={"desk": DeskSettings(**settings), "relay": relay})


Messages = list[dict[str, Any]]


@dataclass
class Person:
    """Someone in the agents' group (or in their private chat with the bot)."""

    control: Control
    user_id: int

    async def send(self, text: str, thread: int | None = None, *, chat: int = DESK) -> dict[str, Any]:
        where = {"chat_id": chat} if chat != self.user_id else {}
        sent = await self.control.post("send_text", user_id=self.user_id, text=text, message_thread_id=thread,
                                       **where)
        if sent["update_id"] is not None:
            await self.control.wait(sent["update_id"])
        return dict(sent)

    async def upload(self, kind: str, data: bytes, thread: int, **fields: Any) -> dict[str, Any]:
        sent = await self.control.post_file(f"send_{kind}", data, user_id=self.user_id, chat_id=DESK,
                                            message_thread_id=thread, **fields)
        await self.control.wait(sent["update_id"])
        return dict(sent)

    async def press(self, message_id: int, data: str | None = None, *, label: str | None = None,
                    chat: int = DESK) -> str | None:
        """Press a button of a bot message (by its label, or any callback data); returns the toast."""
        pressed = await self.control.post("press", user_id=self.user_id, message_id=message_id, data=data,
                                          button_text=label, chat_id=chat)
        await self.control.wait(pressed["update_id"])
        answers = [a for a in await self.control.get("callback_answers")
                   if a["callback_query_id"] == pressed["callback_query_id"]]
        return (answers[0].get("answer") or {}).get("text") if answers else None

    async def private(self, text: str) -> Messages:
        before = max([m["message_id"] for m in await self.control.messages(self.user_id)] or [0])
        await self.send(text, chat=self.user_id)
        return await self.control.messages(self.user_id, after=before)


@dataclass
class Desk:
    bot: BotHandle
    control: Control
    agent: Person
    agent2: Person
    supervisor: Person
    supervisor2: Person
    stranger: Person

    async def item(self, key: str) -> DeskItem:
        async with self.bot.running.database.uow() as uow:
            item = await uow.desk.get(key)
        assert item is not None, key
        return item

    async def topic(self, key: str) -> int:
        """The item's forum topic, once the relay has made it and put the card in it."""
        async def made() -> bool:
            item = await self.item(key)
            return item.thread_id is not None and item.card_message_id is not None
        await until(made)
        thread = (await self.item(key)).thread_id
        assert thread is not None
        return thread

    async def card(self, key: str) -> int:
        await self.topic(key)
        card = (await self.item(key)).card_message_id
        assert card is not None
        return card

    async def seen_in_topic(self, key: str, check: Callable[[Messages], bool], timeout: float = 10) -> Messages:
        """Every message of the item's topic, once `check` holds for them (the relay sends them)."""
        thread = await self.topic(key)
        found: Messages = []

        async def holds() -> bool:
            nonlocal found
            found = list(await self.control.get("chat", chat_id=DESK, message_thread_id=thread))
            return check(found)
        await until(holds, timeout, lambda: texts(found)[-800:])
        return found

    async def outbox(self, *kinds: str) -> list[tuple[str, int | None, dict[str, Any]]]:
        async with self.bot.running.database.uow() as uow:
            rows = await uow.session.execute(  # type: ignore[attr-defined]
                select(OutboxRow.kind, OutboxRow.chat_id, OutboxRow.payload).where(OutboxRow.kind.in_(kinds))
                .order_by(OutboxRow.id))
            return [(r.kind, r.chat_id, r.payload) for r in rows]

    async def audit(self) -> list[tuple[int, str, str | None, bool]]:
        async with self.bot.running.database.uow() as uow:
            rows = await uow.session.execute(  # type: ignore[attr-defined]
                select(DeskAuditRow.actor_id, DeskAuditRow.action, DeskAuditRow.key, DeskAuditRow.allowed)
                .order_by(DeskAuditRow.id))
            return [(r.actor_id, r.action, r.key, r.allowed) for r in rows]

    async def flag(self, chat_id: int) -> Any:
        async with self.bot.running.database.uow() as uow:
            conv = await uow.conversations.load(chat_id)
        return conv.data.get(TAKEOVER) if conv else None


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 10,
                said: Callable[[], str] = lambda: "") -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"not within {timeout}s; {said()}"
        await asyncio.sleep(0.05)


def has(text: str) -> Callable[[Messages], bool]:
    return lambda messages: any(text in (m.get("text") or "") for m in messages)


@pytest.fixture
def desk_factory(start_bot, control: Control, tmp_path: Path):  # type: ignore[no-untyped-def]
    async def make(**settings: Any) -> Desk:
        people = ((AGENT, "Wang"), (AGENT2, "Li"), (SUPER, "Zhao"), (SUPER2, "Qian"), (STRANGER, "Mallory"))
        for user_id, name in people:
            await control.post("users", user_id=user_id, first_name=name, language_code="zh-hans")
        await control.post("groups", title="退款客服台", chat_id=DESK, is_forum=True, creator_id=SUPER,
                           members=[{"user_id": u, "status": "member"} for u, _ in people if u != SUPER])
        bot = await start_bot(desk_config(tmp_path, **settings))
        return Desk(bot, control, *(Person(control, u) for u, _ in people))

    return make


@pytest.fixture
async def desk(desk_factory):  # type: ignore[no-untyped-def]
    return await desk_factory()


async def on_the_desk(c: Customer, order_no: str = "KM20261101000001") -> str:
    """A customer files a case: it needs a person, so it is an item on the desk with a topic and card."""
    return await file_case(c, ZH, order_no=order_no)


def customer_saw(text: str) -> Callable[[Messages], bool]:
    return has(text)


async def test_a_strangers_presses_and_commands_are_refused_recorded_and_change_nothing(desk: Desk, customer):
    c = await customer(XIAOMING)
    case_no = await on_the_desk(c)
    card = await desk.card(case_no)
    topic = await desk.topic(case_no)
    assert await desk.stranger.press(card, label=ZH("dk.btn.take")) == ZH("desk.refused")
    assert await desk.stranger.press(card, label=ZH("dk.btn.approve")) == ZH("desk.refused")
    await desk.stranger.send("/approve", topic)
    await desk.stranger.send("/queue")
    await desk.seen_in_topic(case_no, has(ZH("desk.refused")))  # one answer in the topic
    general = [m for m in await desk.control.get("chat", chat_id=DESK, message_thread_id=1) if m["from_bot"]]
    assert ZH("desk.refused") in texts(general)  # /queue in General, answered there
    assert (await desk.item(case_no)).owner_id is None
    assert (await stored(desk.bot, case_no)).status is CaseStatus.SUBMITTED
    refused = [(a, x, k) for a, x, k, ok in await desk.audit() if not ok]
    assert refused == [(STRANGER, "take", case_no), (STRANGER, "approve", case_no), (STRANGER, "approve", case_no),
                       (STRANGER, "queue", None)]


async def test_take_over_then_text_photo_and_document_go_both_ways(desk: Desk, customer):
    c = await customer(XIAOMING)
    case_no = await on_the_desk(c)
    card = await desk.card(case_no)
    topic = await desk.topic(case_no)
    assert await desk.agent.press(card, label=ZH("dk.btn.take")) == ZH("desk.you_took", case=case_no)
    assert (await desk.item(case_no)).owner_id == AGENT
    assert (await stored(desk.bot, case_no)).status is CaseStatus.IN_REVIEW
    joined = ZH("desk.customer_joined", alias="小王")
    await eventually(c, customer_saw(joined))  # the alias, never the agent's account
    await desk.seen_in_topic(case_no, has(ZH("desk.took", agent="小王 (Wang)")))

    # The customer: text, photo, document. Each lands in the topic; the bot says nothing to any of it.
    said = await c.control.post("send_text", user_id=XIAOMING, text="卡密输入后提示无效，错误码1002")
    await c.control.wait(said["update_id"])
    shot = await c.control.post_file("send_photo", png_bytes("red"), user_id=XIAOMING)
    await c.control.wait(shot["update_id"])
    doc = await c.control.post_file("send_document", png_bytes("blue"), user_id=XIAOMING, filename="record.png",
                                    mime_type="image/png")
    await c.control.wait(doc["update_id"])
    in_topic = await desk.seen_in_topic(case_no, lambda m: has("错误码1002")(m) and sum(
        x["from_bot"] and x["kind"] in ("photo", "document") and x.get("caption") is None for x in m) >= 2)
    shown = {x.get("file_unique_id") for x in in_topic if x["from_bot"]}
    assert {shot["file_unique_id"], doc["file_unique_id"]} <= shown
    status = await c.say("/status")
    assert case_no in texts(status)  # /status still answers
    answered = [m["text"] for m in await c.control.messages(XIAOMING, after=said["message_id"])
                if m["message_id"] < status[0]["message_id"] and not (m.get("text") or "").startswith("📋")]
    assert answered == []

    # The owner in the topic: text, photo, document reach the customer; another agent's words and a
    # note do not.
    await desk.agent.send("您好，我是客服小王，正在核实", topic)
    photo = await desk.agent.upload("photo", png_bytes("green"), topic)
    document = await desk.agent.upload("document", png_bytes("yellow"), topic, filename="guide.png",
                                       mime_type="image/png")
    await desk.agent2.send("内部：这个卡密批次之前有问题", topic)
    await desk.agent.send("/note 客户很着急", topic)
    got = await eventually(c, lambda m: has("正在核实")(m) and {photo["file_unique_id"], document["file_unique_id"]}
                           <= {x.get("file_unique_id") for x in m})
    assert "内部" not in texts(got) and "客户很着急" not in texts(got)
    async with desk.bot.running.database.uow() as uow:
        link = await uow.desk.find_link(DESK, photo["message_id"], "to_customer")
    assert link is not None and link.key == case_no and link.copy_chat_id == XIAOMING


async def test_customer_cancel_and_agent_release_hand_the_chat_back_to_the_bot(desk: Desk, customer):
    c = await customer(XIAOMING)
    case_no = await on_the_desk(c)
    topic = await desk.topic(case_no)
    await desk.agent.send("/take", topic)
    assert await desk.flag(XIAOMING) == case_no
    shown = await c.say("/cancel")
    assert ZH("desk.customer_back", alias="小王") in texts(shown)
    assert (await desk.item(case_no)).owner_id is None and await desk.flag(XIAOMING) is None
    await desk.seen_in_topic(case_no, has(ZH("desk.customer_ended", case=case_no)))
    shown = await c.say("你好")
    assert ZH("hint.idle", example="KM20261124000001") in texts(shown)  # the bot answers again

    await desk.agent2.send("/take", topic)
    await desk.agent2.send("/release", topic)
    assert (await desk.item(case_no)).owner_id is None and await desk.flag(XIAOMING) is None
    alias2 = DeskSettings(agents=(AGENT, AGENT2)).alias(AGENT2, "zh_CN")
    await eventually(c, customer_saw(ZH("desk.customer_released", alias=alias2)))
    await desk.seen_in_topic(case_no, has(ZH("desk.released", agent=f"{alias2} (Li)", case=case_no)))


async def test_two_agents_taking_at_once_leave_exactly_one_owner(desk: Desk, customer):
    c = await customer(XIAOMING)
    case_no = await on_the_desk(c)
    card = await desk.card(case_no)
    # One presses Take in the group, the other sends /take in a private chat: two chats, handled at once.
    pressed = await desk.control.post("press", user_id=AGENT, message_id=card, button_text=ZH("dk.btn.take"),
                                      chat_id=DESK)
    typed = await desk.control.post("send_text", user_id=AGENT2, text=f"/take {case_no}")
    await asyncio.gather(desk.control.wait(pressed["update_id"]), desk.control.wait(typed["update_id"]))
    owner = (await desk.item(case_no)).owner_id
    assert owner in (AGENT, AGENT2)
    toast = next(a for a in await desk.control.get("callback_answers")
                 if a["callback_query_id"] == pressed["callback_query_id"])["answer"]["text"]
    private = texts(await desk.control.messages(AGENT2))
    alias2 = DeskSettings(agents=(AGENT, AGENT2)).alias(AGENT2, "zh_CN")
    if owner == AGENT:
        assert toast == ZH("desk.you_took", case=case_no)
        assert ZH("desk.taken_by", case=case_no, owner="小王") in private
    else:
        assert toast == ZH("desk.taken_by", case=case_no, owner=alias2)
        assert ZH("desk.you_took", case=case_no) in private
    await eventually(c, customer_saw("已加入对话"))
    joined = [m for m in await c.control.messages(XIAOMING) if "已加入对话" in (m.get("text") or "")]
    assert len(joined) == 1  # the customer is told once
    assert sorted(x for _, x, _, _ in await desk.audit() if x.startswith("take")) == ["take", "take_lost"]


async def test_a_partial_approval_refunds_that_amount_and_the_customer_is_told_so(desk: Desk, customer):
    c = await customer(XIAOMING)
    case_no = await on_the_desk(c)
    topic = await desk.topic(case_no)
    await desk.agent.send("/take", topic)
    await desk.agent.send("/approve 30", topic)
    assert (await stored(desk.bot, case_no)).status is CaseStatus.REFUNDING
    async with desk.bot.running.database.uow() as uow:
        [attempt] = await uow.refunds.for_case(case_no)
    assert attempt.amount == Decimal(30)
    news = await eventually(c, lambda m: "💸" in texts(m))
    assert "¥30.00" in next(x for x in texts(news).splitlines() if "💸" in x)
    await eventually(c, customer_saw(ZH("desk.customer_closed", alias="小王")))
    await desk.seen_in_topic(case_no, has(ZH("desk.approved", agent="小王 (Wang)", amount="¥30.00", case=case_no)))
    item = await desk.item(case_no)
    assert item.closed_at is not None and item.owner_id is None and await desk.flag(XIAOMING) is None
    assert (AGENT, "approve", case_no, True) in await desk.audit()


async def test_above_the_line_a_second_person_a_supervisor_confirms(desk_factory, customer):
    desk = await desk_factory(confirm_above=Decimal(20))
    c = await customer(XIAOMING)
    case_no = await on_the_desk(c)
    card = await desk.card(case_no)
    topic = await desk.topic(case_no)
    toast = await desk.agent.press(card, label=ZH("dk.btn.approve"))
    assert toast == ZH("desk.approval_waiting", amount="¥100.00")
    await desk.seen_in_topic(case_no, has(ZH("desk.approval_requested", agent="小王 (Wang)", amount="¥100.00",
                                             case=case_no, threshold="¥20.00")))
    assert (await stored(desk.bot, case_no)).status is CaseStatus.IN_REVIEW

    async def card_offers_confirm() -> bool:
        [message] = [m for m in await desk.control.get("chat", chat_id=DESK, message_thread_id=topic)
                     if m["message_id"] == card]
        return ZH("dk.btn.confirm") in buttons([message])
    await until(card_offers_confirm)
    assert await desk.agent2.press(card, label=ZH("dk.btn.confirm")) == ZH("desk.refused_not_supervisor")
    await desk.supervisor.send("/approve", topic)  # a supervisor's own approval needs another one
    assert await desk.supervisor.press(card, label=ZH("dk.btn.confirm")) == ZH("desk.refused_same_person")
    assert (await stored(desk.bot, case_no)).status is CaseStatus.IN_REVIEW
    assert await desk.supervisor2.press(card, label=ZH("dk.btn.confirm")) == ZH("desk.done", case=case_no)
    assert (await stored(desk.bot, case_no)).status is CaseStatus.REFUNDING
    await eventually(c, customer_saw(ZH("news.approved", case_no=case_no)))
    async with desk.bot.running.database.uow() as uow:
        [attempt] = await uow.refunds.for_case(case_no)
    assert attempt.amount == Decimal(100)
    refused = [(a, x) for a, x, _, ok in await desk.audit() if not ok]
    assert refused == [(AGENT2, "confirm"), (SUPER, "confirm")]


async def test_a_canned_rejection_reaches_the_customer_with_the_appeal_button(desk: Desk, customer):
    c = await customer(XIAOMING)
    case_no = await on_the_desk(c)
    card = await desk.card(case_no)
    assert await desk.agent.press(card, label=ZH("dk.btn.reject")) == ZH("desk.reject_how")
    canned = next(x for x in DeskSettings().canned if x.key == "no_proof")
    picker = await desk.seen_in_topic(case_no, has(ZH("desk.pick_reason", case=case_no)))
    [reasons] = [m for m in picker if ZH("desk.pick_reason", case=case_no) in (m.get("text") or "")]
    label = next(b for b in buttons([reasons]) if b.startswith(canned.zh_CN[:10]))
    assert await desk.agent.press(reasons["message_id"], label=label) == ZH("desk.done", case=case_no)
    news = await eventually(c, customer_saw(canned.zh_CN))
    assert ZH("btn_appeal") in buttons(news)
    assert (await stored(desk.bot, case_no)).status is CaseStatus.REJECTED
    await desk.seen_in_topic(case_no, has(ZH("desk.rejected", agent="小王 (Wang)", case=case_no,
                                             reason=canned.zh_CN)))


async def test_ask_for_more_goes_through_the_bots_flow_and_the_case_returns_to_the_queue(desk: Desk, customer):
    c = await customer(XIAOMING)
    case_no = await on_the_desk(c)
    topic = await desk.topic(case_no)
    await desk.agent.send("/take", topic)
    await desk.agent.send("/ask 请提供游戏内的报错截图", topic)
    await eventually(c, lambda m: has("请提供游戏内的报错截图")(m) and ZH("btn_add_info") in buttons(m))
    assert (await stored(desk.bot, case_no)).status is CaseStatus.NEEDS_INFO
    assert await desk.flag(XIAOMING) is None  # the bot collects the material, not the agent
    await c.press(ZH("btn_add_info"))
    await c.photo(png_bytes("purple"))
    await c.press(ZH("btn_info_done"))
    assert (await stored(desk.bot, case_no)).status is CaseStatus.IN_REVIEW
    item = await desk.item(case_no)
    assert item.closed_at is None and item.owner_id is None  # back in the queue, for anyone
    [listing] = await desk.agent2.private("/queue")
    assert case_no in listing["text"] and ZH("desk.unowned") in listing["text"]


async def test_an_idle_owner_is_reminded_then_the_case_returns_to_the_queue(desk: Desk, customer):
    c = await customer(XIAOMING)
    case_no = await on_the_desk(c)
    topic = await desk.topic(case_no)
    await desk.agent.send("/take", topic)
    sweeper = desk.bot.running.desk_sweeper  # the bot's own (it runs every 30 s on the real clock)
    assert isinstance(sweeper, DeskSweeper)

    async def quiet_for(minutes: int) -> None:  # the owner's last word, moved into the past
        async with desk.bot.running.database.uow() as uow:
            await uow.desk.touch(case_no, at=datetime.now(UTC) - timedelta(minutes=minutes))
            await uow.commit()

    assert await sweeper.run_once() == 0
    await quiet_for(11)
    assert await sweeper.run_once() == 1
    assert await sweeper.run_once() == 0  # reminded once
    await desk.seen_in_topic(case_no, has(ZH("desk.idle_reminder", agent="小王", case=case_no, minutes="11",
                                             release="20")))
    await quiet_for(21)
    assert await sweeper.run_once() == 1
    assert (sweeper.reminded, sweeper.released) == (1, 1)
    await desk.seen_in_topic(case_no, has(ZH("desk.idle_released", agent="小王", case=case_no, minutes="20")))
    await eventually(c, customer_saw(ZH("desk.customer_released", alias="小王")))
    item = await desk.item(case_no)
    assert item.owner_id is None and item.closed_at is None and await desk.flag(XIAOMING) is None
    shown = await c.say("你好")
    assert ZH("hint.idle", example="KM20261124000001") in texts(shown)


async def test_an_edited_customer_message_updates_its_copy(desk: Desk, customer):
    c = await customer(XIAOMING)
    case_no = await on_the_desk(c)
    topic = await desk.topic(case_no)
    await desk.agent.send("/take", topic)
    said = await c.control.post("send_text", user_id=XIAOMING, text="卡密是 ABCD-1234")
    await c.control.wait(said["update_id"])
    await desk.seen_in_topic(case_no, has("ABCD-1234"))
    edited = await c.control.post("edit_text", user_id=XIAOMING, message_id=said["message_id"],
                                  text="卡密是 ABCD-12345")
    await c.control.wait(edited["update_id"])
    messages = await desk.seen_in_topic(case_no, has("ABCD-12345"))
    [copy] = [m for m in messages if "ABCD-1234" in (m.get("text") or "")]
    assert copy["edits"] == 1  # the same message, edited

    # And the other way: the owner corrects what the customer got.
    answer = await desk.agent.send("请稍等，预计10分钟", topic)
    await eventually(c, has("预计10分钟"))
    fixed = await desk.control.post("edit_text", user_id=AGENT, message_id=answer["message_id"],
                                    text="请稍等，预计5分钟", chat_id=DESK)
    await desk.control.wait(fixed["update_id"])
    got = await eventually(c, has("预计5分钟"))
    [theirs] = [m for m in got if (m.get("text") or "").startswith("请稍等")]  # the agent's words, not the bot's
    assert theirs["edits"] == 1


async def test_agent_without_a_case_puts_a_request_on_the_desk_that_an_agent_takes_and_closes(desk: Desk, customer):
    c = await customer(XIAOMING)
    shown = await c.say("/agent")
    assert ZH("agent_recorded") in texts(shown)
    key = f"chat:{XIAOMING}"
    [listing] = await desk.agent.private("/queue")
    assert listing["text"].startswith(ZH("desk.queue_header", count="1")) and key in listing["text"]
    toast = await desk.agent.press(listing["message_id"], desk_token(key, "take"), chat=AGENT)
    assert toast == ZH("desk.you_took", case=key)
    await desk.seen_in_topic(key, has(ZH("desk.took", agent="小王 (Wang)")))
    hello = await c.say("我想问一下会员怎么开通")
    joined = ZH("desk.customer_joined", alias="小王")
    assert [m["text"] for m in hello if m["text"] != joined] == []  # to the agent, not the bot
    await desk.seen_in_topic(key, has("会员怎么开通"))
    topic = await desk.topic(key)
    await desk.agent.send("/close", topic)
    await eventually(c, customer_saw(ZH("desk.customer_closed", alias="小王")))
    assert (await desk.item(key)).closed_at is not None


async def test_a_typed_rejection_reaches_the_customer_in_the_agents_words(desk: Desk, customer):
    c = await customer(XIAOMING)
    case_no = await on_the_desk(c)
    topic = await desk.topic(case_no)
    await desk.agent2.send("/reject 截图中的订单号与本单不符", topic)
    news = await eventually(c, has("截图中的订单号与本单不符"))
    assert ZH("btn_appeal") in buttons(news)
    assert (await stored(desk.bot, case_no)).status is CaseStatus.REJECTED
    assert (await desk.item(case_no)).closed_at is not None
