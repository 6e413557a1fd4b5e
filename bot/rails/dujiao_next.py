"""Refunds to the buyer's Dujiao-Next wallet (`[platform.rails] balance = "dujiao_next"`; the shop is
configured in `[orders.dujiao_next]`, see bot/shops/dujiao_next.py for the signing).

What the shop offers, and what its admin panel calls (frontend/admin/src/api/admin.ts):
    POST /api/v1/admin/orders/{id}/refund-to-wallet   {"amount": "12.50", "remark": "..."}
    GET  /api/v1/admin/order-refunds?order_no=...      the order's refund records (type, amount, remark)
The shop credits the wallet at once (a wallet transaction of type admin_refund), raises the order's
refunded_amount and sets it partially_refunded / refunded. It refuses an amount above what is left
(ErrRefundExceeded), an order not paid (ErrOrderStatusInvalid) and one past its refund window
(ErrOrderRefundExpired); a guest order (user_id 0) has no wallet.

The shop keeps no idempotency key, so ours travels in the remark ("refundbot R20261124-0001-1 ...") and is
looked for before anything is paid: `refund` first lists the order's refund records and answers SUCCEEDED
for one that carries the key (a retry after a lost answer never pays twice), and `query` answers the same
way, or None when the shop has no such record (then, and only then, the worker sends it again).

Answers: 2xx -> the refund records are read again: the one with our key -> SUCCEEDED (the wallet is
credited; the record id is the external reference); none -> held (REQUESTED) for finance. An error in a
2xx envelope (ok false, a non-zero status_code) is a refusal like 400/409/422
with the shop's words -> FAILED, named: expired/期限/过期 -> WINDOW_PASSED, exceed/超过/超出 ->
AMOUNT_TOO_HIGH, status/状态/未支付/canceled -> TRADE_CLOSED, else REJECTED. 401/403 (our credentials),
404 (no such order id), 429, 5xx, timeouts, redirects, over-large answers: GatewayUnavailable (nothing was
paid, or the next pass finds the record by its key).
"""

from __future__ import annotations

import logging
import time
from decimal import Decimal, InvalidOperation
from typing import Any

from bot.config import PlatformConfig
from bot.platform import Clock, PlatformCallFailed
from bot.shops.dujiao_next import API, DujiaoNextClient, rows, words
from dialogs.domain import RailError, RefundAttempt, RefundStatus
from dialogs.ports import GatewayResult, GatewayUnavailable, OrderSourceUnavailable, Payment

log = logging.getLogger(__name__)

CENT = Decimal("0.01")
REMARK_PREFIX = "refundbot"
_REFUSED = frozenset({400, 409, 422})
# A refusal's words -> why (first match wins: "已超过退款期限" is the window, not the amount).
_WORDS: tuple[tuple[tuple[str, ...], RailError], ...] = (
    (("expire", "期限", "过期"), RailError.WINDOW_PASSED),
    (("exceed", "超过", "超出", "大于", "可退"), RailError.AMOUNT_TOO_HIGH),
    (("status", "状态", "未支付", "cancel", "unpaid"), RailError.TRADE_CLOSED),
)


def refusal(text: str) -> RailError:
    lower = text.lower()
    for needles, error in _WORDS:
        if any(n in lower for n in needles):
            return error
    return RailError.REJECTED


