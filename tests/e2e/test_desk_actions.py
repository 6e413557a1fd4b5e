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

from bot.config import AppConfig
from bot.desk_sweeper import DeskSweeper
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
    return make_config(tmp_path).model_copy(update={"desk": DeskSettings(**settings)})


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

    async def press(self, message_id: int, data: str, chat: int = DESK) -> str | None:
        """Press a desk button (by its callback data) on a bot message; returns the toast."""
        pressed = await self.control.post("press", user_id=self.user_id, message_id=message_id, data=data,
                                          chat_id=chat)
        await self.control.wait(pressed["update_id"])
        answers = [a for a in await self.control.get("callback_answers")
                   if a["callback_query_id"] == pressed["callback_query_id"]]
        return (answers[0].get("answer") or {}).get("text") if answers else None

    async def private(self, text: str) -> list[dict[str, Any]]:
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

    async def queue_message(self) -> int:
        """The id of a bot message in General carrying desk buttons (the /queue answer): buttons of
        any item can be pressed on it, as on the item's card."""
        await self.agent.send("/queue")
        listed = [m for m in await self.control.messages(DESK) if m.get("reply_markup")
                  and m.get("message_thread_id") is None]
        assert listed, texts(await self.control.messages(DESK))
        return int(listed[-1]["message_id"])

    async def item(self, key: str) -> DeskItem:
        async with self.bot.running.database.uow() as uow:
            item = await uow.desk.get(key)
        assert item is not None, key
        return item

    async def topic(self, key: str) -> int:
        """The item's forum topic. Opened here by a person, as the delivery side will open it."""
        item = await self.item(key)
        if item.thread_id is not None:
            return item.thread_id
        made = await self.control.post("create_topic", chat_id=DESK, user_id=SUPER, name=key)
        async with self.bot.running.database.uow() as uow:
            await uow.desk.set_topic(key, thread_id=made["message_thread_id"], card_message_id=None)
            await uow.commit()
        return int(made["message_thread_id"])

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


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "not within the time"
        await asyncio.sleep(0.05)


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
    """A customer files a case and asks for a person: the case is an item on the desk."""
    case_no = await file_case(c, ZH, order_no=order_no)
    shown = await c.say("/agent")
    assert ZH("agent_recorded") in texts(shown)
    return case_no


async def test_a_strangers_presses_and_commands_are_refused_recorded_and_change_nothing(desk: Desk, customer):
    c = await customer(XIAOMING)
    case_no = await on_the_desk(c)
    queue = await desk.queue_message()
    topic = await desk.topic(case_no)
    assert await desk.stranger.press(queue, desk_token(case_no, "take")) == ZH("desk.refused")
    assert await desk.stranger.press(queue, desk_token(case_no, "approve")) == ZH("desk.refused")
    await desk.stranger.send("/approve", topic)
    await desk.stranger.send("/queue")
    assert (await desk.item(case_no)).owner_id is None
    assert (await stored(desk.bot, case_no)).status is CaseStatus.SUBMITTED
    refused = [(a, x, k) for a, x, k, ok in await desk.audit() if not ok]
    assert refused == [(STRANGER, "take", case_no), (STRANGER, "approve", case_no), (STRANGER, "approve", case_no),
                       (STRANGER, "queue", None)]
    general = [m for m in await desk.control.messages(DESK) if m.get("message_thread_id") is None]
    assert ZH("desk.refused") in texts(general)  # /queue in General, answered there


