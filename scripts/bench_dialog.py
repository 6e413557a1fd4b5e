"""Benchmark: N simulated customers file a whole refund case through the emulator; in the same run, a
bare aiogram echo bot answers the same mix of updates. Prints updates/s, p50/p99 latency and the ratio.

    .venv/bin/python scripts/bench_dialog.py --customers 200 --concurrency 20

Each process is separate (emulator, bot, this driver), as in production. Latency is the time from a
customer's update entering the emulator to the bot's answering message appearing there. The second
pass of each bot runs open-loop at half the throughput the first pass reached ("half load").
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import io
import os
import signal
import socket
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.app import open_database
from bot.config import AppConfig
from dialogs.domain import DeliveryStatus, Order, PaymentChannel, ProductKind
from sandbox.client import EmulatorClient

TOKEN = "7000000001:bench-token"
USER_BASE = 500000
ECHO_BOT = '''
import asyncio, sys
from aiogram import Bot, Dispatcher, F
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

KB = InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text="ok", callback_data="ok")]])
dp = Dispatcher()

@dp.message()
async def echo(message: Message) -> None:
    await message.answer(message.text or "got it", reply_markup=KB)

@dp.callback_query()
async def pressed(query: CallbackQuery) -> None:
    await query.answer()
    await query.message.answer("pressed", reply_markup=KB)

async def main() -> None:
    bot = Bot(sys.argv[2], session=AiohttpSession(api=TelegramAPIServer.from_base(sys.argv[1])))
    await dp.start_polling(bot, polling_timeout=1, handle_signals=True)

asyncio.run(main())
'''


QUIET_EMULATOR = (
    "import gc, runpy, sys; gc.set_threshold(100_000, 50, 1000); "
    "sys.argv = ['sandbox'] + sys.argv[1:]; runpy.run_module('sandbox', run_name='__main__')"
)


# With two cores or more the bot gets one to itself and "Telegram" (emulator and this driver) the
# other, as in production where Telegram runs elsewhere; otherwise their scheduling noise lands in
# the bot's tail latency. --no-pin shares the cores instead.
BOT_CPU, TELEGRAM_CPU = 0, 1
PIN = (os.cpu_count() or 1) >= 2 and sys.platform.startswith("linux")


def pinned(cpu: int) -> list[str]:
    return ["taskset", "-c", str(cpu)] if PIN else []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def png(i: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (320, 240), (i * 37 % 256, i * 91 % 256, i * 13 % 256)).save(buffer, format="PNG")
    return buffer.getvalue()


def order_no(i: int) -> str:
    return f"KM20261199{i:06d}"


async def seed(url: str, customers: int) -> None:
    config = AppConfig.model_validate({"database": {"url": url}})
    database = await open_database(config)
    now = datetime.now(UTC)
    async with database.uow() as uow:
        for i in range(customers):
            await uow.orders.upsert(Order(
                order_no=order_no(i), buyer_phone="13800000000", buyer_telegram_id=USER_BASE + i,
                product_name="王者荣耀点券卡 100元", product_kind=ProductKind.CARD_CODE, amount=Decimal(100),
                payment_channel=PaymentChannel.ALIPAY, paid_at=now - timedelta(hours=1),
                delivered_at=now - timedelta(minutes=50), delivery_status=DeliveryStatus.DELIVERED,
                card_redeemed=False))
        await uow.commit()
    await database.dispose()


class Driver:
    def __init__(self, client: EmulatorClient, echo: bool) -> None:
        self.client, self.echo = client, echo
        self.latencies: list[float] = []
        self.by_step: dict[int, list[float]] = {}
        self.screenshots: dict[int, bytes] = {}
        self._step = 0

    async def step(self, user: int, seen: int, send) -> tuple[int, dict]:  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        await send()
        while True:
            new = await self.client.messages(user, after=seen, timeout=10)
            # The case's status card comes from refundbot's notification relay, not as the answer.
            answers = [m for m in new if not (m.get("text") or "").startswith("📋")]
            if answers:
                break
            seen = max([seen] + [m["message_id"] for m in new])
        self.latencies.append(time.perf_counter() - started)
        self.by_step.setdefault(self._step, []).append(self.latencies[-1])
        return max(m["message_id"] for m in new), answers[-1]

    @staticmethod
    def token(message: dict, index: int = 0) -> str:
        return message["reply_markup"]["inline_keyboard"][index][0]["callback_data"]

    async def customer(self, i: int, pace: asyncio.Semaphore | None) -> None:
        user, c = USER_BASE + i, self.client
        screenshot = self.screenshots[i]
        await c.create_user(user, f"bench{i}", language_code="zh-hans")
        seen, step = 0, 0

        async def go(send):  # type: ignore[no-untyped-def]
            nonlocal seen, step
            step += 1
            self._step = step
            if pace is not None:
                await pace.acquire()
            seen, last = await self.step(user, seen, send)
            return last

        last = await go(lambda: c.send_text(user, f"/start order_{order_no(i)}"))
        for _ in range(2):  # the reason, then "continue"
            last = await go(lambda m=last: c.press(user, m["message_id"], data=self.token(m)))
        last = await go(lambda: c.send_text(user, "输入卡密时游戏提示卡号无效，错误码1002"))
        last = await go(lambda: c.send_photo(user, screenshot))
        for _ in range(2):  # done, then submit
            last = await go(lambda m=last: c.press(user, m["message_id"], data=self.token(m)))
        if not self.echo:
            assert last["text"].startswith("退款申请 R"), last["text"]


STEPS = 7


async def drive(base_url: str, customers: range, concurrency: int, echo: bool,
                rate: float | None = None) -> tuple[float, list[float], dict[int, list[float]]]:
    async with EmulatorClient(base_url) as client:
        driver = Driver(client, echo)
        # Made before the clock starts: encoding pictures is this process's work, not the bot's.
        driver.screenshots = {i: png(i) for i in customers}
        pace: asyncio.Semaphore | None = None
        feeder: asyncio.Task[None] | None = None
        if rate:
            pace = asyncio.Semaphore(0)

            async def feed() -> None:  # open loop: release one update every 1/rate seconds
                interval, next_at = 1 / rate, time.perf_counter()
                while True:
                    next_at += interval
                    await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
                    pace.release()

            feeder = asyncio.create_task(feed())
        gate = asyncio.Semaphore(concurrency)

        async def one(i: int) -> None:
            async with gate:
                await driver.customer(i, pace)

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in customers))
        elapsed = time.perf_counter() - started
        if feeder:
            feeder.cancel()
        return len(customers) * STEPS / elapsed, driver.latencies, driver.by_step


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[q - 1] * 1000 if len(values) > 1 else values[0] * 1000


async def start(cmd: list[str], env: dict[str, str] | None = None) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.DEVNULL,
                                                stderr=asyncio.subprocess.DEVNULL, env=env or os.environ.copy())


async def wait_ready(client: EmulatorClient, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            calls = await client.calls("getUpdates")
            if calls:
                return
        except Exception:  # noqa: BLE001, S110 - not listening yet
            pass
        await asyncio.sleep(0.2)
    raise TimeoutError("bot did not start polling")


async def wait_emulator(base: str) -> None:
    for _ in range(100):
        try:
            async with EmulatorClient(base) as client:
                await client.state()
                return
        except Exception:  # noqa: BLE001 - not listening yet
            await asyncio.sleep(0.1)
    raise TimeoutError("emulator did not start")


async def run_bot(name: str, make_cmd, args: argparse.Namespace, offset: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # The emulator keeps every message of the run in memory; its collector's full passes grow with
    # them and would show up as the bot's latency. Telegram has no such pauses: tune them away.
    emulator = await start(pinned(TELEGRAM_CPU) + [sys.executable, "-c", QUIET_EMULATOR, "--port", str(port)])
    await wait_emulator(base)
    bot = await start(pinned(BOT_CPU) + make_cmd(base))
    try:
        async with EmulatorClient(base) as client:
            await wait_ready(client)
        n = args.customers
        full_rate, full_lat, _ = await drive(base, range(offset, offset + n), args.concurrency, name == "echo")
        half_rate, half_lat, half_steps = await drive(base, range(offset + n, offset + 2 * n), args.concurrency,
                                          name == "echo", rate=full_rate / 2)
        return {"updates_s": full_rate, "p50": pct(full_lat, 50), "p99": pct(full_lat, 99),
                "half_rate": half_rate, "half_p50": pct(half_lat, 50), "half_p99": pct(half_lat, 99),
                "half_steps": {k: pct(v, 99) for k, v in sorted(half_steps.items())}}
    finally:
        for process in (bot, emulator):
            process.send_signal(signal.SIGINT)  # py-spy writes its profile on SIGINT
            await process.wait()


async def main() -> None:
    gc.set_threshold(100_000, 50, 1000)  # the driver's own pauses are not the bot's latency either
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=200, help="customers per pass (7 updates each)")
    parser.add_argument("--concurrency", type=int, default=20, help="customers in flight at once")
    parser.add_argument("--no-pin", action="store_true", help="do not give the bot a core of its own")
    parser.add_argument("--database", help="an EMPTY database URL to use instead of a temporary SQLite file")
    parser.add_argument("--profile", help="record the refundbot process with py-spy into this file")
    args = parser.parse_args()
    global PIN
    PIN = PIN and not args.no_pin
    if PIN:
        os.sched_setaffinity(0, {TELEGRAM_CPU})

    with tempfile.TemporaryDirectory() as tmp:
        db = args.database or f"sqlite:///{tmp}/bench.db"
        await seed(db, 2 * args.customers)
        script = Path(tmp) / "echo_bot.py"
        script.write_text(ECHO_BOT, encoding="utf-8")

        def refundbot(base: str) -> list[str]:
            config = Path(tmp) / "config.toml"
            config.write_text(
                f'[telegram]\ntoken = "{TOKEN}"\napi_base = "{base}"\npoll_timeout = 1\nflood_max_updates = 1000\n'
                f'[database]\nurl = "{db}"\n[storage]\nevidence_dir = "{tmp}/evidence"\n', encoding="utf-8")
            command = [sys.executable, "-m", "bot", "run", "--config", str(config)]
            if args.profile:  # py-spy's flat profile of the bot process, for finding where time goes
                command = ["py-spy", "record", "--format", "raw", "-o", args.profile, "--"] + command
            return command

        def echo(base: str) -> list[str]:
            return [sys.executable, str(script), base, TOKEN]

        results = {"refundbot": await run_bot("refundbot", refundbot, args, offset=0),
                   "echo": await run_bot("echo", echo, args, offset=0)}

    print(f"\n{args.customers} customers x {STEPS} updates per pass, {args.concurrency} in flight, "
          f"{'PostgreSQL' if args.database and args.database.startswith('postgres') else 'SQLite'}, "
          f"{os.cpu_count()} cores{', bot pinned to its own core' if PIN else ''}")
    print(f"{'bot':<10} {'updates/s':>10} {'p50 ms':>8} {'p99 ms':>8} | half load: {'upd/s':>7} "
          f"{'p50 ms':>8} {'p99 ms':>8}")
    for name, r in results.items():
        print(f"{name:<10} {r['updates_s']:>10.1f} {r['p50']:>8.1f} {r['p99']:>8.1f} | "
              f"{'':>11}{r['half_rate']:>7.1f} {r['half_p50']:>8.1f} {r['half_p99']:>8.1f}")
    steps = ("start", "reason", "continue", "describe", "photo", "done", "submit")
    for name, r in results.items():
        print(f"{name} p99 by step at half load (ms): " + ", ".join(
            f"{steps[k - 1]} {v:.0f}" for k, v in r["half_steps"].items()))
    ratio = results["refundbot"]["updates_s"] / results["echo"]["updates_s"]
    print(f"ratio refundbot / echo: {ratio:.2f}x (goal >= 0.5x); refundbot p99 at half load: "
          f"{results['refundbot']['half_p99']:.1f} ms (goal <= 50 ms)")


if __name__ == "__main__":
    asyncio.run(main())
