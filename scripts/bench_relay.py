"""Benchmark: the notification relay sends N status cards to N chats through the emulator with Telegram's
flood limits switched on; prints the sustained messages/s, its ratio to the configured global rate and
the number of 429s.

    .venv/bin/python scripts/bench_relay.py                      # 10,000 chats at 30/s (about 6 minutes)
    .venv/bin/python scripts/bench_relay.py --count 2000 --rate 30

The emulator runs in its own process (as Telegram would); the relay (aiogram sender, SQLite unless
--database) in this one. Every notification is a real filed case's status card, composed from the
database at send time. Goal: >= 95% of the configured global rate with zero 429s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
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
from dialogs.settings import CoreSettings
from dialogs.workdays import WorkingCalendar
from sandbox.client import EmulatorClient
from scripts.bench_dialog import free_port, wait_emulator
from storage import migrate
from storage.uow import Database

TOKEN = "7000000001:bench-token"
CHAT_BASE = 3_000_000


async def seed(database: Database, tg: EmulatorClient, count: int) -> None:
    """`count` customers, each with a filed case whose status card waits in the outbox."""
    settings = CoreSettings()
    workflow = CaseWorkflow(settings, WorkingCalendar())
    now = datetime.now(UTC)
    sem = asyncio.Semaphore(32)

    async def user(chat_id: int) -> None:
        async with sem:
            await tg.create_user(chat_id, f"C{chat_id}")

    await asyncio.gather(*(user(CHAT_BASE + n) for n in range(count)))
    for start in range(0, count, 1000):
        async with database.uow() as uow:
            for n in range(start, min(count, start + 1000)):
                chat_id = CHAT_BASE + n
                order = Order(order_no=f"B{n:07d}", buyer_phone="13800138000", buyer_telegram_id=chat_id,
                              product_name="Steam card 100", product_kind=ProductKind.CARD_CODE,
                              tags=frozenset(), amount=Decimal("100.00"),
                              payment_channel=PaymentChannel.ALIPAY, paid_at=now, delivered_at=now,
                              delivery_status=DeliveryStatus.DELIVERED, card_redeemed=None, topup_credited=None)
                await uow.orders.upsert(order)
                case = Case(case_no=f"R{now:%Y%m%d}-{n:05d}", order_no=order.order_no, chat_id=chat_id,
                            user_id=chat_id, reason=Reason.CARD_INVALID, verdict=Verdict.REVIEW,
                            rule_id="CARD_REDEEM_UNKNOWN", description="the code says invalid",
                            amount=order.amount, locale="zh_CN", status=CaseStatus.SUBMITTED, created_at=now,
                            review_due=now.date())
                await uow.cases.add(case)
                await workflow.filed(uow, case, order)
            await uow.commit()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=10_000, help="notifications, one per chat")
    parser.add_argument("--rate", type=int, default=30, help="global messages/s: the emulator's limit and the relay's")
    parser.add_argument("--database", help="an EMPTY database URL instead of a temporary SQLite file")
    args = parser.parse_args()

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    emulator = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sandbox", "--port", str(port), cwd=ROOT,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL, env=os.environ.copy())
    tmp = tempfile.TemporaryDirectory()
    url = args.database or f"sqlite:///{tmp.name}/bench.db"
    try:
        await wait_emulator(base)
        await migrate.upgrade_async(url)
        database = Database.from_url(url)
        async with EmulatorClient(base) as tg:
            t = time.perf_counter()
            await seed(database, tg, args.count)
            print(f"seeded {args.count} cases and their cards in {time.perf_counter() - t:.1f}s", flush=True)
            await tg.set_limits(enabled=True, per_chat_per_s=1, per_group_per_min=20, global_per_s=args.rate,
                                reset_counters=True)
            bot = Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(base)))
            config = RelayConfig(global_per_second=args.rate, per_chat_per_second=1, per_group_per_minute=20)
            relay = Relay(database.uow, AiogramSender(bot), config, CoreSettings())
            stop = asyncio.Event()
            started = time.perf_counter()
            task = asyncio.create_task(relay.run(stop))
            first_at: float | None = None
            last_report = started
            while relay.stats.sent + relay.stats.given_up < args.count:
                await asyncio.sleep(0.05)
                if first_at is None and relay.stats.sent:
                    first_at = time.perf_counter()
                if time.perf_counter() - last_report >= 30:
                    last_report = time.perf_counter()
                    print(f"  {relay.stats.sent} sent after {last_report - started:.0f}s", flush=True)
            finished = time.perf_counter()
            stop.set()
            await task
            limits = await tg.limits()
            calls = await tg.calls("sendMessage")
            await bot.session.close()
        await database.dispose()
    finally:
        emulator.terminate()
        await emulator.wait()
        tmp.cleanup()

    ok = sorted(c["at"] for c in calls if c["status"] == 200)
    # Sustained: as Telegram saw it, from the first accepted message to the last.
    sustained = (len(ok) - 1) / (ok[-1] - ok[0]) if len(ok) > 1 else 0.0
    overall = relay.stats.sent / (finished - started)
    print(f"relay: {relay.stats.sent} notifications to {args.count} chats, limits on "
          f"(global {args.rate}/s, 1/s per chat), database {url.split(':')[0]}")
    print(f"sustained: {sustained:.2f} messages/s = {sustained / args.rate:.1%} of the configured global rate "
          f"({args.rate}/s)")
    print(f"overall (relay start to last confirmation): {overall:.2f} messages/s in {finished - started:.1f}s")
    print(f"429s: emulator answered {limits['throttled']} (limits) + {limits['injected_429']} (faults); "
          f"relay saw {relay.stats.throttled}; other errors {dict(relay.stats.errors)}")


if __name__ == "__main__":
    asyncio.run(main())