async def test_take_over_then_both_ways_text_photo_and_document_are_relayed(desk: Desk, customer):
    c = await customer(XIAOMING)
    case_no = await on_the_desk(c)
    queue = await desk.queue_message()
    topic = await desk.topic(case_no)
    assert await desk.agent.press(queue, desk_token(case_no, "take")) == ZH("desk.you_took", case=case_no)
    item = await desk.item(case_no)
    assert item.owner_id == AGENT
    assert (await stored(desk.bot, case_no)).status is CaseStatus.IN_REVIEW
    [(_, chat, joined)] = await desk.outbox("customer_text")
    assert chat == XIAOMING and joined["params"] == {"alias": "小王"} and joined["locale"] == "zh_CN"

    # The customer: text, photo, document, a sticker: each copied into the topic, the bot silent.
    said = await c.control.post("send_text", user_id=XIAOMING, text="卡密输入后提示无效，错误码1002")
    await c.control.wait(said["update_id"])
    shot = await c.control.post_file("send_photo", png_bytes("red"), user_id=XIAOMING)
    await c.control.wait(shot["update_id"])
    doc = await c.control.post_file("send_document", png_bytes("blue"), user_id=XIAOMING, filename="record.png",
                                    mime_type="image/png")
    await c.control.wait(doc["update_id"])
    answered = [m["text"] for m in await c.control.messages(XIAOMING, after=said["message_id"])
                if not (m.get("text") or "").startswith("📋") and m.get("text") != ZH("desk.customer_joined", alias="小王")]
    assert answered == []  # the bot said nothing to any of it
    to_desk = [(p["message_id"], p.get("text")) for _, chat, p in await desk.outbox("desk_copy")
               if p["direction"] == "to_desk" and chat == DESK]
    assert to_desk == [(said["message_id"], "卡密输入后提示无效，错误码1002"), (shot["message_id"], None),
                       (doc["message_id"], None)]
    status = await c.say("/status")
    assert case_no in texts(status)  # /status still answers

    # The owner in the topic: text, photo, document copied to the customer; another agent's is not.
    hello = await desk.agent.send("您好，我是客服小王，正在核实", topic)
    photo = await desk.agent.upload("photo", png_bytes("green"), topic)
    document = await desk.agent.upload("document", png_bytes("yellow"), topic, filename="guide.png",
                                       mime_type="image/png")
    await desk.agent2.send("内部：这个卡密批次之前有问题", topic)
    await desk.agent.send("/note 客户很着急", topic)
    to_customer = [(chat, p["message_id"]) for _, chat, p in await desk.outbox("desk_copy")
                   if p["direction"] == "to_customer"]
    assert to_customer == [(XIAOMING, hello["message_id"]), (XIAOMING, photo["message_id"]),
                           (XIAOMING, document["message_id"])]
    async with desk.bot.running.database.uow() as uow:
        for sent in (hello, photo, document):
            link = await uow.desk.find_link(DESK, sent["message_id"], "to_customer")
            assert link is not None and link.key == case_no and link.copy_chat_id == XIAOMING
        assert await uow.desk.find_link(DESK, said["message_id"] + 10_000, "to_customer") is None


async def test_customer_cancel_and_agent_release_hand_the_chat_back_to_the_bot(desk: Desk, customer):
    c = await customer(XIAOMING)
    case_no = await on_the_desk(c)
    topic = await desk.topic(case_no)
    await desk.agent.send("/take", topic)
    assert await desk.flag(XIAOMING) == case_no
    shown = await c.say("/cancel")
    assert texts(shown) == ZH("desk.customer_back", alias="小王")
    assert (await desk.item(case_no)).owner_id is None and await desk.flag(XIAOMING) is None
    shown = await c.say("你好")
    assert ZH("hint.idle", example="KM20261124000001") in texts(shown)  # the bot answers again

    await desk.agent2.send("/take", topic)
    await desk.agent2.send("/release", topic)
    assert (await desk.item(case_no)).owner_id is None and await desk.flag(XIAOMING) is None
    keys = [p["text_key"] for _, _, p in await desk.outbox("customer_text")]
    assert keys == ["desk.customer_joined", "desk.customer_joined", "desk.customer_released"]
    assert [p["text_key"] for _, _, p in await desk.outbox("desk_text")].count("desk.customer_ended") == 1


