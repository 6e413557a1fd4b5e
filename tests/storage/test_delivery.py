"""The outbox as the relay sees it (claim, lease, confirm, defer, give up, backlog) and the chats it can
no longer reach, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from dialogs.domain import Delivery, OutboxMessage
from storage.models import OutboxRow
from storage.uow import Database
from tests.storage.factories import T0

NOW = T0 + timedelta(minutes=1)
LEASE = 60.0


def message(n: int, chat_id: int | None = 7, at: datetime = T0) -> OutboxMessage:
    return OutboxMessage(kind="case_news", chat_id=chat_id, dedupe_key=f"k{n}", payload={"n": n}, created_at=at)


async def queue(database: Database, *messages: OutboxMessage) -> None:
    async with database.uow() as uow:
        for m in messages:
            assert await uow.outbox.add(m)
        await uow.commit()


async def claim(database: Database, owner: str = "r1", now: datetime = NOW, limit: int = 100,
                lease: float = LEASE) -> list[Delivery]:
    async with database.uow() as uow:
        claimed = await uow.outbox.claim(owner=owner, now=now, lease_seconds=lease, limit=limit)
        await uow.commit()
    return claimed


def payloads(deliveries: list[Delivery]) -> list[int]:
    return [d.payload["n"] for d in deliveries]


async def row(database: Database, delivery_id: int) -> Any:
    """The stored row's columns (the relay cannot read them through the port)."""
    async with database.uow() as uow:
        found = (await uow.session.execute(select(OutboxRow.__table__).where(OutboxRow.id == delivery_id))).one()
    return found


async def test_claim_takes_due_rows_oldest_first_with_their_fields(database: Database) -> None:
    await queue(database, message(1, chat_id=1), message(2, chat_id=2), message(3, chat_id=3))
    claimed = await claim(database, limit=2)
    assert payloads(claimed) == [1, 2]
    assert claimed[0].kind == "case_news" and claimed[0].chat_id == 1 and claimed[0].dedupe_key == "k1"
    assert claimed[0].attempts == 0 and claimed[0].created_at == T0
    stored = await row(database, claimed[0].id)
    assert stored.claimed_by == "r1" and stored.claim_until == NOW + timedelta(seconds=LEASE)


async def test_claim_never_hands_out_more_than_the_limit(database: Database) -> None:
    # Regression: UPDATE ... WHERE id IN (SELECT ... LIMIT n FOR UPDATE SKIP LOCKED) took every due
    # row on PostgreSQL (the locked subquery was rescanned once per outer row).
    await queue(database, *(message(n, chat_id=n) for n in range(10)))
    assert payloads(await claim(database, limit=3)) == [0, 1, 2]
    assert payloads(await claim(database, owner="r2", limit=3)) == [3, 4, 5]


async def test_rows_not_yet_due_are_not_claimed(database: Database) -> None:
    await queue(database, message(1, chat_id=1, at=NOW + timedelta(seconds=5)))
    assert await claim(database) == []
    assert payloads(await claim(database, now=NOW + timedelta(seconds=5))) == [1]


async def test_rows_without_a_chat_are_never_claimed(database: Database) -> None:
    await queue(database, message(1, chat_id=None), message(2, chat_id=2))
    assert payloads(await claim(database)) == [2]
    async with database.uow() as uow:
        assert await uow.outbox.backlog() == 2  # the desk's row is still open


async def test_a_claimed_row_is_not_claimed_again_while_its_lease_lasts(database: Database) -> None:
    await queue(database, message(1, chat_id=1))
    assert payloads(await claim(database, owner="r1")) == [1]
    assert await claim(database, owner="r2", now=NOW + timedelta(seconds=LEASE - 1)) == []
    assert await claim(database, owner="r1", now=NOW + timedelta(seconds=LEASE - 1)) == []


async def test_a_crashed_relays_rows_come_back_after_the_lease(database: Database) -> None:
    await queue(database, message(1, chat_id=1))
    await claim(database, owner="crashed")
    again = await claim(database, owner="r2", now=NOW + timedelta(seconds=LEASE + 1))
    assert payloads(again) == [1]
    assert (await row(database, again[0].id)).claimed_by == "r2"


