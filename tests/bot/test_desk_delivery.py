"""The agents' desk, delivery side: escalated cases become forum topics with a card and the evidence,
the card follows the case, a deleted topic comes back, messages are copied both ways (bursts batched
within the group's limit), edits follow, and the desk's texts are rendered. Against the emulator over
HTTP (through aiogram's and python-telegram-bot's senders: the same topic traffic from both) and a real
database (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bot.config import RelayConfig
from bot.sending import Sender
from bot.workers.relay import Relay
from dialogs.cases import CaseWorkflow
from dialogs.domain import DeskItem, EvidenceItem, MessageLink, OutboxMessage, Verdict
from dialogs.settings import AutoApproveSettings, CoreSettings, DeskSettings
from dialogs.workdays import WorkingCalendar
from sandbox import Emulator, EmulatorClient
from storage.uow import Database
from tests.sandbox.conftest import png_bytes
from tests.storage.factories import make_case, make_order

DESK = -1001000000777
ADMIN, AGENT = 7000, 7001
CUSTOMER = 424242
CASE = "R20261124-0001"
SETTINGS = CoreSettings(desk=DeskSettings(chat_id=DESK, agents=(AGENT,), supervisors=(ADMIN,)))
FAST = RelayConfig(per_chat_per_second=20, global_per_second=500, idle_poll_seconds=0.05, batch_size=100)


@pytest.fixture
async def tg(emu: Emulator) -> AsyncIterator[EmulatorClient]:
    async with emu.client() as client:
        await client.create_user(CUSTOMER, "张三", language_code="zh-hans")
        await client.create_user(ADMIN, "Boss")
        await client.create_user(AGENT, "Zhou")
        await client.create_group("客服台", chat_id=DESK, creator_id=ADMIN,
                                  members=[{"user_id": AGENT, "status": "member"}])
        yield client


def relay(database: Database, sender: Sender, config: RelayConfig = FAST,
          settings: CoreSettings = SETTINGS) -> Relay:
    return Relay(database.uow, sender, config, settings)


def workflow(settings: CoreSettings = SETTINGS) -> CaseWorkflow:
    return CaseWorkflow(settings, WorkingCalendar())


async def customer_photos(emu: Emulator, tg: EmulatorClient, count: int, tmp_path: Path) -> tuple[EvidenceItem, ...]:
    """Screenshots the customer sent the bot, as the intake stored them (file ids and files on disk)."""
    items = []
    for n in range(count):
        data = png_bytes(color=("red", "green", "blue")[n % 3])
        sent = await tg.send_photo(CUSTOMER, data)
        message = emu.state.get_message(CUSTOMER, sent["message_id"])
        assert message is not None and message.file_id is not None
        path = tmp_path / f"evidence-{n}.png"
        path.write_bytes(data)
        items.append(EvidenceItem(file_unique_id=f"u{n}", file_id=message.file_id, path=str(path), sha256="0" * 64,
                                  mime_type="image/png", width=200, height=100, size=len(data)))
    return tuple(items)


async def file_case(database: Database, evidence: tuple[EvidenceItem, ...] = (), settings: CoreSettings = SETTINGS,
                    **changes: Any) -> None:
    case = make_case(CASE, "A1", chat_id=CUSTOMER, user_id=CUSTOMER, locale="zh_CN", amount=Decimal("50.00"),
                     rule_id="CARD_DEFECT_IN_WINDOW", evidence=evidence, **changes)
    async with database.uow() as uow:
        await uow.orders.upsert(make_order("A1", buyer_telegram_id=CUSTOMER, amount=Decimal("50.00")))
        await uow.cases.add(case)
        for item in evidence:  # as the conversation stores a draft's files and binds them to the case
            await uow.evidence.add_draft("draft-1", CUSTOMER, item)
        await uow.evidence.attach("draft-1", CASE)
        await workflow(settings).filed(uow, case, await uow.orders.get("A1"))
        await uow.commit()


async def move(database: Database, *triggers: str) -> None:
    async with database.uow() as uow:
        for trigger in triggers:
            await workflow().move(uow, CASE, trigger, actor=f"agent:{AGENT}", at=datetime.now(UTC))
        await uow.commit()


async def desk_item(database: Database, key: str = CASE) -> DeskItem:
    async with database.uow() as uow:
        item = await uow.desk.get(key)
    assert item is not None
    return item


async def queue(database: Database, kind: str, chat_id: int, dedupe: str, **payload: Any) -> None:
    async with database.uow() as uow:
        await uow.outbox.add(OutboxMessage(kind=kind, chat_id=chat_id, dedupe_key=dedupe, payload=payload,
                                           created_at=datetime.now(UTC)))
        await uow.commit()


async def queue_copy(database: Database, direction: str, from_chat: int, message_id: int, to_chat: int,
                     key: str = CASE, **extra: Any) -> None:
    """What the desk's action side writes for a copy: the link (copy not yet known) and the outbox row."""
    async with database.uow() as uow:
        await uow.desk.add_link(MessageLink(key=key, direction=direction, source_chat_id=from_chat,
                                            source_message_id=message_id, copy_chat_id=to_chat))
        await uow.outbox.add(OutboxMessage(
            kind="desk_copy", chat_id=to_chat, dedupe_key=f"copy:{direction}:{from_chat}:{message_id}",
            payload={"key": key, "direction": direction, "from_chat_id": from_chat, "message_id": message_id,
                     **extra}, created_at=datetime.now(UTC)))
        await uow.commit()


