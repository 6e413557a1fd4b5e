"""Benchmark the order importer: 100,000 generated CSV rows, imported twice.

The first import inserts every row, the second (same file) updates every row.

    .venv/bin/python scripts/bench_import.py [--rows N] [--postgres postgresql://user@host/db]

The PostgreSQL database must be empty or hold only this benchmark's orders (the script migrates
it, and deletes the orders it created afterwards).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import delete

from storage import migrate
from storage.importer import FIELDS, ImportReport, count_rows, import_orders
from storage.models import OrderRow
from storage.uow import Database

KINDS = ("card_code", "direct_topup", "membership", "data_plan", "other")
CHANNELS = ("alipay", "wechat", "bank_card", "balance")
CST = timezone(timedelta(hours=8))


def generate(path: Path, rows: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    start = datetime(2026, 1, 1, tzinfo=CST)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(FIELDS)
        for n in range(rows):
            kind = rng.choice(KINDS)
            paid = start + timedelta(seconds=rng.randrange(300 * 86400))
            status = rng.choice(("delivered", "delivered", "delivered", "failed", "pending"))
            delivered = (paid + timedelta(seconds=rng.randrange(600))).isoformat() if status == "delivered" else ""
            writer.writerow(
                [
                    f"BENCH{n:09d}",
                    f"13{rng.randrange(10**9):09d}",
                    rng.randrange(1, 8 * 10**9) if rng.random() < 0.6 else "",
                    f"Product {rng.randrange(500)}",
                    kind,
                    rng.choice(("", "discount", "custom", "discount,custom")),
                    f"{rng.randrange(100, 100000) / 100:.2f}",
                    rng.choice(CHANNELS),
                    paid.isoformat(),
                    delivered,
                    status,
                    rng.choice(("true", "false", "")) if kind == "card_code" else "",
                    rng.choice(("true", "false", "")) if kind == "direct_topup" else "",
                ]
            )


async def timed_import(database: Database, path: Path) -> tuple[ImportReport, float]:
    started = time.perf_counter()
    report = await import_orders(database, path)
    return report, time.perf_counter() - started


async def bench(label: str, url: str, path: Path, rows: int) -> None:
    await migrate.upgrade_async(url)
    database = Database.from_url(url)
    try:
        first, first_s = await timed_import(database, path)
        second, second_s = await timed_import(database, path)
        assert (first.inserted, first.updated, len(first.rejected)) == (rows, 0, 0), first
        assert (second.inserted, second.updated, len(second.rejected)) == (0, rows, 0), second
        print(f"{label:<10} first import (inserts): {rows / first_s:>9,.0f} rows/s ({first_s:.2f} s)")
        print(f"{label:<10} second import (updates): {rows / second_s:>8,.0f} rows/s ({second_s:.2f} s)")
        if label == "postgresql":  # leave a shared database as we found it
            async with database.session_factory() as session:
                await session.execute(delete(OrderRow).where(OrderRow.order_no.like("BENCH%")))
                await session.commit()
    finally:
        await database.dispose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--postgres", metavar="URL", help="also benchmark this PostgreSQL database")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="refundbot-bench-") as tmp:
        path = Path(tmp) / "orders.csv"
        started = time.perf_counter()
        generate(path, args.rows)
        assert count_rows(path) == args.rows
        print(
            f"generated {args.rows:,} rows ({path.stat().st_size / 1e6:.1f} MB) "
            f"in {time.perf_counter() - started:.1f} s at {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
        )
        await bench("sqlite", f"sqlite:///{Path(tmp) / 'bench.db'}", path, args.rows)
        if args.postgres:
            await bench("postgresql", args.postgres, path, args.rows)


if __name__ == "__main__":
    asyncio.run(main())
