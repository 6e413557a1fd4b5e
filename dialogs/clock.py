"""The one "now" of the whole program: UTC, timezone-aware. Everything that needs the time takes a
`Clock` (defaulting to `utcnow`) so tests can freeze or move it."""

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)
