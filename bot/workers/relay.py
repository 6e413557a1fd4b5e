"""The notification relay: outbox rows out to Telegram, within Telegram's limits, at least once.

Loop: claim a batch of due rows under a lease (the outbox hands out only the oldest open row of each
chat, so a chat's rows go in id order), then for each chat, one row at a time: compose it
(dialogs.notify, in a unit of work), wait for the chat's and the global sending slot (bot.pacing), make
one Bot API call through a `Sender` (bot.workers.relay_calls), and confirm it in a unit of work (mark_sent, and
the status card's message id when the row was a card; bot.workers.relay_writes). Only then does the chat's next
row come up.

Failures (the `Sender` maps its library's exceptions to bot.sending's):
- 429: bot.pacing holds the chat, or, when the bot as a whole is flooded, everything (and no new rows
  are claimed meanwhile).
- 5xx, timeouts, network: the chat backs off exponentially (1 s, 2 s, 4 s... up to max_backoff_seconds).
- 403 (the user blocked the bot, the bot is out of the group): the chat is held (bot.workers.relay_held), and
  this row and every later row of it wait unsent, in order, until the chat is reopened.
- an edit of a card that is gone: a new card is sent instead (on the chat's next slot);
  "message is not modified": delivered.
- any other 4xx: this row is given up.
The agents' desk (a forum group; see dialogs.notify and bot.workers.relay_topics): a row may take several calls,
each paced like any other. A topic found gone ("message thread not found") is forgotten and the row
composed again, which makes a new topic with a new card first.
A wait that fits in the row's lease is waited out here; a longer one releases the row to the outbox
(`defer` until the wait ends), which also holds back the chat's later rows.

At least once: a row is confirmed only after Telegram took it, so a crash between the two sends it
again (after the lease); a row confirmed is never claimed again. A stop (`stop` set) lets sends in
flight finish and be confirmed and releases the rows not yet sent, so another relay can take them at
once. Two relays on one database never hold the same row. Several relays keep Telegram's limits
together through a shared limiter (`limiter`; see bot.pacing).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from bot.config import RelayConfig
from bot.logs import set_log_context
from bot.pacing import Closing, Lane, Late, Pacer, SharedLimiter
from bot.sending import (
    Blocked,
    MessageGone,
    NotText,
    Rejected,
    RetryAfter,
    Sender,
    SendError,
    TopicGone,
    Transient,
    WrongFile,
)
from bot.workers.base import Sweep, owner_id
from bot.workers.relay_calls import another_way, call_once, timed
from bot.workers.relay_held import hold_chat, hold_rows_of_held_chats
from bot.workers.relay_rows import RelayStats, Release, Row
from bot.workers.relay_topics import ChatNames, DeskTopics
from bot.workers.relay_writes import RowWrites
from dialogs.clock import Clock, utcnow
from dialogs.domain import Delivery
from dialogs.notify import Notice, Sent, compose, topic_gone
from dialogs.ports import UnitOfWorkFactory
from dialogs.settings import CoreSettings

log = logging.getLogger(__name__)

T = TypeVar("T")

# Compositions of one row: a prelude (a new topic and its card) and a topic found gone, each once or twice.
MAX_ROUNDS = 4


@dataclass
class _Target:
    """One chat: its pacing and its rows in hand, worked one at a time by one task while `busy`."""

    lane: Lane
    queue: deque[Row] = field(default_factory=deque)
    busy: bool = False

    @property
    def chat_id(self) -> int:
        return self.lane.chat_id


class Relay(Sweep[Delivery]):
    what = "outbox claim"
    log = log

    def __init__(self, uow: UnitOfWorkFactory, sender: Sender, config: RelayConfig, settings: CoreSettings, *,
                 owner: str | None = None, headroom: float = 0.01, send_timeout: float = 15.0,
                 backoff_base: float = 1.0, compose_attempts: int = 8,
                 wall_clock: Clock = utcnow,
                 monotonic: Callable[[], float] = time.monotonic,
                 limiter: SharedLimiter | None = None) -> None:
        super().__init__(uow, interval=config.idle_poll_seconds)
        self.sender = sender
        self.config = config
        self.settings = settings
        self.owner = owner or owner_id("relay")
        self.headroom = headroom
        self.send_timeout = send_timeout
        self.backoff_base = backoff_base
        self.compose_attempts = compose_attempts
        self.wall_clock = wall_clock
        self.monotonic = monotonic
        self.limiter = limiter
        # A call must start this long before the lease ends, so it is confirmed before another relay
        # may take the row over.
        self.lease_margin = min(config.lease_seconds / 2, send_timeout + 2)
        self.stats = RelayStats()
        self._closing = asyncio.Event()
        self.pacer = Pacer(config, self._closing, headroom=headroom, monotonic=monotonic, limiter=limiter,
                           stats=self.stats.pacing)
        self.writes = RowWrites(uow, wall_clock, monotonic)
        self.topics = DeskTopics(sender, self.writes.write, wall_clock)
        self.names = ChatNames(sender, settings.desk.chat_id, monotonic)
        self._targets: dict[int, _Target] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._pending = 0  # items claimed and not yet done with
        self._changed = asyncio.Event()  # an item finished, or the relay is closing
        self._last_prune = 0.0

    @property
    def _global_hold(self) -> float:
        """Until when the pacer holds every send (the bot is flooded): no rows are claimed meanwhile."""
        return self.pacer.global_hold

    # -- driving it ---------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Relay until stopped; then finish the calls in flight and release the rest."""
        self._closing.clear()
        cancelled = False
        try:
            await super().run(stop)
        except asyncio.CancelledError:
            cancelled = True
            raise
        finally:
            await self._close(graceful=not cancelled)

    # A pass of the loop claims only below the low water mark, and not while the bot is flooded; it
    # comes again at once while it claims and rows run short, and waits otherwise until a row is done.

    @property
    def _low_water(self) -> int:
        return max(1, self.config.batch_size // 2)

    async def tick(self) -> int:
        try:
            if self._pending < self._low_water and self.monotonic() >= self._global_hold:
                return await self._claim(self.config.batch_size - self._pending)
            return 0
        finally:
            self._prune()

    def go_again(self, claimed: int) -> bool:
        return bool(claimed) and self._pending < self._low_water

    async def pause(self) -> None:
        wait = self.config.idle_poll_seconds
        if self._global_hold > self.monotonic():
            wait = min(wait, self._global_hold - self.monotonic())
        self._changed.clear()
        await _first(self._stop.wait(), self._changed.wait(), timeout=wait)

    async def run_once(self) -> int:
        """Claim one batch and see every row of it through (sent, released or given up); returns how
        many rows were claimed."""
        claimed = await self._claim(self.config.batch_size)
        await self.idle()
        return claimed

    async def drain(self, timeout: float = 30.0, *, until_empty: bool = False) -> int:
        """Run batches until a claim finds nothing due (with `until_empty`: until the backlog is empty,
        waiting for deferred rows to come due); returns how many rows were claimed."""
        total = 0
        async with asyncio.timeout(timeout):
            while True:
                claimed = await self.run_once()
                total += claimed
                if claimed:
                    continue
                if not until_empty or await self.backlog() == 0:
                    return total
                await asyncio.sleep(min(self.config.idle_poll_seconds, 0.1))

    async def idle(self) -> None:
        """Wait until every claimed row is done with."""
        while self._pending:
            self._changed.clear()
            await self._changed.wait()

    async def backlog(self) -> int:
        """Rows neither sent nor given up (for /metrics)."""
        async with self.uow() as uow:
            return await uow.outbox.backlog()

    @property
    def in_flight(self) -> int:
        return self._pending

    # -- claiming -----------------------------------------------------------------------------------

    async def _claim(self, limit: int) -> int:
        if limit <= 0 or self.monotonic() < self._global_hold:
            return 0
        lease_end = self.monotonic() + self.config.lease_seconds
        now = self.wall_clock()
        async with self.uow() as uow:
            claimed = await uow.outbox.claim(owner=self.owner, now=now, lease_seconds=self.config.lease_seconds,
                                             limit=limit)
            if not claimed:
                return 0
            blocked = await hold_rows_of_held_chats(uow, claimed)
            await uow.commit()
        self.stats.claimed += len(claimed)
        self.stats.held += sum(1 for d in claimed if d.chat_id in blocked)
        for delivery in claimed:
            if delivery.chat_id not in blocked:
                self._enqueue(Row(delivery, lease_end))
        return len(claimed)

    def _enqueue(self, row: Row) -> None:
        chat_id = row.delivery.chat_id or 0
        target = self._targets.get(chat_id)
        if target is None:
            target = self._targets[chat_id] = _Target(self.pacer.lane(chat_id))
        target.queue.append(row)
        self._pending += 1
        if not target.busy:
            target.busy = True
            task = asyncio.create_task(self._work(target), name=f"relay-chat-{chat_id}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _done(self, count: int = 1) -> None:
        self._pending -= count
        self._changed.set()

    def _prune(self) -> None:
        """Forget idle chats' pacing state (once a minute; only what no longer matters)."""
        now = self.monotonic()
        if now - self._last_prune < 60:
            return
        self._last_prune = now
        for chat_id in [c for c, t in self._targets.items() if not t.busy and not t.queue and t.lane.idle(now)]:
            del self._targets[chat_id]

    # -- one chat, one row at a time --------------------------------------------------------------

    async def _work(self, target: _Target) -> None:
        try:
            while target.queue:
                row = target.queue[0]
                try:
                    await self._attempt(target, row)
                except (Release, Late) as release:
                    await self._release(target.queue, release.until, release.reason)
                    self._done(len(target.queue))
                    target.queue.clear()
                    return
                except Closing:
                    await self._release(target.queue, self.monotonic(), "relay stopped")
                    self._done(len(target.queue))
                    target.queue.clear()
                    return
                except Exception:  # a bug must not stop the chat's row for good: the lease brings it back
                    log.exception("relay: row %s failed unexpectedly", row.delivery.id)
                    self.stats.errors["internal"] += 1
                target.queue.popleft()
                self._done()
        finally:
            target.busy = False

    async def _attempt(self, target: _Target, row: Row) -> None:
        delivery = row.delivery
        # What this task logs from here on names the row's case and chat (one task per target).
        set_log_context(case=delivery.payload.get("case_no"), chat=delivery.chat_id)
        while True:
            if not row.composed:
                try:
                    row.notice = await self._compose(delivery)
                    row.composed = True
                except Exception as exc:
                    log.exception("relay: composing row %s (%s) failed", delivery.id, delivery.kind)
                    self.stats.errors["compose"] += 1
                    if delivery.attempts + 1 >= self.compose_attempts:
                        await self._give_up([delivery], f"compose failed: {exc!r}")
                        return
                    until = self.monotonic() + self._backoff(delivery.attempts)
                    raise Release(until, f"compose failed: {exc!r}") from None
            notice = row.notice
            if notice is None:  # nothing (left) to say: the row is done without a call
                await self.writes.confirm(delivery, None, None)
                self.stats.skipped += 1
                return
            try:
                sent = await self._deliver(target, row, notice)
            except TopicGone as exc:
                gone = row.notice or notice  # with the topic it was sent to, if it made one
                key, thread_id = gone.desk_key, gone.thread_id
                log.info("relay: the topic %s of desk item %s is gone (%s): making a new one", thread_id, key,
                         exc.description)
                if key is not None:
                    await self.writes.write(lambda uow: topic_gone(uow, key, thread_id))  # noqa: B023 - awaited here
                    row.recreating = True
                self._recompose(row)
                continue
            except Blocked as exc:
                await self._blocked(target, exc)
                return
            except Rejected as exc:
                log.warning("relay: row %s to chat %s rejected: %s", delivery.id, target.chat_id, exc.description)
                await self._give_up([delivery], f"{exc.code}: {exc.description}")
                return
            if notice.prelude:  # the new topic's card is there: now the row itself
                await self.writes.confirm(None, row.notice, sent)
                self._recompose(row)
                continue
            await self.writes.confirm(delivery, row.notice, sent)
            self.stats.sent += 1
            self.stats.edited += sent.edited
            return

    def _recompose(self, row: Row) -> None:
        row.rounds += 1
        if row.rounds >= MAX_ROUNDS:
            raise Release(self.monotonic() + self._backoff(row.delivery.attempts), "the topic keeps going away")
        row.composed, row.notice = False, None
        row.force_new = row.caption_edit = False
        row.album_mode = 0

    async def _deliver(self, target: _Target, row: Row, notice: Notice) -> Sent:
        """The calls of one notice: a new topic first when it needs one, then its message. Raises
        TopicGone, Blocked and Rejected for the caller; waits out 429s and transient failures."""
        if notice.topic_name is not None and notice.thread_id is None and notice.desk_key is not None:
            thread_id = await self._paced(target, row, self.topics.call(row, notice.chat_id, notice.topic_name,
                                                                        notice.desk_key))
            row.topic_task, row.recreating = None, False
            notice = row.notice = replace(notice, thread_id=thread_id, topic_name=None)
        while True:
            try:
                return await self._paced(target, row, lambda: call_once(self.sender, notice, row))
            except (MessageGone, NotText, WrongFile) as exc:
                done = another_way(row, notice, target.chat_id, exc)
                if done is not None:
                    return done

    async def _paced(self, target: _Target, row: Row, call: Callable[[], Awaitable[T]]) -> T:
        """One Bot API call when the pacer gives the chat its slot; a 429 holds the chat (bot.pacing) and
        a transient failure backs it off, then the call is made again. Other failures are counted and
        raised."""
        while True:
            slots = await self.pacer.wait(target.lane, row.lease_end - self.lease_margin)
            try:
                with self.pacer.answering(slots):
                    return await timed(call, self.send_timeout)
            except RetryAfter as exc:
                self.stats.throttled += 1
                self.stats.errors["429"] += 1
                self.pacer.throttled(target.lane, exc.seconds)
            except Transient as exc:
                self.stats.errors[exc.code] += 1
                row.failures += 1
                delay = self._backoff(row.delivery.attempts + row.failures - 1)
                log.warning("relay: chat %s: %s (%s); retrying in %.1fs", target.chat_id, exc.code,
                            exc.description, delay)
                self.pacer.back_off(target.lane, delay)
            except SendError as exc:
                self.stats.errors[exc.code] += 1
                raise

    async def _compose(self, delivery: Delivery) -> Notice | None:
        async with self.uow() as uow:
            notice = await compose(uow, delivery, self.settings, self.names.known())
        if notice is not None and notice.names_wanted:
            # Asked outside the unit of work (no transaction waits on Telegram), then drawn again.
            for chat_id in notice.names_wanted:
                await self.names.name(chat_id)
            async with self.uow() as uow:
                notice = await compose(uow, delivery, self.settings, self.names.known())
        return notice

    def _backoff(self, attempts: int) -> float:
        return float(min(self.config.max_backoff_seconds, self.backoff_base * 2 ** min(max(attempts, 0), 30)))

    # -- writing outcomes ---------------------------------------------------------------------------

    async def _release(self, rows: deque[Row], until: float, reason: str) -> None:
        self.stats.deferred += await self.writes.release([row.delivery for row in rows], until, reason)

    async def _give_up(self, deliveries: list[Delivery], error: str) -> None:
        await self.writes.give_up(deliveries, error)
        self.stats.given_up += len(deliveries)

    async def _blocked(self, target: _Target, exc: Blocked) -> None:
        """403: record the chat as held and hold this row and the chat's other rows here (bot.workers.relay_held);
        its later rows in the outbox wait behind them. All go out, in order, once the chat is reopened."""
        deliveries = [row.delivery for row in target.queue]
        await hold_chat(self.uow, target.chat_id, deliveries, exc.description, self.wall_clock, self.settings)
        self.stats.blocked_chats += 1
        self.stats.held += len(deliveries)
        log.info("relay: chat %s cannot be written to (%s); %d rows held until it is reopened", target.chat_id,
                 exc.description, len(deliveries))
        # Everything queued behind this row is settled too.
        rest = len(target.queue) - 1
        if rest > 0:
            while len(target.queue) > 1:
                target.queue.pop()
            self._done(rest)

    # -- stopping -----------------------------------------------------------------------------------

    async def _close(self, graceful: bool) -> None:
        self._closing.set()
        self._changed.set()
        tasks = list(self._tasks)
        if not graceful:
            for task in tasks:
                task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        await self.topics.close(graceful)
        await self.pacer.close()
        self._closing.clear()
        if not graceful:  # the leases bring the rows back
            self._pending = 0
            for target in self._targets.values():
                target.queue.clear()


async def _first(*aws: Any, timeout: float) -> None:
    """Wait until the first of `aws` completes, or `timeout` seconds; cancel the rest."""
    tasks = [asyncio.ensure_future(aw) for aw in aws]
    try:
        await asyncio.wait(tasks, timeout=max(timeout, 0.0), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
