"""Benchmark: does one worker's memory stay flat with the number of conversations? (issue 7)

One real refundbot worker process (`python -m bot run --config ...`) runs in webhook mode against the
emulator, on a fresh PostgreSQL database created for the run and dropped after it (--database: any
other EMPTY database URL, `sqlite` for a temporary SQLite file). This driver posts Telegram-shaped
updates straight to the worker's webhook (with the secret header), each from a chat never seen before,
one text message per chat, `--concurrency` in flight. Each message is an order number that does not
exist (--message hello: "你好" instead), so every update claims its update_id, creates a conversation
row, runs the machine (order lookup, then the question for the phone's last 4 digits that any order
not bound to the customer gets) and answers through the emulator's sendMessage (the emulator learns
each user just before their update, as Telegram knows whoever writes to a bot).

The worker's RSS (VmRSS from /proc/<pid>/status) is read after a warm-up, every --every chats and at
the end; the growth per conversation is counted from the warm-up on. At the end the database must
hold one conversation row and one update claim per chat sent.

    .venv/bin/python scripts/bench_memory.py --chats 20000
    .venv/bin/python scripts/bench_memory.py                      # 100,000 chats
    .venv/bin/python scripts/bench_memory.py --database sqlite --framework ptb --chats 20000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sandbox.client import EmulatorClient
from scripts.bench_dialog import QUIET_EMULATOR, TOKEN, free_port, wait_emulator
from storage.db import create_engine
from storage.models import ConversationRow, ProcessedUpdateRow

ADMIN_URL = os.environ.get("REFUNDBOT_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
USER_BASE = 600_000_000
GOAL_BYTES = 1024


# -- the database -----------------------------------------------------------------------------------

async def _admin(statement: str) -> None:
    import asyncpg

    url = make_url(ADMIN_URL)
    connection = await asyncpg.connect(host=url.host, port=url.port or 5432, user=url.username,
                                       password=url.password, database=url.database, timeout=5)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


async def create_postgres() -> tuple[str, str]:
    name = f"refundbot_bench_memory_{os.getpid()}_{secrets.token_hex(3)}"
    await _admin(f'CREATE DATABASE "{name}" TEMPLATE template0')
    url = make_url(ADMIN_URL).set(drivername="postgresql", database=name)
    return name, url.render_as_string(hide_password=False)


async def drop_postgres(name: str) -> None:
    await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def count_rows(url: str) -> tuple[int, int]:
    """(conversation rows, update claims)."""
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            conversations = await connection.scalar(select(func.count()).select_from(ConversationRow))
            claims = await connection.scalar(select(func.count()).select_from(ProcessedUpdateRow))
    finally:
        await engine.dispose()
    return int(conversations or 0), int(claims or 0)


# -- the worker -------------------------------------------------------------------------------------

def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def write_config(path: Path, *, api_base: str, port: int, secret: str, database: str, framework: str,
                 evidence_dir: Path) -> None:
    path.write_text(
        "[telegram]\n"
        f'token = "{TOKEN}"\napi_base = "{api_base}"\nframework = "{framework}"\nmode = "webhook"\n'
        f'listen_host = "127.0.0.1"\nlisten_port = {port}\n'
        f'webhook_url = "http://127.0.0.1:{port}/telegram/webhook"\nwebhook_secret = "{secret}"\n'
        f'[database]\nurl = "{database}"\n'
        f'[storage]\nevidence_dir = "{evidence_dir}"\n'
        # Warnings and errors only: an INFO line per update would be most of the worker's work.
        '[log]\nlevel = "WARNING"\n',
        encoding="utf-8")


async def wait_webhook(client: EmulatorClient, worker: asyncio.subprocess.Process, timeout: float = 60) -> None:
    """Until the worker has registered its webhook with the emulator (its web app is up by then)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.returncode is not None:
            raise RuntimeError(f"the worker exited with {worker.returncode} before it was ready")
        if await client.calls("setWebhook"):
            return
        await asyncio.sleep(0.2)
    raise TimeoutError("the worker did not register its webhook")


# -- the driver -------------------------------------------------------------------------------------

def message_text(kind: str, i: int) -> str:
    # KM + 14 digits matches [orders] number_pattern; no order of the run has such a number.
    return "你好" if kind == "hello" else f"KM2099{i:010d}"


