"""Long polling that confirms an update to Telegram only once it has been handled, while many chats
are handled at once (each chat strictly in order).

getUpdates confirms every update below the offset it is asked for. So the offset we ask for never
passes an update that is still being handled or waits for a retry: a crash then means Telegram
delivers it again (and the update ledger makes that harmless). Updates fetched again while they are
in flight are recognised and skipped. Framework-neutral: each adapter supplies `fetch` and `handle`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

log = logging.getLogger(__name__)
U = TypeVar("U")


@dataclass(frozen=True, slots=True)
class Fetched(Generic[U]):
    update_id: int
    chat: int
    update: U


class ConfirmingPoller(Generic[U]):
    def __init__(
        self,
        fetch: Callable[[int | None, int], Awaitable[list[Fetched[U]]]],
        handle: Callable[[U], Awaitable[None]],
        poll_timeout: int = 25,
        max_attempts: int = 5,
    ) -> None:
        self.fetch, self.handle = fetch, handle
        self.poll_timeout, self.max_attempts = poll_timeout, max_attempts
        self.in_flight: dict[int, int] = {}  # update_id -> chat
        self.held: dict[int, int] = {}  # failed or waiting behind a failure: not to be confirmed yet
        self.done: set[int] = set()  # handled, but still above the offset (something older is in flight)
        self.high: int | None = None
        self.queues: dict[int, deque[Fetched[U]]] = {}
        self.retry_at: dict[int, float] = {}
        self.attempts: dict[int, int] = {}
        self.progress = asyncio.Event()
        self.tasks: set[asyncio.Task[None]] = set()  # strong references: the loop keeps only weak ones
        self.handled = 0

    def offset(self) -> int | None:
        pending = self.in_flight.keys() | self.held.keys()
        if pending:
            return min(pending)
        return None if self.high is None else self.high + 1

    async def run(self, stop: asyncio.Event, on_fetch_error: Callable[[Exception], float]) -> None:
        while not stop.is_set():
            offset = self.offset()
            self.progress.clear()  # before fetching, so a completion during the fetch is not missed
            # With work in flight the answer comes at once (it repeats the unconfirmed updates).
            try:
                fetched = await _until(stop, self.fetch(offset, self.poll_timeout))
            except Exception as exc:  # noqa: BLE001 - the adapter tells how long to wait for its error kinds
                await _until(stop, asyncio.sleep(on_fetch_error(exc)))
                continue
            if fetched is None:
                break
            self.done = {i for i in self.done if offset is None or i >= offset}
            if not self._dispatch(fetched) and (self.in_flight or self.held):
                await _until(stop, _wait(self.progress, 0.2))
        await self._drain()

    def _dispatch(self, fetched: list[Fetched[U]]) -> bool:
        now, new = time.monotonic(), False
        for item in fetched:
            uid = item.update_id
            self.high = uid if self.high is None else max(self.high, uid)
            if uid in self.in_flight or uid in self.done:
                continue
            if self.retry_at.get(item.chat, 0) > now:
                self.held[uid] = item.chat
                continue
            self.held.pop(uid, None)
            self.in_flight[uid] = item.chat
            queue = self.queues.get(item.chat)
            if queue is None:
                self.queues[item.chat] = queue = deque()
                task = asyncio.create_task(self._work(item.chat, queue))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
            queue.append(item)
            new = True
        return new

    async def _work(self, chat: int, queue: deque[Fetched[U]]) -> None:
        try:
            while queue:
                item = queue[0]
                try:
                    await self.handle(item.update)
                except Exception:  # noqa: BLE001 - logged in _failed, retried, then skipped
                    self._failed(chat, queue)
                    return
                queue.popleft()
                self.in_flight.pop(item.update_id, None)
                self.done.add(item.update_id)
                self.attempts.pop(item.update_id, None)
                self.handled += 1
                self.progress.set()
        finally:
            self.queues.pop(chat, None)

    def _failed(self, chat: int, queue: deque[Fetched[U]]) -> None:
        item = queue.popleft()
        uid = item.update_id
        self.attempts[uid] = self.attempts.get(uid, 0) + 1
        self.in_flight.pop(uid, None)
        if self.attempts[uid] >= self.max_attempts:
            log.exception("update %s failed %d times; skipping it", uid, self.attempts[uid])
            self.done.add(uid)
            del self.attempts[uid]
        else:
            log.exception("update %s failed (attempt %d); retrying", uid, self.attempts[uid])
            self.held[uid] = chat
            self.retry_at[chat] = time.monotonic() + min(0.2 * 2 ** self.attempts[uid], 5)
        # Later updates of this chat wait for it: they stay unconfirmed and come again.
        for later in queue:
            self.in_flight.pop(later.update_id, None)
            self.held[later.update_id] = chat
        queue.clear()
        self.progress.set()

    async def _drain(self, timeout: float = 10) -> None:
        """Graceful stop: let in-flight updates finish, then confirm what was handled."""
        deadline = time.monotonic() + timeout
        while self.in_flight and time.monotonic() < deadline:
            self.progress.clear()
            await _wait(self.progress, 0.1)
        offset = self.offset()
        if offset is not None:
            try:
                await self.fetch(offset, 0)
            except Exception as exc:  # noqa: BLE001 - best effort at shutdown
                log.info("could not confirm handled updates at shutdown (%s); they will be skipped", exc)


async def _wait(event: asyncio.Event, timeout: float) -> None:
    try:
        await asyncio.wait_for(event.wait(), timeout)
    except TimeoutError:
        pass


async def _until(stop: asyncio.Event, work: Awaitable[U]) -> U | None:
    """Await `work` unless `stop` is set first (then cancel it and return None)."""
    task = asyncio.ensure_future(work)
    stopper = asyncio.ensure_future(stop.wait())
    done, _ = await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        stopper.cancel()
        return task.result()
    task.cancel()
    return None
