"""When may the relay send to a chat: Telegram's windows per chat, per group and for the whole bot,
the holds a 429 asks for, and the shared limit of several workers (bot.pacing.shared).

Per target, in sliding windows like Telegram's (each a little wider, by `headroom`, so that the jitter
between our clock and Telegram's never makes a 429):
- a private chat (id > 0): at most `per_chat_per_second`;
- a group (id < 0): at most `per_group_per_minute`, and no faster than a private chat;
- everything together: at most `global_per_second`, spread evenly rather than in bursts.
Each chat waits for its own window first and only then takes a global slot, so sends to different
chats go concurrently up to the global rate and a slow or held chat never holds up the others.

A 429: that chat sends nothing until retry_after. Two or more chats answered 429 within a second, or a
group well under its own limit, mean the bot as a whole is flooded: everything holds until
retry_after (and the relay claims no new rows meanwhile: `global_hold`). With a shared limiter the hold
is shared too: the chat's (or the whole bot's) window in Redis grants nothing to any worker until then.

Several workers: alone, each relay keeps the limits by itself, so N of them together may send N times
too fast. With a shared limiter (`limiter`: Redis, `[redis]` in the config) every call also takes its
slot in shared windows — global, the chat's, the group's minute — asked for at the same point of the
wait as the local global slot (in the turnstile); the local per-chat and per-group windows still apply
too. When the limiter cannot answer, the pacer keeps its share of the global rate
(global_per_second / expected_workers): it asks once more a moment later (a single slow answer must not
make it send unseen by the workers still using the limiter), then pauses one global window (so that no
second counts both the shared sends before and its own after), then keeps its own windows until the
limiter answers again; for a while after that (retry time + one window) it keeps its share too, as the
other workers may not have come back yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from bot.config import RelayConfig
from bot.pacing.shared import Busy, Grant, Limit, SharedLimiter
from bot.pacing.windows import SharedSlot, Slot, Window

log = logging.getLogger(__name__)

FLOOD_TARGETS = 2  # distinct chats answering 429 within FLOOD_WINDOW: the whole bot is flooded
FLOOD_WINDOW = 1.0
# The shared limiter did not answer: it is asked once more after this long before the pacer goes alone.
SHARED_CONFIRM_DELAY = 0.25


@dataclass
class Lane:
    """One chat's pacing: its windows (the private chat's, and a group's minute), the same in the shared
    limiter with the global one, and how long it is held (a 429, a back-off)."""

    chat_id: int
    windows: list[Window]
    shared: tuple[Limit, ...] = ()
    hold_until: float = 0.0

    def hold(self, until: float) -> None:
        self.hold_until = max(self.hold_until, until)

    def idle(self, now: float) -> bool:
        """Nothing held and nothing within any window: forgetting this lane changes nothing."""
        return self.hold_until <= now and all(w.idle_since(now) for w in self.windows)


@dataclass
class PacingStats:
    """Counters for /metrics: monotonic over the pacer's life."""

    global_holds: int = 0  # floods detected: every chat held
    shared_fallbacks: int = 0  # times the shared limiter stopped answering and the pacer went alone


class Late(Exception):
    """The call cannot start before its deadline: give it back until `until` (monotonic)."""

    def __init__(self, until: float, reason: str) -> None:
        super().__init__(reason)
        self.until = until
        self.reason = reason


class Closing(Exception):
    """The sender is stopping (its `closing` event is set): no call is started any more."""


