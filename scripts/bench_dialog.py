"""Benchmark: N simulated customers file a whole refund case through the emulator, with refundbot on
aiogram and on python-telegram-bot (PTB); in the same run, a bare echo bot on each framework answers the
same mix of updates. Prints updates/s, p50/p99 latency and, per framework, the ratio refundbot / that
framework's own echo bot, then a summary of all four.

    .venv/bin/python scripts/bench_dialog.py --customers 200 --concurrency 20
    .venv/bin/python scripts/bench_dialog.py --frameworks ptb --profile /tmp/profile.txt

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
import shutil
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
# The bare echo bots, one per framework, with the same behaviour: every message is answered with its
# text and an inline "ok" button; a press is answered, then "pressed" is sent with the button.
# argv: the emulator's base URL, the token.
AIOGRAM_ECHO = '''
import asyncio, sys
from aiogram import Bot, Dispatcher
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

# concurrent_updates(256): aiogram's dispatcher runs every update as a task of its own with no limit
# (handle_as_tasks=True, tasks_concurrency_limit=None); PTB's default would handle one update at a
# time. 256 is PTB's own figure for `concurrent_updates(True)` and the limit refundbot's PTB runner
# uses (ChatSerialProcessor(256)), and with --concurrency 20 it is never reached: in effect unlimited,
# as on aiogram. Plain PTB processing (no per-chat ordering) like aiogram's; the driver has one update
# per chat in flight anyway.
PTB_ECHO = '''
import sys
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import ApplicationBuilder, CallbackQueryHandler, ContextTypes, MessageHandler, filters

KB = InlineKeyboardMarkup([[InlineKeyboardButton("ok", callback_data="ok")]])

async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = update.message
    await context.bot.send_message(message.chat_id, message.text or "got it", reply_markup=KB)

async def pressed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    await query.answer()
    await context.bot.send_message(query.message.chat.id, "pressed", reply_markup=KB)

base, token = sys.argv[1].rstrip("/"), sys.argv[2]
app = (ApplicationBuilder().token(token).base_url(f"{base}/bot").base_file_url(f"{base}/file/bot")
       .concurrent_updates(256).build())
app.add_handler(MessageHandler(filters.UpdateType.MESSAGE, echo))
app.add_handler(CallbackQueryHandler(pressed))
app.run_polling(timeout=1, allowed_updates=["message", "callback_query"])
'''

ECHO_BOTS = {"aiogram": AIOGRAM_ECHO, "ptb": PTB_ECHO}
FRAMEWORKS = tuple(ECHO_BOTS)


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


async def seed(url: str, customers: range) -> None:
    config = AppConfig.model_validate({"database": {"url": url}})
    database = await open_database(config)
    now = datetime.now(UTC)
    async with database.uow() as uow:
        for i in customers:
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
            assert last["text"].startswith("退款单 R"), last["text"]


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


async def run_bot(make_cmd, args: argparse.Namespace, echo: bool, offset: int = 0) -> dict:  # type: ignore[no-untyped-def]
    """One bot against a fresh emulator of its own: a closed-loop pass of `args.customers` customers,
    then an open-loop pass of as many others at half the rate the first one reached."""
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
        full_rate, full_lat, _ = await drive(base, range(offset, offset + n), args.concurrency, echo)
        half_rate, half_lat, half_steps = await drive(base, range(offset + n, offset + 2 * n), args.concurrency,
                                                      echo, rate=full_rate / 2)
        return {"updates_s": full_rate, "p50": pct(full_lat, 50), "p99": pct(full_lat, 99),
                "half_rate": half_rate, "half_p50": pct(half_lat, 50), "half_p99": pct(half_lat, 99),
                "half_steps": {k: pct(v, 99) for k, v in sorted(half_steps.items())}}
    finally:
        for process in (bot, emulator):
            process.send_signal(signal.SIGINT)  # py-spy writes its profile on SIGINT
            await process.wait()


def profile_path(path: str, framework: str) -> str:
    """--profile /tmp/p.txt records refundbot on PTB into /tmp/p-ptb.txt, on aiogram into /tmp/p-aiogram.txt."""
    p = Path(path)
    return str(p.with_name(f"{p.stem}-{framework}{p.suffix}"))


async def bench_framework(framework: str, args: argparse.Namespace, tmp: Path, index: int) -> dict[str, dict]:
    """refundbot on `framework`, then that framework's bare echo bot."""
    if args.database:  # one database for every refundbot of the run: each files its cases for other orders
        db, offset = args.database, index * 2 * args.customers
    else:
        db, offset = f"sqlite:///{tmp}/bench-{framework}.db", 0
    await seed(db, range(offset, offset + 2 * args.customers))
    echo_script = tmp / f"echo_{framework}.py"
    echo_script.write_text(ECHO_BOTS[framework], encoding="utf-8")

    def refundbot(base: str) -> list[str]:
        config = tmp / f"config-{framework}.toml"
        config.write_text(
            f'[telegram]\ntoken = "{TOKEN}"\napi_base = "{base}"\nframework = "{framework}"\npoll_timeout = 1\n'
            f'flood_max_updates = 1000\n[database]\nurl = "{db}"\n[storage]\nevidence_dir = "{tmp}/evidence-{framework}"\n',
            encoding="utf-8")
        command = [sys.executable, "-m", "bot", "run", "--config", str(config)]
        if args.profile:  # py-spy's flat profile of the bot process, for finding where time goes
            command = ["py-spy", "record", "--format", "raw", "-o", profile_path(args.profile, framework), "--"] + command
        return command

    def echo(base: str) -> list[str]:
        return [sys.executable, str(echo_script), base, TOKEN]

    results = {}
    for name, make_cmd in (("refundbot", refundbot), ("echo", echo)):
        results[name] = r = await run_bot(make_cmd, args, echo=name == "echo", offset=offset)
        print(f"  {framework} {name}: {r['updates_s']:.1f} updates/s, half-load p99 {r['half_p99']:.1f} ms",
              file=sys.stderr, flush=True)
    return results


