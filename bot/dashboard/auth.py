"""Who may open the dashboard: Telegram Login Widget data checked as Telegram documents it, a shared
password with a per-address attempt limit, and the signed session cookie either one earns."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from dialogs.settings import DeskSettings

WIDGET_MAX_AGE = 24 * 3600  # a widget payload older than a day is refused
PASSWORD_USER = "password"  # the session subject of a password sign-in


class LoginRefused(Exception):
    """The sign-in data is not acceptable; the message says why (for the log, not the page)."""


def is_supervisor(desk: DeskSettings, user_id: int) -> bool:
    """The one place that says whether a Telegram account may open the dashboard."""
    return desk.is_supervisor(user_id)


def verify_widget(data: Mapping[str, str], bot_token: str, *, now: float, max_age: float = WIDGET_MAX_AGE) -> int:
    """The Telegram user id of Login Widget data, checked as https://core.telegram.org/widgets/login#checking-authorization
    says: the data-check-string (every received field but hash, sorted, "key=value" joined by newlines)
    signed with HMAC-SHA256 under the key SHA256(bot token), and auth_date within `max_age`."""
    if not bot_token:
        raise LoginRefused("no bot token: Telegram sign-in is off")
    received = data.get("hash", "")
    fields = {k: v for k, v in data.items() if k != "hash"}
    check = "\n".join(f"{k}={fields[k]}" for k in sorted(fields))
    key = hashlib.sha256(bot_token.encode()).digest()
    expected = hmac.new(key, check.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, received.lower()):
        raise LoginRefused("the hash does not match the data")
    try:
        auth_date, user_id = int(fields["auth_date"]), int(fields["id"])
    except (KeyError, ValueError):
        raise LoginRefused("id or auth_date missing or not a number") from None
    if now - auth_date > max_age:
        raise LoginRefused("auth_date is older than a day")
    return user_id


@dataclass(frozen=True, slots=True)
class Session:
    subject: str  # a Telegram user id, or PASSWORD_USER
    expires: int  # unix seconds


class SessionSigner:
    """`subject.expires.signature` cookies, HMAC-SHA256 under a key derived from the bot token and the
    password: changing either signs every browser out, and processes sharing them share sessions."""

    def __init__(self, token: str, password: str, lifetime: float, clock: Callable[[], float] = time.time) -> None:
        self._key = hashlib.sha256(b"refundbot dashboard session\0" + token.encode() + b"\0" + password.encode()).digest()
        self.lifetime, self.clock = lifetime, clock

    def _sign(self, payload: str) -> str:
        return hmac.new(self._key, payload.encode(), hashlib.sha256).hexdigest()

    def issue(self, subject: str) -> str:
        payload = f"{subject}.{int(self.clock() + self.lifetime)}"
        return f"{payload}.{self._sign(payload)}"

    def read(self, cookie: str | None) -> Session | None:
        """The session of a cookie this signer issued and that has not expired; None otherwise."""
        if not cookie or cookie.count(".") != 2:
            return None
        subject, expires, signature = cookie.split(".")
        if not hmac.compare_digest(self._sign(f"{subject}.{expires}"), signature):
            return None
        try:
            until = int(expires)
        except ValueError:
            return None
        return Session(subject, until) if until > self.clock() else None


def password_matches(given: str, password: str) -> bool:
    """Constant time in the content (both sides are hashed to one length first)."""
    if not password:
        return False
    return hmac.compare_digest(hashlib.sha256(given.encode()).digest(), hashlib.sha256(password.encode()).digest())


class AttemptLimiter:
    """Wrong passwords per client address in a sliding window. In memory, per process: a restart forgets,
    which is fine for slowing guessing down; a proxy in front must pass the real address on."""

    MAX_ADDRESSES = 10_000  # beyond this the oldest addresses are forgotten: memory stays bounded

    def __init__(self, max_attempts: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_attempts, self.window, self.clock = max_attempts, window, clock
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, address: str) -> deque[float]:
        failures = self._failures.get(address, deque())
        cutoff = self.clock() - self.window
        while failures and failures[0] <= cutoff:
            failures.popleft()
        return failures

    def blocked_for(self, address: str) -> float:
        """Seconds until `address` may try again; 0 when it may now."""
        failures = self._recent(address)
        if len(failures) < self.max_attempts:
            return 0.0
        return failures[0] + self.window - self.clock()

    def failed(self, address: str) -> None:
        failures = self._recent(address)
        failures.append(self.clock())
        self._failures.pop(address, None)
        self._failures[address] = failures  # re-inserted: dict order is least recently failed first
        while len(self._failures) > self.MAX_ADDRESSES:
            del self._failures[next(iter(self._failures))]

    def succeeded(self, address: str) -> None:
        self._failures.pop(address, None)
