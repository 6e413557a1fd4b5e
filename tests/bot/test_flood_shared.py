"""The customers' flood guard shared through Redis (bot.pacing.flood) against a real Redis server: two
workers (two services on one database) let a flooding chat through `limit` times in all, not each, and
exactly one of them sends the polite notice; Redis unreachable, each worker's own guard decides."""

from __future__ import annotations

from bot.pacing.flood import SharedFloodGuard
from bot.pacing.shared import RedisLimiter
from dialogs.service import FloodGuard, RefundService
from dialogs.settings import CoreSettings
from tests.bot.test_pacing_shared import free_port
from tests.dialogs.customer import ZH, Customer
from tests.fakes import FakeDatabase

LIMIT, WINDOW = 5, 30.0


def worker(database: FakeDatabase, url: str, prefix: str, limiters: list[RedisLimiter]) -> RefundService:
    def shared(local: FloodGuard) -> SharedFloodGuard:
        limiter = RedisLimiter(url, key_prefix=prefix, timeout=0.5)
        limiters.append(limiter)
        return SharedFloodGuard(limiter, local)

    return RefundService(database.uow, CoreSettings(), flood_limit=LIMIT, flood_window=WINDOW, shared_flood=shared)


async def flood(services: list[RefundService], updates: int) -> tuple[int, int]:
    """A chat sends /help `updates` times, round robin over the workers: (answered with help, notices)."""
    customers = [Customer(s) for s in services]
    helped = notices = 0
    for n in range(updates):
        outcome = await customers[n % len(customers)].command("help")
        said = [r.text for r in outcome.replies]
        notices += said.count(ZH("flood"))
        helped += sum(1 for text in said if text.startswith("退款规则"))
    return helped, notices


async def test_two_workers_share_one_limit_and_one_notice(redis_url: str, prefix: str) -> None:
    database, limiters = FakeDatabase(), []
    try:
        services = [worker(database, redis_url, prefix, limiters) for _ in range(2)]
        assert await flood(services, 4 * LIMIT) == (LIMIT, 1)
        assert all(limiter.up for limiter in limiters)
    finally:
        for limiter in limiters:
            await limiter.close()


async def test_without_redis_each_worker_counts_alone(prefix: str) -> None:
    # The contrast the shared guard removes: two local guards let the flood through twice.
    database = FakeDatabase()
    services = [RefundService(database.uow, CoreSettings(), flood_limit=LIMIT, flood_window=WINDOW)
                for _ in range(2)]
    assert await flood(services, 4 * LIMIT) == (2 * LIMIT, 2)


async def test_redis_away_falls_back_to_the_local_guard(prefix: str) -> None:
    database, limiters = FakeDatabase(), []
    try:
        services = [worker(database, f"redis://127.0.0.1:{free_port()}/0", prefix, limiters)]
        assert await flood(services, 3 * LIMIT) == (LIMIT, 1)
        assert not limiters[0].up
    finally:
        for limiter in limiters:
            await limiter.close()
