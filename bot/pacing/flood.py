"""The customers' flood guard shared by every worker through Redis (`[redis] url`).

Each worker's dialogs.service.FloodGuard counts alone: behind a load balancer N workers let a flooding
chat through N times the limit. `SharedFloodGuard` keeps one window per chat in Redis, through the same
sliding-window script as the send-rate limits (bot.pacing.shared): at most `limit` updates of a chat in
any `window` seconds, whichever worker takes them. The first update over the limit gets the polite
notice (one worker wins a SET NX that lasts until the window frees), the rest are dropped.

Redis away: the worker's own guard decides, as without Redis (the limiter logs the fallback once).
"""

from __future__ import annotations

import asyncio
import logging

from bot.pacing.shared import Grant, Limit, RedisLimiter
from dialogs.service import FloodGuard

log = logging.getLogger(__name__)


class SharedFloodGuard:
    """dialogs.ports.FloodCheck across workers: Redis decides, the local guard when Redis cannot."""

    def __init__(self, limiter: RedisLimiter, local: FloodGuard) -> None:
        self.limiter, self.local = limiter, local

    async def check(self, chat_id: int) -> str:
        """'ok', 'notify' (the first update over the limit, across the workers) or 'drop'."""
        answer = await self.limiter.acquire([Limit(f"flood:{chat_id}", self.local.limit, self.local.window)])
        if answer is None:
            return self.local.check(chat_id)
        if isinstance(answer, Grant):
            return "ok"
        key = f"{self.limiter.key_prefix}:flood-notice:{chat_id}"
        try:
            async with asyncio.timeout(self.limiter.timeout):
                first = await self.limiter.client.set(key, "1", nx=True, px=max(1, int(answer.wait * 1000)))
        except Exception:  # noqa: BLE001 - no shared answer: better one notice too few than one per worker
            log.debug("flood guard: Redis did not answer the notice key for chat %s", chat_id)
            return "drop"
        return "notify" if first else "drop"