async def test_a_row_marked_sent_is_never_claimed_again(database: Database) -> None:
    await queue(database, message(1, chat_id=1))
    [delivery] = await claim(database)
    async with database.uow() as uow:
        await uow.outbox.mark_sent(delivery.id, at=NOW, message_id=55)
        await uow.commit()
    assert await claim(database, now=NOW + timedelta(hours=1)) == []
    stored = await row(database, delivery.id)
    assert stored.sent_at == NOW and stored.message_id == 55 and stored.attempts == 1
    assert stored.claimed_by is None and stored.claim_until is None
    async with database.uow() as uow:
        assert await uow.outbox.backlog() == 0


async def test_a_deferred_row_comes_back_at_its_time_with_the_attempt_counted(database: Database) -> None:
    await queue(database, message(1, chat_id=1))
    [delivery] = await claim(database)
    async with database.uow() as uow:
        await uow.outbox.defer(delivery.id, until=NOW + timedelta(seconds=30), error="503: Service Unavailable")
        await uow.commit()
    assert await claim(database, now=NOW + timedelta(seconds=29)) == []
    [again] = await claim(database, now=NOW + timedelta(seconds=30))
    assert again.id == delivery.id and again.attempts == 1
    assert (await row(database, delivery.id)).last_error == "503: Service Unavailable"


async def test_a_given_up_row_is_never_claimed_and_leaves_the_backlog(database: Database) -> None:
    await queue(database, message(1, chat_id=1), message(2, chat_id=2))
    [first, _] = await claim(database)
    async with database.uow() as uow:
        await uow.outbox.give_up(first.id, at=NOW, error="403: blocked")
        await uow.commit()
    async with database.uow() as uow:
        assert await uow.outbox.backlog() == 1
    assert payloads(await claim(database, now=NOW + timedelta(days=1))) == [2]
    assert (await row(database, first.id)).dead_at == NOW


async def test_only_the_oldest_open_row_of_a_chat_is_claimed(database: Database) -> None:
    await queue(database, message(1, chat_id=7), message(2, chat_id=7), message(3, chat_id=8), message(4, chat_id=7))
    first = await claim(database)
    assert payloads(first) == [1, 3]
    assert await claim(database, owner="r2") == []  # 2 and 4 wait for 1, held by r1
    async with database.uow() as uow:
        await uow.outbox.mark_sent(first[0].id, at=NOW, message_id=1)
        await uow.commit()
    assert payloads(await claim(database)) == [2]


async def test_a_deferred_row_holds_back_the_later_rows_of_its_chat(database: Database) -> None:
    await queue(database, message(1, chat_id=7), message(2, chat_id=7))
    [first] = await claim(database)
    async with database.uow() as uow:
        await uow.outbox.defer(first.id, until=NOW + timedelta(seconds=10), error="429: retry after 10")
        await uow.commit()
    assert await claim(database, now=NOW + timedelta(seconds=5)) == []
    assert payloads(await claim(database, now=NOW + timedelta(seconds=10))) == [1]


async def test_a_given_up_row_lets_the_next_row_of_its_chat_go(database: Database) -> None:
    await queue(database, message(1, chat_id=7), message(2, chat_id=7))
    [first] = await claim(database)
    async with database.uow() as uow:
        await uow.outbox.give_up(first.id, at=NOW, error="400: chat not found")
        await uow.commit()
    assert payloads(await claim(database)) == [2]


async def test_backlog_counts_rows_neither_sent_nor_given_up(database: Database) -> None:
    await queue(database, *(message(n, chat_id=n) for n in range(1, 5)))
    claimed = await claim(database, limit=3)
    async with database.uow() as uow:
        await uow.outbox.mark_sent(claimed[0].id, at=NOW, message_id=None)
        await uow.outbox.give_up(claimed[1].id, at=NOW, error="403")
        await uow.outbox.defer(claimed[2].id, until=NOW, error="500")
        await uow.commit()
    async with database.uow() as uow:
        assert await uow.outbox.backlog() == 2


