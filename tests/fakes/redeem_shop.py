"""A shop's redeemed-check endpoint on a free local port (bot/redeem.py's other side): checks our signature
the way the platform's calls are documented (bot.platform.verify: HMAC-SHA256 over timestamp + "." + body,
timestamp within 300 s), and answers from `redeemed` (code -> True / False / None). `mode` scripts
failures: "ok", "down" (503), "garbage" (HTML), "hang" (answers after the client gave up), "redirect",
"huge" (an answer over the client's cap), "bad_value" ({"redeemed": "yes"})."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.platform import SignatureError, verify

SECRET = "redeem-secret-for-tests"


@dataclass
class FakeRedeemShop:
    redeemed: dict[str, bool | None] = field(default_factory=dict)
    mode: str = "ok"
    secret: str = SECRET
    calls: list[dict[str, Any]] = field(default_factory=list)
    bad_signatures: int = 0
    server: TestServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("/redeem-check"))

    async def start(self) -> FakeRedeemShop:
        app = web.Application()
        app.router.add_post("/redeem-check", self.check)
        app.router.add_post("/elsewhere", self.check)
        self.server = TestServer(app)  # port 0: a free one
        await self.server.start_server()
        return self

    async def close(self) -> None:
        if self.server is not None:
            await self.server.close()

    async def check(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        try:
            verify(self.secret, request.headers, body, now=time.time(), max_skew=300)
        except SignatureError:
            self.bad_signatures += 1
            return web.json_response({"error": "bad signature"}, status=401)
        call = json.loads(body)
        self.calls.append(call)
        if self.mode == "down":
            return web.json_response({"error": "db down"}, status=503)
        if self.mode == "garbage":
            return web.Response(text="<html>ok</html>")
        if self.mode == "bad_value":
            return web.json_response({"redeemed": "yes"})
        if self.mode == "redirect":
            raise web.HTTPFound("/elsewhere")
        if self.mode == "huge":
            return web.json_response({"redeemed": False, "padding": "x" * 100_000})
        if self.mode == "hang":
            await asyncio.sleep(3)
        states = [self.redeemed.get(code) for code in call["codes"]]
        if any(state is True for state in states):
            answer: bool | None = True
        elif states and all(state is False for state in states):
            answer = False
        else:
            answer = None
        return web.json_response({"redeemed": answer})