class Pacer:
    def __init__(self, config: RelayConfig, closing: asyncio.Event, *, headroom: float = 0.01,
                 monotonic: Callable[[], float] = time.monotonic, limiter: SharedLimiter | None = None,
                 stats: PacingStats | None = None) -> None:
        self.config = config
        self.headroom = headroom
        self.monotonic = monotonic
        self.limiter = limiter
        self.stats = stats if stats is not None else PacingStats()
        self._closing = closing
        self._global = Window.per_second(config.global_per_second, headroom, smooth=0.5)
        self.global_hold = 0.0  # monotonic: the bot is flooded, nothing goes (and nothing is claimed) until then
        # Shared pacing (None: this pacer is alone, with the whole global rate).
        self._share: Window | None = None  # this worker's share of the global rate, while it paces alone
        if limiter is not None:
            share = config.global_per_second / max(1, limiter.expected_workers)
            self._share = Window.per_second(share, headroom, smooth=0.5)
        # "shared": the limiter answers; "confirming": it did not, and is asked once more at _alone_from;
        # "alone": it did not twice, the pacer keeps its share (from _alone_from on).
        self._shared_state = "shared"
        self._alone_from = 0.0
        self._alone_until = 0.0  # back on the limiter after pacing alone: the share is kept until then too
        self._shared_answers: set[asyncio.Task[None]] = set()
        self._turnstile = asyncio.Lock()  # FIFO: the chats that may go take global slots in turn
        self._recent_429: deque[tuple[float, int]] = deque()

    # -- the relay's questions ----------------------------------------------------------------------

    def lane(self, chat_id: int) -> Lane:
        """A new chat's pacing."""
        windows = self._windows_for(chat_id)
        shared: tuple[Limit, ...] = ()
        if self.limiter is not None:
            names = [f"chat:{chat_id}", f"group:{chat_id}"]
            shared = (self._global.shared("global"),
                      *(window.shared(name) for window, name in zip(windows, names, strict=False)))
        return Lane(chat_id, windows, shared)

    async def wait(self, lane: Lane, deadline: float) -> list[Slot]:
        """Sleep until the chat may be sent to, then pass the global turnstile: one chat at a time, in
        the order they became ready, waits there for the global pace and books its call. Returns the
        booked slots (for `answering`). Raises Late when the call could not start by `deadline`
        (monotonic), Closing when the sender stops.

        A slot is booked only when it has come, never ahead: the window then counts the calls before
        it at their answers (see Slot), which makes the pace hold however late requests arrive."""
        while True:
            if self._closing.is_set():
                raise Closing
            now = self.monotonic()
            ready = max([lane.hold_until, self.global_hold] + [w.free_at(now) for w in lane.windows])
            if ready > deadline:
                raise Late(ready, "held past the lease")
            if ready > now:
                await self._sleep(ready - now)
                continue
            try:
                async with asyncio.timeout(max(0.0, deadline - now)):
                    await self._turnstile.acquire()
            except TimeoutError:
                raise Late(self.monotonic(), "no global slot within the lease") from None
            try:
                while not self._closing.is_set():
                    now = self.monotonic()
                    if now < max(lane.hold_until, self.global_hold):
                        break  # a 429 came meanwhile: wait for the hold outside the turnstile
                    slot = self._global_free_at(now)
                    grant: Grant | None = None
                    if slot <= now and self.limiter is not None:
                        was_alone = self._shared_state == "alone"
                        answer = await self._ask_shared(lane)
                        now = self.monotonic()
                        if isinstance(answer, Busy) and answer.key != "global":
                            # The chat's own shared window (another worker sent to it): wait outside.
                            lane.hold(now + answer.wait)
                            break
                        if isinstance(answer, Busy):
                            slot = now + answer.wait
                        elif answer is None and not was_alone:
                            continue  # not answering: wait (see _ask_shared), then ask again or go alone
                        else:
                            grant = answer
                    if slot > deadline:
                        raise Late(slot, "no global slot within the lease")
                    if slot <= now:
                        return self._book(lane, now, grant)
                    await self._sleep(slot - now)
            finally:
                self._turnstile.release()

    @contextlib.contextmanager
    def answering(self, slots: list[Slot]) -> Iterator[None]:
        """Around the call booked in `slots`: when it has its answer (or failed), they count it from then."""
        try:
            yield
        finally:
            answered = self.monotonic()
            for slot in slots:
                slot.answered(answered)

    def throttled(self, lane: Lane, seconds: float) -> None:
        """A 429 with retry_after `seconds`: hold the chat, or, when the bot as a whole is flooded, every
        chat."""
        now = self.monotonic()
        until = now + max(seconds, 0.0)
        lane.hold(until)
        while self._recent_429 and self._recent_429[0][0] < now - FLOOD_WINDOW:
            self._recent_429.popleft()
        self._recent_429.append((now, lane.chat_id))
        flooded = len({chat for _, chat in self._recent_429}) >= FLOOD_TARGETS
        # A group that used less than half its minute's budget was not over its own limit.
        if lane.chat_id < 0 and len(lane.windows) > 1:
            group = lane.windows[-1]
            flooded = flooded or group.used_within(now) <= group.limit // 2
        if flooded and until > self.global_hold:
            if self.global_hold <= now:
                self.stats.global_holds += 1
            log.warning("relay: the bot is flooded (chat %s answered 429): holding every send for %gs",
                        lane.chat_id, seconds)
            self.global_hold = until
            self._share_hold("global", seconds)
        else:
            log.info("relay: chat %s answered 429: holding it for %gs", lane.chat_id, seconds)
        if len(lane.shared) > 1:
            self._share_hold(lane.shared[-1].key, seconds)  # the chat's (or the group's) window

    def back_off(self, lane: Lane, seconds: float) -> None:
        """Send nothing to the chat for `seconds` (a transient failure)."""
        lane.hold(self.monotonic() + seconds)

    async def close(self) -> None:
        """Let the shared limiter hear of the last answers (each bounded by its timeout)."""
        if self._shared_answers:
            await asyncio.gather(*self._shared_answers, return_exceptions=True)

    # -- inside ---------------------------------------------------------------------------------------

    def _windows_for(self, chat_id: int) -> list[Window]:
        private = Window.per_second(self.config.per_chat_per_second, self.headroom)
        if chat_id >= 0:
            return [private]
        # A group: no faster than a private chat, and at most per_group_per_minute in any minute.
        return [private, Window.per_second(self.config.per_group_per_minute / 60, self.headroom, per=60)]

    def _alone(self, now: float) -> bool:
        """Pacing by this worker's share of the global rate: the shared limiter does not answer, or has
        only just come back."""
        return self._share is not None and (self._shared_state != "shared" or now < self._alone_until)

    def _global_free_at(self, now: float) -> float:
        at = self._global.free_at(now)
        if self._share is not None and self._alone(now):
            at = max(at, self._share.free_at(now), self._alone_from if self._shared_state != "shared" else now)
        return at

    async def _ask_shared(self, lane: Lane) -> Grant | Busy | None:
        """The shared limiter's answer for the lane's call; notes when it stops or starts answering.

        Not answering: asked once more SHARED_CONFIRM_DELAY later (one slow answer, while the other
        workers still use it, must not make this worker send unseen by them); not answering again: the
        pacer goes alone, but only one global window after that second try, by when every send the
        limiter granted (to any worker) has left every window."""
        assert self.limiter is not None
        state = self._shared_state
        answer = await self.limiter.acquire(lane.shared, retry=state == "confirming")
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

    def _book(self, lane: Lane, now: float, grant: Grant | None) -> list[Slot]:
        slots = [self._global.book(now)] + [window.book(now) for window in lane.windows]
        if self._share is not None:
            slots.append(self._share.book(now))  # always: it must know this worker's sends when alone
        if grant is not None:
            slots.append(SharedSlot(now, grant, self._shared_answered))
        return slots

    def _share_hold(self, key: str, seconds: float) -> None:
        """Tell the other workers about a 429 (through the shared limiter), without waiting for Redis."""
        if self.limiter is None:
            return
        task = asyncio.create_task(self.limiter.hold(key, seconds))
        self._shared_answers.add(task)
        task.add_done_callback(self._shared_answers.discard)

    def _shared_answered(self, grant: Grant) -> None:
        if self.limiter is None:
            return
        task = asyncio.create_task(self.limiter.answered(grant))
        self._shared_answers.add(task)
        task.add_done_callback(self._shared_answers.discard)

    async def _sleep(self, seconds: float) -> None:
        if self._closing.is_set():
            raise Closing
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), seconds)
        if self._closing.is_set():
            raise Closing
