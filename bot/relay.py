"""The notification relay: outbox rows out to Telegram, within Telegram's limits, at least once.

Loop: claim a batch of due rows under a lease (the outbox hands out only the oldest open row of each
chat, so a chat's rows go in id order), then for each chat, one row at a time: compose it
(dialogs.notify, in a unit of work), wait for the chat's and the global sending slot, make one Bot API
call through a `Sender`, and confirm it in a unit of work (mark_sent, and the status card's message id
when the row was a card). Only then does the chat's next row come up.

Pacing, per target, in sliding windows like Telegram's (each a little wider, by `headroom`, so that the
jitter between our clock and Telegram's never makes a 429):
- a private chat (id > 0): at most `per_chat_per_second`;
- a group (id < 0): at most `per_group_per_minute`, and no faster than a private chat;
- everything together: at most `global_per_second`, spread evenly rather than in bursts.
Each chat waits for its own window first and only then takes a global slot, so sends to different
chats go concurrently up to the global rate and a slow or held chat never holds up the others.

Failures (the `Sender` maps its library's exceptions to bot.sending's):
- 429: that chat sends nothing until retry_after. Two or more chats answered 429 within a second, or a
  group well under its own limit, mean the bot as a whole is flooded: everything holds until
  retry_after, and no new rows are claimed meanwhile.
- 5xx, timeouts, network: the chat backs off exponentially (1 s, 2 s, 4 s... up to max_backoff_seconds).
- 403 (the user blocked the bot, the bot is out of the group): the chat is recorded as held and this row
  and every later row of it wait unsent, in order, until the chat is reopened (dialogs.reach: the user
  writes again, my_chat_member says the bot is back); nothing is retried blindly meanwhile.
- an edit of a card that is gone: a new card is sent instead (on the chat's next slot);
  "message is not modified": delivered.
- any other 4xx: this row is given up.
The agents' desk (a forum group; see dialogs.notify): a row may take several calls — create the item's
topic, send its card, then the row's own message — each paced like any other, and each answer written
down at once (a later failure of the row does not make its topic again). A topic found gone ("message
thread not found") is forgotten and the row composed again, which makes a new topic with a new card
first. The customer's and the owner's names on a card come from getChat, asked once and kept for an
hour.
A wait that fits in the row's lease is waited out here; a longer one releases the row to the outbox
(`defer` until the wait ends), which also holds back the chat's later rows.

At least once: a row is confirmed only after Telegram took it, so a crash between the two sends it
again (after the lease); a row confirmed is never claimed again. A stop (`stop` set) lets sends in
flight finish and be confirmed and releases the rows not yet sent, so another relay can take them at
once. Two relays on one database never hold the same row.

Several workers: alone, each relay keeps the limits by itself, so N of them together may send N times
too fast. With a shared limiter (`limiter`, bot.ratelimit: Redis, `[redis]` in the config) every call
also takes its slot in shared windows — global, the chat's, the group's minute — asked for at the same
point of the wait as the local global slot (in the turnstile); the local per-chat and per-group windows
still apply too. When the limiter cannot answer, the relay paces itself with its share of the global
rate (global_per_second / expected_workers): it asks once more a moment later (a single slow answer
must not make it send unseen by the workers still using the limiter), then pauses one global window (so
that no second counts both the shared sends before and its own after), then keeps its own windows until
the limiter answers again; for a while after that (retry time + one window) it keeps its share too, as
the other workers may not have come back yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

from bot.config import RelayConfig
from bot.logs import set_log_context
from bot.ratelimit import Busy, Grant, Limit, SharedLimiter
from bot.sending import (
    Blocked,
    MessageGone,
    NotModified,
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
from dialogs.clock import utcnow
from dialogs.domain import Delivery
from dialogs.notify import Notice, Sent, compose, delivered, topic_created, topic_gone
from dialogs.ports import UnitOfWorkFactory
from dialogs.reach import chat_lost
from dialogs.settings import CoreSettings

log = logging.getLogger(__name__)

T = TypeVar("T")

FLOOD_TARGETS = 2  # distinct chats answering 429 within FLOOD_WINDOW: the whole bot is flooded
FLOOD_WINDOW = 1.0
CONFIRM_ATTEMPTS = 3
# Compositions of one row: a prelude (a new topic and its card) and a topic found gone, each once or twice.
MAX_ROUNDS = 4
# How an album's files are tried: by file id as photos, as documents, then the stored files uploaded.
ALBUM_MODES = ("photo", "document", "upload")
NAMES_KEPT = 10_000  # display names remembered for desk cards
NAME_TTL = 3600.0  # seconds before a name is asked for again
NAME_TIMEOUT = 5.0
# The shared limiter did not answer: it is asked once more after this long before the relay paces alone.
SHARED_CONFIRM_DELAY = 0.25


class Slot:
    """One booked call in a `Window`: `at` is when it was to start, moved on to when its answer came.

    The far end counts a call somewhere between the two; counting it at the answer keeps the next
    window honest however late the request got there (a busy event loop, a slow network)."""

    __slots__ = ("at",)

    def __init__(self, at: float) -> None:
        self.at = at

    def answered(self, at: float) -> None:
        self.at = max(self.at, at)


class Window:
    """At most `limit` calls in any `span` seconds, and successive calls at least `gap` apart.

    Slots are booked in non-decreasing time order (a slot is booked when it is taken)."""

    def __init__(self, limit: int, span: float, gap: float = 0.0) -> None:
        self.limit = max(1, limit)
        self.span = span
        self.gap = gap
        self.slots: deque[Slot] = deque(maxlen=self.limit)

    @classmethod
    def per_second(cls, rate: float, headroom: float, smooth: float = 0.0, per: float = 1.0) -> Window:
        """`rate` per second as a window of whole calls over `per` seconds (30/s: 30 in 1 s; 0.5/s: 1 in
        2 s; 20/60 per second over a minute: 20 in 60 s), widened by `headroom`; `smooth` > 0 spreads
        the calls (gap = smooth x the mean interval)."""
        limit = max(1, math.floor(rate * per + 1e-9))
        span = limit / rate * (1 + headroom)
        return cls(limit, span, smooth * span / limit)

    def free_at(self, now: float) -> float:
        """The earliest time from `now` on at which a call would keep the window: `span` after the
        call `limit` calls ago was answered (or was to start, while it is in flight)."""
        at = now
        if self.slots:
            at = max(at, self.slots[-1].at + self.gap)
            if len(self.slots) >= self.limit:
                at = max(at, self.slots[0].at + self.span)
        return at

    def book(self, at: float) -> Slot:
        slot = Slot(at)
        self.slots.append(slot)
        return slot

    def used_within(self, now: float) -> int:
        return sum(1 for slot in self.slots if slot.at > now - self.span)

    def idle_since(self, now: float) -> bool:
        """Nothing within the last span: forgetting this window changes nothing."""
        return not self.slots or max(slot.at for slot in self.slots) <= now - self.span

    def shared(self, key: str) -> Limit:
        """The same window in a shared limiter, under `key`."""
        return Limit(key, self.limit, self.span, self.gap)


class _SharedSlot(Slot):
    """A call's booking in the shared limiter: its answer moves it on there too (see Slot)."""

    __slots__ = ("grant", "on_answer")

    def __init__(self, at: float, grant: Grant, on_answer: Callable[[Grant], None]) -> None:
        super().__init__(at)
        self.grant = grant
        self.on_answer = on_answer

    def answered(self, at: float) -> None:
        super().answered(at)
        self.on_answer(self.grant)


