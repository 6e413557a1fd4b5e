"""The notification relay against the real emulator over HTTP (through aiogram's and python-telegram-bot's
senders) and a real database (SQLite and PostgreSQL): cards edited in place, Telegram's limits and failures, crashes and restarts,
two relays on one database."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime
from typing import Any

import pytest
from aiogram import Bot

from bot.aiogram_adapter.sender import AiogramSender
from bot.config import RelayConfig
from bot.logs import JsonFormatter
from bot.sending import Sender
from bot.workers.relay import Relay
from dialogs.cases import CaseWorkflow
from dialogs.domain import OutboxMessage
from dialogs.settings import CoreSettings
from dialogs.workdays import WorkingCalendar
from sandbox import Emulator, EmulatorClient
from storage.uow import Database
from tests.sandbox.conftest import make_bot
from tests.storage.factories import make_case, make_order

SETTINGS = CoreSettings()
WORKFLOW = CaseWorkflow(SETTINGS, WorkingCalendar())
FAST = RelayConfig(per_chat_per_second=20, global_per_second=500, idle_poll_seconds=0.05, batch_size=100)


@pytest.fixture
async def tg(emu: Emulator) -> AsyncIterator[EmulatorClient]:
    async with emu.client() as client:
        yield client


def relay(database: Database, sender: Sender, config: RelayConfig = FAST, **kw: Any) -> Relay:
    return Relay(database.uow, sender, config, SETTINGS, **kw)


async def file_cases(database: Database, tg: EmulatorClient, chats: Iterable[int]) -> list[str]:
    """One filed case per chat (its customer registered with the emulator): one card row each."""
    numbers = []
    async with database.uow() as uow:
        for chat_id in chats:
            await tg.create_user(chat_id, f"C{chat_id}")
            order_no, case_no = f"A{chat_id}", f"R20261124-{chat_id:04d}"
            await uow.orders.upsert(make_order(order_no, buyer_telegram_id=chat_id))
            case = make_case(case_no, order_no, chat_id=chat_id, user_id=chat_id)
            await uow.cases.add(case)
            await WORKFLOW.filed(uow, case, None)
            numbers.append(case_no)
        await uow.commit()
    return numbers


async def move(database: Database, case_no: str, *triggers: str) -> None:
    async with database.uow() as uow:
        for trigger in triggers:
            await WORKFLOW.move(uow, case_no, trigger, actor="agent:1", at=datetime.now(UTC))
        await uow.commit()


async def card_id(database: Database, case_no: str) -> int | None:
    async with database.uow() as uow:
        case = await uow.cases.get(case_no)
    assert case is not None
    return case.status_message_id


async def backlog(database: Database) -> int:
    async with database.uow() as uow:
        return await uow.outbox.backlog()


def bot_messages(emu: Emulator, chat_id: int) -> list[dict[str, Any]]:
    return [emu.state.message_to_control(m) for m in emu.state.chat_messages(chat_id) if m.outgoing]


def calls(emu: Emulator, chat_id: int | None = None, status: int | None = None) -> list[Any]:
    return [c for c in emu.state.calls if c.method in ("sendMessage", "editMessageText")
            and (chat_id is None or int(c.params.get("chat_id", 0)) == chat_id)
            and (status is None or c.status == status)]


# -- status cards -----------------------------------------------------------------------------------------

async def test_a_filed_case_gets_a_card_and_the_next_move_edits_it_in_place(
        database: Database, sender: Sender, emu: Emulator, tg: EmulatorClient) -> None:
    [case_no] = await file_cases(database, tg, [501])
    r = relay(database, sender)
    await r.drain()
    [card] = bot_messages(emu, 501)
    assert case_no in card["text"] and await card_id(database, case_no) == card["message_id"]
    await move(database, case_no, "start_review")
    await r.drain()
    [edited] = bot_messages(emu, 501)
    assert edited["message_id"] == card["message_id"] and edited["edits"] == 1
    assert edited["text"] != card["text"]
    assert await card_id(database, case_no) == card["message_id"] and await backlog(database) == 0
    assert (r.stats.sent, r.stats.edited) == (2, 1)


async def test_a_deleted_card_is_sent_anew_and_its_new_id_stored(
        database: Database, sender: Sender, bot: Bot, emu: Emulator, tg: EmulatorClient) -> None:
    [case_no] = await file_cases(database, tg, [502])
    r = relay(database, sender)
    await r.drain()
    old = await card_id(database, case_no)
    assert old is not None
    await bot.delete_message(502, old)
    await move(database, case_no, "start_review")
    await r.drain()
    fresh = [m for m in bot_messages(emu, 502) if not m["deleted"]]
    assert [m["message_id"] for m in fresh] == [await card_id(database, case_no)] and fresh[0]["message_id"] != old
    assert r.stats.errors["gone"] == 1 and await backlog(database) == 0


async def test_news_follow_their_card_in_order(database: Database, sender: Sender, emu: Emulator,
                                               tg: EmulatorClient) -> None:
    [case_no] = await file_cases(database, tg, [503])
    await move(database, case_no, "start_review", "ask_info")  # card v2, card v3 and news of v3
    await relay(database, sender).drain()
    messages = bot_messages(emu, 503)
    assert len(messages) == 2 and messages[0]["message_id"] == await card_id(database, case_no)
    # Each card is rendered from the case as it is when sent: the first already shows needs_info, so
    # the two later card rows edit it to the same text ("not modified": delivered), then the news.
    assert [(c.method, c.status) for c in calls(emu, 503)] == [
        ("sendMessage", 200), ("editMessageText", 400), ("editMessageText", 400), ("sendMessage", 200)]
    assert messages[0]["edits"] == 0


async def test_a_row_with_nothing_to_say_is_confirmed_without_a_call(database: Database, sender: Sender,
                                                                    emu: Emulator) -> None:
    async with database.uow() as uow:
        await uow.outbox.add(OutboxMessage(kind="case_card", chat_id=504, dedupe_key="gone-case",
                                           payload={"case_no": "R20990101-0001"}, created_at=datetime.now(UTC)))
        await uow.commit()
    r = relay(database, sender)
    assert await r.drain() == 1
    assert await backlog(database) == 0 and r.stats.skipped == 1 and calls(emu) == []


# -- Telegram's limits and failures ------------------------------------------------------------------

async def test_a_429_holds_that_chat_until_retry_after_and_loses_nothing(
        database: Database, sender: Sender, emu: Emulator, tg: EmulatorClient) -> None:
    await file_cases(database, tg, [511, 512])
    await tg.add_fault("sendMessage", 429, chat_id=511, retry_after=1)
    r = relay(database, sender)
    await r.drain(until_empty=True)
    [throttled, delivered] = calls(emu, 511)
    assert (throttled.status, delivered.status) == (429, 200)
    assert delivered.at - throttled.at >= 1.0
    assert calls(emu, 512)[0].at < throttled.at + 0.5  # the other chat did not wait
    assert len(bot_messages(emu, 511)) == 1 and await backlog(database) == 0
    assert r.stats.throttled == 1 and r.stats.global_holds == 0


async def test_429s_from_several_chats_hold_every_chat(database: Database, sender: Sender, emu: Emulator,
                                                       tg: EmulatorClient) -> None:
    chats = list(range(521, 531))
    await file_cases(database, tg, chats)
    for chat_id in (521, 522):
        await tg.add_fault("sendMessage", 429, chat_id=chat_id, retry_after=1)
    r = relay(database, sender, RelayConfig(global_per_second=20, idle_poll_seconds=0.05))
    await r.drain(until_empty=True)
    assert r.stats.global_holds == 1
    second_429 = sorted(c.at for c in calls(emu, status=429))[1]
    later = [c.at for c in calls(emu, status=200) if c.at > second_429]
    assert later and min(later) >= second_429 + 0.95  # nobody was sent to during the hold
    assert all(len(bot_messages(emu, c)) == 1 for c in chats) and await backlog(database) == 0


async def test_a_5xx_backs_off_then_delivers(database: Database, sender: Sender, emu: Emulator,
                                             tg: EmulatorClient) -> None:
    await file_cases(database, tg, [541])
    await tg.add_fault("sendMessage", 502, chat_id=541, count=2)
    r = relay(database, sender, backoff_base=0.25)
    await r.drain(until_empty=True)
    first, second, third = calls(emu, 541)
    assert (first.status, second.status, third.status) == (502, 502, 200)
    assert second.at - first.at >= 0.25 and third.at - second.at >= 0.5  # doubling each time
    assert r.stats.errors["5xx"] == 2 and len(bot_messages(emu, 541)) == 1 and await backlog(database) == 0


async def test_the_relays_log_lines_name_the_case_and_the_chat(database: Database, sender: Sender,
                                                              tg: EmulatorClient) -> None:
    (case_no,) = await file_cases(database, tg, [542])
    await tg.add_fault("sendMessage", 502, chat_id=542, count=1)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logging.getLogger("bot.workers.relay").addHandler(handler)
    try:
        await relay(database, sender, backoff_base=0.05).drain(until_empty=True)
    finally:
        logging.getLogger("bot.workers.relay").removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert any(line["level"] == "WARNING" and line.get("case") == case_no and line.get("chat") == 542
               for line in lines), lines


async def test_a_rejected_message_is_given_up_and_the_chat_goes_on(
        database: Database, sender: Sender, emu: Emulator, tg: EmulatorClient) -> None:
    [case_no] = await file_cases(database, tg, [561])
    await move(database, case_no, "start_review")
    await tg.add_fault("sendMessage", 400, chat_id=561, description="Bad Request: can't parse entities")
    r = relay(database, sender)
    await r.drain()
    # The first card was refused; the second one had no card to edit, so it was sent new.
    assert [c.status for c in calls(emu, 561)] == [400, 200]
    assert r.stats.given_up == 1 and await backlog(database) == 0


async def test_with_limits_on_many_chats_get_no_429(database: Database, sender: Sender, emu: Emulator,
                                                    tg: EmulatorClient) -> None:
    chats = list(range(600, 660))
    cases = await file_cases(database, tg, chats)
    for case_no in cases[:5]:
        await move(database, case_no, "auto_approve")  # 2 more rows (card, news) to 5 of the chats
    await tg.set_limits(per_chat_per_s=1, global_per_s=50, reset_counters=True)
    r = relay(database, sender, RelayConfig(global_per_second=50, idle_poll_seconds=0.05))
    started = time.monotonic()
    await r.drain(until_empty=True)
    elapsed = time.monotonic() - started
    limits = await tg.limits()
    assert limits["throttled"] == 0 and limits["accepted"] == 70 and r.stats.throttled == 0
    assert elapsed >= 2.0  # 3 rows to one chat at 1/s
    assert await backlog(database) == 0


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # pacing does not depend on the database
async def test_a_group_gets_its_per_minute_share_and_no_429(database: Database, bot: Bot, emu: Emulator,
                                                          tg: EmulatorClient) -> None:
    # Supervisors' alerts into one group, with the emulator counting Telegram's per-group minute: the
    # relay sends the group's allowance at once and the rest when the minute has passed. Pacing is the
    # relay's, not the sender's: a minute on one sender is enough.
    group = (await tg.create_group("主管群", is_forum=False))["chat"]["id"]
    cases = await file_cases(database, tg, [700])
    async with database.uow() as uow:
        for n in range(4):
            await uow.outbox.add(OutboxMessage(
                kind="supervisor_alert", chat_id=group, dedupe_key=f"alert-{n}", created_at=datetime.now(UTC),
                payload={"case_no": cases[0], "deadline": "review", "due": "2026-11-27", "new_due": f"2026-12-0{n + 1}"}))
        await uow.commit()
    await tg.set_limits(per_group_per_min=3, reset_counters=True)
    r = relay(database, AiogramSender(bot), RelayConfig(per_group_per_minute=3, idle_poll_seconds=0.05))
    started = time.monotonic()
    await r.drain(timeout=90, until_empty=True)
    elapsed = time.monotonic() - started
    assert (await tg.limits())["throttled"] == 0 and r.stats.throttled == 0
    sent = [m["text"] for m in bot_messages(emu, group)]
    assert len(sent) == 4 and all(f"2026-12-0{n + 1}" in sent[n] for n in range(4))  # in order
    assert 58 <= elapsed < 80  # the fourth waited for the group's minute


# -- crashes, restarts, two relays ---------------------------------------------------------------------

async def test_a_relay_cancelled_mid_batch_loses_nothing_and_resends_nothing_confirmed(
        database: Database, sender: Sender, emu: Emulator, tg: EmulatorClient) -> None:
    chats = [701, 702, 703]
    await file_cases(database, tg, chats)
    await tg.add_fault("sendMessage", 0, chat_id=703, delay=0.5)  # still in flight when the relay dies
    config = RelayConfig(global_per_second=500, per_chat_per_second=20, idle_poll_seconds=0.05, lease_seconds=1)
    first = relay(database, sender, config)
    task = asyncio.create_task(first.run(asyncio.Event()))
    while first.stats.sent < 2:  # 701 and 702 sent and confirmed, 703 waiting for its answer
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await backlog(database) == 1
    second = relay(database, sender, config)
    await second.drain(until_empty=True, timeout=10)  # 703 comes back when the first relay's lease ends
    assert [len(bot_messages(emu, c)) for c in chats[:2]] == [1, 1]
    assert len(bot_messages(emu, 703)) >= 1 and await backlog(database) == 0
    assert second.stats.sent == 1


async def test_a_stopped_relay_releases_what_it_has_not_sent(database: Database, sender: Sender, emu: Emulator,
                                                             tg: EmulatorClient) -> None:
    await file_cases(database, tg, [711, 712])
    await tg.add_fault("sendMessage", 429, chat_id=711, retry_after=30)  # held well inside the lease
    first = relay(database, sender)
    stop = asyncio.Event()
    task = asyncio.create_task(first.run(stop))
    while first.stats.sent < 1 or first.stats.throttled < 1:
        await asyncio.sleep(0.01)
    stop.set()
    await task
    assert first.stats.deferred == 1
    # The held row went back to the outbox at once (not after the lease): another relay may take it.
    # (Its 30 s hold was this relay's knowledge; the next one meets Telegram afresh.)
    second = relay(database, sender)
    assert await second.drain() == 1
    assert len(bot_messages(emu, 711)) == 1 and await backlog(database) == 0


async def test_two_relays_on_one_database_deliver_every_row_exactly_once(
        database: Database, migrated_database_url: str, emu: Emulator, tg: EmulatorClient) -> None:
    chats = list(range(800, 880))
    cases = await file_cases(database, tg, chats)
    for case_no in cases[::2]:
        await move(database, case_no, "start_review")  # a second card row: an edit after the first
    other_database = Database.from_url(migrated_database_url)
    bots = [make_bot(emu), make_bot(emu)]
    config = RelayConfig(per_chat_per_second=20, global_per_second=500, idle_poll_seconds=0.05, batch_size=10)
    relays = [relay(database, AiogramSender(bots[0]), config), relay(other_database, AiogramSender(bots[1]), config)]
    stop = asyncio.Event()
    tasks = [asyncio.create_task(r.run(stop)) for r in relays]
    try:
        async with asyncio.timeout(20):
            while await backlog(database):
                await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        await other_database.dispose()
        for b in bots:
            await b.session.close()
    # One call per row: a send for the first card, an edit for the second (that one "not modified":
    # the first card already showed the case as it is now).
    per_chat = Counter(int(c.params["chat_id"]) for c in calls(emu))
    assert all(per_chat[c] == (2 if i % 2 == 0 else 1) for i, c in enumerate(chats)), per_chat
    assert all(r.stats.sent > 0 for r in relays)  # both took part
    assert sum(r.stats.sent for r in relays) == 120 and not calls(emu, status=429)


RELAY_PROCESS = """
import asyncio, sys
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from bot.aiogram_adapter.sender import AiogramSender
from bot.config import RelayConfig
from bot.workers.relay import Relay
from dialogs.settings import CoreSettings
from storage.uow import Database

