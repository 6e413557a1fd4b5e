"""Dujiao-Next (github.com/dujiao-next/dujiao-next): its orders, its callback, and the signed HTTP both share.

Signing, as its Open API documents it (docs/api/integration-open-api.md, "Authentication & Signature"):

    Dujiao-Next-Api-Key:   the API key approved in the shop's admin panel
    Dujiao-Next-Timestamp: unix seconds
    Dujiao-Next-Signature: hex(HMAC-SHA256(api_secret, METHOD + "\\n" + PATH + "\\n" + TIMESTAMP + "\\n" + md5hex(BODY)))

PATH is the request path without host or query string; an empty body hashes to d41d8cd98f00b204e9800998ecf8427e;
a timestamp more than 60 s away is refused. The shop signs its callbacks the same way with the same pair.

Where the orders come from: the Open API (/api/v1/upstream) reads only procurement orders, by numeric id,
so a refund desk that needs any order by its number reads it the way the shop's admin panel does, with an
admin token (Authorization: Bearer): `GET /api/v1/admin/orders?order_no=...` to find its id, then
`GET /api/v1/admin/orders/{id}` for the order with its items and fulfillment. Every call carries the Open API
signature as well, so a gateway in front of the admin routes can hold refundbot to the API credential.

What is read from an order (the shop's `orders` model): order_no, status (pending_payment, paid, fulfilling,
partially_delivered, delivered, completed, canceled, partially_refunded, refunded), total_amount,
wallet_paid_amount and online_paid_amount (its two payment parts), refunded_amount (already refunded to the
wallet by the shop), paid_at / created_at, guest_email (the buyer's contact on guest orders; a user's order
carries user_id), items[].fulfillment_type and title, fulfillment.payload (the delivered 卡密, one per line).
The guest 查询密码 is stored hashed and never returned (json:"-"), so these orders carry no query_secret.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from aiohttp import web
from yarl import URL

from bot import bodies
from bot.config import DujiaoNextConfig
from bot.platform import Clock, PlatformCallFailed, PlatformClient, SignatureError
from dialogs.domain import DeliveryStatus, Order, PaymentChannel, ProductKind
from dialogs.ports import OrderSourceUnavailable, UnitOfWorkFactory

if TYPE_CHECKING:
    from bot.config import AppConfig

log = logging.getLogger(__name__)

KEY_HEADER = "Dujiao-Next-Api-Key"
TIMESTAMP_HEADER = "Dujiao-Next-Timestamp"
SIGNATURE_HEADER = "Dujiao-Next-Signature"
API = "/api/v1"
CALLBACK_PATH = "/api/v1/shops/dujiao-next/callback"
MAX_CALLBACK_BYTES = 256 * 1024  # a status change with its delivery content

# The shop's order statuses -> what was delivered (unknown words: pending, for a person to look at).
DELIVERY: dict[str, DeliveryStatus] = {
    "pending_payment": DeliveryStatus.PENDING,
    "paid": DeliveryStatus.PENDING,
    "fulfilling": DeliveryStatus.PENDING,
    "partially_delivered": DeliveryStatus.PENDING,
    "delivered": DeliveryStatus.DELIVERED,
    "completed": DeliveryStatus.DELIVERED,
    "canceled": DeliveryStatus.FAILED,
}


# --- signatures -------------------------------------------------------------------------------


def sign(secret: str, method: str, path: str, timestamp: str, body: bytes) -> str:
    message = f"{method.upper()}\n{path}\n{timestamp}\n{hashlib.md5(body).hexdigest()}"
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def signed_headers(api_key: str, secret: str, method: str, path: str, body: bytes, now: float) -> dict[str, str]:
    timestamp = str(int(now))
    return {KEY_HEADER: api_key, TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(secret, method, path, timestamp, body)}


def verify(api_key: str, secret: str, headers: Mapping[str, str], method: str, path: str, body: bytes, *,
           now: float, max_skew: float) -> None:
    """A request signed by the holder of (api_key, secret) just now, or SignatureError saying why not."""
    if not api_key or not secret:
        raise SignatureError("no [orders.dujiao_next] api_key / api_secret is configured")
    given_key = headers.get(KEY_HEADER, "").strip()
    timestamp = headers.get(TIMESTAMP_HEADER, "").strip()
    given = headers.get(SIGNATURE_HEADER, "").strip().lower()
    if not given_key or not timestamp or not given:
        raise SignatureError(f"missing {KEY_HEADER}, {TIMESTAMP_HEADER} or {SIGNATURE_HEADER}")
    if not hmac.compare_digest(given_key.encode(), api_key.encode()):
        raise SignatureError("unknown API key")
    try:
        sent_at = int(timestamp)
    except ValueError:
        raise SignatureError(f"{TIMESTAMP_HEADER} is not unix seconds") from None
    if abs(now - sent_at) > max_skew:
        raise SignatureError(f"timestamp is more than {max_skew:g} s away from the server clock")
    if not hmac.compare_digest(sign(secret, method, path, timestamp, body).encode(), given.encode()):
        raise SignatureError("bad signature")


# --- the HTTP client both the orders and the wallet rail use ------------------------------------


class DujiaoNextUnavailable(OrderSourceUnavailable):
    """The shop did not answer usefully (network, timeout, 5xx, credentials refused, a malformed answer)."""


class DujiaoNextClient(PlatformClient):
    """Signed, size-capped, redirect-refusing calls to one Dujiao-Next shop (bot.platform.PlatformClient)."""

    def __init__(self, shop: DujiaoNextConfig, what: str, *, clock: Clock = time.time) -> None:
        missing = [name for name, value in (("base_url", shop.base_url), ("api_key", shop.api_key),
                                             ("api_secret", shop.api_secret), ("admin_token", shop.admin_token))
                   if not value]
        if missing:
            raise ValueError(f"{what} needs [orders.dujiao_next] {', '.join(missing)} (the secrets may come from "
                             "env REFUNDBOT_DUJIAO_NEXT_API_SECRET / REFUNDBOT_DUJIAO_NEXT_ADMIN_TOKEN)")
        super().__init__(shop.base_url, shop.api_secret, shop.timeout_seconds, clock, what, "base_url",
                         shop.max_answer_bytes)
        self.shop = shop
        self.base = URL(shop.base_url.rstrip("/"))

    async def check(self) -> str:
        """`refundbot doctor`: the settings can sign a request, without calling the shop; ValueError says why not."""
        shop = self.shop
        if shop.api_secret != shop.api_secret.strip() or shop.admin_token != shop.admin_token.strip():
            raise ValueError("[orders.dujiao_next] api_secret or admin_token has spaces around it (a copy-paste slip?)")
        if self.base.scheme not in ("http", "https") or not self.base.host:
            raise ValueError(f"[orders.dujiao_next] base_url {shop.base_url!r} is not an http(s) URL")
        sign(shop.api_secret, "GET", f"{API}/admin/orders", "0", b"")
        return f"Dujiao-Next at {self.base} (API key {shop.api_key}): requests are signed the Open API way"

    async def call(self, method: str, path: str, query: Mapping[str, str] | None = None,
                   payload: Mapping[str, Any] | None = None) -> tuple[int, Any]:
        """(HTTP status, the answer as JSON or None); PlatformCallFailed when there is no answer."""
        body = b"" if payload is None else json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        url = self.base.with_path(self.base.path.rstrip("/") + path, encoded=True)
        if query:
            url = url.with_query(dict(query))
        # The signature covers the path as sent, without the query string (the docs' {PATH}).
        headers = {"Authorization": f"Bearer {self.shop.admin_token}", "Accept": "application/json",
                   **signed_headers(self.shop.api_key, self._secret, method, url.raw_path, body, self._clock())}
        if payload is not None:
            headers["Content-Type"] = "application/json"
        status, raw = await self._call(method, url, headers, body if payload is not None else None)
        try:
            return status, bodies.loads(raw, parse_float=Decimal) if raw else None
        except ValueError:
            return status, None

    async def find_order(self, order_no: str) -> Any | None:
        """The order's JSON (with items and fulfillment), None when the shop has no such order."""
        try:
            status, answer = await self.call("GET", f"{API}/admin/orders", {"order_no": order_no, "page": "1",
                                                                           "page_size": "5"})
            self._must_be_ok(order_no, status, answer)
            match = [o for o in rows(answer) if isinstance(o, dict) and o.get("order_no") == order_no]
            if not match:
                return None
            ident = str(match[0].get("id") or "")
            if not ident.isdigit():
                raise DujiaoNextUnavailable(f"order {order_no}: the shop's list gives no numeric id ({ident!r})")
            status, answer = await self.call("GET", f"{API}/admin/orders/{ident}")
            if status == 404:
                return None
            self._must_be_ok(order_no, status, answer)
        except PlatformCallFailed as exc:
            raise DujiaoNextUnavailable(f"order {order_no}: {exc}") from exc
        order = data(answer)
        if not isinstance(order, dict) or order.get("order_no") != order_no:
            raise DujiaoNextUnavailable(f"asked for order {order_no}, the shop answered {str(answer)[:200]}")
        return order

    @staticmethod
    def _must_be_ok(order_no: str, status: int, answer: Any) -> None:
        if status in (401, 403):
            raise DujiaoNextUnavailable(f"order {order_no}: the shop refused our credentials (HTTP {status}: "
                                        f"{words(answer)}); check [orders.dujiao_next] api_key / admin_token")
        # An error may also come as HTTP 200 with the envelope saying so (ok false, a non-zero status_code).
        refused = isinstance(answer, dict) and (answer.get("ok") is False
                                                or answer.get("status_code") not in (None, 0, 200))
        if status != 200 or answer is None or refused:
            raise DujiaoNextUnavailable(f"order {order_no}: HTTP {status}: {words(answer) or 'not JSON'}")


