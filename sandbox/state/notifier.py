"""The emulator's clock (Unix seconds, as the Bot API dates things) and its wake-up call."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


def now_ts() -> int:
    return int(time.time())


class Notifier:
    """Wakes every coroutine waiting for 'something changed'; safe to poke from another thread."""

    def __init__(self) -> None:
        self._waiters: set[asyncio.Future[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.version = 0

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def notify(self) -> None:
        self.version += 1
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._wake()
        else:
            loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, set()
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    async def wait(self, timeout: float) -> None:
        """Return at the next change or after `timeout` seconds, whichever comes first."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        fut: asyncio.Future[None] = loop.create_future()
        self._waiters.add(fut)
        try:
            await asyncio.wait_for(fut, max(timeout, 0.0))
        except TimeoutError:
            pass
        finally:
            self._waiters.discard(fut)

    async def wait_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            await self.wait(remaining)
        return True
