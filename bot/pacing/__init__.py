"""Telegram's pacing, and where a 429 is handled.

- `pacer`: when the relay may send to a chat — the per-chat, per-group and global windows, the holds a
  429 asks for (one chat, or the whole bot when it is flooded), and the shared limit of several workers;
- `windows`: the sliding windows themselves;
- `shared`: the limit several workers share through Redis;
- `throttling`: reading retry_after, and what a reply and getUpdates do with a 429.
"""

from bot.pacing.pacer import Closing, Lane, Late, Pacer, PacingStats
from bot.pacing.shared import Busy, Grant, Limit, RedisLimiter, SharedLimiter
from bot.pacing.throttling import (
    MAX_INLINE_RETRY_AFTER,
    answer_retry_after,
    inline_wait,
    poll_wait,
    retry_after_seconds,
)
from bot.pacing.windows import Slot, Window

__all__ = ["MAX_INLINE_RETRY_AFTER", "Busy", "Closing", "Grant", "Lane", "Late", "Limit", "Pacer", "PacingStats",
           "RedisLimiter", "SharedLimiter", "Slot", "Window", "answer_retry_after", "inline_wait", "poll_wait",
           "retry_after_seconds"]
