"""The wiring: configuration in, a running refundbot out. The only module that knows every part."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from bot.api import PlatformApi, add_api_routes
from bot.config import AppConfig
from bot.dashboard import Dashboard
from bot.demo import AGENTS, CUSTOMERS, DESK_TITLE, demo_orders
from bot.evidence import EvidenceIntake, EvidenceSweeper, Purge
from bot.http_errors import ApiRunner
from bot.metrics import Metrics
from bot.pacing import RedisLimiter
from bot.pacing.flood import SharedFloodGuard
from bot.rails import build_gateways
from bot.rails.wechat_notify import add_wechat_routes
from bot.redeem import RedeemCheckedOrders, checked_lookup
from bot.sending import Sender
from bot.shops import build_order_source
from bot.shops.dujiao_next import add_dujiao_next_routes
from bot.shops.hooks import add_shop_routes
from bot.transport import Runner
from bot.workers.base import Sweep
from bot.workers.desk_idle import DeskSweeper
from bot.workers.housekeeping import Chore, Prune
from bot.workers.reconcile import DailyReconcile
from bot.workers.refunds import RefundWorker
from bot.workers.relay import Relay
from bot.workers.timers import TimerSweeper
from dialogs import roster
from dialogs.clock import utcnow
from dialogs.ports import FloodCheck, RefundGateway
from dialogs.service import FloodGuard, RefundService
from storage import migrate
from storage.maintenance import wipe
from storage.uow import Database

log = logging.getLogger(__name__)

SANDBOX_TOKEN = "7000000001:sandbox-token"


class StartupError(Exception):
    """Something the operator must fix before the bot can start; the message says what."""


class PortInUse(StartupError):
    """A port the config names is taken: another refundbot, most likely."""

    def __init__(self, port: int, setting: str) -> None:
        super().__init__(f"port {port} is in use (another refundbot?): stop it or set {setting}")


@contextlib.asynccontextmanager
async def listening(port: int, setting: str) -> AsyncIterator[None]:
    """Turn "address already in use" while binding `port` into PortInUse, naming the setting to change."""
    try:
        yield
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise PortInUse(port, setting) from None
        raise


async def open_database(config: AppConfig) -> Database:
    """Bring the schema up to date (or refuse to start, with the command that would)."""
    url = config.database.url
    state = await migrate.check_schema(url)
    if not state.ok:
        if not state.upgradable:
            raise StartupError(state.message)
        if not config.database.auto_upgrade:
            raise StartupError(
                f"{state.message}. Run `refundbot db upgrade` first (or set [database] auto_upgrade = true)."
            )
        log.info("upgrading the database: %s", state.message)
        await migrate.upgrade_async(url)
    return Database.from_url(url)


async def seed_staff(database: Database, config: AppConfig) -> int:
    """[desk] agents / supervisors / aliases the database has never seen join its staff (dialogs.roster:
    someone removed in the app stays removed). Returns how many joined."""
    async with database.uow() as uow:
        added = await roster.seed(uow, config.core.desk, utcnow())
        await uow.commit()
    if added:
        log.debug("staff: %d member(s) from [desk] joined the database", len(added))
    return len(added)


async def seed_demo_orders(database: Database, now: datetime | None = None) -> int:
    async with database.uow() as uow:
        for order in demo_orders(now or utcnow()):
            await uow.orders.upsert(order, facts="keep")  # re-seeding never rewrites an order with cases
        await uow.commit()
    return len(demo_orders(now or utcnow()))


@dataclass
class Core:
    """Everything of refundbot but the Telegram library: the database and the service on it."""

    database: Database
    service: RefundService
    intake: EvidenceIntake


@contextlib.asynccontextmanager
async def opened_core(config: AppConfig) -> AsyncIterator[tuple[Core, dict[str, RefundGateway]]]:
    """Open the database and build the service, and the refund gateways the refund workers use (one per
    name: the default and each of `[platform.rails]`)."""
    async with contextlib.AsyncExitStack() as stack:
        try:
            gateways = build_gateways(config.platform)
            order_lookup = build_order_source(config)
        except ValueError as exc:
            raise StartupError(str(exc)) from exc
        for gateway in gateways.values():
            stack.push_async_callback(gateway.close)
        if order_lookup is not None:
            stack.push_async_callback(order_lookup.close)
        database = await open_database(config)
        stack.push_async_callback(database.dispose)
        await seed_staff(database, config)
        try:  # the redeemed check wraps whichever lookup the service asks (bot/redeem.py)
            orders = checked_lookup(order_lookup, config.orders.redeem_check, database.uow)
        except ValueError as exc:
            raise StartupError(str(exc)) from exc
        if isinstance(orders, RedeemCheckedOrders):
            stack.push_async_callback(orders.close)
        service = RefundService(
            database.uow, config.core,
            flood_limit=config.telegram.flood_max_updates, flood_window=config.telegram.flood_window_seconds,
            gateway=config.platform.gateway, orders=orders, rails=config.platform.rails,
            shared_flood=shared_flood(config, stack),
        )
        yield Core(database, service, EvidenceIntake(config.storage.evidence_dir, config.policy)), gateways


def shared_flood(config: AppConfig, stack: contextlib.AsyncExitStack) -> Callable[[FloodGuard], FloodCheck] | None:
    """With `[redis] url`, the flood guard counts each chat across the workers (bot.pacing.flood)."""
    limiter = RedisLimiter.from_config(config.redis)
    if limiter is None:
        return None
    stack.push_async_callback(limiter.close)
    return lambda local: SharedFloodGuard(limiter, local)


@dataclass
class Workers:
    """What runs beside the updates: the notification relay, the deadline sweeper, the refund worker,
    the desk's idle clock (and the housekeeping chores, bot.workers.housekeeping), and the platform API
    they answer to."""

    relay: Relay
    sweeper: TimerSweeper
    refunds: list[RefundWorker]  # one per gateway in use
    desk_sweeper: DeskSweeper
    api: PlatformApi


@contextlib.asynccontextmanager
async def running_workers(core: Core, gateways: Mapping[str, RefundGateway], config: AppConfig, sender: Sender,
                          handled: Callable[[], int]) -> AsyncIterator[Workers]:
    """Start the background workers on `sender` (the adapter's Bot); stop them on exit: they finish
    the call in flight and release what they hold."""
    database, service = core.database, core.service
    # A send gives up well inside the 10 s the workers get to stop (then the row goes back to the outbox).
    limiter = RedisLimiter.from_config(config.redis)  # None without [redis] url: each worker paces alone
    relay = Relay(database.uow, sender, config.relay, config.core, send_timeout=config.relay.send_timeout_seconds, limiter=limiter)
    sweeper = TimerSweeper(database.uow, service.workflow)
    # The worker's own cap on a gateway call sits just past the HTTP client's timeout.
    call_timeout = config.platform.timeout_seconds + 5
    refunds = [RefundWorker(database.uow, service.workflow, gateway, call_timeout=call_timeout,
                            lease_seconds=max(300.0, call_timeout + 60)) for gateway in gateways.values()]
    desk_sweeper = DeskSweeper(database.uow, service.desk)
    metrics = Metrics()
    metrics.count_updates_from(handled)
    metrics.count_send_errors_from(lambda: relay.stats.errors)
    metrics.count_shared_limit_fallbacks_from(lambda: relay.stats.shared_fallbacks)
    api = PlatformApi(database.uow, service.workflow, secret=config.platform.secret,
                      max_clock_skew=config.platform.max_clock_skew_seconds, metrics=metrics)
    stop_workers = asyncio.Event()
    sweeps: list[Sweep[Any]] = [relay, sweeper, *refunds, desk_sweeper,
                                Prune(service.forget_old_claims, "update claims older than Telegram's retention"),
                                Chore(database.checkpoint, "SQLite checkpoint", every=1.0),
                                Prune(api.forget_old_nonces, "replay ledger"),
                                Prune(evidence_sweeper(config, database).sweep_count,
                                      "orphaned evidence rows and files",
                                      every=config.storage.evidence_sweep_minutes * 60)]
    if config.platform.reconcile_at:  # yesterday's refunds against the rails, once a day
        sweeps.append(DailyReconcile(database, gateways, at=config.platform.reconcile_at,
                                     timezone=config.i18n.timezone, supervisors_chat_id=config.sla.supervisors_chat_id,
                                     call_timeout=call_timeout))
    workers = [asyncio.create_task(sweep.run(stop_workers)) for sweep in sweeps]
    try:
        yield Workers(relay, sweeper, refunds, desk_sweeper, api)
    finally:
        stop_workers.set()
        _, pending = await asyncio.wait(workers, timeout=10)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if limiter is not None:
            await limiter.close()


def make_runner(config: AppConfig, token: str, api_base: str, core: Core) -> Runner:
    """The adapter [telegram] framework names (imported only then: each costs import time)."""
    args = (token, api_base, core.service, core.intake, config.i18n.default_locale, config.telegram.poll_timeout)
    if config.telegram.framework == "ptb":
        from bot.ptb_adapter import PtbRunner

        return PtbRunner(*args)
    from bot.aiogram_adapter import AiogramRunner

    return AiogramRunner(*args)


@dataclass
class Running:
    runner: Runner
    database: Database
    service: RefundService
    api_base: str
    relay: Relay
    sweeper: TimerSweeper
    refunds: RefundWorker
    api: PlatformApi
    webhook_url: str = ""
    web_url: str = ""  # where the platform API, /healthz and /metrics answer
    desk_sweeper: DeskSweeper | None = None  # the desk's idle clock (runs only with a [desk] chat_id)


@contextlib.asynccontextmanager
async def running_bot(config: AppConfig, token: str, api_base: str) -> AsyncIterator[Running]:
    """Open the database, build the service, the adapter and the background workers (notification
    relay, deadline sweeper, refund worker); stop and close them on exit."""
    async with opened_core(config) as (core, gateways):
        runner = make_runner(config, token, api_base, core)
        try:
            await runner.start()
            async with running_workers(core, gateways, config, runner.sender, lambda: runner.handled) as w:
                yield Running(runner, core.database, core.service, api_base, w.relay, w.sweeper, w.refunds,
                              w.api, desk_sweeper=w.desk_sweeper)
        finally:
            await runner.close()


def evidence_sweeper(config: AppConfig, database: Database) -> EvidenceSweeper:
    return EvidenceSweeper(database.uow, config.storage.evidence_dir,
                           timedelta(days=config.storage.draft_evidence_days), purge=retention(config, database))


def retention(config: AppConfig, database: Database) -> Purge | None:
    """`[storage] keep_days`: purge closed cases' evidence and phone numbers (None: keep forever)."""
    keep_days = config.storage.keep_days
    if not keep_days:
        return None

    async def purge(now: datetime) -> int:
        from storage.retention import purge_closed

        return (await purge_closed(database, now=now, keep_days=keep_days)).cases

    return purge


async def serve(running: Running, config: AppConfig, stop: asyncio.Event,
                listening_now: Callable[[], None] | None = None) -> None:
    """Polling or webhook, until `stop` is set. One web app serves the platform API, /healthz and
    /metrics, and in webhook mode Telegram's POSTs too. `listening_now` runs once its port is bound
    (the banner: a taken port must fail before anything says the bot runs)."""
    tg = config.telegram
    # Everything imported and built so far lives as long as the process: keep the cyclic garbage
    # collector from walking it again and again (its full passes showed up as latency spikes). Then
    # collect young garbage in fewer, larger passes: with CPython's default (700, 10, 10) the bot's
    # p99 at half load in scripts/bench_dialog.py was 44-81 ms, with these 29-41 ms.
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)

    def routes(app: web.Application) -> None:
        # The supervisors' dashboard (mounted only when [dashboard] allows a sign-in), and Telegram's POSTs.
        Dashboard(running.database, config.dashboard, config.desk, token=config.telegram.token,
                  timezone=config.i18n.timezone).add_routes(app)
        if tg.mode == "webhook":
            running.runner.add_webhook_route(app, tg.webhook_path, tg.webhook_secret)
        # dujiaoka's api_hook, when orders come from dujiaoka and [orders.dujiaoka] hook_secret is set.
        add_shop_routes(app, running.service.orders, running.database.uow, config.orders.dujiaoka.hook_secret)

    app_runner, running.web_url = await start_web(running.api, config, routes)
    if listening_now is not None:
        listening_now()
    try:
        if tg.mode == "polling":
            await running.runner.run_polling(stop)
            return
        url = tg.webhook_url or f"{running.web_url}{tg.webhook_path}"
        running.webhook_url = url
        await running.runner.start_webhook(url, tg.webhook_secret)
        log.info("webhook registered as %s", url)
        await stop.wait()
    finally:
        # Graceful stop: /readyz says 503 at once (a load balancer stops sending), the listening socket
        # closes (Telegram's next connection goes to another worker), requests in flight finish and are
        # answered; then running_bot stops the workers, which stop claiming and release what they hold.
        running.api.begin_drain()
        await app_runner.cleanup()