def update(i: int, kind: str) -> dict[str, Any]:
    user = {"id": USER_BASE + i, "is_bot": False, "first_name": f"Bench{i}", "language_code": "zh-hans"}
    return {"update_id": i + 1, "message": {
        "message_id": 1, "date": int(time.time()), "from": user,
        "chat": {"id": USER_BASE + i, "type": "private", "first_name": user["first_name"]},
        "text": message_text(kind, i)}}


class Driver:
    def __init__(self, http: aiohttp.ClientSession, emulator: str, webhook: str, secret: str, kind: str,
                 concurrency: int, rate: float | None) -> None:
        self.http, self.emulator, self.webhook, self.kind = http, emulator, webhook, kind
        self.headers = {"X-Telegram-Bot-Api-Secret-Token": secret}
        self.gate = asyncio.Semaphore(concurrency)
        self.interval = 1 / rate if rate else 0.0
        self._next_at = time.monotonic()
        self.sent = 0
        self.failures: list[str] = []

    async def _pace(self) -> None:
        if self.interval:
            self._next_at = max(self._next_at + self.interval, time.monotonic() - 1)
            await asyncio.sleep(max(0.0, self._next_at - time.monotonic()))

    async def one(self, i: int) -> None:
        async with self.gate:
            await self._pace()
            user_id = USER_BASE + i
            # The emulator must know the chat the worker answers in (Telegram knows every user who wrote).
            async with self.http.post(f"{self.emulator}/control/users", json={
                    "user_id": user_id, "first_name": f"Bench{i}", "language_code": "zh-hans"}) as resp:
                if resp.status != 200:
                    self.failures.append(f"register {user_id}: HTTP {resp.status}")
                    return
            for attempt in range(3):  # Telegram redelivers a failed update: so does this driver
                async with self.http.post(self.webhook, json=update(i, self.kind), headers=self.headers) as resp:
                    if resp.status == 200:
                        self.sent += 1
                        return
                    text = await resp.text()
                if attempt == 2:
                    self.failures.append(f"update {i + 1}: HTTP {resp.status} {text[:80]}")
                await asyncio.sleep(0.5)

    async def send(self, chats: Iterable[int]) -> None:
        await asyncio.gather(*(self.one(i) for i in chats))


def checkpoints(warmup: int, chats: int, every: int) -> list[int]:
    """The numbers of chats handled at which RSS is read: after the warm-up, every `every`, the end."""
    total = warmup + chats
    points = [warmup, *range(warmup + every, total, every), total]
    return sorted(set(points))


