"""One claimed outbox row on its way through the relay, and the relay's counters."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bot.pacing import PacingStats
from dialogs.domain import Delivery
from dialogs.notify import Notice


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
    errors: Counter[str] = field(default_factory=Counter)  # failed calls by code: 429, 403, 5xx, network...
    pacing: PacingStats = field(default_factory=PacingStats)  # kept by the relay's Pacer

    @property
    def global_holds(self) -> int:
        """Floods detected: every chat held."""
        return self.pacing.global_holds

    @property
    def shared_fallbacks(self) -> int:
        """Times the shared limiter stopped answering and the relay paced alone."""
        return self.pacing.shared_fallbacks

    def as_dict(self) -> dict[str, Any]:
        return {"claimed": self.claimed, "sent": self.sent, "edited": self.edited, "skipped": self.skipped,
                "deferred": self.deferred, "given_up": self.given_up, "held": self.held, "blocked_chats": self.blocked_chats,
                "throttled": self.throttled, "global_holds": self.global_holds,
                "shared_fallbacks": self.shared_fallbacks, "errors": dict(self.errors)}


@dataclass
class Row:
    """A claimed row and what its calls so far have shown (see bot.workers.relay_calls for the ways to try)."""

    delivery: Delivery
    lease_end: float  # monotonic: start no call after lease_end - margin
    notice: Notice | None = None
    composed: bool = False
    failures: int = 0  # transient failures since claimed
    force_new: bool = False  # the card to edit is gone: send a new one
    rounds: int = 0  # compositions after the first (a prelude delivered, a topic found gone)
    recreating: bool = False  # the item's topic was found gone: the next one made replaces it
    album_mode: int = 0  # index into bot.workers.relay_calls.ALBUM_MODES
    caption_edit: bool = False  # the copy to edit has no text: edit its caption
    topic_task: asyncio.Task[int] | None = None  # this row's createForumTopic, until its answer is used


class Release(Exception):
    """The row cannot be sent within its lease: give it back to the outbox until `until` (monotonic)."""

    def __init__(self, until: float, reason: str) -> None:
        super().__init__(reason)
        self.until = until
        self.reason = reason