async def test_blocked_chats_are_recorded_once_listed_and_unblocked(database: Database) -> None:
    async with database.uow() as uow:
        await uow.chats.mark_blocked(7, at=NOW, reason="Forbidden: bot was blocked by the user")
        await uow.chats.mark_blocked(7, at=NOW + timedelta(seconds=1), reason="again")  # same fact, no error
        await uow.chats.mark_blocked(9, at=NOW, reason="Forbidden: user is deactivated")
        await uow.commit()
    async with database.uow() as uow:
        assert await uow.chats.blocked([7, 8, 9, 7]) == {7, 9}
        assert await uow.chats.blocked([]) == set()
        await uow.chats.unblock(7)
        await uow.commit()
    async with database.uow() as uow:
        assert await uow.chats.blocked([7, 8, 9]) == {9}


async def test_a_held_row_and_its_chats_later_rows_wait_until_the_chat_is_released(database: Database) -> None:
    await queue(database, message(1, chat_id=7), message(2, chat_id=7), message(3, chat_id=8))
    [first, other] = await claim(database)
    async with database.uow() as uow:
        await uow.chats.mark_blocked(7, at=NOW, reason="Forbidden: bot was blocked by the user")
        await uow.outbox.hold(first.id, error="403: blocked")
        await uow.outbox.defer(other.id, until=NOW, error="5xx")
        await uow.commit()
    assert payloads(await claim(database, now=NOW + timedelta(days=3650))) == [3]  # never chat 7's
    async with database.uow() as uow:
        assert await uow.outbox.backlog() == 1  # chat 8's row: the held chat waits on its user, not on us
        assert await uow.chats.unblock(7) and not await uow.chats.unblock(7)
        assert await uow.outbox.release_held(7, at=NOW) == 1
        await uow.commit()
    assert (await row(database, first.id)).dead_at is None
    assert payloads(await claim(database, now=NOW + timedelta(hours=1))) == [1]


async def test_marking_a_chat_blocked_says_whether_it_is_news(database: Database) -> None:
    async with database.uow() as uow:
        assert await uow.chats.mark_blocked(7, at=NOW, reason="kicked")
        assert not await uow.chats.mark_blocked(7, at=NOW, reason="kicked again")
        await uow.commit()


def _claim_everything_in_a_thread(url: str, owner: str, out: list[int], start: threading.Barrier) -> None:
    async def work() -> None:
        database = Database.from_url(url)
        try:
            start.wait()
            while True:
                claimed = await claim(database, owner=owner, limit=7)
                if not claimed:
                    return
                if len(claimed) > 7:
                    out.append(-1)  # more than the limit: fails the test below
                out.extend(d.id for d in claimed)
                async with database.uow() as uow:  # confirm, so that the chats' next rows come up
                    for d in claimed:
                        await uow.outbox.mark_sent(d.id, at=NOW, message_id=None)
                    await uow.commit()
        finally:
            await database.dispose()

    asyncio.run(work())


async def test_two_concurrent_claimers_never_get_the_same_row(database: Database,
                                                                migrated_database_url: str) -> None:
    # 300 rows over 100 chats; two relays (own engines, own threads) race for them until none is left.
    await queue(database, *(message(n, chat_id=n % 100 + 1) for n in range(300)))
    got: dict[str, list[int]] = {"a": [], "b": []}
    start = threading.Barrier(2)
    threads = [threading.Thread(target=_claim_everything_in_a_thread, args=(migrated_database_url, owner, ids, start))
               for owner, ids in got.items()]
    for thread in threads:
        thread.start()
    await asyncio.to_thread(lambda: [t.join(60) for t in threads])
    assert not set(got["a"]) & set(got["b"])
    assert len(got["a"]) + len(got["b"]) == 300 == len(set(got["a"]) | set(got["b"]))
    async with database.uow() as uow:
        assert await uow.outbox.backlog() == 0
