"""Webhook delivery: POST each queued update to the bot, like Telegram's servers do.

Updates go out concurrently (up to max_connections) but one at a time per chat, in queue order;
a failed delivery is retried with a capped exponential backoff until it succeeds, the webhook is
deleted, or the emulator stops. A 2xx answer confirms the update; a method in the answer body is
executed, as Telegram does for "reply in webhook response".
"""

from __future__ import annotations

import asyncio
import json
import logging

import aiohttp

from .botapi import BotApi, Upload, read_multipart
from .state import EmulatorState, UpdateRecord, WebhookConfig, now_ts

log = logging.getLogger(__name__)

BACKOFF_START = 0.2
BACKOFF_MAX = 2.0


class WebhookDeliverer:
    def __init__(self, state: EmulatorState, api: BotApi, request_timeout: float = 30.0) -> None:
        self.state = state
        self.api = api
        self.request_timeout = request_timeout
        self._session: aiohttp.ClientSession | None = None
        self._runner: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._busy: set[str] = set()
        self._closing = False

    async def start(self) -> None:
        self._session = aiohttp.ClientSession()
        self._runner = asyncio.create_task(self._run(), name="sandbox-webhook")

    async def stop(self) -> None:
        self._closing = True
        tasks = [t for t in (self._runner, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    async def _run(self) -> None:
        while not self._closing:
            try:
                self._dispatch()
            except Exception:  # keep delivering whatever one bad update does
                log.exception("webhook dispatch failed")
            await self.state.changed.wait(1.0)

    def _dispatch(self) -> None:
        wh = self.state.webhook
        if wh is None:
            return
        for rec in list(self.state.queue):
            if rec.in_flight:
                continue
            if not self.state.is_allowed(rec.kind, wh.allowed_updates):
                self.state.confirm(rec)
                continue
            if rec.chat_key in self._busy:
                continue  # the chat's earlier update is still being delivered
            if len(self._tasks) >= wh.max_connections:
                break
            self._busy.add(rec.chat_key)
            rec.in_flight = True
            task = asyncio.create_task(self._deliver(rec))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _deliver(self, rec: UpdateRecord) -> None:
        backoff = BACKOFF_START
        try:
            while not self._closing:
                wh = self.state.webhook
                if wh is None or rec.status == "confirmed":
                    return  # stays queued for getUpdates or a later webhook
                rec.status = "delivered"
                rec.attempts += 1
                error = await self._post(wh, rec)
                if error is None:
                    self.state.confirm(rec)
                    return
                rec.status = "pending"
                rec.last_error = error
                wh.last_error_date = now_ts()
                wh.last_error_message = error
                self.state.changed.notify()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
        finally:
            rec.in_flight = False
            self._busy.discard(rec.chat_key)
            self.state.changed.notify()

    async def _post(self, wh: WebhookConfig, rec: UpdateRecord) -> str | None:
        """Deliver once; None on success, else the error text Telegram would show in getWebhookInfo."""
        assert self._session is not None
        headers = {"X-Telegram-Bot-Api-Secret-Token": wh.secret_token} if wh.secret_token else {}
        try:
            async with self._session.post(wh.url, json=rec.payload, headers=headers,
                                          timeout=aiohttp.ClientTimeout(total=self.request_timeout)) as resp:
                if not 200 <= resp.status < 300:
                    await resp.read()
                    return f"Wrong response from the webhook: {resp.status} {resp.reason}"
                await self._run_answer(wh, resp)
                return None
        except TimeoutError:
            return "Read timeout expired"
        except aiohttp.ClientConnectorError:
            return "Connection refused"
        except aiohttp.ClientError as exc:
            return f"{type(exc).__name__}: {exc}"

    async def _run_answer(self, wh: WebhookConfig, resp: aiohttp.ClientResponse) -> None:
        ctype = resp.headers.get("Content-Type", "")
        uploads: dict[str, Upload] = {}
        if ctype.startswith("multipart/"):
            fields, uploads = await read_multipart(aiohttp.MultipartReader.from_response(resp))
        else:
            body = await resp.read()
            try:
                fields = json.loads(body) if body.strip() else {}
            except ValueError:
                return
        if not isinstance(fields, dict) or not fields.get("method"):
            return
        method = str(fields.pop("method"))
        status, answer = await self.api.call(wh.token, method, fields, uploads)
        if status != 200:
            log.info("webhook answer %s failed: %s", method, answer.get("description"))