@dataclass
class RelayStats:
    """Counters for /metrics: monotonic over the relay's life."""

    claimed: int = 0
    sent: int = 0  # rows delivered: new messages and edits
    edited: int = 0  # of those, edits in place (including "not modified")
    skipped: int = 0  # rows compose had nothing to say for: confirmed without a call
    deferred: int = 0  # rows released to the outbox to be tried again later
    given_up: int = 0  # rows never to be sent (a rejected message)
    held: int = 0  # rows kept unsent until their chat is reopened (blocked by the user, bot out of the group)
    blocked_chats: int = 0
    throttled: int = 0  # 429s received
    global_holds: int = 0  # floods detected: every chat held
    shared_fallbacks: int = 0  # times the shared limiter stopped answering and the relay paced alone
    errors: Counter[str] = field(default_factory=Counter)  # failed calls by code: 429, 403, 5xx, network...

    def as_dict(self) -> dict[str, Any]:
        return {"claimed": self.claimed, "sent": self.sent, "edited": self.edited, "skipped": self.skipped,
                "deferred": self.deferred, "given_up": self.given_up, "held": self.held, "blocked_chats": self.blocked_chats,
                "throttled": self.throttled, "global_holds": self.global_holds,
                "shared_fallbacks": self.shared_fallbacks, "errors": dict(self.errors)}


