"""The world the money-safety property test drives (tests/storage/test_money_safety.py): a real database,
the real HttpGateway and RefundWorkers, the real PlatformApi for callbacks and the real CLI, against a
fake shop platform that pays each idempotency key at most once and remembers every payout.

`Shop` is the platform's side over real HTTP (loopback, free ports): it checks our HMAC signature as
bot/platform.py documents it, answers a repeated key with what it did the first time, and can be told
to succeed, accept (pay later, by callback), fail, lose its answer after paying, time out after paying,
be unavailable, or pay and then never answer (the worker "crashes" before recording).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer
from hypothesis import event

from bot.api import PlatformApi
from bot.platform import SignatureError, signed_headers, verify
from dialogs.domain import RefundAttempt, RefundStatus
from dialogs.ledger import IN_FLIGHT, AttemptInFlight, ExceedsRefundable, NothingToRefund
from dialogs.lifecycle import ForbiddenTransition
from dialogs.ports import ConcurrentUpdate
from dialogs.refunds import AmountMismatch, AttemptSettled, NothingInFlight, UnknownAttempt
from storage.uow import Database
from tests.storage.factories import T0

SECRET = "money-safety-shared-secret"
GATEWAY_TIMEOUT = 0.5  # HttpGateway's own timeout: "timeout" answers come after it
LEASE = 60.0  # the RefundWorkers' lease, in the test clock's seconds

# What a step may meet and shrug off: the rules refusing a move (nothing is written then).
REFUSALS: tuple[type[BaseException], ...] = (
    ForbiddenTransition, AttemptInFlight, NothingToRefund, ExceedsRefundable, AttemptSettled, NothingInFlight,
    UnknownAttempt, AmountMismatch, KeyError, ConcurrentUpdate)

MODES = ("succeed", "accept", "fail", "lost", "timeout", "unavailable")


async def refused_or_done(work: Awaitable[Any]) -> Any:
    """The result, or the refusal it met (any other exception fails the test)."""
    try:
        return await work
    except REFUSALS as exc:
        event(f"refused: {type(exc).__name__}")
        return exc


@dataclass
class Shop:
    """The platform: `mode` says how it answers a key it has not seen yet."""

    bot_url: str = ""  # where its refund callbacks go (the PlatformApi)
    mode: str = "succeed"
    crash_next: bool = False  # the next new key is paid, then the call never returns (until `release`)
    first: dict[str, str] = field(default_factory=dict)  # key -> "paid" | "accepted" | "failed"
    asked: dict[str, tuple[str, str, Decimal]] = field(default_factory=dict)  # key -> (case, order, amount)
    paid: dict[str, tuple[str, Decimal]] = field(default_factory=dict)  # key -> (order, amount) paid out
    payouts: Counter[str] = field(default_factory=Counter)  # key -> payouts (its own dedupe keeps it ≤ 1)
    voided: set[str] = field(default_factory=set)  # failed keys: never paid, whatever comes later
    problems: list[str] = field(default_factory=list)  # what a well-behaved refundbot never sends
    last_callback: tuple[bytes, dict[str, str]] | None = None
    crashed: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    server: TestServer | None = None
    _http: ClientSession | None = None
    _sent: int = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/refunds", self.refund)
        return app

    @property
    def refund_url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("/refunds"))

    def pay(self, key: str) -> None:
        if key in self.paid or key in self.voided:
            return  # one payout per key; a failed key is never paid
        _, order_no, amount = self.asked[key]
        self.paid[key] = (order_no, amount)
        self.payouts[key] += 1

    def now_of(self, key: str) -> str:
        """What the platform would say of a key today."""
        return "paid" if key in self.paid else "failed" if key in self.voided else "accepted"

    def paid_per_order(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for order_no, amount in self.paid.values():
            total[order_no] += amount  # type: ignore[assignment]
        return total

    async def refund(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            verify(SECRET, request.headers, body, now=time.time(), max_skew=300)
        except SignatureError as exc:
            self.problems.append(f"bad signature: {exc}")
            return web.json_response({"error": "bad signature"}, status=401)
        call = json.loads(body)
        key, amount = call["idempotency_key"], Decimal(call["amount"])
        if request.headers.get("Idempotency-Key") != key:
            self.problems.append(f"Idempotency-Key header differs from the body's {key}")
        seen = self.asked.get(key)
        if seen is not None and (seen[0], seen[2]) != (call["case_no"], amount):
            self.problems.append(f"key {key} sent again for {call['case_no']} {amount}, first for {seen}")
            return web.json_response({"error": "idempotency key reused for another refund"}, status=422)
        if key in self.first:  # a repeat: the platform's duplicate guard answers what is true now
            return self._answer(key, self.now_of(key))
        if self.mode == "unavailable" and not self.crash_next:
            return web.json_response({"error": "maintenance"}, status=503)
        self.asked[key] = (call["case_no"], call["order_no"], amount)
        if self.crash_next:
            self.crash_next = False
            self.first[key] = "paid"
            self.pay(key)
            self.crashed.set()
            await self.release.wait()  # the worker is dead by now: nobody reads this
            return web.json_response({"error": "too late"}, status=500)
        if self.mode == "fail":
            self.first[key] = "failed"
            self.voided.add(key)
            return self._answer(key, "failed")
        if self.mode == "accept":
            self.first[key] = "accepted"
            return self._answer(key, "accepted")
        self.first[key] = "paid"
        self.pay(key)
        if self.mode == "lost":
            return web.json_response({"error": "internal error"}, status=500)
        if self.mode == "timeout":
            await asyncio.sleep(GATEWAY_TIMEOUT * 2)
        return self._answer(key, "paid")

    def _answer(self, key: str, state: str) -> web.Response:
        status = {"paid": "succeeded", "accepted": "accepted", "failed": "failed"}[state]
        return web.json_response({"status": status, "reference": f"P-{key}", "idempotency_key": key,
                                  "amount": str(self.asked[key][2]), "reason": "card closed"})

    async def callback(self, key: str, event: str, *, amount: Decimal | None = None, honest: bool = True) -> int:
        """Tell refundbot a key was credited (paying it first) or failed (voiding it); the HTTP status.
        `honest=False`: a bogus callback, behind which the platform did nothing."""
        if honest and event == "credited":
            self.pay(key)
        elif honest and key not in self.paid:
            self.voided.add(key)
        self._sent += 1
        case_no = self.asked[key][0] if key in self.asked else key.rsplit("-", 1)[0]
        fields: dict[str, Any] = {"event": event, "case_no": case_no, "idempotency_key": key,
                                  "reference": f"P-{key}", "reason": f"callback {self._sent}"}
        if amount is not None:
            fields["amount"] = str(amount)
        body = json.dumps(fields).encode()
        headers = {"Content-Type": "application/json", **signed_headers(SECRET, body)}
        if honest:  # a refused request leaves no nonce behind: its replay is refused as it was
            self.last_callback = (body, headers)
        return await self._post(body, headers)

    async def replay_last_callback(self) -> int | None:
        if self.last_callback is None:
            return None
        return await self._post(*self.last_callback)

    async def _post(self, body: bytes, headers: dict[str, str]) -> int:
        if self._http is None:
            self._http = ClientSession()
        async with self._http.post(f"{self.bot_url}/api/v1/callbacks/refund", data=body, headers=headers) as resp:
            await resp.read()
            return resp.status

    async def close(self) -> None:
        self.release.set()
        if self._http is not None:
            await self._http.close()
        if self.server is not None:
            await self.server.close()


@dataclass
class Clock:
    """The workers' clock: leases run out only when the test says time passed."""

    now: datetime = T0 + timedelta(hours=1)

    def __call__(self) -> datetime:
        return self.now


