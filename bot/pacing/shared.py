"""Send-rate limits shared by every worker of the bot, kept in Redis (optional: `[redis] url`).

Each relay paces itself in local sliding windows (bot.pacing.windows); several workers on one database
would each keep Telegram's limits alone and together exceed them. A `RedisLimiter` gives them one set
of windows: a global key, one key per private chat and one per group (its minute), under `key_prefix`.

Algorithm: a sliding-window log, one sorted set per key (member: one booked call, score: when, by the
Redis server's clock, so the workers' clocks never matter). It is chosen over GCRA because it is the
very rule Telegram applies and the local windows apply: at most `limit` calls in any `span` seconds,
successive calls at least `gap` apart. A group may send its 20 at once and then wait out the minute
(GCRA with a burst of 20 would let a second burst trickle in within the same minute); the global key
keeps its smoothing gap. The sets stay small: at most `limit` live entries each (30 for the global
key), trimmed on every acquire and expiring on their own (PEXPIRE span + gap + 1 s) when unused.

One Lua script per acquire checks every key of a call (global, chat, group) and books all of them or
none, atomically: N processes together never exceed any key's window. The answer is either a `Grant`
or `Busy(wait)`: the seconds until the windows would grant, for the caller to sleep and ask again (the
pacer does this as it waits for a slot, bot.pacing.pacer). When the call's answer comes, `answered` moves the
booking on to that moment (a second small script), as the local windows do: the far end counts a call
somewhere between the request and the answer, so counting it at the answer keeps the next window honest.

Redis away (refused, reset, slower than `timeout` — 100 ms by default — or any error): `acquire`
returns None, the caller paces itself alone with `expected_workers` as its share of the global rate;
one warning is logged, and Redis is tried again only after `retry_seconds` (no per-send timeouts
meanwhile), or when the caller insists (`retry`: the pacer does once, before its first send alone, so
that one slow answer does not make it pace alone unseen by the others). The first answer after that
switches back, with an info line.

Cluster: the keys of one call must hash to one slot; put a hash tag in the prefix ("{refundbot}:rate").
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import os
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from bot.config import RedisConfig

log = logging.getLogger(__name__)

# KEYS: one sliding window each, then as many hold keys (a 429's retry_after: `HOLD`). ARGV: the member naming this call, then limit, span and gap (seconds)
# for each key in turn. Returns {1, now} when every window had room (the call is booked in all of
# them), else {0, wait, i}: seconds until all of them would, and which key (1-based) is the last to.
# Numbers travel as strings (Lua numbers returned to Redis are cut to integers, and passed to commands
# as %.14g).
ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local free, binding = now, 0
local n = #KEYS / 2
for i = 1, n do
  local key = KEYS[i]
  local limit = tonumber(ARGV[3 * i - 1])
  local span = tonumber(ARGV[3 * i])
  local gap = tonumber(ARGV[3 * i + 1])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', string.format('%.6f', now - span))
  redis.call('ZREMRANGEBYRANK', key, 0, -limit - 1)
  local count = redis.call('ZCARD', key)
  local at = now
  if count >= limit then
    local nth = redis.call('ZRANGE', key, count - limit, count - limit, 'WITHSCORES')
    at = math.max(at, tonumber(nth[2]) + span)
  end
  if gap > 0 and count > 0 then
    local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
    at = math.max(at, tonumber(last[2]) + gap)
  end
  local held = redis.call('PTTL', KEYS[n + i])
  if held > 0 then
    at = math.max(at, now + held / 1000)
  end
  if at > free then
    free, binding = at, i
  end
end
if free > now then
  return {0, string.format('%.6f', free - now), binding}
end
for i = 1, n do
  local key = KEYS[i]
  local span = tonumber(ARGV[3 * i])
  local gap = tonumber(ARGV[3 * i + 1])
  redis.call('ZADD', key, string.format('%.6f', now), ARGV[1])
  redis.call('PEXPIRE', key, math.ceil((span + gap) * 1000) + 1000)
end
return {1, string.format('%.6f', now)}
"""

# The call booked as ARGV[1] was answered: count it from now (never earlier than booked), and keep the
# keys that long. Same ARGV layout as ACQUIRE.
ANSWERED = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
for i, key in ipairs(KEYS) do
  local score = redis.call('ZSCORE', key, ARGV[1])
  if score and tonumber(score) < now then
    local span = tonumber(ARGV[3 * i])
    local gap = tonumber(ARGV[3 * i + 1])
    redis.call('ZADD', key, 'XX', string.format('%.6f', now), ARGV[1])
    redis.call('PEXPIRE', key, math.ceil((span + gap) * 1000) + 1000)
  end
end
return 1
"""


# A 429 asked one worker to wait: every worker waits. KEYS[1]: the window's hold key; ARGV[1]: milliseconds.
# A hold is only ever lengthened (two 429s: the later end wins).
HOLD = """
local left = redis.call('PTTL', KEYS[1])
if tonumber(ARGV[1]) > left then
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
end
return 1
"""


@dataclass(frozen=True, slots=True)
class Limit:
    """One shared window: at most `limit` calls in any `span` seconds, successive calls `gap` apart.
    `key` names it under the limiter's prefix: "global", "chat:<id>", "group:<id>"."""

    key: str
    limit: int
    span: float
    gap: float = 0.0


@dataclass(frozen=True, slots=True)
class Grant:
    """A call booked in every window it asked for (`member` in each of `limits`)."""

    member: str
    limits: tuple[Limit, ...]


@dataclass(frozen=True, slots=True)
class Busy:
    """Not now: the windows would grant in `wait` seconds (from the answer) at the earliest; `key` is the
    window that decided it (the last to have room)."""

    wait: float
    key: str


