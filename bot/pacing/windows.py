"""Sliding windows like Telegram's: at most `limit` calls in any `span` seconds, successive calls at
least `gap` apart; and the slot one call takes in them."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable

from bot.pacing.shared import Grant, Limit


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


class SharedSlot(Slot):
    """A call's booking in the shared limiter: its answer moves it on there too (see Slot)."""

    __slots__ = ("grant", "on_answer")

    def __init__(self, at: float, grant: Grant, on_answer: Callable[[Grant], None]) -> None:
        super().__init__(at)
        self.grant = grant
        self.on_answer = on_answer

    def answered(self, at: float) -> None:
        super().answered(at)
        self.on_answer(self.grant)