async def test_two_agents_taking_at_once_leave_exactly_one_owner(desk: Desk, customer):
    c = await customer(XIAOMING)
    case_no = await on_the_desk(c)
    queue = await desk.queue_message()
    # One presses Take in the group, the other sends /take in a private chat: two chats, handled at once.
    pressed = await desk.control.post("press", user_id=AGENT, message_id=queue, data=desk_token(case_no, "take"),
                                      chat_id=DESK)
    typed = await desk.control.post("send_text", user_id=AGENT2, text=f"/take {case_no}")
    await asyncio.gather(desk.control.wait(pressed["update_id"]), desk.control.wait(typed["update_id"]))
    owner = (await desk.item(case_no)).owner_id
    assert owner in (AGENT, AGENT2)
    toast = next(a for a in await desk.control.get("callback_answers")
                 if a["callback_query_id"] == pressed["callback_query_id"])["answer"]["text"]
    private = texts(await desk.control.messages(AGENT2))
    if owner == AGENT:
        assert toast == ZH("desk.you_took", case=case_no)
        assert ZH("desk.taken_by", case=case_no, owner="小王") in private
    else:
        assert toast == ZH("desk.taken_by", case=case_no, owner=DeskSettings(agents=(AGENT, AGENT2)).alias(AGENT2, "zh_CN"))
        assert ZH("desk.you_took", case=case_no) in private
    assert len(await desk.outbox("customer_text")) == 1  # the customer is told once
    takes = [(a, x) for a, x, _, _ in await desk.audit() if x.startswith("take")]
    assert sorted(x for _, x in takes) == ["take", "take_lost"]


async def test_a_partial_approval_refunds_that_amount_and_the_customer_hears_of_it(desk: Desk, customer):
    c = await customer(XIAOMING)
    case_no = await on_the_desk(c)
    topic = await desk.topic(case_no)
    await desk.agent.send("/take", topic)
    await desk.agent.send("/approve 30", topic)
    case = await stored(desk.bot, case_no)
    assert case.status is CaseStatus.REFUNDING
    async with desk.bot.running.database.uow() as uow:
        [attempt] = await uow.refunds.for_case(case_no)
    assert attempt.amount == Decimal(30)
    await eventually(c, lambda m: ZH("news.approved", case_no=case_no) in texts(m))
    item = await desk.item(case_no)
    assert item.closed_at is not None and item.owner_id is None and await desk.flag(XIAOMING) is None
    assert (AGENT, "approve", case_no, True) in await desk.audit()


async def test_above_the_line_a_second_person_a_supervisor_confirms(desk_factory, customer):
    desk = await desk_factory(confirm_above=Decimal(20))
    c = await customer(XIAOMING)
    case_no = await on_the_desk(c)
    topic = await desk.topic(case_no)
    queue = await desk.queue_message()
    assert await desk.agent.press(queue, desk_token(case_no, "approve")) == ZH("desk.approval_waiting",
                                                                               amount="¥100.00")
    assert (await stored(desk.bot, case_no)).status is CaseStatus.IN_REVIEW
    assert await desk.agent.press(queue, desk_token(case_no, "confirm")) == ZH("desk.refused_not_supervisor")
    await desk.supervisor.send("/approve", topic)  # the supervisor's own approval replaces the agent's
    assert await desk.supervisor.press(queue, desk_token(case_no, "confirm")) == ZH("desk.refused_same_person")
    assert (await stored(desk.bot, case_no)).status is CaseStatus.IN_REVIEW
    assert await desk.supervisor2.press(queue, desk_token(case_no, "confirm")) == ZH("desk.done", case=case_no)
    assert (await stored(desk.bot, case_no)).status is CaseStatus.REFUNDING
    await eventually(c, lambda m: ZH("news.approved", case_no=case_no) in texts(m))
    async with desk.bot.running.database.uow() as uow:
        [attempt] = await uow.refunds.for_case(case_no)
    assert attempt.amount == Decimal(100)


async def test_a_canned_rejection_reaches_the_customer_with_the_appeal_button(desk: Desk, customer):
    c = await customer(XIAOMING)
    case_no = await on_the_desk(c)
    queue = await desk.queue_message()
    assert await desk.agent.press(queue, desk_token(case_no, "reject")) == ZH("desk.reject_how")
    assert await desk.agent.press(queue, desk_token(case_no, "rj.no_proof")) == ZH("desk.done", case=case_no)
    canned = next(x for x in DeskSettings().canned if x.key == "no_proof")
    news = await eventually(c, lambda m: canned.zh_CN in texts(m))
    assert ZH("btn_appeal") in buttons(news)
    assert (await stored(desk.bot, case_no)).status is CaseStatus.REJECTED