STEP_NAMES = ("start", "reason", "continue", "describe", "photo", "done", "submit")


def report(framework: str, results: dict[str, dict]) -> None:
    print(f"\n{framework}")
    print(f"{'bot':<10} {'updates/s':>10} {'p50 ms':>8} {'p99 ms':>8} | half load: {'upd/s':>7} "
          f"{'p50 ms':>8} {'p99 ms':>8}")
    for name, r in results.items():
        print(f"{name:<10} {r['updates_s']:>10.1f} {r['p50']:>8.1f} {r['p99']:>8.1f} | "
              f"{'':>11}{r['half_rate']:>7.1f} {r['half_p50']:>8.1f} {r['half_p99']:>8.1f}")
    for name, r in results.items():
        print(f"{name} p99 by step at half load (ms): " + ", ".join(
            f"{STEP_NAMES[k - 1]} {v:.0f}" for k, v in r["half_steps"].items()))
    ratio = results["refundbot"]["updates_s"] / results["echo"]["updates_s"]
    print(f"ratio refundbot / echo on {framework}: {ratio:.2f}x (goal >= 0.5x); refundbot p99 at half load: "
          f"{results['refundbot']['half_p99']:.1f} ms (goal <= 50 ms)")


def summary(runs: dict[str, dict[str, dict]]) -> None:
    print(f"\n{'framework':<10} {'refundbot upd/s':>16} {'echo upd/s':>11} {'ratio':>6} | half-load p99 ms: "
          f"{'refundbot':>9} {'echo':>6}")
    for framework, results in runs.items():
        bot, echo = results["refundbot"], results["echo"]
        print(f"{framework:<10} {bot['updates_s']:>16.1f} {echo['updates_s']:>11.1f} "
              f"{bot['updates_s'] / echo['updates_s']:>5.2f}x | {'':>17}{bot['half_p99']:>9.1f} {echo['half_p99']:>6.1f}")
    if {"aiogram", "ptb"} <= runs.keys():
        print("ptb / aiogram, updates/s: refundbot {:.2f}x, echo {:.2f}x".format(
            *(runs["ptb"][name]["updates_s"] / runs["aiogram"][name]["updates_s"] for name in ("refundbot", "echo"))))


def frameworks_arg(value: str) -> list[str]:
    chosen = [f.strip() for f in value.split(",") if f.strip()]
    unknown = [f for f in chosen if f not in FRAMEWORKS]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"choose from {','.join(FRAMEWORKS)}, comma-separated")
    return list(dict.fromkeys(chosen))


async def main() -> None:
    gc.set_threshold(100_000, 50, 1000)  # the driver's own pauses are not the bot's latency either
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=200, help="customers per pass (7 updates each)")
    parser.add_argument("--concurrency", type=int, default=20, help="customers in flight at once")
    parser.add_argument("--frameworks", type=frameworks_arg, default=list(FRAMEWORKS),
                        help="which frameworks to measure, refundbot and echo bot on each (default: aiogram,ptb)")
    parser.add_argument("--no-pin", action="store_true", help="do not give the bot a core of its own")
    parser.add_argument("--database", help="an EMPTY database URL to use instead of temporary SQLite files")
    parser.add_argument("--profile", help="record each refundbot process with py-spy (raw format) into this "
                                          "file, with the framework added to its name: p.txt -> p-ptb.txt")
    args = parser.parse_args()
    if args.profile and shutil.which("py-spy") is None:
        parser.error("--profile needs py-spy on PATH (.venv/bin/pip install py-spy; PATH=$PWD/.venv/bin:$PATH)")
    global PIN
    PIN = PIN and not args.no_pin
    if PIN:
        os.sched_setaffinity(0, {TELEGRAM_CPU})

    with tempfile.TemporaryDirectory() as tmp:
        runs = {framework: await bench_framework(framework, args, Path(tmp), index)
                for index, framework in enumerate(args.frameworks)}

    print(f"\n{args.customers} customers x {STEPS} updates per pass, {args.concurrency} in flight, "
          f"{'PostgreSQL' if args.database and args.database.startswith('postgres') else 'SQLite'}, "
          f"{os.cpu_count()} cores{', bot pinned to its own core' if PIN else ''}")
    for framework, results in runs.items():
        report(framework, results)
    summary(runs)
    if args.profile:
        print("profiles: " + ", ".join(profile_path(args.profile, f) for f in runs))


if __name__ == "__main__":
    asyncio.run(main())