async def run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    pg_name = ""
    if args.database in (None, "postgres", "postgresql"):
        pg_name, database = await create_postgres()
        shown = f"PostgreSQL (fresh database {pg_name}, dropped at the end)"
    elif args.database == "sqlite":
        database = ""
        shown = "SQLite (temporary file)"
    else:
        database, shown = args.database, make_url(args.database).render_as_string(hide_password=True)
    emulator = worker = None
    tmp = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    try:
        database = database or f"sqlite:///{tmp}/bench-memory.db"
        emulator_port, worker_port, secret = free_port(), free_port(), secrets.token_hex(16)
        base = f"http://127.0.0.1:{emulator_port}"
        emulator = await asyncio.create_subprocess_exec(
            sys.executable, "-c", QUIET_EMULATOR, "--port", str(emulator_port),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        await wait_emulator(base)
        config, log_path = tmp / "config.toml", tmp / "worker.log"
        write_config(config, api_base=base, port=worker_port, secret=secret, database=database,
                     framework=args.framework, evidence_dir=tmp / "evidence")
        log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            worker = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", "run", "--config", str(config),
                cwd=str(ROOT), stdout=asyncio.subprocess.DEVNULL, stderr=log_fd)
        finally:
            os.close(log_fd)
        async with EmulatorClient(base) as client:
            await wait_webhook(client, worker)
        ready = time.monotonic()
        print(f"worker pid {worker.pid} ({args.framework}, webhook) on {shown}; ready in "
              f"{ready - started:.1f} s; RSS at start {rss_bytes(worker.pid) / 2**20:.1f} MB", flush=True)
        print(f"{args.warmup:,} warm-up chats, then {args.chats:,} more, one '{message_text(args.message, 0)}'-"
              f"style message each, {args.concurrency} in flight"
              + (f", at most {args.rate:g}/s" if args.rate else ""), flush=True)

        rows: list[tuple[int, int, float]] = []  # (chats handled, RSS bytes, seconds since ready)
        connector = aiohttp.TCPConnector(limit=args.concurrency * 2)
        async with aiohttp.ClientSession(connector=connector) as http:
            driver = Driver(http, base, f"http://127.0.0.1:{worker_port}/telegram/webhook", secret,
                            args.message, args.concurrency, args.rate)
            done = 0
            print(f"\n{'chats handled':>14} {'RSS MB':>9} {'bytes/conv since warm-up':>25} "
                  f"{'bytes/conv this block':>22} {'chats/s':>8}", flush=True)
            for point in checkpoints(args.warmup, args.chats, args.every):
                block_started = time.monotonic()
                await driver.send(range(done, point))
                block_rate = (point - done) / max(time.monotonic() - block_started, 1e-9)
                done = point
                if worker.returncode is not None:
                    raise RuntimeError(f"the worker exited with {worker.returncode}")
                await asyncio.sleep(args.settle)  # let the worker finish what follows the answers
                rss = rss_bytes(worker.pid)
                rows.append((done, rss, time.monotonic() - ready))
                since = block = ""
                if len(rows) > 1:  # the block's own figure tells a plateau from a steady leak
                    since = f"{(rss - rows[0][1]) / (done - rows[0][0]):.0f}"
                    block = f"{(rss - rows[-2][1]) / (done - rows[-2][0]):.0f}"
                print(f"{done:>14,} {rss / 2**20:>9.1f} {since:>25} {block:>22} {block_rate:>8.0f}", flush=True)
        elapsed = time.monotonic() - ready

        growth = (rows[-1][1] - rows[0][1]) / max(rows[-1][0] - rows[0][0], 1)
        slope = least_squares(rows)
        total = args.warmup + args.chats
        conversations, claims = await count_rows(database)
        warnings = [line for line in log_path.read_text(encoding="utf-8", errors="replace").splitlines()
                    if line.strip()]
        print(f"\n{total:,} chats in {elapsed:.0f} s ({total / elapsed:.0f} chats/s); "
              f"peak RSS (VmHWM) {hwm_bytes(worker.pid) / 2**20:.1f} MB")
        print(f"least-squares slope over the samples: {slope:.0f} bytes/conversation")
        print(f"RSS growth per conversation: {growth:.0f} bytes (goal ≤ {GOAL_BYTES})")
        print(f"conversation rows {conversations:,}, update claims {claims:,}, expected {total:,} each; "
              f"failed updates {len(driver.failures)}; worker log lines (WARNING and up) {len(warnings)}")
        for failure in driver.failures[:5]:
            print(f"  failed: {failure}")
        for line in warnings[:5]:
            print(f"  log: {line[:200]}")
        lost = conversations != total or claims != total or driver.failures
        if lost:
            print("LOST UPDATES: the database does not hold one conversation and one claim per chat")
        return 1 if lost else 0
    finally:
        for process in (worker, emulator):
            if process is not None and process.returncode is None:
                process.send_signal(signal.SIGINT)
                try:
                    await asyncio.wait_for(process.wait(), 20)
                except TimeoutError:
                    process.kill()
                    await process.wait()
        if pg_name:
            await drop_postgres(pg_name)
        shutil.rmtree(tmp, ignore_errors=True)
        print(f"total time {time.monotonic() - started:.0f} s", flush=True)


def hwm_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def least_squares(rows: list[tuple[int, int, float]]) -> float:
    """Bytes per chat fitted through every sample (less swayed by where the last one fell)."""
    if len(rows) < 2:
        return 0.0
    xs, ys = [r[0] for r in rows], [r[1] for r in rows]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chats", type=int, default=100_000, help="chats after the warm-up (default 100,000)")
    parser.add_argument("--warmup", type=int, default=2_000, help="chats before the first RSS reading")
    parser.add_argument("--every", type=int, default=10_000, help="read RSS every this many chats")
    parser.add_argument("--concurrency", type=int, default=32, help="updates in flight at once")
    parser.add_argument("--rate", type=float, help="at most this many updates per second (default: no cap)")
    parser.add_argument("--settle", type=float, default=1.0, help="seconds to wait before each RSS reading")
    parser.add_argument("--framework", choices=("aiogram", "ptb"), default="aiogram")
    parser.add_argument("--message", choices=("order", "hello"), default="order",
                        help="order: a well-formed order number that does not exist; hello: 你好")
    parser.add_argument("--database", help="postgres (default: a fresh database, dropped after), sqlite (a "
                                           "temporary file) or an EMPTY database URL")
    args = parser.parse_args()
    sys.exit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
