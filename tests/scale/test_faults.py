"""The fault suite: several workers on PostgreSQL, and what goes wrong in production. Each test asserts
that nothing is lost and nothing is done twice: every update applied once, every answer sent once."""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import signal
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from sqlalchemy import text

from dialogs.texts import Texts
from storage.uow import Database
from tests.e2e.conftest import Customer, texts
from tests.e2e.test_case_aftercare import eventually, file_case
from tests.scale.cluster import SECRET, TOKEN, Cluster, process_with_local_port
from tests.storage.factories import make_order

ZH = Texts("zh_CN")
XIAOMING = 10001


@pytest.fixture
async def db(pg_url: str) -> AsyncIterator[Database]:
    database = Database.from_url(pg_url)
    yield database
    await database.dispose()


async def scalar(db: Database, sql: str, **params: Any) -> Any:
    async with db.uow() as uow:
        return (await uow.session.execute(text(sql), params)).scalar()  # type: ignore[attr-defined]


def answers_to(messages: list[dict[str, Any]], needle: str) -> int:
    return sum(needle in (m.get("text") or "") for m in messages)


def message_update(update_id: int, user_id: int, text_: str, message_id: int) -> dict[str, Any]:
    """A private text message as Telegram posts it to a webhook."""
    return {"update_id": update_id, "message": {
        "message_id": message_id, "date": int(time.time()), "text": text_,
        "chat": {"id": user_id, "type": "private", "first_name": "小明"},
        "from": {"id": user_id, "is_bot": False, "first_name": "小明", "language_code": "zh-hans"}}}


