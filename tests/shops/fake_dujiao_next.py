"""A local Dujiao-Next shop on a free port: the admin routes refundbot calls, each request held to the Open API
signature exactly as the shop documents it (Dujiao-Next-Api-Key / -Timestamp / -Signature, HMAC-SHA256 over
METHOD\\nPATH\\nTIMESTAMP\\nmd5(BODY), ±60 s) and to the admin Bearer token; its orders, wallets and refund
records; and its signed callback to a merchant's URL. Written from the shop's docs and its Go handlers
(orders model, AdminRefundToWallet's refusals), not from refundbot's client."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import aiohttp
from aiohttp import web
from yarl import URL

API_KEY, API_SECRET, ADMIN_TOKEN = "dn_key_7f3a", "dn_secret_0c9e54b1d2", "eyJhbGciOiJIUzI1NiJ9.admin.sig"
WINDOW = 60  # seconds, the shop's documented skew tolerance
MAX_REFUND_DAYS = 30  # the shop's default order refund window


def signature(secret: str, method: str, path: str, timestamp: str, body: bytes) -> str:
    text = f"{method}\n{path}\n{timestamp}\n{hashlib.md5(body).hexdigest()}"
    return hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()


@dataclass
class ShopOrder:
    id: int
    order_no: str
    user_id: int
    total: Decimal
    wallet_paid: Decimal = Decimal("0.00")
    status: str = "completed"
    refunded: Decimal = Decimal("0.00")
    guest_email: str = ""
    paid_at: datetime | None = None
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    fulfillment_type: str = "auto"
    payload: str = ""
    title: str = "Steam 充值卡 100 元"

    def json(self) -> dict[str, Any]:
        delivered = self.payload and self.status in ("delivered", "completed", "partially_refunded", "refunded")
        return {
            "id": self.id, "order_no": self.order_no, "user_id": self.user_id, "guest_email": self.guest_email,
            "status": self.status, "currency": "CNY", "original_amount": str(self.total),
            "discount_amount": "0.00", "total_amount": str(self.total), "wallet_paid_amount": str(self.wallet_paid),
            "online_paid_amount": str(self.total - self.wallet_paid), "refunded_amount": str(self.refunded),
            "paid_at": self.paid_at.isoformat().replace("+00:00", "Z") if self.paid_at else None,
            "created_at": self.created_at.isoformat().replace("+00:00", "Z"),
            "items": [{"product_id": 1, "sku_id": 1, "title": {"zh-CN": self.title}, "quantity": 1,
                       "unit_price": str(self.total), "total_price": str(self.total),
                       "fulfillment_type": self.fulfillment_type}],
            **({"fulfillment": {"type": self.fulfillment_type, "status": "delivered", "payload": self.payload,
                                "delivered_at": self.created_at.isoformat().replace("+00:00", "Z")}}
               if delivered else {}),
        }


class FakeDujiaoNext:
    def __init__(self, *, clock: Any = time.time) -> None:
        self.clock = clock
        self.orders: dict[int, ShopOrder] = {}
        self.wallets: dict[int, Decimal] = {}
        self.records: list[dict[str, Any]] = []
        self.refusals: list[str] = []  # the error_code of every request refused for its credentials
        self.requests: list[tuple[str, str]] = []  # (method, path) of every accepted request
        self.fail_next: list[int] = []  # HTTP statuses to answer the next requests with, before anything else
        self.lose_next_refund_answer = False  # pay, then answer 502 (the answer is lost on the way)
        self.answer_next_refund: dict[str, Any] | None = None  # answer this with HTTP 200 and do nothing
        self._runner: web.AppRunner | None = None
        self.url = ""

    # --- test controls --------------------------------------------------------------------------
    def add_order(self, order_no: str, total: str, *, user_id: int = 1001, wallet_paid: str = "0.00",
                  status: str = "completed", order_id: int | None = None, paid_days_ago: float = 0,
                  payload: str = "", guest_email: str = "", fulfillment_type: str = "auto") -> ShopOrder:
        ident = order_id or 100 + len(self.orders) + 1
        paid = None if status == "pending_payment" else datetime.now(UTC) - timedelta(days=paid_days_ago)
        order = ShopOrder(ident, order_no, user_id, Decimal(total), Decimal(wallet_paid), status, paid_at=paid,
                          payload=payload, guest_email=guest_email, fulfillment_type=fulfillment_type)
        self.orders[ident] = order
        if user_id:
            self.wallets.setdefault(user_id, Decimal("0.00"))
        return order

    def by_no(self, order_no: str) -> ShopOrder | None:
        return next((o for o in self.orders.values() if o.order_no == order_no), None)

    # --- the server -----------------------------------------------------------------------------
    async def __aenter__(self) -> FakeDujiaoNext:  # noqa: PYI034 (the tests name the class)
        app = web.Application(middlewares=[self._gate])
        app.router.add_get("/api/v1/admin/orders", self.list_orders)
        app.router.add_get("/api/v1/admin/orders/{id}", self.get_order)
        app.router.add_post("/api/v1/admin/orders/{id}/refund-to-wallet", self.refund_to_wallet)
        app.router.add_get("/api/v1/admin/order-refunds", self.list_refunds)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @web.middleware
    async def _gate(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body = await request.read()
        refused = self._check(request, body)
        if refused:
            self.refusals.append(refused)
            return web.json_response({"ok": False, "error_code": refused, "error_message": refused}, status=401)
        if self.fail_next:
            return web.json_response({"status_code": 500, "msg": "internal error"}, status=self.fail_next.pop(0))
        self.requests.append((request.method, request.path))
        return await handler(request)

    def _check(self, request: web.Request, body: bytes) -> str:
        key = request.headers.get("Dujiao-Next-Api-Key", "")
        ts = request.headers.get("Dujiao-Next-Timestamp", "")
        sig = request.headers.get("Dujiao-Next-Signature", "")
        if not key or not ts or not sig:
            return "missing_auth_headers"
        if not ts.isdigit():
            return "invalid_timestamp"
        if abs(self.clock() - int(ts)) > WINDOW:
            return "timestamp_expired"
        if key != API_KEY:
            return "invalid_api_key"
        # The Go middleware signs c.Request.URL.Path: the path alone, no query string.
        if not hmac.compare_digest(sig, signature(API_SECRET, request.method, request.path, ts, body)):
            return "invalid_signature"
        if request.headers.get("Authorization", "") != f"Bearer {ADMIN_TOKEN}":
            return "unauthorized"
        return ""

    @staticmethod
    def _ok(payload: Any, **extra: Any) -> web.Response:
        return web.json_response({"status_code": 0, "msg": "success", "data": payload, **extra})

    @staticmethod
    def _error(status: int, msg: str) -> web.Response:
        return web.json_response({"status_code": status, "msg": msg}, status=status)

    async def list_orders(self, request: web.Request) -> web.Response:
        wanted = request.query.get("order_no", "")
        found = [o.json() for o in self.orders.values() if not wanted or o.order_no == wanted]
        return self._ok(found, pagination={"page": 1, "page_size": 20, "total": len(found)})

    async def get_order(self, request: web.Request) -> web.Response:
        order = self.orders.get(int(request.match_info["id"])) if request.match_info["id"].isdigit() else None
        return self._ok(order.json()) if order else self._error(404, "订单不存在")

    async def refund_to_wallet(self, request: web.Request) -> web.Response:
        order = self.orders.get(int(request.match_info["id"])) if request.match_info["id"].isdigit() else None
        if order is None:
            return self._error(404, "订单不存在")
        if self.answer_next_refund is not None:
            answer, self.answer_next_refund = self.answer_next_refund, None
            return web.json_response(answer)
        try:
            body = json.loads(await request.read())
            amount = Decimal(str(body["amount"])).quantize(Decimal("0.01"))
        except (ValueError, KeyError, TypeError, ArithmeticError):
            return self._error(400, "请求参数错误")
        if amount <= 0:
            return self._error(400, "请求参数错误")
        if order.status in ("pending_payment", "canceled") or order.paid_at is None:
            return self._error(400, "订单状态不允许退款")
        if order.user_id == 0:
            return self._error(400, "游客订单不支持退款到钱包")
        if datetime.now(UTC) - order.paid_at > timedelta(days=MAX_REFUND_DAYS):
            return self._error(400, "订单已超过退款期限")
        if amount > order.total - order.refunded:
            return self._error(400, "退款金额超过可退金额")
        order.refunded += amount
        order.status = "refunded" if order.refunded == order.total else "partially_refunded"
        self.wallets[order.user_id] = self.wallets.get(order.user_id, Decimal("0.00")) + amount
        record = {"id": 500 + len(self.records) + 1, "order_id": order.id, "order_no": order.order_no,
                  "user_id": order.user_id, "type": "wallet", "amount": str(amount),
                  "remark": str(body.get("remark") or ""), "created_at": datetime.now(UTC).isoformat()}
        self.records.append(record)
        if self.lose_next_refund_answer:
            self.lose_next_refund_answer = False
            return self._error(502, "bad gateway")
        return self._ok({"order": order.json(), "refund_record": record})

    async def list_refunds(self, request: web.Request) -> web.Response:
        wanted = request.query.get("order_no", "")
        found = [r for r in self.records if not wanted or r["order_no"] == wanted]
        return self._ok(found, pagination={"page": 1, "page_size": 100, "total": len(found)})

    # --- the shop calling the merchant --------------------------------------------------------------
    async def callback(self, url: str, order_no: str, status: str, *, secret: str = API_SECRET,
                       timestamp: float | None = None) -> tuple[int, Any]:
        """POST a signed status change to `url`, as the shop pushes one; (status, JSON answer)."""
        order = self.by_no(order_no)
        body = json.dumps({"event": "order.status_changed", "order_id": order.id if order else 0,
                           "order_no": order_no, "downstream_order_no": order_no, "status": status,
                           "timestamp": int(self.clock())}).encode()
        ts = str(int(self.clock() if timestamp is None else timestamp))
        headers = {"Content-Type": "application/json", "Dujiao-Next-Api-Key": API_KEY, "Dujiao-Next-Timestamp": ts,
                   "Dujiao-Next-Signature": signature(secret, "POST", URL(url).path, ts, body)}
        async with aiohttp.ClientSession() as http, http.post(url, data=body, headers=headers) as resp:
            return resp.status, await resp.json(content_type=None)
