"""The shop platform, seen from refundbot: signed HTTP both ways, its HTTP client and the order lookup
(the refund gateways, the platform's own among them, are in bot/rails/).

Signing (both directions, one shared secret, `[platform] secret` / REFUNDBOT_PLATFORM_SECRET):

    X-Refundbot-Timestamp: <unix seconds, an integer>
    X-Refundbot-Signature: hex(HMAC-SHA256(secret, timestamp + "." + message))

where `message` is the raw request body for POST and the raw path with its query string for GET
(e.g. `/api/v1/cases/R20261124-0001`). A request whose timestamp is more than
`max_clock_skew_seconds` away from our clock is refused, and so is a POST whose signature was
already accepted once (the nonce ledger): together they make a captured request useless.

Every call to the platform follows no redirect (a signed body must not travel to another host, nor its
answer be trusted: a 3xx is an error) and reads at most `max_answer_bytes` of the answer; either is
treated like an unreachable platform.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import aiohttp
from yarl import URL

from bot import bodies
from bot.config import MAX_ANSWER_BYTES, PlatformConfig
from dialogs.domain import Order
from dialogs.ports import OrderSourceUnavailable
from storage.importer import parse_order

log = logging.getLogger(__name__)

TIMESTAMP_HEADER = "X-Refundbot-Timestamp"
SIGNATURE_HEADER = "X-Refundbot-Signature"
Clock = Callable[[], float]


# --- signatures -------------------------------------------------------------------------------


def sign(secret: str, timestamp: str, message: bytes) -> str:
    """hex HMAC-SHA256 over `timestamp + "." + message`."""
    return hmac.new(secret.encode(), timestamp.encode() + b"." + message, hashlib.sha256).hexdigest()


def signed_headers(secret: str, message: bytes, now: float | None = None) -> dict[str, str]:
    timestamp = str(int(time.time() if now is None else now))
    return {TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: sign(secret, timestamp, message)}


class SignatureError(Exception):
    """The request is not from the platform, or not from now (the message says which)."""


def verify(secret: str, headers: Mapping[str, str], message: bytes, *, now: float, max_skew: float) -> str:
    """Check a signed request; returns its signature (the replay-ledger key) or raises SignatureError."""
    if not secret:
        raise SignatureError("no platform secret is configured: signed requests cannot be checked")
    timestamp = headers.get(TIMESTAMP_HEADER, "").strip()
    given = headers.get(SIGNATURE_HEADER, "").strip().lower()
    if not timestamp or not given:
        raise SignatureError(f"missing {TIMESTAMP_HEADER} or {SIGNATURE_HEADER}")
    try:
        sent_at = int(timestamp)
    except ValueError:
        raise SignatureError(f"{TIMESTAMP_HEADER} is not unix seconds") from None
    if abs(now - sent_at) > max_skew:
        raise SignatureError(f"timestamp is more than {max_skew:g} s away from the server clock")
    expected = sign(secret, timestamp, message)
    if not hmac.compare_digest(expected.encode(), given.encode()):
        raise SignatureError("bad signature")
    return expected


class StreamedSignature:
    """verify() for a body read in chunks and never held whole (the batch import): feed it the body with
    `update`, then `check` runs verify's checks (headers, clock, HMAC) and returns the signature."""

    def __init__(self, secret: str, headers: Mapping[str, str]) -> None:
        self._secret, self._headers = secret, headers
        self._timestamp = headers.get(TIMESTAMP_HEADER, "").strip()
        self._mac = hmac.new(secret.encode(), self._timestamp.encode() + b".", hashlib.sha256)

    def update(self, chunk: bytes) -> None:
        self._mac.update(chunk)

    def check(self, *, now: float, max_skew: float) -> str:
        # verify() over an empty body checks the headers and the clock the same way; only its HMAC
        # (of no body) is not ours, so "bad signature" from it means the headers were fine.
        try:
            verify(self._secret, self._headers, b"", now=now, max_skew=max_skew)
        except SignatureError as exc:
            if str(exc) != "bad signature":
                raise
        expected = self._mac.hexdigest()
        given = self._headers.get(SIGNATURE_HEADER, "").strip().lower()
        if not hmac.compare_digest(expected.encode(), given.encode()):
            raise SignatureError("bad signature")
        return expected


# --- refund gateways --------------------------------------------------------------------------


# --- the platform's HTTP client (refunds: bot/rails/http.py; orders: below) -------------------

class PlatformCallFailed(Exception):
    """No answer worth reading: network error, timeout, a redirect, an answer over the size cap."""