async def test_ask_for_more_goes_through_the_bots_flow_and_the_case_returns_to_the_queue(desk: Desk, customer):
    c = await customer(XIAOMING)
    case_no = await on_the_desk(c)
    topic = await desk.topic(case_no)
    await desk.agent.send("/take", topic)
    await desk.agent.send("/ask 请提供游戏内的报错截图", topic)
    news = await eventually(c, lambda m: "请提供游戏内的报错截图" in texts(m))
    assert (await stored(desk.bot, case_no)).status is CaseStatus.NEEDS_INFO
    assert await desk.flag(XIAOMING) is None  # the bot collects the material, not the agent
    await eventually(c, lambda m: ZH("btn_add_info") in buttons(m))
    await c.press(ZH("btn_add_info"))
    await c.photo(png_bytes("purple"))
    await c.press(ZH("btn_info_done"))
    assert (await stored(desk.bot, case_no)).status is CaseStatus.IN_REVIEW
    item = await desk.item(case_no)
    assert item.closed_at is None and item.owner_id is None  # back in the queue, for anyone
    assert news


async def test_an_idle_owner_is_reminded_then_the_case_returns_to_the_queue(desk: Desk, customer):
    c = await customer(XIAOMING)
    case_no = await on_the_desk(c)
    topic = await desk.topic(case_no)
    await desk.agent.send("/take", topic)
    sweeper = desk.bot.running.desk_sweeper  # the bot's own (it runs every 30 s on the real clock)
    assert isinstance(sweeper, DeskSweeper)
    now = datetime.now(UTC)
    assert await sweeper.run_once(now + timedelta(minutes=5)) == 0
    assert await sweeper.run_once(now + timedelta(minutes=11)) == 1
    assert await sweeper.run_once(now + timedelta(minutes=12)) == 0  # reminded once
    assert await sweeper.run_once(now + timedelta(minutes=21)) == 1
    assert (sweeper.reminded, sweeper.released) == (1, 1)
    item = await desk.item(case_no)
    assert item.owner_id is None and item.closed_at is None and await desk.flag(XIAOMING) is None
    desk_texts = [p["text_key"] for _, _, p in await desk.outbox("desk_text")]
    assert desk_texts[-2:] == ["desk.idle_reminder", "desk.idle_released"]
    shown = await c.say("你好")
    assert ZH("hint.idle", example="KM20261124000001") in texts(shown)


async def test_an_edited_customer_message_updates_its_copy(desk: Desk, customer):
    c = await customer(XIAOMING)
    case_no = await on_the_desk(c)
    topic = await desk.topic(case_no)
    await desk.agent.send("/take", topic)
    said = await c.control.post("send_text", user_id=XIAOMING, text="卡密是 ABCD-1234")
    await c.control.wait(said["update_id"])
    edited = await c.control.post("edit_text", user_id=XIAOMING, message_id=said["message_id"],
                                  text="卡密是 ABCD-12345")
    await c.control.wait(edited["update_id"])
    [(_, chat, edit)] = await desk.outbox("desk_edit")
    assert chat == DESK and edit["direction"] == "to_desk" and edit["message_id"] == said["message_id"]
    assert edit["text"] == "卡密是 ABCD-12345" and edit["key"] == case_no


async def test_an_agent_sees_the_queue_in_a_private_chat_and_takes_from_it(desk: Desk, customer):
    c = await customer(XIAOMING)
    case_no = await on_the_desk(c)
    [listing] = await desk.agent.private("/queue")
    assert listing["text"].startswith(ZH("desk.queue_header", count="1")) and case_no in listing["text"]
    toast = await desk.agent.press(listing["message_id"], desk_token(case_no, "take"), chat=AGENT)
    assert toast == ZH("desk.you_took", case=case_no)
    assert (await desk.item(case_no)).owner_id == AGENT