async def post_update(http: aiohttp.ClientSession, url: str, update: dict[str, Any]) -> int:
    async with http.post(url, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": SECRET}) as resp:
        return resp.status


async def test_a_worker_killed_mid_update_has_its_update_redelivered_and_applied_once(
        cluster, customer, db: Database, pg_url: str):
    workers: Cluster = await cluster(2)
    c: Customer = await customer(XIAOMING)
    await c.say("/start order_KM20261101000001")
    reasons = await c.message_with_button(ZH("reason.card_invalid"))
    # Hold the customer's conversation row: the worker that gets the next update waits on it, mid-update.
    blocker = await asyncpg.connect(pg_url.replace("postgresql://", "postgres://"))
    transaction = blocker.transaction()
    await transaction.start()
    await blocker.execute("SELECT * FROM conversations WHERE chat_id = $1 FOR UPDATE", XIAOMING)
    pressed = await c.control.post("press", user_id=XIAOMING, message_id=reasons["message_id"],
                                   button_text=ZH("reason.card_invalid"))
    victim = None
    deadline = time.monotonic() + 15
    while victim is None:
        assert time.monotonic() < deadline, "no worker got stuck on the locked conversation"
        waiting = await blocker.fetch("SELECT client_port FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                      "AND datname = current_database()")
        for row in waiting:
            victim = process_with_local_port(workers.worker_pids(), row["client_port"])
        await asyncio.sleep(0.05)
    before = set(workers.worker_pids())
    os.kill(victim, signal.SIGKILL)
    await transaction.rollback()
    await blocker.close()

    await c.control.wait(pressed["update_id"], timeout=30)
    shown = await c.read()
    assert answers_to(await c.control.messages(XIAOMING), ZH("btn_continue")) <= 1  # the next prompt, once
    assert ZH("btn_continue") in [b["text"] for m in shown for row in (m.get("reply_markup") or {})
                                  .get("inline_keyboard", []) for b in row]
    assert await scalar(db, "SELECT count(*) FROM processed_updates WHERE update_id = :u",
                        u=pressed["update_id"]) == 1
    # The supervisor started a new worker in place of the killed one, and the dialog goes on.
    deadline = time.monotonic() + 20
    while len(set(workers.worker_pids()) - before) < 1 or len(workers.worker_pids()) < 2:
        assert time.monotonic() < deadline, f"no replacement worker: {workers.worker_pids()} {workers.logs()}"
        await asyncio.sleep(0.1)
    await workers.ready()
    await c.press(ZH("btn_continue"))
    await c.say("输入卡密时游戏提示卡号无效，错误码1002")
    assert victim not in workers.worker_pids()


async def test_the_same_update_posted_to_two_workers_at_once_is_applied_once(cluster, customer, db: Database):
    workers: Cluster = await cluster(2, separate_ports=True)
    c: Customer = await customer(XIAOMING)
    update = message_update(900_000_001, XIAOMING, "/start order_KM20261101000001", 900_001)
    async with aiohttp.ClientSession() as http:
        statuses = await asyncio.gather(*(post_update(http, url, update) for url in workers.webhook_urls()))
    assert statuses == [200, 200]  # both answer: one did the work, the other found it done
    said = await c.read()
    assert answers_to(said, "KM20261101000001") == 1, texts(said)
    assert await scalar(db, "SELECT count(*) FROM processed_updates WHERE update_id = 900000001") == 1


async def test_twenty_messages_of_one_chat_spread_over_all_workers_are_each_applied_once(
        cluster, customer, db: Database):
    workers: Cluster = await cluster(3, separate_ports=True)
    c: Customer = await customer(XIAOMING)
    urls = workers.webhook_urls()
    updates = [message_update(910_000_000 + n, XIAOMING, f"KM2026110100{n:04d}", 910_000 + n) for n in range(20)]
    async with aiohttp.ClientSession() as http:
        statuses = await asyncio.gather(*(post_update(http, urls[n % len(urls)], u) for n, u in enumerate(updates)))
    assert statuses == [200] * 20
    said = await c.read()
    assert len(said) == 20, texts(said)  # one answer per message, none twice
    assert await scalar(db, "SELECT count(*) FROM processed_updates WHERE chat_id = :c", c=XIAOMING) == 20
    # The conversation went through 20 versions, one per update: none overwrote another.
    assert await scalar(db, "SELECT version FROM conversations WHERE chat_id = :c", c=XIAOMING) >= 20


DESK = -1001987650001
AGENTS = list(range(7001, 7051))


async def test_fifty_agents_taking_one_case_at_once_give_it_exactly_one_owner(cluster, customer, control,
                                                                            db: Database):
    for agent in AGENTS:
        await control.post("users", user_id=agent, first_name=f"Agent{agent}", language_code="zh-hans")
    await control.post("groups", title="退款客服台", chat_id=DESK, is_forum=True, creator_id=AGENTS[0],
                       members=[{"user_id": a, "status": "member"} for a in AGENTS[1:]])
    desk = (f"\n[desk]\nchat_id = {DESK}\nagents = {AGENTS}\n"
            "[relay]\nper_chat_per_second = 20\nper_group_per_minute = 6000\n")
    await cluster(2, extra_config=desk)
    c: Customer = await customer(XIAOMING)
    case_no = await file_case(c, ZH)
    deadline = time.monotonic() + 20
    card = None
    while card is None:
        assert time.monotonic() < deadline, "the case's card never reached the desk"
        card = await scalar(db, "SELECT card_message_id FROM desk_items WHERE key = :k", k=case_no)
        await asyncio.sleep(0.1)
    # Half press Take on the card in the group, half send /take in their private chats: the private
    # chats are delivered concurrently, over both workers.
    sent = []
    for n, agent in enumerate(AGENTS):
        if n % 2:
            sent.append(await control.post("send_text", user_id=agent, text=f"/take {case_no}"))
        else:
            sent.append(await control.post("press", user_id=agent, message_id=card, button_text=ZH("dk.btn.take"),
                                           chat_id=DESK))
    for update in sent:
        await control.wait(update["update_id"], timeout=60)
    owner = await scalar(db, "SELECT owner_id FROM desk_items WHERE key = :k", k=case_no)
    assert owner in AGENTS
    assert await scalar(db, "SELECT count(*) FROM desk_audit WHERE key = :k AND action = 'take' AND allowed",
                        k=case_no) == 1
    assert await scalar(db, "SELECT count(*) FROM desk_audit WHERE key = :k AND action = 'take_lost'",
                        k=case_no) == 49
    answers = [a for a in await control.get("callback_answers") if a["answered"] and a["chat_id"] == DESK]
    assert len(answers) == 25  # every press answered once


async def test_with_redis_unreachable_workers_fall_back_and_still_deliver(cluster, customer):
    await cluster(2, redis_url="redis://127.0.0.1:9/0")
    c: Customer = await customer(XIAOMING)
    case_no = await file_case(c, ZH)
    card = await eventually(c, lambda m: any(case_no in (x.get("text") or "") and x.get("reply_markup") for x in m))
    assert answers_to(card, case_no) >= 1


@pytest.mark.skipif(shutil.which("pg_ctlcluster") is None or not Path("/etc/postgresql").is_dir(),
                    reason="needs the local PostgreSQL server under pg_ctlcluster (Debian's) to restart it")
async def test_postgresql_restarted_under_load_loses_and_doubles_nothing(cluster, customer, db: Database,
                                                                        pg_url: str):
    """Twelve customers file cases while PostgreSQL stops for two seconds and starts again: meanwhile the
    workers answer Telegram 500 (so it delivers again); afterwards they reconnect and every case is there
    once."""
    workers: Cluster = await cluster(2)
    now = datetime.now(UTC)
    people = [await customer(10100 + n) for n in range(12)]
    async with db.uow() as uow:
        for c in people:
            await uow.orders.upsert(make_order(f"KM202611250{c.user_id:05d}", buyer_telegram_id=c.user_id,
                                               paid_at=now - timedelta(hours=1), delivered_at=now - timedelta(hours=1)))
        await uow.commit()
    await db.dispose()  # this test's own pool must not hold connections across the restart

    async def pg_ctl(*action: str) -> None:
        version = next(Path("/etc/postgresql").iterdir()).name
        proc = await asyncio.create_subprocess_exec("pg_ctlcluster", "--skip-systemctl-redirect", version, "main",
                                                    *action)
        assert await proc.wait() == 0

    async def restart_postgres() -> None:
        """Once the filing is under way (a dozen updates done), PostgreSQL goes away for two seconds."""
        url = pg_url.replace("postgresql://", "postgres://")
        while True:
            connection = await asyncpg.connect(url)
            try:
                if await connection.fetchval("SELECT count(*) FROM processed_updates") >= 12:
                    break
            finally:
                await connection.close()
            await asyncio.sleep(0.02)
        await pg_ctl("stop", "-m", "fast")
        await asyncio.sleep(2)
        await pg_ctl("start")

    restart = asyncio.create_task(restart_postgres())
    filed = await asyncio.gather(*(file_case(c, ZH, order_no=f"KM202611250{c.user_id:05d}") for c in people),
                                 return_exceptions=True)
    await restart
    problems = [f for f in filed if isinstance(f, BaseException)]
    assert not problems, problems
    # The restart did hit updates in flight: some were answered non-2xx and delivered again.
    async with aiohttp.ClientSession() as http, http.post(f"{workers.emulator_url}/bot{TOKEN}/getWebhookInfo") as r:
        info = (await r.json())["result"]
    assert info.get("last_error_message", "").startswith("Wrong response from the webhook: 5"), info
    assert len(set(filed)) == len(people)
    assert await scalar(db, "SELECT count(*) FROM cases") == len(people)
    for c in people:  # seven updates each, each applied once; no answer twice in a row
        assert await scalar(db, "SELECT count(*) FROM processed_updates WHERE chat_id = :c", c=c.user_id) == 7
        said = [m["text"] for m in await c.control.messages(c.user_id)]
        assert all(a != b for a, b in itertools.pairwise(said)), said
    await workers.ready()
