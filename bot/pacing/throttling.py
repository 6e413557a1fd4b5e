"""A 429 wherever it comes back: read Telegram's retry_after into `bot.sending.RetryAfter` (the senders
translate their library's exception with `retry_after_seconds`, the poller reads the raw answer), and
what each caller does with it:
- the relay (outbox rows): `Pacer.throttled` holds the chat, or every chat when the bot is flooded;
- a reply to an update (bot.inbound): waited out inline when short (`inline_wait`), else left unsent
  for the core to send again later;
- getUpdates (bot.transport): waited out in full before the next poll (`poll_wait`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from bot.sending import RetryAfter

# A reply waits out a 429 this long at most; longer holds are the relay's business.
MAX_INLINE_RETRY_AFTER = 30


def retry_after_seconds(value: float | timedelta) -> float:
    """retry_after as a library gives it (seconds, or PTB 23's timedelta) in seconds."""
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def answer_retry_after(answer: Mapping[str, Any]) -> float | None:
    """The retry_after of a Bot API error answer (`parameters.retry_after`), if it has one."""
    retry_after = (answer.get("parameters") or {}).get("retry_after")
    return None if retry_after is None else float(retry_after)


def inline_wait(exc: RetryAfter) -> float | None:
    """How long a reply waits before it is tried again; None: too long to wait with the customer."""
    return None if exc.seconds > MAX_INLINE_RETRY_AFTER else exc.seconds


def poll_wait(exc: BaseException) -> float | None:
    """How long getUpdates waits after `exc` when it is a 429 (None: not one; back off as usual)."""
    if isinstance(exc, RetryAfter) and exc.seconds:
        return float(exc.seconds)
    return None
