"""Send-rate limits shared through Redis (bot.pacing.shared) against a real Redis server: several limiters
(as several workers) together keep one rate; the relays on it keep Telegram's global limit together
(the emulator counting); Redis unreachable or going away mid-run: the relays pace themselves with
their share, deliver everything once, and come back to Redis when it answers again."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from aiogram import Bot
from redis.asyncio import Redis

from bot.aiogram_adapter.sender import AiogramSender
from bot.config import RedisConfig, RelayConfig
from bot.pacing.pacer import Pacer
from bot.pacing.shared import Busy, Grant, Limit, RedisLimiter
from bot.workers.relay import Relay
from sandbox import Emulator, EmulatorClient
from storage.uow import Database
from tests.bot.test_relay import backlog, calls, file_cases, relay
from tests.sandbox.conftest import make_bot

REQUIRE_REDIS = os.environ.get("REFUNDBOT_REQUIRE_REDIS") == "1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def most_within(times: Sequence[float], span: float) -> int:
    """The most of `times` in any half-open window [t, t + span)."""
    times = sorted(times)
    most, first = 0, 0
    for last, at in enumerate(times):
        while times[first] <= at - span:
            first += 1
        most = max(most, last - first + 1)
    return most


def rate(times: Sequence[float]) -> float:
    """Sends a second from the first to the last (sliding windows let the first window's worth go at once,
    so this is above the limit over short runs: most_within is the measure that must hold)."""
    times = sorted(times)
    return (len(times) - 1) / (times[-1] - times[0])


@pytest.fixture
async def tg(emu: Emulator) -> AsyncIterator[EmulatorClient]:
    async with emu.client() as client:
        yield client


class ThrowawayRedis:
    """A redis-server of the test's own on a free port, to be killed and started again."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            "redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(self.directory), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        client = Redis.from_url(self.url, socket_connect_timeout=0.2)
        try:
            async with asyncio.timeout(10):
                while True:
                    try:
                        await client.ping()
                        return
                    except Exception:  # noqa: BLE001 - not listening yet
                        await asyncio.sleep(0.05)
        finally:
            await client.aclose()

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


@pytest.fixture
async def throwaway_redis(tmp_path: Path) -> AsyncIterator[ThrowawayRedis]:
    if shutil.which("redis-server") is None:
        message = "no redis-server on PATH to start a throwaway Redis"
        if REQUIRE_REDIS:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    server = ThrowawayRedis(tmp_path)
    await server.start()
    try:
        yield server
    finally:
        await server.kill()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def warnings_from(caplog: pytest.LogCaptureFixture, logger: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == logger and r.levelno == logging.WARNING]


# -- the limiter ------------------------------------------------------------------------------------------

async def test_two_limiters_on_one_key_grant_at_most_its_rate_together(redis_url: str, prefix: str) -> None:
    # Two clients, as two workers would have, each asking as fast as it is let.
    limiters = [RedisLimiter(redis_url, key_prefix=prefix, timeout=1.0) for _ in range(2)]
    limits = [Limit("global", 10, 1.02)]  # 10/s, a little wider, as the relay asks for it
    granted: list[list[float]] = [[], []]

    async def worker(limiter: RedisLimiter, times: list[float], until: float) -> None:
        while time.monotonic() < until:
            answer = await limiter.acquire(limits)
            if isinstance(answer, Grant):
                times.append(time.monotonic())
                await limiter.answered(answer)
            elif isinstance(answer, Busy):
                assert answer.key == "global" and 0 < answer.wait <= 1.02
                await asyncio.sleep(answer.wait)
            else:
                await asyncio.sleep(0.01)

    until = time.monotonic() + 3.0
    try:
        await asyncio.gather(*(worker(limiter, times, until) for limiter, times in zip(limiters, granted, strict=True)))
    finally:
        for limiter in limiters:
            await limiter.close()
    together = granted[0] + granted[1]
    print(f"\nshared 10/s key, two limiters over 3 s: {len(granted[0])} + {len(granted[1])} granted, "
          f"at most {most_within(together, 1.0)} in any second")
    assert most_within(together, 1.0) <= 10
    assert 25 <= len(together) <= 31  # 10 at once, then 10 a second
    assert granted[0] and granted[1]
    assert all(limiter.failures == 0 for limiter in limiters)


