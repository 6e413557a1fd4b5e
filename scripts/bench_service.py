"""Benchmark: the core alone (RefundService on a real database, no Telegram): CPU time and SQL
statements per update for each step of the whole dialog.

    .venv/bin/python scripts/bench_service.py --customers 300

Where scripts/bench_dialog.py measures the bot as Telegram sees it (and is at the mercy of every
other process on the machine), this one isolates the part refundbot owns: it runs in one process,
one customer after another, and counts process CPU time, which other load does not inflate much.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import event

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.app import open_database
from bot.config import AppConfig
from dialogs.domain import DeliveryStatus, Order, PaymentChannel, ProductKind
from dialogs.io import Event, EventKind, FileInspection, FileRef
from dialogs.service import RefundService

TRACE = False
STEPS = ("start", "reason", "continue", "describe", "photo", "done", "submit")


def order(i: int, now: datetime) -> Order:
    return Order(order_no=f"KM20261199{i:06d}", buyer_phone="13800000000", buyer_telegram_id=500000 + i,
                 product_name="王者荣耀点券卡 100元", product_kind=ProductKind.CARD_CODE, amount=Decimal(100),
                 payment_channel=PaymentChannel.ALIPAY, paid_at=now - timedelta(hours=1),
                 delivered_at=now - timedelta(minutes=50), delivery_status=DeliveryStatus.DELIVERED,
                 card_redeemed=False)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=300)
    parser.add_argument("--database", help="an EMPTY database URL instead of a temporary SQLite file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config = AppConfig.model_validate({"database": {"url": args.database or f"sqlite:///{tmp}/bench.db"}})
        database = await open_database(config)
        now = datetime.now(UTC)
        async with database.uow() as uow:
            for i in range(args.customers):
                await uow.orders.upsert(order(i, now))
            await uow.commit()
        statements = Counter[str]()
        engines = [database.engine.sync_engine] + ([database._sync_engine] if database._sync_engine else [])
        for engine in engines:
            event.listen(engine, "before_cursor_execute",
                         lambda *a: (statements.update([a[2].split()[0].upper()]), TRACE and print("   ", a[2][:110].replace("\n", " "))))
        service = RefundService(database.uow, config.core, flood_limit=10_000)
        cpu: dict[str, list[float]] = {s: [] for s in STEPS}
        sql: dict[str, int] = Counter()
        update_id = 0

        async def step(name: str, user: int, kind: EventKind, text: str = "", **kw: object) -> str:
            nonlocal update_id
            update_id += 1
            ev = Event(update_id=update_id, chat_id=user, user_id=user, kind=kind, at=datetime.now(UTC),
                       text=text, language_code="zh-hans", message_id=update_id, **kw)  # type: ignore[arg-type]
            before, started = sum(statements.values()), time.process_time()
            outcome = await service.handle(ev)
            cpu[name].append(time.process_time() - started)
            sql[name] += sum(statements.values()) - before
            buttons = [b for r in outcome.replies for row in r.buttons for b in row]
            return buttons[0].token if buttons else ""

        for i in range(args.customers):
            user = 500000 + i
            token = await step("start", user, EventKind.COMMAND, "start", args=f"order_KM20261199{i:06d}")
            token = await step("reason", user, EventKind.BUTTON, token, callback_id=str(i))
            token = await step("continue", user, EventKind.BUTTON, token, callback_id=str(i))
            await step("describe", user, EventKind.TEXT, "输入卡密时游戏提示卡号无效，错误码1002")
            shot = FileInspection(ok=True, path=f"{tmp}/{i}.png", sha256=f"{i:064d}", mime_type="image/png",
                                  width=320, height=240, size=1000)
            token = await step("photo", user, EventKind.PHOTO, file=FileRef(f"f{i}", f"u{i}", 1000, "image/png", shot))
            token = await step("done", user, EventKind.BUTTON, token, callback_id=str(i))
            await step("submit", user, EventKind.BUTTON, token, callback_id=str(i))
        await database.dispose()

    n = args.customers
    total = sum(sum(v) for v in cpu.values())
    print(f"{n} customers x {len(STEPS)} updates, {database.dialect}")
    print(f"{'step':<10} {'median ms CPU':>14} {'SQL statements':>15}")
    for name in STEPS:
        print(f"{name:<10} {statistics.median(cpu[name]) * 1000:>14.2f} {sql[name] / n:>15.1f}")
    print(f"mean CPU per update: {total / (n * len(STEPS)) * 1000:.2f} ms; "
          f"SQL statements per update: {sum(sql.values()) / (n * len(STEPS)):.1f}")


if __name__ == "__main__":
    asyncio.run(main())