async def start_shop() -> Shop:
    shop = Shop()
    shop.server = TestServer(shop.app())
    await shop.server.start_server()
    return shop


async def start_api(api: PlatformApi) -> TestServer:
    app = web.Application()
    api.add_routes(app, healthz=False, metrics=False)
    server = TestServer(app)
    await server.start_server()
    return server


async def all_attempts(database: Database, orders: list[str]) -> dict[str, list[RefundAttempt]]:
    async with database.uow() as uow:
        return {order_no: await uow.refunds.for_order(order_no) for order_no in orders}


def check_books(attempts: dict[str, list[RefundAttempt]], paid: dict[str, Decimal], shop: Shop) -> None:
    """The three money invariants (README, "Money safety"), against the books and the platform."""
    books: dict[str, RefundAttempt] = {}
    for order_no, of_order in attempts.items():
        # (1) per order, succeeded + in flight never exceed what was paid
        committed = sum((a.amount for a in of_order if a.status is RefundStatus.SUCCEEDED or a.status in IN_FLIGHT),
                        Decimal(0))
        assert committed <= paid[order_no], f"order {order_no}: {committed} refunded or in flight > {paid[order_no]} paid"
        # (2) at most one attempt in flight per case
        in_flight = Counter(a.case_no for a in of_order if a.status in IN_FLIGHT)
        assert all(n <= 1 for n in in_flight.values()), f"order {order_no}: several attempts in flight {in_flight}"
        books.update((a.idempotency_key, a) for a in of_order)
    # (3) the books equal what the platform paid
    assert not shop.problems, shop.problems
    for key, (order_no, amount) in shop.paid.items():
        attempt = books.get(key)
        assert attempt is not None, f"the platform paid {key}, which the books do not know"
        assert attempt.status is not RefundStatus.FAILED, f"the platform paid {key}, the books say it failed"
        assert attempt.amount == amount, f"{key}: paid {amount}, booked {attempt.amount}"
    for key, attempt in books.items():
        if attempt.status is RefundStatus.SUCCEEDED:
            assert shop.payouts[key] == 1, f"{key} is succeeded in the books, paid {shop.payouts[key]} times"
    for order_no, total in shop.paid_per_order().items():
        assert total <= paid[order_no], f"order {order_no}: the platform paid {total} > {paid[order_no]}"
