"""The card shops refundbot reads orders from (`[orders] source`): one builder per source name."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bot.shops import dujiao_next

if TYPE_CHECKING:
    from bot.config import AppConfig

# How each shop's order lookup is built from the configuration; a shop adds its line here.
SOURCES: dict[str, Callable[[AppConfig], Any]] = {
    "dujiao_next": dujiao_next.build,
}
