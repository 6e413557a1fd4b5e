"""Benchmark: time from a case's escalation to its card in the agents' forum topic, with N cases queued
at once; prints p50/p99 and the drain rate.

    .venv/bin/python scripts/bench_desk.py                       # 1,000 cases, group limit lifted
    .venv/bin/python scripts/bench_desk.py --count 40 --group-limit 20

Every case is filed through CaseWorkflow at one moment (the queue), which opens its desk item and
queues its card; the relay (aiogram sender, SQLite unless --database) creates each case's topic and
sends the card into it, through the emulator in its own process. Latency = the emulator's time of the
card's sendMessage minus the escalation time. Telegram allows 20 messages a minute per group, topic
creation included: with that limit (--group-limit 20) a queue of 1,000 cases takes most of two hours to
show, whatever the bot does. By default the limit is lifted on both sides (a measure of refundbot's own
pipeline); --group-limit N keeps it at N per minute.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer

from bot.aiogram_adapter.sender import AiogramSender
from bot.config import RelayConfig
from bot.workers.relay import Relay
from dialogs.cases import CaseWorkflow
from dialogs.domain import (
    Case,
    CaseStatus,
    DeliveryStatus,
    Order,
    PaymentChannel,
    ProductKind,
    Reason,
    Verdict,
)
from dialogs.settings import CoreSettings, DeskSettings
from sandbox.client import EmulatorClient
from scripts.bench_dialog import free_port, wait_emulator
from scripts.bench_relay import TOKEN
from storage import migrate
from storage.uow import Database

CHAT_BASE = 4_000_000
AGENT = 20001


async def seed(database: Database, tg: EmulatorClient, settings: CoreSettings, count: int) -> float:
    """`count` customers with a filed case each, escalated in one transaction; returns its time."""
    workflow = CaseWorkflow.for_settings(settings)
    sem = asyncio.Semaphore(32)

    async def user(chat_id: int) -> None:
        async with sem:
            await tg.create_user(chat_id, f"客户{chat_id - CHAT_BASE}")

    await asyncio.gather(*(user(CHAT_BASE + n) for n in range(count)))
    now = datetime.now(UTC)
    async with database.uow() as uow:
        for n in range(count):
            chat_id = CHAT_BASE + n
            order = Order(order_no=f"D{n:07d}", buyer_phone="13800138000", buyer_telegram_id=chat_id,
                          product_name="王者荣耀点券卡 100元", product_kind=ProductKind.CARD_CODE, tags=frozenset(),
                          amount=Decimal("100.00"), payment_channel=PaymentChannel.ALIPAY, paid_at=now,
                          delivered_at=now, delivery_status=DeliveryStatus.DELIVERED, card_redeemed=None,
                          topup_credited=None)
            await uow.orders.upsert(order)
            case = Case(case_no=f"R{now:%Y%m%d}-{n:05d}", order_no=order.order_no, chat_id=chat_id, user_id=chat_id,
                        reason=Reason.CARD_INVALID, verdict=Verdict.REVIEW, rule_id="CARD_REDEEM_UNKNOWN",
                        description="输入卡密时提示卡号无效，错误码1002", amount=order.amount, locale="zh_CN",
                        status=CaseStatus.SUBMITTED, created_at=now, review_due=now.date())
            await uow.cases.add(case)
            await workflow.filed(uow, case, order)
        await uow.commit()
    return time.time()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=1000, help="cases escalated at once")
    parser.add_argument("--group-limit", type=int, default=0,
                        help="messages per minute per group, on both sides (0: lifted)")
    parser.add_argument("--database", help="an EMPTY database URL instead of a temporary SQLite file")
    args = parser.parse_args()

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    emulator = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sandbox", "--port", str(port), cwd=ROOT,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL, env=os.environ.copy())
    tmp = tempfile.TemporaryDirectory()
    url = args.database or f"sqlite:///{tmp.name}/bench.db"
    per_group = args.group_limit or 1_000_000
    try:
        await wait_emulator(base)
        await migrate.upgrade_async(url)
        database = Database.from_url(url)
        async with EmulatorClient(base) as tg:
            await tg.create_user(AGENT, "客服小李")
            group = (await tg.create_group("退款客服台", is_forum=True,
                                           members=[{"user_id": AGENT, "status": "member"}]))["chat"]["id"]
            settings = CoreSettings(desk=DeskSettings(chat_id=group, agents=(AGENT,)))
            await tg.set_limits(enabled=True, per_chat_per_s=1, per_group_per_min=per_group, global_per_s=30,
                                reset_counters=True)
            escalated = await seed(database, tg, settings, args.count)
            bot = Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(base)))
            relay = Relay(database.uow, AiogramSender(bot),
                          RelayConfig(per_group_per_minute=per_group, per_chat_per_second=1_000, global_per_second=30),
                          settings)
            stop = asyncio.Event()
            task = asyncio.create_task(relay.run(stop))
            cards: dict[str, float] = {}
            case_nos = [f"R{datetime.fromtimestamp(escalated, UTC):%Y%m%d}-{n:05d}" for n in range(args.count)]
            after = 0
            deadline = time.monotonic() + max(600, args.count * 3 * 60 / per_group + 120)
            while len(cards) < args.count and time.monotonic() < deadline:
                await asyncio.sleep(0.5)
                for call in await tg.calls("sendMessage", after=after):
                    after = max(after, int(call["seq"]))
                    text = str(call.get("params", {}).get("text", ""))
                    if call.get("status") == 200 and int(call["params"].get("chat_id", 0)) == group:
                        for case_no in (c for c in case_nos if c in text[:40] and c not in cards):
                            cards[case_no] = float(call["at"])
            stop.set()
            await task
            limits = await tg.limits()
            await bot.session.close()
        await database.dispose()
    finally:
        emulator.terminate()
        await emulator.wait()
        tmp.cleanup()

    latencies = sorted(at - escalated for at in cards.values())
    if not latencies:
        print("no card arrived")
        return
    p = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [latencies[0]] * 99
    print(f"desk: {args.count} cases escalated at once, {len(cards)} cards in their topics; group limit "
          f"{'lifted' if not args.group_limit else f'{args.group_limit}/min'}, database {url.split(':')[0]}")
    print(f"escalation -> card in the topic: p50 {p[49]:.1f} s, p99 {p[98]:.1f} s, last {latencies[-1]:.1f} s "
          f"({len(cards) / latencies[-1]:.1f} cards/s)")
    print(f"429s: {limits['throttled']}; relay: sent {relay.stats.sent}, errors {dict(relay.stats.errors)}")


if __name__ == "__main__":
    asyncio.run(main())