async def start_web(api: PlatformApi, config: AppConfig,
                    more: Callable[[web.Application], None] | None = None) -> tuple[web.AppRunner, str]:
    """The bot's web app on [telegram] listen_host/listen_port: the platform API, /healthz, /livez,
    /readyz and /metrics (and whatever `more` adds: Telegram's webhook route). Returns it and its URL."""
    app = web.Application()
    add_api_routes(app, api)
    add_wechat_routes(app, config.platform, api.uow_factory, api.workflow)  # WeChat Pay's refund notifications
    add_dujiao_next_routes(app, config, api.uow_factory)  # Dujiao-Next's order callback
    if more is not None:
        more(app)
    app_runner = ApiRunner(app, access_log=None)  # protocol errors answer the API's Error JSON
    await app_runner.setup()
    try:
        async with listening(config.telegram.listen_port, "[telegram] listen_port"):
            await web.TCPSite(app_runner, config.telegram.listen_host, config.telegram.listen_port,
                              reuse_port=config.telegram.reuse_port or None).start()
    except BaseException:
        await app_runner.cleanup()
        raise
    url = f"http://{config.telegram.listen_host}:{bound_port(app_runner)}"
    log.info("platform API, /healthz and /metrics on %s", url)
    return app_runner, url


def bound_port(app_runner: web.AppRunner) -> int:
    for address in app_runner.addresses:
        return int(address[1])
    return 0