class PlatformClient:
    """What both calls to the platform share: a URL and the secret they are signed with (both
    required), a timeout, a cap on the answer's size and one HTTP session, opened on first use."""

    def __init__(self, url: str, secret: str, timeout: float, clock: Clock, what: str, url_setting: str,
                 max_answer_bytes: int) -> None:
        if not url:
            raise ValueError(f"[platform] {what} needs [platform] {url_setting}")
        if not secret:
            raise ValueError(f"[platform] {what} needs [platform] secret (or REFUNDBOT_PLATFORM_SECRET)")
        self._secret, self._timeout, self._clock = secret, timeout, clock
        self._max_answer_bytes = max_answer_bytes
        self._session: aiohttp.ClientSession | None = None

    async def _call(self, method: str, url: str | URL, headers: dict[str, str],
                    data: bytes | None = None) -> tuple[int, bytes]:
        """(status, body) of one signed call; PlatformCallFailed when there is no answer to trust."""
        try:
            async with self._http().request(method, url, data=data, headers=headers, allow_redirects=False,
                                            timeout=aiohttp.ClientTimeout(total=self._timeout)) as resp:
                if 300 <= resp.status < 400:
                    raise PlatformCallFailed(f"the platform answered a redirect (HTTP {resp.status}, Location "
                                             f"{resp.headers.get('Location', '')[:200]!r}); redirects are not followed")
                try:
                    return resp.status, await bodies.read_at_most(resp.content, self._max_answer_bytes,
                                                                  resp.content_length)
                except bodies.BodyTooLarge as exc:
                    resp.close()  # drop the connection: the rest of the answer is never read
                    raise PlatformCallFailed(f"the platform's answer is {exc} ([platform] max_answer_bytes)") from None
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise PlatformCallFailed(f"{type(exc).__name__}: {exc}") from exc

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


# --- orders from the platform -----------------------------------------------------------------


class OrderLookupError(OrderSourceUnavailable):
    """The platform's order API did not answer usefully (network, 5xx, a malformed order)."""


class HttpOrderLookup(PlatformClient):
    """dialogs.ports.OrderLookup over `GET {orders_url}/{order_no}` (signed like every call):
    200 with an order object in the import format → the Order; 404 → None; anything else →
    OrderLookupError."""

    def __init__(self, base_url: str, secret: str, timeout: float = 10, *, clock: Clock = time.time,
                 max_answer_bytes: int = MAX_ANSWER_BYTES) -> None:
        super().__init__(base_url, secret, timeout, clock, 'orders = "http"', "orders_url", max_answer_bytes)
        self.base_url = base_url.rstrip("/")

    async def get(self, order_no: str) -> Order | None:
        url = URL(f"{self.base_url}/{quote(order_no, safe='')}", encoded=True)
        headers = signed_headers(self._secret, url.raw_path_qs.encode(), self._clock())
        try:
            status, raw = await self._call("GET", url, headers)
        except PlatformCallFailed as exc:
            raise OrderLookupError(f"order {order_no}: {exc}") from exc
        if status == 404:
            return None
        if status != 200:
            raise OrderLookupError(f"order {order_no}: HTTP {status}: {raw[:200].decode('utf-8', 'replace')}")
        try:
            fields = bodies.loads(raw, parse_float=Decimal)
        except ValueError as exc:
            raise OrderLookupError(f"order {order_no}: not JSON ({exc})") from exc
        order = order_from_json(fields)
        if order.order_no != order_no:
            raise OrderLookupError(f"asked for order {order_no}, the platform answered {order.order_no}")
        return order


def order_from_json(fields: Any) -> Order:
    """An order object in the import format (see storage.importer) → Order; OrderLookupError says
    which fields are wrong."""
    if not isinstance(fields, dict):
        raise OrderLookupError("an order must be a JSON object")
    try:
        return parse_order(fields)
    except Exception as exc:  # storage.importer reports every bad field in one message
        raise OrderLookupError(str(exc)) from exc


# --- from configuration -----------------------------------------------------------------------


def build_order_lookup(config: PlatformConfig, source: str = "local") -> HttpOrderLookup | None:
    """`[orders] source` (or the older `[platform] orders`): None for "local" (the orders table),
    HttpOrderLookup for "http"."""
    if source == "http" or config.orders == "http":
        return HttpOrderLookup(config.orders_url, config.secret, config.timeout_seconds,
                               max_answer_bytes=config.max_answer_bytes)
    return None
