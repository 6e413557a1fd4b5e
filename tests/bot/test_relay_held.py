"""A chat the bot cannot write to (403: the customer blocked the bot, the bot is out of the desk group) is
held, not dropped: its rows wait unsent, in order, and go out once the chat is reopened (dialogs.reach).
The relay against the emulator over HTTP (both senders) and a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from bot.sending import Sender
from bot.workers.relay import Relay
from dialogs.domain import OutboxMessage
from dialogs.outbox import CUSTOMER_TEXT, INFO_REMINDER
from dialogs.reach import chat_back
from dialogs.settings import CoreSettings, DeskSettings
from dialogs.sla import info_close_due
from dialogs.texts import Texts
from dialogs.words import moment
from sandbox import BOT_USER_ID, Emulator, EmulatorClient
from storage.uow import Database
from tests.bot.test_relay import FAST, backlog, bot_messages, calls, file_cases, move, relay

DESK = -1001000000888
SUPERS = (7100, 7101)
SETTINGS = CoreSettings()
DESK_SETTINGS = CoreSettings(desk=DeskSettings(chat_id=DESK, supervisors=SUPERS))
ZH = Texts("zh_CN")


@pytest.fixture
async def tg(emu: Emulator) -> AsyncIterator[EmulatorClient]:
    async with emu.client() as client:
        yield client


async def reopen(database: Database, chat_id: int, settings: CoreSettings = SETTINGS) -> bool:
    async with database.uow() as uow:
        back = await chat_back(uow, chat_id, datetime.now(UTC), settings)
        await uow.commit()
    return back


async def test_a_blocked_chat_is_recorded_and_its_rows_held_unsent(
        database: Database, sender: Sender, emu: Emulator, tg: EmulatorClient) -> None:
    [case_no, _] = await file_cases(database, tg, [551, 552])
    await move(database, case_no, "start_review", "ask_info")  # 3 more rows for chat 551
    await tg.block_bot(551)
    r = relay(database, sender)
    await r.drain()
    assert [c.status for c in calls(emu, 551)] == [403]  # one try, then nothing more
    assert len(bot_messages(emu, 552)) == 1 and await backlog(database) == 0  # held rows wait on the chat
    async with database.uow() as uow:
        assert await uow.chats.blocked([551, 552]) == {551}
    assert r.stats.held == 1 and r.stats.given_up == 0 and r.stats.blocked_chats == 1


async def test_a_held_chat_gets_no_call_for_rows_queued_later(
        database: Database, sender: Sender, emu: Emulator, tg: EmulatorClient) -> None:
    [case_no] = await file_cases(database, tg, [553])
    await tg.block_bot(553)
    await relay(database, sender).drain()
    await move(database, case_no, "start_review", "ask_info")
    await relay(database, sender).drain()
    assert [c.status for c in calls(emu, 553)] == [403]


async def test_a_reopened_chat_gets_what_was_held_in_order_with_one_card(
        database: Database, sender: Sender, emu: Emulator, tg: EmulatorClient) -> None:
    [case_no] = await file_cases(database, tg, [554])
    await move(database, case_no, "start_review", "ask_info")  # card, card, card + needs_info news
    await tg.block_bot(554)
    await relay(database, sender).drain()
    await tg.block_bot(554, blocked=False)
    assert await reopen(database, 554)
    r = relay(database, sender)
    await r.drain(until_empty=True)
    sent = [m["text"] for m in bot_messages(emu, 554)]
    # The card drawn as the case is now (the later card rows find it unchanged), then the news.
    assert len(sent) == 2 and ZH("status.needs_info") in sent[0] and case_no in sent[1]
    assert r.stats.sent == 4 and await backlog(database) == 0


async def test_a_reminder_held_while_blocked_names_the_close_date_of_the_restarted_clock(
        database: Database, sender: Sender, emu: Emulator, tg: EmulatorClient) -> None:
    [case_no] = await file_cases(database, tg, [556])
    await move(database, case_no, "start_review", "ask_info")
    async with database.uow() as uow:
        await uow.outbox.add(OutboxMessage(kind=INFO_REMINDER, chat_id=556, dedupe_key="reminder-test",
                                           payload={"case_no": case_no, "close": "2000-01-01 00:00"},
                                           created_at=datetime.now(UTC)))
        await uow.commit()
    await tg.block_bot(556)
    await relay(database, sender).drain()
    await tg.block_bot(556, blocked=False)
    assert await reopen(database, 556)
    await relay(database, sender).drain(until_empty=True)
    async with database.uow() as uow:
        closes = await info_close_due(uow, case_no)
    assert closes is not None and closes >= datetime.now(UTC) + timedelta(days=6)
    close = moment(ZH, closes, SETTINGS.i18n.timezone)  # as the customer reads it
    [reminder] = [m["text"] for m in bot_messages(emu, 556) if m["text"].startswith("⏰")]
    assert close in reminder and "2000-01-01" not in reminder


async def test_reopening_a_chat_that_was_not_held_changes_nothing(database: Database) -> None:
    assert not await reopen(database, 555)


# -- the agents' desk ---------------------------------------------------------------------------------------

async def desk_rows(database: Database, *texts: str) -> None:
    async with database.uow() as uow:
        for n, text in enumerate(texts):
            await uow.outbox.add(OutboxMessage(
                kind=CUSTOMER_TEXT, chat_id=DESK, dedupe_key=f"desk-test:{text}:{n}",
                payload={"text_key": "desk.note_approved", "params": {"amount": text}, "locale": "zh_CN"},
                created_at=datetime.now(UTC)))
        await uow.commit()


@pytest.fixture
async def desk(tg: EmulatorClient) -> EmulatorClient:
    for supervisor in SUPERS:
        await tg.create_user(supervisor, f"S{supervisor}")
    await tg.create_group("客服台", chat_id=DESK, creator_id=SUPERS[0])
    return tg


def desk_relay(database: Database, sender: Sender) -> Relay:
    return Relay(database.uow, sender, FAST, DESK_SETTINGS)


async def test_a_desk_without_the_bot_holds_its_rows_and_alerts_each_supervisor_once(
        database: Database, sender: Sender, emu: Emulator, desk: EmulatorClient) -> None:
    await desk.set_member(DESK, BOT_USER_ID, "kicked", quiet=True)
    await desk_rows(database, "1", "2")
    await desk_relay(database, sender).drain(until_empty=True)
    await desk_rows(database, "3")
    await desk_relay(database, sender).drain(until_empty=True)
    assert [c.status for c in calls(emu, DESK)] == [403]
    for supervisor in SUPERS:
        [alert] = [m["text"] for m in bot_messages(emu, supervisor)]
        assert alert.startswith("⚠️") and "kicked" in alert


async def test_the_bot_added_back_to_the_desk_delivers_what_was_held_and_tells_the_supervisors(
        database: Database, sender: Sender, emu: Emulator, desk: EmulatorClient) -> None:
    await desk.set_member(DESK, BOT_USER_ID, "left", quiet=True)
    await desk_rows(database, "1", "2")
    await desk_relay(database, sender).drain(until_empty=True)
    await desk.set_member(DESK, BOT_USER_ID, "administrator", quiet=True)
    assert await reopen(database, DESK, DESK_SETTINGS)
    await desk_relay(database, sender).drain(until_empty=True)
    assert [m["text"] for m in bot_messages(emu, DESK)] == [ZH("desk.note_approved", amount=n) for n in "12"]
    for supervisor in SUPERS:
        assert [m["text"] for m in bot_messages(emu, supervisor)][-1] == ZH("desk.reachable")
