"""What both adapters' runners share: long polling that confirms an update only after it was handled
(bot.polling), a webhook route that answers Telegram only after the update is committed (so a crash
means redelivery), the command menu, and the updates refundbot asks Telegram for.

A runner subclasses `Runner` and supplies the library-specific parts: parse and dispatch one raw update
(`feed`), the URL of a Bot API method, and the setWebhook / deleteWebhook / setMyCommands calls.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from abc import ABC, abstractmethod
from typing import Any

import aiohttp
from aiohttp import web

from bot import bodies
from bot.pacing import answer_retry_after, poll_wait
from bot.polling import ConfirmingPoller, Fetched
from bot.sending import RetryAfter, Sender
from dialogs.texts import Texts

log = logging.getLogger(__name__)

COMMANDS = ("refund", "status", "cancel", "agent", "lang", "help")
# my_chat_member: the bot blocked/unblocked in a private chat, removed from/added back to a group (dialogs.reach).
ALLOWED_UPDATES = ["message", "edited_message", "callback_query", "my_chat_member"]
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# Telegram's updates are a few kilobytes (4096 characters of text at most, with entities and a keyboard).
MAX_UPDATE_BYTES = 1 << 20


def chat_key(raw: dict[str, Any]) -> int:
    for kind in ("message", "edited_message"):
        if kind in raw:
            return int(raw[kind]["chat"]["id"])
    query = raw.get("callback_query")
    if query is not None:
        message = query.get("message")
        return int(message["chat"]["id"] if message else query["from"]["id"])
    return 0


def command_menus(default_locale: str) -> list[tuple[str | None, list[tuple[str, str]]]]:
    """(language_code, [(command, description)]) for setMyCommands: the default, Chinese and English."""
    menus: list[tuple[str | None, list[tuple[str, str]]]] = []
    for code, locale in ((None, default_locale), ("zh", "zh_CN"), ("en", "en")):
        t = Texts(locale)
        menus.append((code, [(c, t(f"cmd.{c}")) for c in COMMANDS]))
    return menus


class PollFailed(Exception):
    """getUpdates answered with an error (a 429 is raised as bot.sending.RetryAfter instead)."""


class MalformedUpdate(Exception):
    """A webhook body that is not an Update: answered 400 (Telegram would not send it again anyway)."""


class Runner(ABC):
    sender: Sender

    def __init__(self, default_locale: str = "zh_CN", poll_timeout: int = 25) -> None:
        self.default_locale = default_locale
        self.poll_timeout = poll_timeout
        self.handled = 0
        self.poller: ConfirmingPoller[dict[str, Any]] | None = None
        self._fetch_backoff = 0.25
        self._poll_http: aiohttp.ClientSession | None = None

    # -- what each library supplies ----------------------------------------------------------------
    @abstractmethod
    async def feed(self, raw: dict[str, Any]) -> None:
        """Parse one update (MalformedUpdate if it is not one) and run it through the library's
        dispatcher; raises when handling failed, so that Telegram delivers it again."""

    @abstractmethod
    def api_url(self, method: str) -> str: ...

    @abstractmethod
    async def publish_commands(self, menus: list[tuple[str | None, list[tuple[str, str]]]]) -> None: ...

    @abstractmethod
    async def set_webhook(self, url: str, secret: str) -> None: ...

    @abstractmethod
    async def delete_webhook(self) -> None: ...

    async def start(self) -> None:
        """Whatever the library must do once before the first call (PTB: initialize the Application)."""

    async def close(self) -> None:
        if self._poll_http is not None:
            await self._poll_http.close()

    # -- shared ------------------------------------------------------------------------------------
    async def set_commands(self) -> None:
        """Publish the command menu in both languages; a failure must not keep the bot down."""
        try:
            await self.publish_commands(command_menus(self.default_locale))
        except Exception as exc:  # noqa: BLE001 - any library's API or network error
            log.warning("setMyCommands failed (%s); continuing without a command menu", exc)

    async def run_polling(self, stop: asyncio.Event) -> None:
        await self.delete_webhook()
        await self.set_commands()
        self.poller = ConfirmingPoller(self._fetch, self._feed_counted, self.poll_timeout)
        await self.poller.run(stop, self._fetch_error_delay)

    async def _feed_counted(self, raw: dict[str, Any]) -> None:
        await self.feed(raw)
        self.handled += 1

    async def _fetch(self, offset: int | None, timeout: int) -> list[Fetched[dict[str, Any]]]:
        """getUpdates as raw JSON: while updates are in flight Telegram repeats them in every answer,
        so only the new ones are worth turning into the library's objects (in `feed`)."""
        if self._poll_http is None:
            self._poll_http = aiohttp.ClientSession()
        body: dict[str, Any] = {"timeout": timeout, "allowed_updates": ALLOWED_UPDATES}
        if offset is not None:
            body["offset"] = offset
        async with self._poll_http.post(self.api_url("getUpdates"), json=body,
                                        timeout=aiohttp.ClientTimeout(total=timeout + 30)) as resp:
            answer = await resp.json(content_type=None)
        if not answer.get("ok"):
            description = answer.get("description", f"HTTP {resp.status}")
            retry_after = answer_retry_after(answer)
            if retry_after is not None:
                raise RetryAfter(retry_after, description)
            raise PollFailed(description)
        self._fetch_backoff = 0.25
        return [Fetched(raw["update_id"], chat_key(raw), raw) for raw in answer["result"]]

    def _fetch_error_delay(self, exc: Exception) -> float:
        wait = poll_wait(exc)  # bot.pacing: a 429 is waited out in full
        if wait is not None:
            return wait
        self._fetch_backoff = min(self._fetch_backoff * 2, 30)
        log.warning("getUpdates failed: %s; retrying in %.1fs", exc, self._fetch_backoff)
        return self._fetch_backoff

    def add_webhook_route(self, app: web.Application, path: str, secret: str) -> None:
        """Telegram's POSTs on `path` of the bot's web app (which also serves the platform API). Anything
        that is not an update (bad JSON, nested too deep, too large) is answered 400, never 500: Telegram
        would deliver it again and again."""
        if not secret:  # the configuration refuses this already; a config built past it must not get through
            raise ValueError("a webhook needs a secret token ([telegram] webhook_secret)")

        async def receive(request: web.Request) -> web.Response:
            given = request.headers.get(SECRET_HEADER, "")
            if not hmac.compare_digest(given.encode(), secret.encode()):
                return web.Response(status=401, text="bad secret token")
            try:
                raw = bodies.loads(await bodies.read_at_most(request.content, MAX_UPDATE_BYTES,
                                                             request.content_length))
            except bodies.BodyTooLarge:
                return web.Response(status=400, text="update too large")
            except ValueError:  # UnicodeDecodeError included
                raw = None
            if not isinstance(raw, dict) or not isinstance(raw.get("update_id"), int):
                return web.Response(status=400, text="malformed update")
            try:
                await self.feed(raw)
            except MalformedUpdate:
                return web.Response(status=400, text="malformed update")
            except Exception:
                log.exception("update %s failed; Telegram will deliver it again", raw.get("update_id"))
                return web.Response(status=500, text="try again")
            self.handled += 1
            return web.Response(text="ok")

        app.router.add_post(path, receive)

    async def start_webhook(self, url: str, secret: str) -> None:
        await self.set_commands()
        await self.set_webhook(url, secret)