class SharedLimiter(Protocol):
    """Rate limits shared by the bot's workers (see RedisLimiter)."""

    expected_workers: int  # how many workers share the global rate when the limiter cannot answer
    retry_seconds: float  # how long after a failure the limiter is asked again

    async def acquire(self, limits: Sequence[Limit], *, retry: bool = False) -> Grant | Busy | None:
        """Book one call in every window of `limits`, or say how long until they would take it; None:
        no shared answer now (pace alone, with a 1/expected_workers share of the global rate). After a
        failure the limiter is not asked again for retry_seconds, unless `retry`."""
        ...

    async def answered(self, grant: Grant) -> None:
        """The granted call was answered: count it from now on."""
        ...

    async def hold(self, key: str, seconds: float) -> None:
        """A 429 for the window `key`: no worker is granted a call on it for `seconds`."""
        ...


def _shown(url: str) -> str:
    """The URL without its password, for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=netloc).geturl()


class RedisLimiter:
    """A SharedLimiter in Redis: a sliding-window log per key, one Lua script per acquire (see the module)."""

    def __init__(self, url: str = "", *, key_prefix: str = "refundbot:rate", timeout: float = 0.1,
                 expected_workers: int = 1, retry_seconds: float = 5.0, client: Redis | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        if client is None:
            # No retries inside the client: one failure means "fall back now", not three slow tries.
            client = Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                    retry=Retry(NoBackoff(), 0), decode_responses=True)
        self.client = client
        self.url = _shown(url) if url else repr(client)
        self.key_prefix = key_prefix
        self.timeout = timeout
        self.expected_workers = max(1, expected_workers)
        self.retry_seconds = retry_seconds
        self.monotonic = monotonic
        self._acquire = client.register_script(ACQUIRE)
        self._answered = client.register_script(ANSWERED)
        self._hold = client.register_script(HOLD)
        self._members = itertools.count(1)
        self._member_prefix = f"{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._up = True  # the last try answered (until then, assumed)
        self._retry_at = 0.0  # monotonic: no try before this after a failure
        # Counters (monotonic over the limiter's life).
        self.granted = 0
        self.busy = 0
        self.failures = 0  # failed tries
        self.fallbacks = 0  # times the limiter went from answering to not

    @classmethod
    def from_config(cls, config: RedisConfig) -> RedisLimiter | None:
        """From the `[redis]` section; None when it has no url (off)."""
        if not config.url:
            return None
        return cls(config.url, key_prefix=config.key_prefix, timeout=config.timeout_seconds,
                   expected_workers=config.expected_workers, retry_seconds=config.retry_seconds)

    @property
    def up(self) -> bool:
        """The last try answered."""
        return self._up

    def _args(self, member: str, limits: Sequence[Limit]) -> tuple[list[str], list[str]]:
        keys = [f"{self.key_prefix}:{limit.key}" for limit in limits]
        args = [member]
        for limit in limits:
            args += [str(max(1, limit.limit)), repr(float(limit.span)), repr(float(limit.gap))]
        return keys, args

    async def acquire(self, limits: Sequence[Limit], *, retry: bool = False) -> Grant | Busy | None:
        if not limits:
            return Grant("", ())
        if not self._up and not retry and self.monotonic() < self._retry_at:
            return None
        member = f"{self._member_prefix}:{next(self._members)}"
        keys, args = self._args(member, limits)
        try:
            async with asyncio.timeout(self.timeout):
                answer = await self._acquire(keys=keys + [f"{key}:hold" for key in keys], args=args)
        except Exception as exc:  # noqa: BLE001 - refused, reset, timed out, a script error: no shared answer
            self._failed(exc)
            return None
        self._answering()
        if int(answer[0]):
            self.granted += 1
            return Grant(member, tuple(limits))
        self.busy += 1
        return Busy(float(answer[1]), limits[int(answer[2]) - 1].key)

    async def answered(self, grant: Grant) -> None:
        if not grant.limits or not self._up:
            return  # a failure since: the booking counts from its start (the key expires on its own)
        keys, args = self._args(grant.member, grant.limits)
        try:
            async with asyncio.timeout(self.timeout):
                await self._answered(keys=keys, args=args)
        except Exception as exc:  # noqa: BLE001 - as in acquire
            self._failed(exc)
            return
        self._answering()

    async def hold(self, key: str, seconds: float) -> None:
        """Telegram answered 429 for `key` ("chat:<id>", "group:<id>", or "global" when the bot is
        flooded): no worker is granted a call on it for `seconds` (acquire answers Busy until then)."""
        if seconds <= 0 or (not self._up and self.monotonic() < self._retry_at):
            return
        try:
            async with asyncio.timeout(self.timeout):
                await self._hold(keys=[f"{self.key_prefix}:{key}:hold"], args=[str(math.ceil(seconds * 1000))])
        except Exception as exc:  # noqa: BLE001 - as in acquire: this worker still holds on its own
            self._failed(exc)
            return
        self._answering()

    def _failed(self, exc: BaseException) -> None:
        self.failures += 1
        self._retry_at = self.monotonic() + self.retry_seconds
        if self._up:
            self._up = False
            self.fallbacks += 1
            log.warning("shared rate limits: Redis at %s is not answering (%r): each worker paces itself "
                        "with 1/%d of the global rate; trying again every %gs", self.url, exc,
                        self.expected_workers, self.retry_seconds)
        else:
            log.debug("shared rate limits: Redis at %s still not answering (%r)", self.url, exc)

    def _answering(self) -> None:
        if not self._up:
            self._up = True
            log.info("shared rate limits: Redis at %s answers again: the workers share their limits again",
                     self.url)

    async def close(self) -> None:
        await self.client.aclose()