@dataclass
class _Item:
    delivery: Delivery
    lease_end: float  # monotonic: start no call after lease_end - margin
    notice: Notice | None = None
    composed: bool = False
    failures: int = 0  # transient failures since claimed
    force_new: bool = False  # the card to edit is gone: send a new one
    rounds: int = 0  # compositions after the first (a prelude delivered, a topic found gone)
    recreating: bool = False  # the item's topic was found gone: the next one made replaces it
    album_mode: int = 0  # index into ALBUM_MODES
    caption_edit: bool = False  # the copy to edit has no text: edit its caption
    topic_task: asyncio.Task[int] | None = None  # this row's createForumTopic, until its answer is used


@dataclass
class _Target:
    chat_id: int
    windows: list[Window]
    shared: tuple[Limit, ...] = ()  # the chat's windows and the global one, in the shared limiter
    queue: deque[_Item] = field(default_factory=deque)
    busy: bool = False
    hold_until: float = 0.0


class _Release(Exception):
    """The item cannot be sent within its lease: give it back to the outbox until `until` (monotonic)."""

    def __init__(self, until: float, reason: str) -> None:
        super().__init__(reason)
        self.until = until
        self.reason = reason


class _Closing(Exception):
    """The relay is stopping: release what has not been sent."""


class Relay(Sweep[Delivery]):
    what = "outbox claim"
    log = log

    def __init__(self, uow: UnitOfWorkFactory, sender: Sender, config: RelayConfig, settings: CoreSettings, *,
                 owner: str | None = None, headroom: float = 0.01, send_timeout: float = 15.0,
                 backoff_base: float = 1.0, compose_attempts: int = 8,
                 wall_clock: Callable[[], datetime] = utcnow,
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
        # A call must start this long before the lease ends, so it is confirmed before another relay
        # may take the row over.
        self.lease_margin = min(config.lease_seconds / 2, send_timeout + 2)
        self.stats = RelayStats()
        self._global = Window.per_second(config.global_per_second, headroom, smooth=0.5)
        self._global_hold = 0.0
        # Shared pacing (None: this relay paces alone, with the whole global rate).
        self.limiter = limiter
        self._share: Window | None = None  # this worker's share of the global rate, while it paces alone
        if limiter is not None:
            share = config.global_per_second / max(1, limiter.expected_workers)
            self._share = Window.per_second(share, headroom, smooth=0.5)
        # "shared": the limiter answers; "confirming": it did not, and is asked once more at _alone_from;
        # "alone": it did not twice, the relay paces by its share (from _alone_from on).
        self._shared_state = "shared"
        self._alone_from = 0.0
        self._alone_until = 0.0  # back on the limiter after pacing alone: the share is kept until then too
        self._shared_answers: set[asyncio.Task[None]] = set()
        self._targets: dict[int, _Target] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._pending = 0  # items claimed and not yet done with
        self._changed = asyncio.Event()  # an item finished, or the relay is closing
        self._closing = asyncio.Event()
        self._turnstile = asyncio.Lock()  # FIFO: the chats that may go take global slots in turn
        self._recent_429: deque[tuple[float, int]] = deque()
        self._names: OrderedDict[int, tuple[str, float]] = OrderedDict()  # chat id -> (name, when asked)
        # Desk key -> its createForumTopic in flight (see _topic_call): never a second one meanwhile.
        self._topics: dict[str, asyncio.Task[int]] = {}
        self._last_prune = 0.0

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
            blocked = await uow.chats.blocked(d.chat_id for d in claimed if d.chat_id is not None)
            for delivery in claimed:
                if delivery.chat_id in blocked:  # held until the chat is reopened (dialogs.reach)
                    await uow.outbox.hold(delivery.id, error="the chat is blocked: held until it is reopened")
            await uow.commit()
        self.stats.claimed += len(claimed)
        self.stats.held += sum(1 for d in claimed if d.chat_id in blocked)
        for delivery in claimed:
            if delivery.chat_id not in blocked:
                self._enqueue(_Item(delivery, lease_end))
        return len(claimed)

    def _enqueue(self, item: _Item) -> None:
        chat_id = item.delivery.chat_id or 0
        target = self._targets.get(chat_id)
        if target is None:
            windows = self._windows_for(chat_id)
            shared: tuple[Limit, ...] = ()
            if self.limiter is not None:
                names = [f"chat:{chat_id}", f"group:{chat_id}"]
                shared = (self._global.shared("global"),
                          *(window.shared(name) for window, name in zip(windows, names, strict=False)))
            target = self._targets[chat_id] = _Target(chat_id, windows, shared)
        target.queue.append(item)
        self._pending += 1
        if not target.busy:
            target.busy = True
            task = asyncio.create_task(self._work(target), name=f"relay-chat-{chat_id}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _windows_for(self, chat_id: int) -> list[Window]:
        private = Window.per_second(self.config.per_chat_per_second, self.headroom)
        if chat_id >= 0:
            return [private]
        # A group: no faster than a private chat, and at most per_group_per_minute in any minute.
        return [private, Window.per_second(self.config.per_group_per_minute / 60, self.headroom, per=60)]

    def _done(self, count: int = 1) -> None:
        self._pending -= count
        self._changed.set()

    def _prune(self) -> None:
        """Forget idle chats' pacing state (once a minute; only what no longer matters)."""
        now = self.monotonic()
        if now - self._last_prune < 60:
            return
        self._last_prune = now
        for chat_id in [c for c, t in self._targets.items()
                        if not t.busy and not t.queue and t.hold_until <= now
                        and all(w.idle_since(now) for w in t.windows)]:
            del self._targets[chat_id]

    # -- one chat, one row at a time --------------------------------------------------------------

    async def _work(self, target: _Target) -> None:
        try:
            while target.queue:
                item = target.queue[0]
                try:
                    await self._attempt(target, item)
                except _Release as release:
                    await self._release(list(target.queue), release.until, release.reason)
                    self._done(len(target.queue))
                    target.queue.clear()
                    return
                except _Closing:
                    await self._release(list(target.queue), self.monotonic(), "relay stopped")
                    self._done(len(target.queue))
                    target.queue.clear()
                    return
                except Exception:  # a bug must not stop the chat's row for good: the lease brings it back
                    log.exception("relay: row %s failed unexpectedly", item.delivery.id)
                    self.stats.errors["internal"] += 1
                target.queue.popleft()
                self._done()
        finally:
            target.busy = False

    async def _attempt(self, target: _Target, item: _Item) -> None:
        delivery = item.delivery
        # What this task logs from here on names the row's case and chat (one task per target).
        set_log_context(case=delivery.payload.get("case_no"), chat=delivery.chat_id)
        while True:
            if not item.composed:
                try:
                    item.notice = await self._compose(delivery)
                    item.composed = True
                except Exception as exc:
                    log.exception("relay: composing row %s (%s) failed", delivery.id, delivery.kind)
                    self.stats.errors["compose"] += 1
                    if delivery.attempts + 1 >= self.compose_attempts:
                        await self._give_up([delivery], f"compose failed: {exc!r}")
                        return
                    until = self.monotonic() + self._backoff(delivery.attempts)
                    raise _Release(until, f"compose failed: {exc!r}") from None
            notice = item.notice
            if notice is None:  # nothing (left) to say: the row is done without a call
                await self._confirm(delivery, None, None)
                self.stats.skipped += 1
                return
            try:
                sent = await self._deliver(target, item, notice)
            except TopicGone as exc:
                gone = item.notice or notice  # with the topic it was sent to, if it made one
                key, thread_id = gone.desk_key, gone.thread_id
                log.info("relay: the topic %s of desk item %s is gone (%s): making a new one", thread_id, key,
                         exc.description)
                if key is not None:
                    await self._write(lambda uow: topic_gone(uow, key, thread_id))  # noqa: B023 - awaited here
                    item.recreating = True
                await self._recompose(item)
                continue
            except Blocked as exc:
                await self._blocked(target, exc)
                return
            except Rejected as exc:
                log.warning("relay: row %s to chat %s rejected: %s", delivery.id, target.chat_id, exc.description)
                await self._give_up([delivery], f"{exc.code}: {exc.description}")
                return
            if notice.prelude:  # the new topic's card is there: now the row itself
                await self._confirm(None, item.notice, sent)
                await self._recompose(item)
                continue
            await self._confirm(delivery, item.notice, sent)
            self.stats.sent += 1
            self.stats.edited += sent.edited
            return

    async def _recompose(self, item: _Item) -> None:
        item.rounds += 1
        if item.rounds >= MAX_ROUNDS:
            raise _Release(self.monotonic() + self._backoff(item.delivery.attempts), "the topic keeps going away")
        item.composed, item.notice = False, None
        item.force_new = item.caption_edit = False
        item.album_mode = 0

    async def _deliver(self, target: _Target, item: _Item, notice: Notice) -> Sent:
        """The calls of one notice: a new topic first when it needs one, then its message. Raises
        TopicGone, Blocked and Rejected for the caller; waits out 429s and transient failures."""
        if notice.topic_name is not None and notice.thread_id is None and notice.desk_key is not None:
            thread_id = await self._paced(target, item, self._topic_call(item, notice.chat_id, notice.topic_name,
                                                                         notice.desk_key))
            item.topic_task, item.recreating = None, False
            notice = item.notice = replace(notice, thread_id=thread_id, topic_name=None)
        while True:
            try:
                return await self._paced(target, item, lambda: self._call_once(notice, item))
            except MessageGone as exc:
                if not (notice.card_of or notice.desk_card):
                    return Sent(None, edited=True)  # the copy to edit is gone: nothing left to edit
                log.info("relay: card %s in chat %s is gone (%s): sending a new one", notice.edit_message_id,
                         target.chat_id, exc.description)
                item.force_new = True
            except NotText:
                if item.caption_edit:
                    raise Rejected("neither text nor caption to edit", "400") from None
                item.caption_edit = True
            except WrongFile as exc:
                if not notice.album or item.album_mode + 1 >= len(ALBUM_MODES):
                    raise Rejected(exc.description, exc.code) from None
                item.album_mode += 1
                if "identifier" in exc.description.lower():  # not this bot's file ids at all
                    item.album_mode = len(ALBUM_MODES) - 1

    def _topic_call(self, item: _Item, chat_id: int, name: str, key: str) -> Callable[[], Awaitable[int]]:
        """createForumTopic is not idempotent, and its answer may come after our timeout although the
        topic was made. So the call runs as a task of its own, with the sender's long topic timeout, and
        writes its topic down itself when it answers; a timeout here only stops waiting for it. A retry
        (of this row, or of a row of the same desk item claimed again meanwhile) waits for that same
        task instead of making a second topic. Only a call that failed makes a new one."""
        async def call() -> int:
            task = item.topic_task
            if task is None or (task.done() and (task.cancelled() or task.exception() is not None)):
                task = item.topic_task = self._topics.get(key) or self._start_topic(chat_id, name, key,
                                                                                     item.recreating)
            return await asyncio.shield(task)
        return call

    def _start_topic(self, chat_id: int, name: str, key: str, recreated: bool) -> asyncio.Task[int]:
        async def make() -> int:
            thread_id = await self.sender.create_topic(chat_id, name)
            await self._write(lambda uow: topic_created(uow, key, thread_id, chat_id=chat_id, recreated=recreated,
                                                        at=self.wall_clock()))
            return thread_id

        task = self._topics[key] = asyncio.create_task(make(), name=f"relay-topic-{key}")

        def forget(done: asyncio.Task[int]) -> None:
            if self._topics.get(key) is done:
                del self._topics[key]
            if not done.cancelled() and done.exception() is not None:  # retrieved: the row's retry says more
                log.info("relay: creating the topic of desk item %s failed: %r", key, done.exception())
        task.add_done_callback(forget)
        return task

    async def _paced(self, target: _Target, item: _Item, call: Callable[[], Awaitable[T]]) -> T:
        """One Bot API call in the target's and the global slot; a 429 holds the target and a transient
        failure backs it off, then the call is made again. Other failures are counted and raised."""
        while True:
            slots = await self._wait_for_slot(target, item)
            try:
                return await self._timed(call, slots)
            except RetryAfter as exc:
                self.stats.throttled += 1
                self.stats.errors["429"] += 1
                self._hold(target, exc.seconds)
            except Transient as exc:
                self.stats.errors[exc.code] += 1
                item.failures += 1
                delay = self._backoff(item.delivery.attempts + item.failures - 1)
                log.warning("relay: chat %s: %s (%s); retrying in %.1fs", target.chat_id, exc.code,
                            exc.description, delay)
                target.hold_until = max(target.hold_until, self.monotonic() + delay)
            except SendError as exc:
                self.stats.errors[exc.code] += 1
                raise

    async def _compose(self, delivery: Delivery) -> Notice | None:
        async with self.uow() as uow:
            notice = await compose(uow, delivery, self.settings, self._known_names())
        if notice is not None and notice.names_wanted:
            # Asked outside the unit of work (no transaction waits on Telegram), then drawn again.
            for chat_id in notice.names_wanted:
                await self._name(chat_id)
            async with self.uow() as uow:
                notice = await compose(uow, delivery, self.settings, self._known_names())
        return notice

    def _known_names(self) -> dict[int, str]:
        now = self.monotonic()
        return {chat_id: name for chat_id, (name, at) in self._names.items() if now - at < NAME_TTL}

    async def _name(self, chat_id: int) -> str:
        """A person's display name for desk cards ("" when Telegram will not say): getChat, or for
        someone who never wrote to the bot, their membership of the desk group."""
        known = self._names.get(chat_id)
        if known is not None and self.monotonic() - known[1] < NAME_TTL:
            return known[0]
        name = ""
        desk = self.settings.desk.chat_id
        for member_of in (None, desk) if desk and chat_id > 0 else (None,):
            try:
                async with asyncio.timeout(NAME_TIMEOUT):
                    name = await self.sender.chat_name(chat_id, member_of=member_of)
                break
            except Exception as exc:  # noqa: BLE001 - an unknown chat, a network failure: the card shows the id
                log.debug("relay: no name for %s (%r)", chat_id, exc)
        self._names[chat_id] = (name, self.monotonic())
        self._names.move_to_end(chat_id)
        while len(self._names) > NAMES_KEPT:
            self._names.popitem(last=False)
        return name

    async def _wait_for_slot(self, target: _Target, item: _Item) -> list[Slot]:
        """Sleep until the chat may be sent to, then pass the global turnstile: one chat at a time, in
        the order they became ready, waits there for the global pace and books its call. Returns the
        booked slots (to be marked answered). Raises _Release when the call could not start within
        the lease, _Closing when the relay stops.

        A slot is booked only when it has come, never ahead: the window then counts the calls before
        it at their answers (see Slot), which makes the pace hold however late requests arrive."""
        deadline = item.lease_end - self.lease_margin
        while True:
            if self._closing.is_set():
                raise _Closing
            now = self.monotonic()
            ready = max([target.hold_until, self._global_hold] + [w.free_at(now) for w in target.windows])
            if ready > deadline:
                raise _Release(ready, "held past the lease")
            if ready > now:
                await self._sleep(ready - now)
                continue
            try:
                async with asyncio.timeout(max(0.0, deadline - now)):
                    await self._turnstile.acquire()
            except TimeoutError:
                raise _Release(self.monotonic(), "no global slot within the lease") from None
            try:
                while not self._closing.is_set():
                    now = self.monotonic()
                    if now < max(target.hold_until, self._global_hold):
                        break  # a 429 came meanwhile: wait for the hold outside the turnstile
                    slot = self._global_free_at(now)
                    grant: Grant | None = None
                    if slot <= now and self.limiter is not None:
                        was_alone = self._shared_state == "alone"
                        answer = await self._ask_shared(target)
                        now = self.monotonic()
                        if isinstance(answer, Busy) and answer.key != "global":
                            # The chat's own shared window (another worker sent to it): wait outside.
                            target.hold_until = max(target.hold_until, now + answer.wait)
                            break
                        if isinstance(answer, Busy):
                            slot = now + answer.wait
                        elif answer is None and not was_alone:
                            continue  # not answering: wait (see _ask_shared), then ask again or go alone
                        else:
                            grant = answer
                    if slot > deadline:
                        raise _Release(slot, "no global slot within the lease")
                    if slot <= now:
                        return self._book(target, now, grant)
                    await self._sleep(slot - now)
            finally:
                self._turnstile.release()

    def _alone(self, now: float) -> bool:
        """Pacing by this relay's share of the global rate: the shared limiter does not answer, or has
        only just come back."""
        return self._share is not None and (self._shared_state != "shared" or now < self._alone_until)

    def _global_free_at(self, now: float) -> float:
        at = self._global.free_at(now)
        if self._share is not None and self._alone(now):
            at = max(at, self._share.free_at(now), self._alone_from if self._shared_state != "shared" else now)
        return at

    async def _ask_shared(self, target: _Target) -> Grant | Busy | None:
        """The shared limiter's answer for the target's call; notes when it stops or starts answering.

        Not answering: asked once more SHARED_CONFIRM_DELAY later (one slow answer, while the other
        workers still use it, must not make this relay send unseen by them); not answering again: the
        relay paces alone, but only one global window after that second try, by when every send the
        limiter granted (to any worker) has left every window."""
        assert self.limiter is not None
        state = self._shared_state
        answer = await self.limiter.acquire(target.shared, retry=state == "confirming")
        now = self.monotonic()
        if answer is None and state == "shared":
            self._shared_state = "confirming"
            self.stats.shared_fallbacks += 1
            self._alone_from = now + SHARED_CONFIRM_DELAY
        elif answer is None and state == "confirming":
            self._shared_state = "alone"
            self._alone_from = now + self._global.span
            log.info("relay: the shared rate limiter is not answering: pacing alone at %g/s",
                     self.config.global_per_second / max(1, self.limiter.expected_workers))
        elif answer is not None and state != "shared":
            self._shared_state = "shared"
            if state == "alone":
                # The other workers may still be pacing alone, unseen by the limiter: keep to the share
                # until they have all tried again.
                self._alone_until = now + self.limiter.retry_seconds + self._global.span
                log.info("relay: the shared rate limiter answers again")
        return answer

    def _book(self, target: _Target, now: float, grant: Grant | None) -> list[Slot]:
        slots = [self._global.book(now)] + [window.book(now) for window in target.windows]
        if self._share is not None:
            slots.append(self._share.book(now))  # always: it must know this relay's sends when alone
        if grant is not None:
            slots.append(_SharedSlot(now, grant, self._shared_answered))
        return slots

    def _shared_answered(self, grant: Grant) -> None:
        if self.limiter is None:
            return
        task = asyncio.create_task(self.limiter.answered(grant))
        self._shared_answers.add(task)
        task.add_done_callback(self._shared_answers.discard)

    async def _sleep(self, seconds: float) -> None:
        if self._closing.is_set():
            raise _Closing
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), seconds)
        if self._closing.is_set():
            raise _Closing

    async def _timed(self, call: Callable[[], Awaitable[T]], slots: list[Slot]) -> T:
        """Make the call within send_timeout; the booked slots count it at its answer."""
        try:
            async with asyncio.timeout(self.send_timeout):
                return await call()
        except TimeoutError:
            raise Transient(f"no answer within {self.send_timeout:g}s", "timeout") from None
        except SendError:
            raise
        except Exception as exc:  # whatever else the library raised: assume the call may work later
            raise Transient(repr(exc), "unknown") from exc
        finally:
            answered = self.monotonic()
            for slot in slots:
                slot.answered(answered)

    async def _call_once(self, notice: Notice, item: _Item) -> Sent:
        """The one Bot API call that delivers `notice`."""
        sender, chat_id = self.sender, notice.chat_id
        if notice.edit_message_id is not None and not item.force_new:
            message_id = notice.edit_message_id
            try:
                if item.caption_edit:
                    await sender.edit_caption(chat_id, message_id, notice.text, notice.buttons)
                else:
                    await sender.edit(chat_id, message_id, notice.text, notice.buttons)
            except NotModified:
                pass
            return Sent(message_id, (message_id,), edited=True)
        if notice.album:
            ids = await sender.send_album(chat_id, notice.album, ALBUM_MODES[item.album_mode], caption=notice.text,
                                          thread_id=notice.thread_id)
            return Sent(ids[0] if ids else None, tuple(ids))
        if len(notice.copies) == 1:
            source = notice.copies[0]
            copy_id = await sender.copy(chat_id, source.from_chat_id, source.message_id, thread_id=notice.thread_id)
            return Sent(copy_id, (copy_id,))
        if notice.copies:
            ids = await sender.copy_many(chat_id, notice.copies[0].from_chat_id,
                                         [c.message_id for c in notice.copies], thread_id=notice.thread_id)
            return Sent(ids[0] if ids else None, tuple(ids))
        message_id = await sender.send(chat_id, notice.text, notice.buttons, thread_id=notice.thread_id)
        return Sent(message_id, (message_id,))

    def _hold(self, target: _Target, seconds: float) -> None:
        now = self.monotonic()
        until = now + max(seconds, 0.0)
        target.hold_until = max(target.hold_until, until)
        while self._recent_429 and self._recent_429[0][0] < now - FLOOD_WINDOW:
            self._recent_429.popleft()
        self._recent_429.append((now, target.chat_id))
        flooded = len({chat for _, chat in self._recent_429}) >= FLOOD_TARGETS
        # A group that used less than half its minute's budget was not over its own limit.
        if target.chat_id < 0 and len(target.windows) > 1:
            group = target.windows[-1]
            flooded = flooded or group.used_within(now) <= group.limit // 2
        if flooded and until > self._global_hold:
            if self._global_hold <= now:
                self.stats.global_holds += 1
            log.warning("relay: the bot is flooded (chat %s answered 429): holding every send for %gs",
                        target.chat_id, seconds)
            self._global_hold = until
        else:
            log.info("relay: chat %s answered 429: holding it for %gs", target.chat_id, seconds)

    def _backoff(self, attempts: int) -> float:
        return float(min(self.config.max_backoff_seconds, self.backoff_base * 2 ** min(max(attempts, 0), 30)))

    # -- writing outcomes ---------------------------------------------------------------------------

    async def _confirm(self, delivery: Delivery | None, notice: Notice | None, sent: Sent | None) -> None:
        """Write down what Telegram took (see dialogs.notify.delivered); `delivery` None: a prelude."""
        for attempt in range(CONFIRM_ATTEMPTS):
            try:
                async with self.uow() as uow:
                    await delivered(uow, delivery, notice, sent, self.wall_clock())
                    await uow.commit()
                return
            except Exception:
                # Unconfirmed, the row comes back after its lease and is sent again (at least once).
                log.exception("relay: confirming row %s failed (attempt %d)", delivery.id if delivery else "-",
                              attempt + 1)
                await asyncio.sleep(0.2 * 2**attempt)

    async def _write(self, write: Callable[[Any], Awaitable[None]]) -> None:
        """One unit of work for what a call changed (a topic made or gone), retried like a confirm; raises
        when it cannot be written (the row then comes back after its lease)."""
        for attempt in range(CONFIRM_ATTEMPTS):
            try:
                async with self.uow() as uow:
                    await write(uow)
                    await uow.commit()
                return
            except Exception:
                if attempt + 1 >= CONFIRM_ATTEMPTS:
                    raise
                log.exception("relay: a desk write failed (attempt %d)", attempt + 1)
                await asyncio.sleep(0.2 * 2**attempt)

    async def _release(self, items: Iterable[_Item], until: float, reason: str) -> None:
        items = list(items)
        if not items:
            return
        at = self.wall_clock() + timedelta(seconds=max(0.0, until - self.monotonic()))
        try:
            async with self.uow() as uow:
                for item in items:
                    await uow.outbox.defer(item.delivery.id, until=at, error=reason)
                await uow.commit()
            self.stats.deferred += len(items)
        except Exception:  # the leases bring them back
            log.exception("relay: releasing %d rows failed", len(items))

    async def _give_up(self, deliveries: list[Delivery], error: str) -> None:
        async with self.uow() as uow:
            for delivery in deliveries:
                await uow.outbox.give_up(delivery.id, at=self.wall_clock(), error=error)
            await uow.commit()
        self.stats.given_up += len(deliveries)

    async def _blocked(self, target: _Target, exc: Blocked) -> None:
        """403: record the chat as held (dialogs.reach: the desk's supervisors hear of it once) and hold
        this row and the chat's other rows here; its later rows in the outbox wait behind them. All go
        out, in order, once the chat is reopened."""
        error = f"403: {exc.description}"
        deliveries = [item.delivery for item in target.queue]
        async with self.uow() as uow:
            await chat_lost(uow, target.chat_id, self.wall_clock(), exc.description, self.settings)
            for delivery in deliveries:
                await uow.outbox.hold(delivery.id, error=error)
            await uow.commit()
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
        topics = list(self._topics.values())
        if topics:  # a topic being made is written down when Telegram answers (bounded by the topic timeout)
            if not graceful:
                for topic in topics:
                    topic.cancel()
            await asyncio.wait(topics)
        if self._shared_answers:  # each bounded by the limiter's timeout
            await asyncio.gather(*self._shared_answers, return_exceptions=True)
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
