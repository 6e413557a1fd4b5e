"""ConfirmingPoller against a getUpdates double with Telegram's offset semantics."""

from __future__ import annotations

import asyncio

from bot.polling import ConfirmingPoller, Fetched


class FakeTelegram:
    """Keeps updates until an offset above them is requested, like getUpdates."""

    def __init__(self, updates: list[tuple[int, int]]) -> None:
        self.pending = list(updates)  # (update_id, chat)
        self.offsets: list[int | None] = []

    async def fetch(self, offset: int | None, timeout: int) -> list[Fetched[tuple[int, int]]]:
        self.offsets.append(offset)
        if offset is not None:
            self.pending = [u for u in self.pending if u[0] >= offset]
        if not self.pending and timeout:
            await asyncio.sleep(0.01)
        return [Fetched(uid, chat, (uid, chat)) for uid, chat in self.pending]


async def run_until(poller: ConfirmingPoller, done: asyncio.Event, stop: asyncio.Event) -> None:
    task = asyncio.create_task(poller.run(stop, lambda exc: 0.01))
    await asyncio.wait_for(done.wait(), 5)
    stop.set()
    await asyncio.wait_for(task, 5)


async def test_chats_run_in_parallel_each_in_order_and_everything_is_confirmed():
    updates = [(i, i % 3) for i in range(1, 31)]
    telegram, seen, done, stop = FakeTelegram(updates), [], asyncio.Event(), asyncio.Event()

    async def handle(update: tuple[int, int]) -> None:
        await asyncio.sleep(0.001 * (update[0] % 4))
        seen.append(update)
        if len(seen) == len(updates):
            done.set()

    await run_until(ConfirmingPoller(telegram.fetch, handle, poll_timeout=1), done, stop)
    assert sorted(seen) == updates  # each exactly once
    for chat in range(3):
        assert [u for u in seen if u[1] == chat] == [u for u in updates if u[1] == chat]
    assert telegram.pending == []  # the shutdown confirmed what was handled


async def test_the_offset_never_passes_an_update_still_in_flight():
    telegram, done, stop = FakeTelegram([(1, 1), (2, 2), (3, 3)]), asyncio.Event(), asyncio.Event()
    release = asyncio.Event()

    async def handle(update: tuple[int, int]) -> None:
        if update[0] == 1:
            await release.wait()  # chat 1 is slow
        if update[0] == 3:
            await asyncio.sleep(0.05)
            assert all(o is None or o <= 1 for o in telegram.offsets)  # 1 is not confirmed yet
            release.set()
            done.set()

    await run_until(ConfirmingPoller(telegram.fetch, handle, poll_timeout=1), done, stop)


async def test_a_failing_update_is_retried_then_skipped_and_later_updates_of_its_chat_wait():
    telegram, done, stop = FakeTelegram([(1, 7), (2, 7), (3, 8)]), asyncio.Event(), asyncio.Event()
    attempts: dict[int, int] = {}
    events: list[int] = []

    async def handle(update: tuple[int, int]) -> None:
        attempts[update[0]] = attempts.get(update[0], 0) + 1
        events.append(update[0])
        if update[0] == 1:
            raise RuntimeError("poison")
        if 2 in events and 3 in events:
            done.set()

    poller = ConfirmingPoller(telegram.fetch, handle, poll_timeout=1, max_attempts=3)
    await run_until(poller, done, stop)
    assert attempts[1] == 3  # retried, then given up on (and logged)
    # Chat 7's next update waited for every attempt of the failing one, then ran once.
    assert attempts[2] == 1 and events.index(2) > max(i for i, u in enumerate(events) if u == 1)
    assert attempts[3] == 1  # chat 8 was not held up