async def copy_of(database: Database, direction: str, from_chat: int, message_id: int) -> int | None:
    async with database.uow() as uow:
        link = await uow.desk.find_link(from_chat, message_id, direction)
    assert link is not None
    return link.copy_message_id


async def backlog(database: Database) -> int:
    async with database.uow() as uow:
        return await uow.outbox.backlog()


def shown(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A topic's messages as people see them: not deleted, not the service message opening it."""
    return [m for m in messages if not m["deleted"] and m["kind"] != "service"]


def calls(emu: Emulator, method: str, chat_id: int = DESK) -> list[Any]:
    return [c for c in emu.state.calls if c.method == method and int(c.params.get("chat_id", 0)) == chat_id]


def tokens(message: dict[str, Any]) -> list[str]:
    markup = message.get("reply_markup") or {}
    return [b["callback_data"] for row in markup.get("inline_keyboard", []) for b in row]


# -- escalation and the card --------------------------------------------------------------------------

async def test_an_escalated_case_gets_a_topic_with_its_card_then_its_evidence_as_an_album(
        database: Database, sender: Sender, emu: Emulator, tg: EmulatorClient, tmp_path: Path) -> None:
    evidence = await customer_photos(emu, tg, 3, tmp_path)
    await file_case(database, evidence)
    r = relay(database, sender)
    await r.drain()
    [topic] = await tg.topics(DESK)
    assert topic["name"] == "¥50 卡密无效 · R…0001"
    card, *album = shown(await tg.topic_messages(DESK, topic["message_thread_id"]))
    for expected in (f"📋 {CASE} · 已提交", "订单：A1", "客户：张三（ID 424242 · 中文）", "原因：卡密无效",
                     "（规则 CARD_DEFECT_IN_WINDOW）", "证据：3 个文件", "审核截止：", "处理人：待认领", "历程："):
        assert expected in card["text"], expected
    assert tokens(card) == [f"dk.{CASE}.take", f"dk.{CASE}.approve", f"dk.{CASE}.reject", f"dk.{CASE}.ask",
                            f"dk.{CASE}.note"]
    assert [m["kind"] for m in album] == ["photo"] * 3 and len({m["media_group_id"] for m in album}) == 1
    assert [m["file_unique_id"] for m in album] == [
        emu.state.files[e.file_id].file_unique_id for e in evidence]
    assert album[0]["caption"] == f"📎 {CASE} 的证据（共 3 个）"
    item = await desk_item(database)
    assert (item.thread_id, item.card_message_id) == (topic["message_thread_id"], card["message_id"])
    assert item.closed_at is None and await backlog(database) == 0


async def test_the_card_is_edited_in_place_as_the_case_moves_and_waiting_redraws_are_skipped(
        database: Database, sender: Sender, emu: Emulator, tg: EmulatorClient) -> None:
    await file_case(database)
    r = relay(database, sender)
    await r.drain()
    card_id = (await desk_item(database)).card_message_id
    await move(database, "start_review", "ask_info", "provide_info")  # three card rows for the desk
    await r.drain()
    [card] = shown(await tg.topic_messages(DESK, (await desk_item(database)).thread_id or 0))
    assert card["message_id"] == card_id and card["edits"] == 1 and "审核中" in card["text"]
    assert card["text"].count("\n· ") == 4  # filed, in review, needs info, in review again
    assert len(calls(emu, "editMessageText")) == 1  # the two earlier rows were drawn by the last one
    assert await backlog(database) == 0


async def test_the_card_names_the_owner_and_shows_an_approval_waiting_for_a_supervisor(
        database: Database, sender: Sender, tg: EmulatorClient) -> None:
    await file_case(database)
    r = relay(database, sender)
    await r.drain()
    async with database.uow() as uow:  # what the desk's action side does on Take and on a big approval
        assert await uow.desk.take(CASE, AGENT, at=datetime.now(UTC)) == AGENT
        await uow.desk.request_approval(CASE, amount=Decimal("50.00"), agent_id=AGENT, at=datetime.now(UTC))
        await uow.outbox.add(OutboxMessage(kind="desk_card", chat_id=DESK, dedupe_key="taken",
                                           payload={"key": CASE}, created_at=datetime.now(UTC)))
        await uow.commit()
    await r.drain()
    [card] = shown(await tg.topic_messages(DESK, (await desk_item(database)).thread_id or 0))
    assert f"处理人：客服1号（Zhou · {AGENT}）" in card["text"]  # the alias customers see, and who it is
    assert "⏳ 待主管确认：客服1号 申请退款 ¥50.00" in card["text"]
    assert tokens(card)[:2] == [f"dk.{CASE}.confirm", f"dk.{CASE}.release"]


async def test_a_settled_case_comes_off_the_desk_and_its_card_shows_the_outcome(
        database: Database, sender: Sender, tg: EmulatorClient) -> None:
    await file_case(database)
    r = relay(database, sender)
    await r.drain()
    await move(database, "start_review")
    async with database.uow() as uow:
        await workflow().approve(uow, CASE, actor=f"agent:{AGENT}", at=datetime.now(UTC))
        await uow.commit()
    await r.drain()
    item = await desk_item(database)
    assert item.closed_at is not None
    [card] = shown(await tg.topic_messages(DESK, item.thread_id or 0))
    assert "✅ 已移出工作台" in card["text"] and "退款处理中" in card["text"] and tokens(card) == []


async def test_an_appeal_puts_a_rejected_case_back_on_the_desk_in_its_topic(
        database: Database, sender: Sender, tg: EmulatorClient) -> None:
    await file_case(database)
    r = relay(database, sender)
    await r.drain()
    await move(database, "start_review", "reject")
    assert (await desk_item(database)).closed_at is not None
    await move(database, "appeal")
    await r.drain()
    item = await desk_item(database)
    assert item.closed_at is None and len(await tg.topics(DESK)) == 1
    [card] = shown(await tg.topic_messages(DESK, item.thread_id or 0))
    assert f"📋 {CASE} · 申诉中" in card["text"] and f"dk.{CASE}.approve" in tokens(card)


async def test_no_desk_or_an_auto_approved_case_queues_nothing_for_agents(
        database: Database, sender: Sender, tg: EmulatorClient) -> None:
    await file_case(database, settings=CoreSettings())  # no desk configured
    auto = SETTINGS.model_copy(update={"auto_approve": AutoApproveSettings(enabled=True)})
    async with database.uow() as uow:
        case = make_case("R20261124-0002", "A2", chat_id=CUSTOMER, user_id=CUSTOMER, verdict=Verdict.ELIGIBLE)
        await uow.orders.upsert(make_order("A2", buyer_telegram_id=CUSTOMER, tags=frozenset()))
        await uow.cases.add(case)
        await workflow(auto).filed(uow, case, await uow.orders.get("A2"))
        await uow.commit()
        assert await uow.desk.get(CASE) is None and await uow.desk.get("R20261124-0002") is None
    await relay(database, sender).drain()
    assert await tg.topics(DESK) == []


async def test_a_request_without_a_case_gets_a_topic_named_for_the_customer(
        database: Database, sender: Sender, tg: EmulatorClient) -> None:
    key = f"chat:{CUSTOMER}"
    async with database.uow() as uow:
        await uow.desk.open(DeskItem(key=key, chat_id=CUSTOMER, user_id=CUSTOMER, opened_at=datetime.now(UTC)))
        await uow.commit()
    await queue(database, "desk_card", DESK, "req-card", key=key)
    await relay(database, sender).drain()
    [topic] = await tg.topics(DESK)
    assert topic["name"] == "客服请求 · 张三"
    [card] = shown(await tg.topic_messages(DESK, topic["message_thread_id"]))
    assert card["text"].startswith("🙋 客服请求 · 张三") and tokens(card) == [f"dk.{key}.take", f"dk.{key}.note"]


# -- a deleted topic ----------------------------------------------------------------------------------

async def test_a_deleted_topic_is_made_again_on_the_next_event_and_the_customer_notices_nothing(
        database: Database, sender: Sender, emu: Emulator, tg: EmulatorClient, tmp_path: Path) -> None:
    evidence = await customer_photos(emu, tg, 2, tmp_path)
    await file_case(database, evidence)
    r = relay(database, sender)
    await r.drain()
    old = await desk_item(database)
    customer_before = len(await tg.bot_messages(CUSTOMER))
    await tg.delete_topic(DESK, ADMIN, old.thread_id or 0)
    await move(database, "start_review")
    await r.drain()
    new = await desk_item(database)
    [topic] = await tg.topics(DESK)
    assert new.thread_id == topic["message_thread_id"] != old.thread_id
    card, *album = shown(await tg.topic_messages(DESK, topic["message_thread_id"]))
    assert card["message_id"] == new.card_message_id and "审核中" in card["text"]
    assert [m["kind"] for m in album] == ["photo", "photo"]  # the evidence again, in the new topic
    # The customer got their own card edit and nothing else.
    assert len(await tg.bot_messages(CUSTOMER)) == customer_before and await backlog(database) == 0
    assert r.stats.errors["topic_gone"] == 1


async def test_a_copy_into_a_deleted_topic_brings_a_new_topic_and_card_first(
        database: Database, sender: Sender, tg: EmulatorClient) -> None:
    await file_case(database)
    r = relay(database, sender)
    await r.drain()
    await tg.delete_topic(DESK, ADMIN, (await desk_item(database)).thread_id or 0)
    sent = await tg.send_text(CUSTOMER, "还在吗？")
    await queue_copy(database, "to_desk", CUSTOMER, sent["message_id"], DESK)
    await r.drain()
    item = await desk_item(database)
    card, copy = shown(await tg.topic_messages(DESK, item.thread_id or 0))
    assert card["message_id"] == item.card_message_id and copy["text"] == "还在吗？"
    assert await copy_of(database, "to_desk", CUSTOMER, sent["message_id"]) == copy["message_id"]


# -- copies both ways -------------------------------------------------------------------------------------

async def test_a_customers_text_photo_and_document_are_copied_into_the_topic_and_linked(
        database: Database, sender: Sender, tg: EmulatorClient) -> None:
    await file_case(database)
    r = relay(database, sender)
    await r.drain()
    thread = (await desk_item(database)).thread_id or 0
    sources = [(await tg.send_text(CUSTOMER, "卡密还是无效"))["message_id"],
               (await tg.send_photo(CUSTOMER, png_bytes(), caption="截图"))["message_id"],
               (await tg.send_document(CUSTOMER, b"%PDF-1.4 ...", filename="记录.pdf",
                                       mime_type="application/pdf"))["message_id"]]
    for source in sources:  # one at a time: each its own copyMessage
        await queue_copy(database, "to_desk", CUSTOMER, source, DESK)
        await r.drain()
    copies = shown(await tg.topic_messages(DESK, thread))[1:]
    assert [(m["kind"], m["text"] or m["caption"]) for m in copies] == [
        ("text", "卡密还是无效"), ("photo", "截图"), ("document", None)]
    assert copies[2]["file_name"] == "记录.pdf"
    assert [await copy_of(database, "to_desk", CUSTOMER, s) for s in sources] == [m["message_id"] for m in copies]


async def test_an_agents_text_photo_and_document_in_the_topic_reach_the_customer_and_are_linked(
        database: Database, sender: Sender, tg: EmulatorClient) -> None:
    await file_case(database)
    r = relay(database, sender)
    await r.drain()
    thread = (await desk_item(database)).thread_id
    sources = [(await tg.send_text(AGENT, "您好，我是客服", chat_id=DESK, message_thread_id=thread))["message_id"],
               (await tg.send_photo(AGENT, png_bytes(), caption="请看", chat_id=DESK,
                                    message_thread_id=thread))["message_id"],
               (await tg.send_document(AGENT, b"hello", filename="说明.txt", mime_type="text/plain", chat_id=DESK,
                                       message_thread_id=thread))["message_id"]]
    before = len(await tg.bot_messages(CUSTOMER))
    for source in sources:
        await queue_copy(database, "to_customer", DESK, source, CUSTOMER)
    await r.drain()
    got = (await tg.bot_messages(CUSTOMER))[before:]
    assert [(m["kind"], m["text"] or m["caption"]) for m in got] == [
        ("text", "您好，我是客服"), ("photo", "请看"), ("document", None)]
    assert [await copy_of(database, "to_customer", DESK, s) for s in sources] == [m["message_id"] for m in got]


async def test_a_burst_of_30_customer_messages_goes_as_one_copy_call_within_the_group_limit(
        database: Database, sender: Sender, emu: Emulator, tg: EmulatorClient) -> None:
    await file_case(database)
    # Telegram's group limit, scaled down so that a burst sent one by one would be held for a minute:
    # the emulator answers 429 past 4 messages a minute and the relay keeps to 4.
    await tg.set_limits(per_group_per_min=4, reset_counters=True)
    r = relay(database, sender, FAST.model_copy(update={"per_group_per_minute": 4}))
    await r.drain()  # the topic and its card
    sources = [(await (tg.send_photo(CUSTOMER, png_bytes(), caption="图") if n == 8  # photos go along
                       else tg.send_text(CUSTOMER, f"第{n}条")))["message_id"] for n in range(1, 31)]
    for source in sources:
        await queue_copy(database, "to_desk", CUSTOMER, source, DESK)
    await r.drain()
    copies = shown(await tg.topic_messages(DESK, (await desk_item(database)).thread_id or 0))[1:]
    assert len(copies) == 30 and copies[7]["kind"] == "photo" and copies[8]["text"] == "第9条"
    assert [await copy_of(database, "to_desk", CUSTOMER, s) for s in sources] == [m["message_id"] for m in copies]
    assert len(calls(emu, "copyMessages")) == 1 and (await tg.limits())["throttled"] == 0
    assert await backlog(database) == 0


async def test_a_burst_of_known_texts_is_quoted_in_one_message_and_an_edit_redraws_it(
        database: Database, sender: Sender, emu: Emulator, tg: EmulatorClient) -> None:
    await file_case(database)
    await tg.set_limits(per_group_per_min=4, reset_counters=True)
    r = relay(database, sender, FAST.model_copy(update={"per_group_per_minute": 4}))
    await r.drain()
    texts = [f"消息{n}" for n in range(1, 31)]
    sources = [(await tg.send_text(CUSTOMER, text))["message_id"] for text in texts]
    for source, text in zip(sources, texts, strict=True):
        await queue_copy(database, "to_desk", CUSTOMER, source, DESK, text=text)
    await r.drain()
    [quoted] = shown(await tg.topic_messages(DESK, (await desk_item(database)).thread_id or 0))[1:]
    assert quoted["text"].splitlines() == ["💬 客户连续发来 30 条消息："] + [f"▪ {t}" for t in texts]
    assert {await copy_of(database, "to_desk", CUSTOMER, s) for s in sources} == {quoted["message_id"]}
    await queue(database, "desk_edit", DESK, "edit-5", key=CASE, direction="to_desk", from_chat_id=CUSTOMER,
                message_id=sources[4], text="消息5（改）")
    await r.drain()
    [quoted] = shown(await tg.topic_messages(DESK, (await desk_item(database)).thread_id or 0))[1:]
    assert quoted["text"].splitlines()[5] == "▪ 消息5（改）（已编辑）" and quoted["edits"] == 1
    assert (await tg.limits())["throttled"] == 0 and await backlog(database) == 0


# -- edits, albums of other files, texts ----------------------------------------------------------------------

async def test_an_edited_message_updates_its_copy_text_or_caption(
        database: Database, sender: Sender, tg: EmulatorClient) -> None:
    await file_case(database)
    r = relay(database, sender)
    await r.drain()
    text = (await tg.send_text(CUSTOMER, "订单号错了"))["message_id"]
    photo = (await tg.send_photo(CUSTOMER, png_bytes(), caption="旧说明"))["message_id"]
    for source in (text, photo):
        await queue_copy(database, "to_desk", CUSTOMER, source, DESK)
        await r.drain()
    for source, new in ((text, "订单号是 A1"), (photo, "新说明")):
        await queue(database, "desk_edit", DESK, f"edit-{source}", key=CASE, direction="to_desk",
                    from_chat_id=CUSTOMER, message_id=source, text=new)
    await r.drain()
    _, text_copy, photo_copy = shown(await tg.topic_messages(DESK, (await desk_item(database)).thread_id or 0))
    assert (text_copy["text"], text_copy["edits"]) == ("订单号是 A1", 1)
    assert (photo_copy["caption"], photo_copy["edits"]) == ("新说明", 1)
    assert await backlog(database) == 0


async def test_an_edit_of_a_message_never_copied_is_dropped(database: Database, sender: Sender, emu: Emulator) -> None:
    await queue(database, "desk_edit", DESK, "edit-x", key=CASE, direction="to_desk", from_chat_id=CUSTOMER,
                message_id=999, text="x")
    r = relay(database, sender)
    await r.drain()
    assert r.stats.skipped == 1 and not [c for c in emu.state.calls if c.method.startswith("edit")]
    assert await backlog(database) == 0


async def test_evidence_sent_as_documents_goes_as_a_document_album(
        database: Database, sender: Sender, emu: Emulator, tg: EmulatorClient) -> None:
    files = []
    for n in range(2):
        sent = await tg.send_document(CUSTOMER, png_bytes(), filename=f"s{n}.png", mime_type="image/png")
        message = emu.state.get_message(CUSTOMER, sent["message_id"])
        assert message is not None and message.file_id is not None
        files.append(EvidenceItem(file_unique_id=f"d{n}", file_id=message.file_id, path="", sha256="0" * 64,
                                  mime_type="image/png", width=200, height=100, size=1))
    await file_case(database, tuple(files))
    await relay(database, sender).drain()
    _, *album = shown(await tg.topic_messages(DESK, (await desk_item(database)).thread_id or 0))
    assert [m["kind"] for m in album] == ["document", "document"]
    assert [c.status for c in calls(emu, "sendMediaGroup")] == [400, 200]  # as photos, then as documents


async def test_evidence_whose_file_ids_do_not_work_is_uploaded_from_the_stored_files(
        database: Database, sender: Sender, tg: EmulatorClient, tmp_path: Path) -> None:
    path = tmp_path / "shot.png"
    path.write_bytes(png_bytes())
    stale = EvidenceItem(file_unique_id="x", file_id="another-bots-file-id", path=str(path), sha256="0" * 64,
                         mime_type="image/png", width=200, height=100, size=1)
    await file_case(database, (stale,))
    await relay(database, sender).drain()
    _, photo = shown(await tg.topic_messages(DESK, (await desk_item(database)).thread_id or 0))
    assert photo["kind"] == "photo" and photo["caption"] == f"📎 {CASE} 的证据（共 1 个）"


async def test_desk_texts_and_customer_texts_are_rendered_from_the_catalogs(
        database: Database, sender: Sender, tg: EmulatorClient) -> None:
    await file_case(database)
    await queue(database, "desk_text", DESK, "dt", key=CASE, text_key="dk.card.review_due",
                params={"due": "2026-11-27"})
    await queue(database, "customer_text", CUSTOMER, "ct", text_key="card.title", params={"case_no": CASE},
                locale="en")
    await relay(database, sender).drain()
    _, note = shown(await tg.topic_messages(DESK, (await desk_item(database)).thread_id or 0))
    assert note["text"] == "审核截止：2026-11-27"  # the desk's locale: [i18n] default_locale
    assert (await tg.bot_messages(CUSTOMER))[-1]["text"] == f"📋 Refund case {CASE}"
