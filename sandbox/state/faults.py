"""What the bot's calls meet besides the method itself: the call log, failures on demand (fault rules)
and the optional flood limits. botapi.py consults them around every call."""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

CALL_LOG_MAX = 20_000


@dataclass
class ApiCall:
    seq: int
    method: str
    token: str
    params: dict[str, Any]
    at: float
    status: int = 200
    description: str | None = None


@dataclass
class FaultRule:
    id: int
    method: str  # lower-case Bot API method name, or "*"
    error_code: int  # 0 = no error, only `delay`
    count: int = 1
    chat_id: str | None = None
    retry_after: int | None = None
    description: str | None = None
    delay: float = 0.0
    # The call takes effect, then its answer waits `delay` seconds: a client that gave up on it
    # (timeout) does not know it went through — what Telegram does under load.
    answer_late: bool = False

    def matches(self, method: str, chat_id: Any) -> bool:
        if self.method not in ("*", method.lower()):
            return False
        return self.chat_id is None or str(chat_id) == self.chat_id


@dataclass
class Limits:
    """Optional flood control: sends and edits beyond these rates answer 429 with a retry_after.

    Sliding windows, as a bot meets them: at most `global_per_s` in any second over all chats,
    `per_chat_per_s` in any second to one private chat, `per_group_per_min` in any minute to one group
    (negative chat id), whatever topic of it a message goes to. The counters cover every rate-limited call,
    limits on or off, until reset.
    """

    enabled: bool = False
    per_chat_per_s: int = 1
    per_group_per_min: int = 20
    global_per_s: int = 30
    accepted: int = 0  # rate-limited calls that got past the limits (answered by the method itself)
    throttled: int = 0  # 429s answered because of these limits
    injected_429: int = 0  # 429s answered by a fault rule (/control/faults)
    _global: deque[float] = field(default_factory=deque, repr=False)
    _per_chat: dict[int, deque[float]] = field(default_factory=dict, repr=False)

    def _windows(self, chat_id: int | None) -> list[tuple[deque[float], int, float]]:
        windows: list[tuple[deque[float], int, float]] = [(self._global, self.global_per_s, 1.0)]
        if chat_id is not None:
            chat_q = self._per_chat.setdefault(chat_id, deque())
            if chat_id < 0:
                windows.append((chat_q, self.per_group_per_min, 60.0))
            else:
                windows.append((chat_q, self.per_chat_per_s, 1.0))
        return windows

    def check(self, chat_id: int | None, now: float) -> int | None:
        """Seconds to wait before this send would be allowed, or None when it may go now."""
        if not self.enabled:
            return None
        wait = 0.0
        for q, limit, span in self._windows(chat_id):
            while q and q[0] <= now - span:
                q.popleft()
            if len(q) >= limit:
                oldest = q[len(q) - limit] if limit > 0 else now
                wait = max(wait, oldest + span - now)
        return max(1, math.ceil(wait)) if wait > 0 else None

    def record(self, chat_id: int | None, now: float) -> None:
        if not self.enabled:
            return
        self._global.append(now)
        if chat_id is not None:
            self._per_chat.setdefault(chat_id, deque()).append(now)

    def forget(self) -> None:
        """Drop the sliding windows (switching the limits off does)."""
        self._global.clear()
        self._per_chat.clear()

    def reset_counters(self) -> None:
        self.accepted = self.throttled = self.injected_429 = 0

    def to_dict(self) -> dict[str, Any]:
        return {"enabled": self.enabled, "per_chat_per_s": self.per_chat_per_s,
                "per_group_per_min": self.per_group_per_min, "global_per_s": self.global_per_s,
                "accepted": self.accepted, "throttled": self.throttled, "injected_429": self.injected_429}


class CallLog:
    """Every Bot API call the bot made (the latest CALL_LOG_MAX), the fault rules waiting for the next
    matching calls, and the flood limits."""

    def __init__(self) -> None:
        self.calls: deque[ApiCall] = deque(maxlen=CALL_LOG_MAX)
        self._call_seq = 0
        self.faults: list[FaultRule] = []
        self._fault_seq = 0
        self.limits = Limits()

    def log_call(self, method: str, token: str, params: dict[str, Any], status: int,
                 description: str | None = None) -> ApiCall:
        self._call_seq += 1
        call = ApiCall(self._call_seq, method, token, params, time.time(), status, description)
        self.calls.append(call)
        return call

    def calls_to_control(self, method: str | None = None, after: int = 0) -> list[dict[str, Any]]:
        return [asdict(c) for c in self.calls
                if c.seq > after and (method is None or c.method.lower() == method.lower())]

    def add_fault(self, method: str, error_code: int, count: int = 1, chat_id: Any = None,
                  retry_after: int | None = None, description: str | None = None, delay: float = 0.0,
                  answer_late: bool = False) -> FaultRule:
        self._fault_seq += 1
        rule = FaultRule(self._fault_seq, method.lower(), error_code, count,
                         None if chat_id is None else str(chat_id), retry_after, description, delay, answer_late)
        self.faults.append(rule)
        return rule

    def take_fault(self, method: str, chat_id: Any) -> FaultRule | None:
        for rule in self.faults:
            if rule.matches(method, chat_id):
                rule.count -= 1
                if rule.count <= 0:
                    self.faults.remove(rule)
                return rule
        return None