async def test_a_call_is_booked_in_all_its_windows_or_none(redis_url: str, prefix: str) -> None:
    limiter = RedisLimiter(redis_url, key_prefix=prefix, timeout=1.0)
    try:
        chat = [Limit("global", 100, 1.0), Limit("chat:5", 1, 1.0)]
        assert isinstance(await limiter.acquire(chat), Grant)
        busy = await limiter.acquire(chat)
        assert isinstance(busy, Busy) and busy.key == "chat:5" and 0.9 < busy.wait <= 1.0
        # The refused call took no global slot: the global window holds one call, not two.
        assert await limiter.client.zcard(f"{prefix}:global") == 1
    finally:
        await limiter.close()


async def test_a_group_gets_its_minute_at_once_then_is_told_when(redis_url: str, prefix: str) -> None:
    limiter = RedisLimiter(redis_url, key_prefix=prefix, timeout=1.0)
    try:
        group = [Limit("global", 30, 1.0, gap=0.0), Limit("group:-100", 3, 60.0)]
        answers = [await limiter.acquire(group) for _ in range(4)]
        assert [type(a) for a in answers] == [Grant, Grant, Grant, Busy]
        busy = answers[3]
        assert isinstance(busy, Busy) and busy.key == "group:-100" and 59 < busy.wait <= 60
        assert 60_000 < await limiter.client.pttl(f"{prefix}:group:-100") <= 61_000  # expires on its own
    finally:
        await limiter.close()


async def test_keys_expire_on_their_own(redis_url: str, prefix: str) -> None:
    limiter = RedisLimiter(redis_url, key_prefix=prefix, timeout=1.0)
    try:
        assert isinstance(await limiter.acquire([Limit("chat:6", 1, 0.1)]), Grant)
        assert 0 < await limiter.client.pttl(f"{prefix}:chat:6") <= 1100
        await asyncio.sleep(1.3)
        assert await limiter.client.exists(f"{prefix}:chat:6") == 0
    finally:
        await limiter.close()


async def test_an_answered_call_counts_from_its_answer(redis_url: str, prefix: str) -> None:
    limiter = RedisLimiter(redis_url, key_prefix=prefix, timeout=1.0)
    try:
        limits = [Limit("chat:7", 1, 0.5)]
        grant = await limiter.acquire(limits)
        assert isinstance(grant, Grant)
        await asyncio.sleep(0.3)  # the call took 0.3 s
        await limiter.answered(grant)
        busy = await limiter.acquire(limits)
        assert isinstance(busy, Busy) and busy.wait > 0.45  # half a second from the answer, not the start
    finally:
        await limiter.close()


async def test_a_429_held_by_one_worker_holds_every_worker(redis_url: str, prefix: str) -> None:
    first, second = (RedisLimiter(redis_url, key_prefix=prefix, timeout=1.0) for _ in range(2))
    try:
        await first.hold("chat:8", 2.0)
        await first.hold("chat:8", 0.5)  # a shorter hold never cuts a longer one short
        busy = await second.acquire([Limit("global", 30, 1.0), Limit("chat:8", 1, 1.0)])
        assert isinstance(busy, Busy) and busy.key == "chat:8" and 1.8 < busy.wait <= 2.0
        assert isinstance(await second.acquire([Limit("global", 30, 1.0), Limit("chat:9", 1, 1.0)]), Grant)
        await first.hold("global", 1.0)  # flooded: nothing goes anywhere
        busy = await second.acquire([Limit("global", 30, 1.0), Limit("chat:10", 1, 1.0)])
        assert isinstance(busy, Busy) and busy.key == "global" and 0.8 < busy.wait <= 1.0
    finally:
        await first.close()
        await second.close()