class DujiaoNextWalletGateway(DujiaoNextClient):
    """Pays refund attempts back into the buyer's Dujiao-Next wallet (see the module doc)."""

    name = "dujiao_next"

    def __init__(self, shop: Any, *, clock: Clock = time.time) -> None:
        super().__init__(shop, '[platform.rails] "dujiao_next"', clock=clock)

    @classmethod
    def from_config(cls, config: PlatformConfig) -> DujiaoNextWalletGateway:
        return cls(config.dujiao_next)

    async def refund(self, attempt: RefundAttempt, payment: Payment) -> GatewayResult:
        known = await self.query(attempt, payment)
        if known is not None:
            return known
        order_id = await self._order_id(attempt, payment)
        if isinstance(order_id, GatewayResult):
            return order_id
        remark = f"{REMARK_PREFIX} {attempt.idempotency_key} {attempt.case_no}"
        try:
            status, answer = await self.call("POST", f"{API}/admin/orders/{order_id}/refund-to-wallet",
                                             payload={"amount": str(attempt.amount.quantize(CENT)), "remark": remark})
        except PlatformCallFailed as exc:
            raise GatewayUnavailable(f"refund {attempt.idempotency_key}: {exc}") from exc
        text = words(answer) or f"HTTP {status}"
        enveloped_error = isinstance(answer, dict) and (answer.get("ok") is False
                                                        or answer.get("status_code") not in (None, 0, 200))
        if status in _REFUSED or (200 <= status < 300 and enveloped_error):
            return GatewayResult(RefundStatus.FAILED, reason=f"Dujiao-Next refused the wallet refund: {text}",
                                 rail_status=text[:64], error=refusal(text))
        if status >= 300:
            raise GatewayUnavailable(f"refund {attempt.idempotency_key}: HTTP {status}: {text}")
        # Paid is what the shop's own records show under our key, not what an answer says.
        recorded = await self.query(attempt, payment)
        if recorded is not None:
            return recorded
        log.error("refund %s: the shop answered HTTP %s but shows no refund record with our key; held for finance",
                  attempt.idempotency_key, status)
        return GatewayResult(RefundStatus.REQUESTED, rail_status=f"HTTP {status}",
                             reason=f"Dujiao-Next answered HTTP {status} ({text}) but lists no refund under "
                                    f"{attempt.idempotency_key}: held for finance to check the wallet")

    async def query(self, attempt: RefundAttempt, payment: Payment) -> GatewayResult | None:
        """The shop's refund record carrying our key: SUCCEEDED (a wallet refund is paid when recorded);
        None when there is none."""
        key = attempt.idempotency_key
        try:
            status, answer = await self.call("GET", f"{API}/admin/order-refunds",
                                             {"order_no": payment.order_no, "page": "1", "page_size": "100"})
        except PlatformCallFailed as exc:
            raise GatewayUnavailable(f"refund {key}: cannot read the shop's refund records: {exc}") from exc
        if status != 200 or answer is None:
            raise GatewayUnavailable(f"refund {key}: refund records: HTTP {status}: {words(answer)}")
        for record in rows(answer):
            if not isinstance(record, dict) or f" {key} " not in f" {record.get('remark') or ''} ":
                continue
            try:
                amount = Decimal(str(record.get("amount"))).quantize(CENT)
            except InvalidOperation:
                amount = None
            if amount != attempt.amount.quantize(CENT):
                log.error("refund %s: the shop's record says %r, the attempt is for %s; held for finance",
                          key, record.get("amount"), attempt.amount)
                return GatewayResult(RefundStatus.REQUESTED, external_ref=_record_id(record),
                                     reason=f"the shop recorded {record.get('amount')!r} under this refund's key, "
                                            f"not {attempt.amount}: held for finance", amount=amount)
            return GatewayResult(RefundStatus.SUCCEEDED, external_ref=_record_id(record), rail_status="refunded",
                                 amount=amount)
        return None

    async def _order_id(self, attempt: RefundAttempt, payment: Payment) -> str | GatewayResult:
        """The shop's numeric order id, always looked up by the order number: a trade_no from elsewhere
        (a payment serial) must never name another order of the shop."""
        try:
            order = await self.find_order(payment.order_no)
        except OrderSourceUnavailable as exc:
            raise GatewayUnavailable(f"refund {attempt.idempotency_key}: {exc}") from exc
        if order is None or not str(order.get("id") or "").isdigit():
            return GatewayResult(RefundStatus.FAILED, reason=f"Dujiao-Next has no order {payment.order_no}",
                                 error=RailError.REJECTED)
        if not str(order.get("user_id") or "0").strip("0"):
            return GatewayResult(RefundStatus.FAILED, error=RailError.REJECTED,
                                 reason=f"order {payment.order_no} is a guest order: the buyer has no Dujiao-Next wallet")
        return str(order["id"])


def _record_id(answer: Any) -> str | None:
    found = answer.get("data", answer) if isinstance(answer, dict) else None
    if isinstance(found, dict):
        record = found.get("refund_record") or found.get("record") or found
        ident = record.get("id") if isinstance(record, dict) else None
        if ident not in (None, ""):
            return str(ident)[:128]
    return None