async def main() -> None:
    database = Database.from_url(sys.argv[1])
    bot = Bot("7000000001:relay", session=AiohttpSession(api=TelegramAPIServer.from_base(sys.argv[2])))
    config = RelayConfig(global_per_second=20, per_chat_per_second=20, idle_poll_seconds=0.05, lease_seconds=1)
    await Relay(database.uow, AiogramSender(bot), config, CoreSettings()).run(asyncio.Event())

asyncio.run(main())
"""


@pytest.mark.slow
async def test_a_relay_process_killed_mid_batch_loses_nothing_and_resends_nothing_confirmed(
        database: Database, migrated_database_url: str, sender: Sender, emu: Emulator, tg: EmulatorClient) -> None:
    import signal
    import sys

    from sqlalchemy import select

    from storage.models import OutboxRow

    chats = list(range(901, 941))
    await file_cases(database, tg, chats)
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", RELAY_PROCESS, migrated_database_url,
                                                   emu.base_url)
    try:
        async with asyncio.timeout(30):
            while len(calls(emu, status=200)) < 15:  # mid-batch: 40 rows at 20/s
                await asyncio.sleep(0.01)
    finally:
        process.send_signal(signal.SIGKILL)
        await process.wait()
    async with database.uow() as uow:
        confirmed = set(await uow.session.scalars(select(OutboxRow.chat_id).where(OutboxRow.sent_at.is_not(None))))
    assert 0 < len(confirmed) < len(chats)
    restarted = relay(database, sender, RelayConfig(global_per_second=500, per_chat_per_second=20,
                                                  idle_poll_seconds=0.05, lease_seconds=1))
    await restarted.drain(until_empty=True, timeout=15)
    per_chat = Counter(int(c.params["chat_id"]) for c in calls(emu, status=200))
    assert all(per_chat[c] >= 1 for c in chats) and await backlog(database) == 0  # nothing lost
    assert all(per_chat[c] == 1 for c in confirmed)  # nothing confirmed was sent again
    # Sent again at most: what the killed relay had sent but not yet confirmed.
    assert sum(per_chat.values()) - len(chats) <= len(chats) - len(confirmed)
