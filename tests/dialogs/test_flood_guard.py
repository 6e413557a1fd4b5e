"""FloodGuard and ChatLocks: per-chat limits that must not keep a chat in memory once it is quiet."""

from __future__ import annotations

import asyncio

from dialogs.service import ChatLocks, FloodGuard


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_updates_over_the_limit_get_one_notice_then_are_dropped() -> None:
    guard = FloodGuard(limit=3, window=10, clock=Clock())
    assert [guard.check(1) for _ in range(6)] == ["ok", "ok", "ok", "notify", "drop", "drop"]


def test_the_window_slides() -> None:
    clock = Clock()
    guard = FloodGuard(limit=2, window=10, clock=clock)
    assert guard.check(1) == "ok"
    clock.now += 5
    assert guard.check(1) == "ok"
    clock.now += 5  # the first update is exactly `window` old: still counted
    assert guard.check(1) == "notify"
    clock.now += 5.5  # the first two are out: the third and this one remain
    assert guard.check(1) == "ok"


def test_chats_are_counted_apart() -> None:
    guard = FloodGuard(limit=1, window=10, clock=Clock())
    assert guard.check(1) == "ok"
    assert guard.check(2) == "ok"
    assert guard.check(1) == "notify"


def test_quiet_chats_are_forgotten_so_memory_stays_flat() -> None:
    clock = Clock()
    guard = FloodGuard(limit=30, window=10, clock=clock)
    for chat in range(10_000):
        guard.check(chat)
        clock.now += 0.01  # 100 new chats a second: about 1,000 inside the window
    assert len(guard) <= 1000 + 1024  # inside the window, plus at most one sweep's worth


async def test_a_chat_lock_is_dropped_when_nobody_holds_or_waits_for_it() -> None:
    locks = ChatLocks()
    order: list[str] = []

    async def hold(name: str) -> None:
        async with locks.hold(7):
            order.append(f"{name} in")
            await asyncio.sleep(0.01)
            order.append(f"{name} out")

    await asyncio.gather(hold("a"), hold("b"))
    assert order == ["a in", "a out", "b in", "b out"]
    assert len(locks) == 0