def data(answer: Any) -> Any:
    """The payload of an answer, whether enveloped ({"data": ...}) or not."""
    return answer.get("data", answer) if isinstance(answer, dict) else answer


def rows(answer: Any) -> list[Any]:
    """The rows of a list answer: a bare list, or under data / list / items."""
    found = data(answer)
    if isinstance(found, dict):
        found = found.get("list", found.get("items", found.get("orders", [])))
    return found if isinstance(found, list) else []


def words(answer: Any) -> str:
    if not isinstance(answer, dict):
        return ""
    parts = [str(answer.get(k)) for k in ("error_code", "error_message", "msg", "message", "error") if answer.get(k)]
    return ": ".join(parts)[:300]


# --- orders -------------------------------------------------------------------------------------


def money(value: Any, field: str) -> Decimal:
    try:
        return Decimal(str(value if value not in (None, "") else "0")).quantize(Decimal("0.01"))
    except InvalidOperation:
        raise DujiaoNextUnavailable(f"{field} is not an amount: {value!r}") from None


def when(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value))  # 3.11 reads the trailing "Z" of Go's RFC 3339
    except ValueError:
        raise DujiaoNextUnavailable(f"not an ISO 8601 time: {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def title(item: Mapping[str, Any]) -> str:
    names = item.get("title") or {}
    if isinstance(names, dict):
        return str(names.get("zh-CN") or names.get("en") or next(iter(names.values()), ""))
    return str(names)


def order_from_dujiao_next(fields: Mapping[str, Any], online_channel: PaymentChannel = PaymentChannel.EPAY) -> Order:
    """One Dujiao-Next order -> Order. `amount` is what can still be refunded (paid less what the shop has
    refunded already); `trade_no` is the shop's numeric order id, which its refund API takes."""
    status = str(fields.get("status") or "")
    total = money(fields.get("total_amount"), "total_amount")
    wallet = money(fields.get("wallet_paid_amount"), "wallet_paid_amount")
    refunded = money(fields.get("refunded_amount"), "refunded_amount")
    unpaid = status == "pending_payment" or (status == "canceled" and not fields.get("paid_at"))
    items = [i for i in fields.get("items") or [] if isinstance(i, dict)]
    found = fields.get("fulfillment")
    fulfillment: Mapping[str, Any] = found if isinstance(found, dict) else {}
    payload = str(fulfillment.get("payload") or "")
    kinds = {str(i.get("fulfillment_type") or "") for i in items}
    delivered_at = when(fulfillment.get("delivered_at"))
    delivery = DELIVERY.get(status, DeliveryStatus.DELIVERED if delivered_at else DeliveryStatus.PENDING)
    paid_at = when(fields.get("paid_at")) or when(fields.get("created_at"))
    if paid_at is None:
        raise DujiaoNextUnavailable(f"order {fields.get('order_no')} has neither paid_at nor created_at")
    tags = {f"dujiao_next:{status}"} if status else set()
    if refunded > 0:
        tags.add("dujiao_next:refunded_before")
    user = fields.get("user")
    contact = fields.get("guest_email") or (user.get("email") if isinstance(user, dict) else None)
    return Order(
        order_no=str(fields["order_no"]),
        buyer_phone="",
        product_name=" + ".join(filter(None, (title(i) for i in items)))[:200] or str(fields["order_no"]),
        product_kind=ProductKind.CARD_CODE if kinds == {"auto"} else ProductKind.OTHER,
        amount=Decimal("0.00") if unpaid else max(total - refunded, Decimal("0.00")),
        payment_channel=PaymentChannel.BALANCE if total > 0 and wallet >= total else online_channel,
        paid_at=paid_at,
        delivery_status=delivery,
        tags=frozenset(tags),
        delivered_at=delivered_at,
        trade_no=str(fields["id"]) if fields.get("id") not in (None, "") else None,
        buyer_contact=str(contact) if contact else None,
        query_secret=None,
        delivered_codes=tuple(line.strip() for line in payload.splitlines() if line.strip()),
    )


class DujiaoNextOrders(DujiaoNextClient):
    """dialogs.ports.OrderLookup over a Dujiao-Next shop: the Order, None when the shop has no such order,
    DujiaoNextUnavailable (an OrderSourceUnavailable) for anything else."""

    def __init__(self, shop: DujiaoNextConfig, *, clock: Clock = time.time) -> None:
        super().__init__(shop, '[orders] source = "dujiao_next"', clock=clock)

    async def get(self, order_no: str) -> Order | None:
        fields = await self.find_order(order_no)
        if fields is None:
            return None
        try:
            return order_from_dujiao_next(fields, self.shop.online_channel)
        except (KeyError, TypeError, AttributeError) as exc:
            raise DujiaoNextUnavailable(f"order {order_no}: malformed order ({exc!r})") from exc


def build(config: AppConfig) -> DujiaoNextOrders:
    return DujiaoNextOrders(config.orders.dujiao_next)


# --- the shop's callback ------------------------------------------------------------------------


class DujiaoNextCallback:
    """POST /api/v1/shops/dujiao-next/callback: the shop says an order changed (paid, delivered, canceled).
    Signed like its Open API with our API key and secret; the body is not trusted beyond its order number:
    the order is read again through the API and upserted. Answers as the shop expects:
    {"ok": true, "message": "received"}, or {"ok": false, "message": why} with 401 (not signed by it),
    400 (no order number), 404 (the shop has no such order), 503 (the shop's API did not answer: it retries)."""

    def __init__(self, orders: DujiaoNextOrders, uow_factory: UnitOfWorkFactory, *, clock: Clock = time.time) -> None:
        self.orders, self.uow_factory, self.clock = orders, uow_factory, clock

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(CALLBACK_PATH, self.handle)

        async def close(_: web.Application) -> None:
            await self.orders.close()

        app.on_cleanup.append(close)

    async def handle(self, request: web.Request) -> web.Response:
        try:
            body = await bodies.read_at_most(request.content, MAX_CALLBACK_BYTES, request.content_length)
        except bodies.BodyTooLarge:
            return _answer(413, "body too large")
        shop = self.orders.shop
        try:
            verify(shop.api_key, shop.api_secret, request.headers, request.method, request.raw_path.split("?")[0],
                   body, now=self.clock(), max_skew=shop.max_clock_skew_seconds)
        except SignatureError as exc:
            log.warning("Dujiao-Next callback refused: %s; nothing changed", exc)
            return _answer(401, f"refused: {exc}")
        try:
            event = bodies.loads(body)
        except ValueError:
            return _answer(400, "not JSON")
        order_no = str(event.get("order_no") or "") if isinstance(event, dict) else ""
        if not order_no:
            return _answer(400, "no order_no")
        try:
            order = await self.orders.get(order_no)
        except OrderSourceUnavailable as exc:
            log.warning("Dujiao-Next callback for %s: the order could not be read (%s); the shop will retry",
                        order_no, exc)
            return _answer(503, "the order could not be read now")
        if order is None:
            return _answer(404, f"no order {order_no}")
        async with self.uow_factory() as uow:
            await uow.orders.upsert(order)
            await uow.commit()
        log.info("Dujiao-Next callback: order %s (%s) upserted", order_no, event.get("status"))
        return web.json_response({"ok": True, "message": "received"})


def _answer(status: int, message: str) -> web.Response:
    return web.json_response({"ok": False, "message": message}, status=status)


def add_dujiao_next_routes(app: web.Application, config: AppConfig, uow_factory: UnitOfWorkFactory) -> None:
    """Mount the callback when refundbot reads its orders from Dujiao-Next."""
    if config.orders.source == "dujiao_next":
        DujiaoNextCallback(build(config), uow_factory).add_routes(app)
