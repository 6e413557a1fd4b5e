"""Signing, HttpGateway and HttpOrderLookup against a small fake platform over real HTTP (loopback)."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.config import PlatformConfig
from bot.platform import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    HttpOrderLookup,
    OrderLookupError,
    SignatureError,
    sign,
    signed_headers,
    verify,
)
from bot.rails import build_gateways
from bot.rails.http import HttpGateway
from bot.rails.manual import ManualGateway
from dialogs.domain import RefundAttempt, RefundStatus
from dialogs.ports import GatewayUnavailable, Payment, RefundGateway

SECRET = "s3cret-shared-with-the-platform"
NOW = 1_795_000_000.0

ORDER = {
    "order_no": "KM20261124000001", "buyer_phone": "13800001234", "buyer_telegram_id": 10001,
    "product_name": "Q币卡", "product_kind": "card_code", "tags": "", "amount": "30.00", "payment_channel": "alipay",
    "paid_at": "2026-11-24T10:00:00+08:00", "delivered_at": "2026-11-24T10:01:00+08:00",
    "delivery_status": "delivered", "card_redeemed": False, "topup_credited": None,
}


@dataclass
class FakePlatform:
    """The shop's side: pays a refund at most once per idempotency key, serves orders, checks our
    signatures. `plan` scripts the answers: "succeed", "accept", "fail", "refuse" (400), "pay_then_500"
    (pays, then the answer is lost), "pay_then_hang" (pays, answers after the client gave up),
    "overclaim" (says it paid more than asked), "garbage"."""

    plan: list[str] = field(default_factory=lambda: ["succeed"])
    payouts: Counter[str] = field(default_factory=Counter)  # idempotency key -> times paid
    calls: list[dict[str, Any]] = field(default_factory=list)
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    bad_signatures: int = 0
    server: TestServer | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/refunds", self.refund)
        app.router.add_get("/orders/{order_no}", self.order)
        return app

    @property
    def refund_url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("/refunds"))

    @property
    def orders_url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("/orders"))

    def _verified(self, request: web.Request, message: bytes) -> bool:
        try:
            verify(SECRET, request.headers, message, now=time.time(), max_skew=300)
        except SignatureError:
            self.bad_signatures += 1
            return False
        return True

    async def refund(self, request: web.Request) -> web.Response:
        body = await request.read()
        if not self._verified(request, body):
            return web.json_response({"error": "bad signature"}, status=401)
        call = json.loads(body)
        self.calls.append(call)
        key, amount = call["idempotency_key"], call["amount"]
        step = self.plan.pop(0) if len(self.plan) > 1 else self.plan[0]
        if step in ("succeed", "pay_then_500", "pay_then_hang", "overclaim") and self.payouts[key] == 0:
            self.payouts[key] += 1  # the platform's own dedupe: one payout per key, whatever we send
        if step == "pay_then_500":
            return web.json_response({"error": "oops"}, status=500)
        if step == "pay_then_hang":
            await asyncio.sleep(2)
        if step == "refuse":
            return web.json_response({"error": "order is not refundable"}, status=400)
        if step == "garbage":
            return web.Response(text="<html>ok</html>")
        if step == "accept":
            return web.json_response({"status": "accepted", "reference": f"P-{key}"})
        if step == "fail":
            return web.json_response({"status": "failed", "reason": "card closed", "reference": f"P-{key}"})
        paid = str(Decimal(amount) + 1) if step == "overclaim" else amount
        return web.json_response({"status": "succeeded", "reference": f"P-{key}", "amount": paid,
                                  "idempotency_key": key})

    async def order(self, request: web.Request) -> web.Response:
        if not self._verified(request, request.raw_path.encode()):
            return web.json_response({"error": "bad signature"}, status=401)
        order_no = request.match_info["order_no"]
        if order_no == "BROKEN":
            return web.json_response({"error": "db down"}, status=503)
        if order_no not in self.orders:
            return web.json_response({"error": "not found"}, status=404)
        return web.json_response(self.orders[order_no])


@pytest.fixture
async def platform() -> AsyncIterator[FakePlatform]:
    fake = FakePlatform(orders={ORDER["order_no"]: ORDER})
    fake.server = TestServer(fake.app())
    await fake.server.start_server()
    try:
        yield fake
    finally:
        await fake.server.close()


def attempt(amount: str = "30.00", key: str = "R20261124-0001-1") -> RefundAttempt:
    return RefundAttempt(case_no="R20261124-0001", idempotency_key=key, gateway="http", amount=Decimal(amount),
                         status=RefundStatus.PENDING, created_at=datetime(2026, 11, 24, tzinfo=UTC))


def payment(order_no: str) -> Payment:
    return Payment(order_no=order_no, paid=Decimal("100.00"))


def build_gateway(config: PlatformConfig) -> RefundGateway:
    return build_gateways(config)[config.gateway]


# --- signatures -------------------------------------------------------------------------------


def test_a_signed_message_verifies_and_returns_its_signature() -> None:
    headers = signed_headers(SECRET, b'{"a":1}', NOW)
    assert verify(SECRET, headers, b'{"a":1}', now=NOW + 10, max_skew=300) == headers[SIGNATURE_HEADER]
    assert headers[SIGNATURE_HEADER] == sign(SECRET, str(int(NOW)), b'{"a":1}')


@pytest.mark.parametrize("tamper", ["body", "secret", "timestamp", "missing", "not_a_number"])
def test_a_tampered_request_is_refused(tamper: str) -> None:
    headers = signed_headers(SECRET, b'{"a":1}', NOW)
    body, secret = b'{"a":1}', SECRET
    if tamper == "body":
        body = b'{"a":2}'
    elif tamper == "secret":
        secret = "another"
    elif tamper == "timestamp":
        headers[TIMESTAMP_HEADER] = str(int(NOW) + 1)
    elif tamper == "missing":
        del headers[SIGNATURE_HEADER]
    else:
        headers[TIMESTAMP_HEADER] = "yesterday"
    with pytest.raises(SignatureError):
        verify(secret, headers, body, now=NOW, max_skew=300)


@pytest.mark.parametrize("offset", [-301, 301])
def test_a_timestamp_outside_the_skew_is_refused_even_when_well_signed(offset: int) -> None:
    headers = signed_headers(SECRET, b"{}", NOW + offset)
    with pytest.raises(SignatureError, match="timestamp"):
        verify(SECRET, headers, b"{}", now=NOW, max_skew=300)


def test_without_a_configured_secret_nothing_verifies() -> None:
    with pytest.raises(SignatureError, match="no platform secret"):
        verify("", signed_headers("", b"{}", NOW), b"{}", now=NOW, max_skew=300)


# --- gateways ---------------------------------------------------------------------------------


async def test_manual_gateway_calls_nobody_and_leaves_the_refund_requested() -> None:
    result = await ManualGateway().refund(attempt(), payment("KM1"))
    assert result.status is RefundStatus.REQUESTED


@pytest.mark.parametrize(("plan", "status"), [
    ("succeed", RefundStatus.SUCCEEDED), ("accept", RefundStatus.REQUESTED), ("fail", RefundStatus.FAILED),
    ("refuse", RefundStatus.FAILED),
])
async def test_http_gateway_maps_the_platforms_answer(platform: FakePlatform, plan: str, status: RefundStatus) -> None:
    platform.plan = [plan]
    gateway = HttpGateway(platform.refund_url, SECRET, timeout=2)
    try:
        result = await gateway.refund(attempt(), payment("KM20261124000001"))
    finally:
        await gateway.close()
    assert result.status is status
    assert platform.calls == [{"case_no": "R20261124-0001", "order_no": "KM20261124000001", "amount": "30.00",
                               "currency": "CNY", "idempotency_key": "R20261124-0001-1"}]
    assert platform.bad_signatures == 0


@pytest.mark.parametrize("plan", ["overclaim", "garbage"])
async def test_an_answer_that_cannot_be_trusted_is_never_taken_as_paid(platform: FakePlatform, plan: str) -> None:
    platform.plan = [plan]
    gateway = HttpGateway(platform.refund_url, SECRET, timeout=2)
    try:
        result = await gateway.refund(attempt(), payment("KM1"))
    finally:
        await gateway.close()
    assert result.status is RefundStatus.REQUESTED and "unclear answer" in result.reason


async def test_a_lost_answer_is_unavailable_and_the_same_key_never_pays_twice(platform: FakePlatform) -> None:
    platform.plan = ["pay_then_500", "pay_then_hang", "succeed"]
    gateway = HttpGateway(platform.refund_url, SECRET, timeout=0.3)
    try:
        for _ in range(2):
            with pytest.raises(GatewayUnavailable):
                await gateway.refund(attempt(), payment("KM1"))
        result = await gateway.refund(attempt(), payment("KM1"))
    finally:
        await gateway.close()
    assert result.status is RefundStatus.SUCCEEDED
    assert len(platform.calls) == 3 and {c["idempotency_key"] for c in platform.calls} == {"R20261124-0001-1"}
    assert platform.payouts == {"R20261124-0001-1": 1}


async def test_a_wrong_secret_is_not_a_failed_refund_but_a_retry(platform: FakePlatform) -> None:
    gateway = HttpGateway(platform.refund_url, "wrong-secret", timeout=2)
    try:
        with pytest.raises(GatewayUnavailable, match="401"):
            await gateway.refund(attempt(), payment("KM1"))
    finally:
        await gateway.close()
    assert platform.payouts == {} and platform.bad_signatures == 1


async def test_an_unreachable_platform_is_unavailable() -> None:
    gateway = HttpGateway("http://127.0.0.1:9/refunds", SECRET, timeout=1)
    try:
        with pytest.raises(GatewayUnavailable):
            await gateway.refund(attempt(), payment("KM1"))
    finally:
        await gateway.close()


def test_the_http_gateway_needs_a_url_and_a_secret() -> None:
    with pytest.raises(ValueError, match="refund_url"):
        HttpGateway("", SECRET)
    with pytest.raises(ValueError, match="secret"):
        HttpGateway("http://127.0.0.1/refunds", "")


# --- orders -----------------------------------------------------------------------------------


async def test_http_order_lookup_reads_an_order_in_the_import_format(platform: FakePlatform) -> None:
    lookup = HttpOrderLookup(platform.orders_url, SECRET, timeout=2)
    try:
        order = await lookup.get("KM20261124000001")
        missing = await lookup.get("KM20261124009999")
    finally:
        await lookup.close()
    assert order is not None and order.amount == Decimal("30.00") and order.buyer_telegram_id == 10001
    assert order.card_redeemed is False and order.paid_at.utcoffset() is not None
    assert missing is None and platform.bad_signatures == 0


async def test_http_order_lookup_signs_odd_order_numbers_as_sent(platform: FakePlatform) -> None:
    lookup = HttpOrderLookup(platform.orders_url, SECRET, timeout=2)
    try:
        assert await lookup.get("KM 1/2?x=%") is None
    finally:
        await lookup.close()
    assert platform.bad_signatures == 0


@pytest.mark.parametrize("order_no", ["BROKEN", "MALFORMED"])
async def test_http_order_lookup_says_when_it_does_not_know(platform: FakePlatform, order_no: str) -> None:
    platform.orders["MALFORMED"] = {**ORDER, "order_no": "MALFORMED", "amount": "abc"}
    lookup = HttpOrderLookup(platform.orders_url, SECRET, timeout=2)
    try:
        with pytest.raises(OrderLookupError):
            await lookup.get(order_no)
    finally:
        await lookup.close()


def test_configuration_picks_the_gateway_and_the_order_source() -> None:
    from bot.platform import build_order_lookup

    assert isinstance(build_gateway(PlatformConfig()), ManualGateway)
    assert build_order_lookup(PlatformConfig()) is None
    http = PlatformConfig(gateway="http", refund_url="http://127.0.0.1/r", orders="http",
                          orders_url="http://127.0.0.1/o/", secret=SECRET, timeout_seconds=3)
    gateway, lookup = build_gateway(http), build_order_lookup(http)
    assert isinstance(gateway, HttpGateway) and gateway.url == "http://127.0.0.1/r"
    assert isinstance(lookup, HttpOrderLookup) and lookup.base_url == "http://127.0.0.1/o"
    with pytest.raises(ValueError, match="secret"):
        build_gateway(PlatformConfig(gateway="http", refund_url="http://127.0.0.1/r"))


# --- what the platform may not make us do -----------------------------------------------------


@dataclass
class Elsewhere:
    """Another host a redirect points at: it must never see a signed request."""

    requests: list[tuple[str, bytes]] = field(default_factory=list)

    async def anything(self, request: web.Request) -> web.Response:
        self.requests.append((request.method, await request.read()))
        return web.json_response({"status": "succeeded", **ORDER})


@pytest.fixture
async def redirecting() -> AsyncIterator[tuple[Elsewhere, str]]:
    """(the other host, a base URL whose every path answers ?status= redirect to the same path there)."""
    elsewhere = Elsewhere()
    other_app = web.Application()
    other_app.router.add_route("*", "/{tail:.*}", elsewhere.anything)

    async def redirect(request: web.Request) -> web.Response:
        target = other.make_url(request.path)
        return web.Response(status=int(request.match_info["status"]), headers={"Location": str(target)})

    app = web.Application()
    app.router.add_route("*", "/{status}/{tail:.*}", redirect)
    async with TestServer(other_app) as other, TestServer(app) as server:
        yield elsewhere, str(server.make_url("/"))


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_a_refund_call_follows_no_redirect_and_the_signed_body_stays_home(
        redirecting: tuple[Elsewhere, str], status: int) -> None:
    elsewhere, base = redirecting
    gateway = HttpGateway(f"{base}{status}/refunds", SECRET, timeout=2)
    try:
        with pytest.raises(GatewayUnavailable, match="redirect"):
            await gateway.refund(attempt(), payment("KM1"))
    finally:
        await gateway.close()
    assert elsewhere.requests == []


@pytest.mark.parametrize("status", [302, 307])
async def test_an_order_lookup_follows_no_redirect(redirecting: tuple[Elsewhere, str], status: int) -> None:
    elsewhere, base = redirecting
    lookup = HttpOrderLookup(f"{base}{status}/orders", SECRET, timeout=2)
    try:
        with pytest.raises(OrderLookupError, match="redirect"):
            await lookup.get(ORDER["order_no"])
    finally:
        await lookup.close()
    assert elsewhere.requests == []


HUGE = 200 << 20


@dataclass
class Firehose:
    """Answers every call with 200 MB, streamed (no Content-Length), counting what it got to send."""

    sent: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)

    async def answer(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        chunk = b" " * (64 << 10)
        try:
            while self.sent < HUGE:
                await response.write(chunk)
                self.sent += len(chunk)
        except (ConnectionError, asyncio.CancelledError):
            pass  # the client hung up: what we want
        finally:
            self.done.set()
        return response


@pytest.fixture
async def firehose() -> AsyncIterator[tuple[Firehose, str]]:
    hose = Firehose()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", hose.answer)
    async with TestServer(app) as server:
        yield hose, str(server.make_url("/"))


@pytest.mark.parametrize("client", ["gateway", "lookup"])
async def test_an_over_large_answer_is_cut_off_early_and_counts_as_unavailable(
        firehose: tuple[Firehose, str], client: str) -> None:
    hose, base = firehose
    platform_client: HttpGateway | HttpOrderLookup
    if client == "gateway":
        platform_client = HttpGateway(f"{base}refunds", SECRET, timeout=30, max_answer_bytes=1 << 20)
        call = platform_client.refund(attempt(), payment("KM1"))
        failure: type[Exception] = GatewayUnavailable
    else:
        platform_client = HttpOrderLookup(f"{base}orders", SECRET, timeout=30, max_answer_bytes=1 << 20)
        call = platform_client.get(ORDER["order_no"])
        failure = OrderLookupError
    try:
        with pytest.raises(failure, match="max_answer_bytes"):
            await call
    finally:
        await platform_client.close()
    await asyncio.wait_for(hose.done.wait(), 10)
    # Socket buffers take a few MB the client never reads; the rest of the 200 MB is never sent.
    assert hose.sent < 32 << 20, hose.sent


async def test_an_answer_declaring_a_length_over_the_cap_is_not_read_at_all(platform: FakePlatform) -> None:
    platform.orders["BIG"] = {**ORDER, "order_no": "BIG", "product_name": "x" * 5000}
    lookup = HttpOrderLookup(platform.orders_url, SECRET, timeout=2, max_answer_bytes=1024)
    try:
        with pytest.raises(OrderLookupError, match="larger than 1024 bytes"):
            await lookup.get("BIG")
    finally:
        await lookup.close()


async def test_deeply_nested_json_from_the_platform_is_not_an_order_and_not_a_crash() -> None:
    async def deep(request: web.Request) -> web.Response:
        return web.Response(body=b"[" * 100_000 + b"]" * 100_000, content_type="application/json")

    app = web.Application()
    app.router.add_get("/orders/{order_no}", deep)
    app.router.add_post("/refunds", deep)
    async with TestServer(app) as server:
        lookup = HttpOrderLookup(str(server.make_url("/orders")), SECRET, timeout=2)
        gateway = HttpGateway(str(server.make_url("/refunds")), SECRET, timeout=2)
        try:
            with pytest.raises(OrderLookupError, match="not JSON"):
                await lookup.get(ORDER["order_no"])
            result = await gateway.refund(attempt(), payment("KM1"))
        finally:
            await lookup.close()
            await gateway.close()
    assert result.status is RefundStatus.REQUESTED and "not JSON" in (result.reason or "")


def test_configuration_passes_the_answer_cap_to_both_clients() -> None:
    from bot.platform import build_order_lookup

    http = PlatformConfig(gateway="http", refund_url="http://127.0.0.1/r", orders="http",
                          orders_url="http://127.0.0.1/o/", secret=SECRET, max_answer_bytes=4096)
    gateway, lookup = build_gateway(http), build_order_lookup(http)
    assert isinstance(gateway, HttpGateway) and isinstance(lookup, HttpOrderLookup)
    assert gateway._max_answer_bytes == lookup._max_answer_bytes == 4096
