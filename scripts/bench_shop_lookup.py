"""Benchmark: order lookups through the dujiaoka connector (bot/shops/dujiaoka.py) against MariaDB holding
100,000 orders; prints lookups/s and p50/p99 latency.

    .venv/bin/python scripts/bench_shop_lookup.py                          # 100,000 orders, 4,000 lookups, 16 at once
    .venv/bin/python scripts/bench_shop_lookup.py --orders 20000 --lookups 1000 --concurrency 8

A throw-away database (refundbot_bench_<pid>) is created on --server (default mysql://root@127.0.0.1:3306,
the developers' MariaDB) with dujiaoka's tables (tests/shops/dujiaoka_schema.sql), filled with multi-row
INSERTs (all statuses, codes, passwords, the installer's payment gateways), and dropped at the end. The
lookups are random order numbers, 10 % of them unknown, through the connector's own pool (pool_size).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import string
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pymysql
from sqlalchemy.engine import make_url

from bot.config import DujiaokaConfig
from bot.shops.dujiaoka import DujiaokaOrders

SCHEMA = ROOT / "tests" / "shops" / "dujiaoka_schema.sql"
ALPHABET = string.ascii_uppercase + string.digits
PAYS = [(1, "支付宝当面付", "zfbf2f", "/pay/alipay"), (8, "微信扫码", "wescan", "/pay/wepay"),
        (14, "易支付-支付宝", "alipay", "/pay/yipay"), (15, "易支付-微信", "wxpay", "/pay/yipay")]
GOODS = [(1, "Steam 钱包充值卡 100元", 1), (2, "中国移动话费直充 50元", 2), (3, "爱奇艺黄金会员 月卡", 2)]
STATUSES = [4] * 80 + [2] * 5 + [3] * 3 + [5] * 3 + [6] + [1] * 4 + [-1] * 4


def connect(server: str, database: str | None = None) -> pymysql.Connection:
    url = make_url(server)
    return pymysql.connect(host=url.host or "127.0.0.1", port=url.port or 3306, user=url.username or "root",
                           password=url.password or "", database=database, charset="utf8mb4", autocommit=True)


def load(server: str, database: str, count: int, rng: random.Random) -> list[str]:
    """Create dujiaoka's tables in `database` and insert `count` orders; their order numbers."""
    connection = connect(server, database)
    cursor = connection.cursor()
    text = "\n".join(line for line in SCHEMA.read_text(encoding="utf-8").replace("__PREFIX__", "").splitlines()
                     if not line.lstrip().startswith("--"))
    for statement in text.split(";\n"):
        if statement.strip():
            cursor.execute(statement)
    cursor.executemany("INSERT INTO pays (id, pay_name, pay_check, pay_method, merchant_pem, pay_handleroute, is_open) "
                       "VALUES (%s, %s, %s, 1, 'key', %s, 1)", PAYS)
    cursor.executemany("INSERT INTO goods (id, group_id, gd_name, actual_price, type) VALUES (%s, 1, %s, 10, %s)", GOODS)
    numbers = list({"".join(rng.choices(ALPHABET, k=16)) for _ in range(count + count // 100 + 10)})[:count]
    batch = 2000
    for start in range(0, count, batch):
        rows = []
        for n, order_sn in enumerate(numbers[start:start + batch], start):
            goods_id, name, kind = GOODS[n % len(GOODS)]
            codes = "\r\n".join(f"CARD-{n:08d}-{i}" for i in range(1 + n % 3)) if kind == 1 else "账号:13800000000"
            day, second = 1 + n % 28, n % 86400
            created = f"2026-11-{day:02d} {second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}"
            rows.append((order_sn, goods_id, f"{name} x 1", kind, "49.90", "pw" if n % 2 else "", f"u{n}@example.com",
                         codes, PAYS[n % len(PAYS)][0], "203.0.113.1", f"2026{n:016d}", rng.choice(STATUSES),
                         created, created))
        cursor.executemany(
            "INSERT INTO orders (order_sn, goods_id, title, type, actual_price, search_pwd, email, info, pay_id, "
            "buy_ip, trade_no, status, created_at, updated_at) VALUES "
            "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)", rows)  # PyMySQL sends one multi-row INSERT
    connection.close()
    return numbers


async def measure(url: str, numbers: list[str], lookups: int, concurrency: int, pool: int,
                  rng: random.Random) -> tuple[float, list[float], int]:
    shop = DujiaokaOrders(DujiaokaConfig(url=url, pool_size=pool))
    targets = [rng.choice(numbers) if rng.random() < 0.9 else "NOSUCHORDER" + str(i).zfill(5) for i in range(lookups)]
    latencies: list[float] = []
    found = 0
    queue = iter(targets)

    async def worker() -> None:
        nonlocal found
        for order_no in queue:
            began = time.perf_counter()
            order = await shop.get(order_no)
            latencies.append(time.perf_counter() - began)
            found += order is not None

    try:
        await shop.get(numbers[0])  # warm the pool's first connection
        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    finally:
        await shop.close()
    return elapsed, latencies, found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", default=os.environ.get("REFUNDBOT_TEST_MYSQL", "mysql://root@127.0.0.1:3306"))
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--lookups", type=int, default=4_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--pool", type=int, default=8, help="[orders.dujiaoka] pool_size")
    parser.add_argument("--seed", type=int, default=16)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    database = f"refundbot_bench_{os.getpid()}"
    admin = connect(args.server)
    admin.cursor().execute(f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4")
    try:
        began = time.perf_counter()
        numbers = load(args.server, database, args.orders, rng)
        loaded = time.perf_counter() - began
        print(f"loaded {len(numbers):,} dujiaoka orders in {loaded:.1f} s ({len(numbers) / loaded:,.0f} rows/s)")
        url = make_url(args.server).set(drivername="mysql+aiomysql", database=database).render_as_string(hide_password=False)
        elapsed, latencies, found = asyncio.run(measure(url, numbers, args.lookups, args.concurrency, args.pool, rng))
        ms = sorted(value * 1000 for value in latencies)
        p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
        print(f"{len(ms):,} lookups ({found:,} paid orders found), concurrency {args.concurrency}, pool {args.pool}: "
              f"{len(ms) / elapsed:,.0f} lookups/s, p50 {statistics.median(ms):.2f} ms, p99 {p99:.2f} ms, "
              f"max {ms[-1]:.2f} ms")
    finally:
        admin.cursor().execute(f"DROP DATABASE IF EXISTS `{database}`")
        admin.close()


if __name__ == "__main__":
    main()
