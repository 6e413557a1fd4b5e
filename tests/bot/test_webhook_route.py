"""The webhook route itself: mounted only with a secret token, whatever configuration reached it."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web

from bot.transport import Runner


class _NoLibrary(Runner):
    """A runner with no Telegram library behind it: only the shared route is under test."""

    async def feed(self, raw: dict[str, Any]) -> None:
        raise AssertionError("never fed")

    def api_url(self, method: str) -> str:
        raise AssertionError("never called")

    async def publish_commands(self, menus: list[tuple[str | None, list[tuple[str, str]]]]) -> None:
        raise AssertionError("never called")

    async def set_webhook(self, url: str, secret: str) -> None:
        raise AssertionError("never called")

    async def delete_webhook(self) -> None:
        raise AssertionError("never called")


def test_a_webhook_route_is_never_mounted_without_a_secret_token() -> None:
    # The configuration refuses webhook mode without one; a config copied past validation must not get through.
    app = web.Application()
    with pytest.raises(ValueError, match="secret token"):
        _NoLibrary().add_webhook_route(app, "/telegram/webhook", "")
    assert not list(app.router.routes())