async def run(config: AppConfig, stop: asyncio.Event, announce: Callable[[str], None] = print) -> None:
    """`refundbot run`: on Telegram with a token, else on the built-in emulator with demo orders."""
    token = config.telegram.token
    if token:
        async with running_bot(config, token, config.telegram.api_base) as running:
            await serve(running, config, stop, lambda: announce(
                f"refundbot is running ({config.telegram.mode}) on {config.telegram.api_base or 'Telegram'}."))
        return

    from sandbox.server import Emulator

    # The page shows times in the platform's zone, as the bot's own texts do.
    emulator = Emulator(host=config.sandbox.host, port=config.sandbox.port, timezone=config.i18n.timezone)
    async with listening(config.sandbox.port, "[sandbox] port"):
        await emulator.start()
    try:
        config = await stage_sandbox(emulator.base_url, config)
        async with running_bot(config, SANDBOX_TOKEN, emulator.base_url) as running:
            count = await seed_demo_orders(running.database) if config.sandbox.demo_orders else 0

            async def reset_demo() -> None:  # the web page's Reset: the emulator has cleared its chats
                await wipe(running.database)
                if config.sandbox.demo_orders:
                    await seed_demo_orders(running.database)

            emulator.on_reset = reset_demo
            people = ", ".join(f"{c.user_id} {c.first_name}" for c in CUSTOMERS)
            agents = ", ".join(f"{a.user_id} {a.first_name}" for a in AGENTS)
            banner = (
                "No Telegram token configured: refundbot runs on the built-in Telegram emulator with "
                f"{count} demo orders (database {config.database.url}).\n"
                f"Open {emulator.web_url} in a browser: play a customer and the agents' desk side by side.\n"
                "Or talk to it as a demo customer from another terminal:\n"
                "    .venv/bin/refundbot chat            (or: refundbot chat --user 10002 for English)\n"
                f"Demo customers: {people}. Agents: {agents}. "
                "Demo orders: KM20261101000001 … KM20261101000015.\n"
                "Press Ctrl+C to stop."
            )
            await serve(running, config, stop, lambda: announce(banner))
    finally:
        await emulator.close()


async def stage_sandbox(base_url: str, config: AppConfig) -> AppConfig:
    """Register the demo customers and, unless [desk] names a group, a forum group with the demo agents
    (the bot an administrator); returns the configuration with that group as the desk."""
    from sandbox.client import EmulatorClient

    async with EmulatorClient(base_url) as tg:
        for customer in CUSTOMERS:
            await tg.create_user(customer.user_id, customer.first_name, language_code=customer.language_code)
        for agent in AGENTS:
            await tg.create_user(agent.user_id, agent.first_name, language_code="zh-hans")
        if config.desk.chat_id:
            return config
        group = await tg.create_group(DESK_TITLE, is_forum=True, members=[
            {"user_id": a.user_id, "status": "member"} for a in AGENTS])
    desk = config.desk.model_copy(update={
        "chat_id": int(group["chat"]["id"]),
        "agents": tuple(a.user_id for a in AGENTS if not a.supervisor),
        "supervisors": tuple(a.user_id for a in AGENTS if a.supervisor),
        "aliases": {a.user_id: a.alias for a in AGENTS},
    })
    return config.model_copy(update={"desk": desk})