async def test_a_pacer_shares_its_429_with_the_other_workers_pacers(redis_url: str, prefix: str) -> None:
    closing = asyncio.Event()
    pacers = [Pacer(RelayConfig(), closing, limiter=RedisLimiter(redis_url, key_prefix=prefix, timeout=1.0))
              for _ in range(2)]
    try:
        pacers[0].throttled(pacers[0].lane(4242), 1.5)
        await asyncio.sleep(0.1)  # the hold goes to Redis in the background
        started = time.monotonic()
        slots = await pacers[1].wait(pacers[1].lane(4242), deadline=started + 5)
        waited = time.monotonic() - started
        with pacers[1].answering(slots):
            pass
        assert 1.2 < waited < 2.0, waited
        started = time.monotonic()
        await pacers[1].wait(pacers[1].lane(4343), deadline=started + 5)  # another chat goes at once
        assert time.monotonic() - started < 0.3
    finally:
        for pacer in pacers:
            await pacer.close()
            assert pacer.limiter is not None
            await pacer.limiter.close()


async def test_unreachable_redis_answers_none_warns_once_and_is_tried_again_after_a_while(
        caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    limiter = RedisLimiter(f"redis://127.0.0.1:{free_port()}/0", key_prefix="unused", timeout=0.1,
                           retry_seconds=5, monotonic=clock)
    try:
        started = time.monotonic()
        assert await limiter.acquire([Limit("global", 30, 1.0)]) is None
        assert time.monotonic() - started < 0.5
        for _ in range(50):
            assert await limiter.acquire([Limit("global", 30, 1.0)]) is None
        assert limiter.failures == 1 and not limiter.up  # no second try within retry_seconds
        clock.now += 5
        assert await limiter.acquire([Limit("global", 30, 1.0)]) is None
        assert limiter.failures == 2
        assert len(warnings_from(caplog, "bot.pacing.shared")) == 1
    finally:
        await limiter.close()


async def test_a_limiter_is_made_from_the_config_only_with_a_url() -> None:
    assert RedisLimiter.from_config(RedisConfig()) is None
    limiter = RedisLimiter.from_config(RedisConfig(url="redis://127.0.0.1:1/0", key_prefix="p", expected_workers=3))
    assert limiter is not None and (limiter.key_prefix, limiter.expected_workers) == ("p", 3)
    await limiter.close()


async def test_the_limiter_answers_again_when_redis_is_back(throwaway_redis: ThrowawayRedis,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bot.pacing.shared")
    clock = Clock()
    limiter = RedisLimiter(throwaway_redis.url, key_prefix="t", timeout=0.2, retry_seconds=5, monotonic=clock)
    limits = [Limit("global", 30, 1.0)]
    try:
        assert isinstance(await limiter.acquire(limits), Grant)
        await throwaway_redis.kill()
        assert await limiter.acquire(limits) is None
        await throwaway_redis.start()  # empty: the script is loaded again
        assert await limiter.acquire(limits) is None  # not asked before retry_seconds
        clock.now += 5
        assert isinstance(await limiter.acquire(limits), Grant) and limiter.up
        assert any("answers again" in r.getMessage() for r in caplog.records if r.name == "bot.pacing.shared")
    finally:
        await limiter.close()


# -- the relay's side, with a fake limiter -----------------------------------------------------------------

class FakeLimiter:
    """A SharedLimiter scripted per call: each answer in `script` once (then grants), recording the keys."""

    expected_workers = 2
    retry_seconds = 5.0

    def __init__(self, *script: Grant | Busy | None) -> None:
        self.script = list(script)
        self.asked: list[tuple[tuple[str, ...], bool]] = []
        self.answered_grants: list[Grant] = []
        self.holds: list[tuple[str, float]] = []

    async def acquire(self, limits: Sequence[Limit], *, retry: bool = False) -> Grant | Busy | None:
        self.asked.append((tuple(limit.key for limit in limits), retry))
        if self.script:
            return self.script.pop(0)
        return Grant(str(len(self.asked)), tuple(limits))

    async def answered(self, grant: Grant) -> None:
        self.answered_grants.append(grant)

    async def hold(self, key: str, seconds: float) -> None:
        self.holds.append((key, seconds))


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_relay_asks_for_the_global_and_the_chats_shared_windows_and_reports_answers(
        database: Database, bot: Bot, emu: Emulator, tg: EmulatorClient) -> None:
    await file_cases(database, tg, [1301])
    limiter = FakeLimiter()
    r = relay(database, AiogramSender(bot), limiter=limiter)
    await r.drain()
    assert limiter.asked == [(("global", "chat:1301"), False)]
    assert len(limiter.answered_grants) == 1 and len(calls(emu, status=200)) == 1


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_one_slow_answer_does_not_make_a_relay_pace_alone(database: Database, bot: Bot, emu: Emulator,
                                                              tg: EmulatorClient) -> None:
    # The limiter misses once (a timeout under load) and answers when asked again: the relay never sent
    # unseen by the other workers, and does not keep to its share afterwards.
    await file_cases(database, tg, [1311, 1312, 1313])
    limiter = FakeLimiter(None)
    r = relay(database, AiogramSender(bot), limiter=limiter)
    started = time.monotonic()
    await r.drain()
    assert [retry for _, retry in limiter.asked] == [False, True, False, False]
    assert len(limiter.answered_grants) == 3 and len(calls(emu, status=200)) == 3  # every send granted
    assert r.stats.shared_fallbacks == 1 and time.monotonic() - started < 1.0  # no pause of a whole window


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_chat_busy_in_the_shared_window_waits_without_holding_up_the_others(
        database: Database, bot: Bot, emu: Emulator, tg: EmulatorClient) -> None:
    await file_cases(database, tg, [1321, 1322])
    limiter = FakeLimiter(Busy(0.5, "chat:1321"))  # another worker has just sent to 1321
    r = relay(database, AiogramSender(bot), limiter=limiter)
    await r.drain()
    first, second = calls(emu, 1321)[0], calls(emu, 1322)[0]
    assert second.at < first.at - 0.3  # 1322 went while 1321 waited
    assert len(calls(emu, status=200)) == 2 and await backlog(database) == 0


# -- relays sharing it --------------------------------------------------------------------------------------

async def run_relays(relays: list[Relay], database: Database, timeout: float = 30) -> None:
    stop = asyncio.Event()
    tasks = [asyncio.create_task(r.run(stop)) for r in relays]
    try:
        async with asyncio.timeout(timeout):
            while await backlog(database):
                await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.gather(*tasks)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # pacing does not depend on the database
async def test_two_relays_sharing_redis_keep_the_global_rate_together(
        database: Database, migrated_database_url: str, emu: Emulator, tg: EmulatorClient, redis_url: str,
        prefix: str) -> None:
    chats = list(range(1000, 1040))
    await file_cases(database, tg, chats)
    await tg.set_limits(per_chat_per_s=1, global_per_s=10, reset_counters=True)
    config = RelayConfig(global_per_second=10, idle_poll_seconds=0.05, batch_size=10)
    limiters = [RedisLimiter(redis_url, key_prefix=prefix, timeout=0.5, expected_workers=2) for _ in range(2)]
    other_database = Database.from_url(migrated_database_url)
    bots = [make_bot(emu), make_bot(emu)]
    relays = [relay(database, AiogramSender(bots[0]), config, limiter=limiters[0]),
              relay(other_database, AiogramSender(bots[1]), config, limiter=limiters[1])]
    try:
        await run_relays(relays, database)
    finally:
        await other_database.dispose()
        for b, limiter in zip(bots, limiters, strict=True):
            await b.session.close()
            await limiter.close()
    sent = [c.at for c in calls(emu, status=200)]
    print(f"\ntwo relays, shared 10/s: {[r.stats.sent for r in relays]} sent, {rate(sent):.2f}/s combined, "
          f"at most {most_within(sent, 1.0)} in any second")
    assert len(sent) == 40 and all(r.stats.sent > 0 for r in relays)
    assert most_within(sent, 1.0) <= 10
    assert (await tg.limits())["throttled"] == 0 and not calls(emu, status=429)
    assert sum(limiter.granted for limiter in limiters) >= 40


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_with_redis_unreachable_a_relay_delivers_everything_at_its_share(
        database: Database, bot: Bot, emu: Emulator, tg: EmulatorClient, caplog: pytest.LogCaptureFixture) -> None:
    chats = list(range(1100, 1130))
    await file_cases(database, tg, chats)
    await tg.set_limits(per_chat_per_s=1, global_per_s=10, reset_counters=True)
    limiter = RedisLimiter(f"redis://127.0.0.1:{free_port()}/0", key_prefix="unused", timeout=0.1,
                           expected_workers=2)
    r = relay(database, AiogramSender(bot), RelayConfig(global_per_second=20, idle_poll_seconds=0.05), limiter=limiter)
    try:
        await r.drain(until_empty=True)
    finally:
        await limiter.close()
    sent = [c.at for c in calls(emu, status=200)]
    print(f"\nRedis unreachable, global 20/s over 2 workers: {rate(sent):.2f}/s, at most {most_within(sent, 1.0)} "
          f"in any second")
    assert len(sent) == 30 and await backlog(database) == 0
    assert most_within(sent, 1.0) <= 10  # the share, not [relay]'s 20
    assert max(sent) - min(sent) > 2.0  # 30 sends: three windows' worth
    assert (await tg.limits())["throttled"] == 0
    assert r.stats.shared_fallbacks == 1 and len(warnings_from(caplog, "bot.pacing.shared")) == 1


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_redis_going_away_mid_run_loses_and_doubles_nothing_and_coming_back_is_used(
        database: Database, migrated_database_url: str, emu: Emulator, tg: EmulatorClient,
        throwaway_redis: ThrowawayRedis) -> None:
    chats = list(range(1200, 1300))
    await file_cases(database, tg, chats)
    await tg.set_limits(per_chat_per_s=1, global_per_s=20, reset_counters=True)
    config = RelayConfig(global_per_second=20, idle_poll_seconds=0.05, batch_size=20)
    limiters = [RedisLimiter(throwaway_redis.url, key_prefix="t", timeout=0.1, expected_workers=2,
                             retry_seconds=1) for _ in range(2)]
    other_database = Database.from_url(migrated_database_url)
    bots = [make_bot(emu), make_bot(emu)]
    relays = [relay(database, AiogramSender(bots[0]), config, limiter=limiters[0]),
              relay(other_database, AiogramSender(bots[1]), config, limiter=limiters[1])]

    async def kill_and_restart() -> int:
        while len(calls(emu, status=200)) < 20:
            await asyncio.sleep(0.01)
        await throwaway_redis.kill()
        while len(calls(emu, status=200)) < 50:
            await asyncio.sleep(0.01)
        await throwaway_redis.start()
        return sum(limiter.granted for limiter in limiters)

    try:
        chaos = asyncio.create_task(kill_and_restart())
        await run_relays(relays, database)
        granted_before = await chaos
    finally:
        await other_database.dispose()
        for b, limiter in zip(bots, limiters, strict=True):
            await b.session.close()
            await limiter.close()
    ok = calls(emu, status=200)
    per_chat = [int(c.params["chat_id"]) for c in ok]
    sent = [c.at for c in ok]
    print(f"\nRedis killed after 20 sends, back after 50: {rate(sent):.2f}/s overall, at most "
          f"{most_within(sent, 1.0)} in any second; throttled {(await tg.limits())['throttled']}")
    assert sorted(per_chat) == chats and await backlog(database) == 0  # each exactly once
    # (More than one fallback each: a slow answer under load counts too.)
    assert all(r.stats.shared_fallbacks >= 1 for r in relays), [r.stats.as_dict() for r in relays]
    assert most_within(sent, 1.0) <= 20 and (await tg.limits())["throttled"] == 0
    assert sum(limiter.granted for limiter in limiters) > granted_before  # Redis was used again
