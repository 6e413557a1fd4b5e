"""The platform's own refund endpoint (`[platform] gateway = "http"`): see bot/platform.py for the signing.

    POST refund_url   {"case_no", "order_no", "amount": "12.50", "currency": "CNY", "idempotency_key"}

answered 2xx with {"status": "accepted" | "succeeded" | "failed", "reference"?, "amount"?, "reason"?}.
The idempotency key is the platform's duplicate guard: the same key must never pay twice, and refundbot
re-sends an attempt under the same key whenever it does not know the outcome.
"""

from __future__ import annotations

import json
import logging
import time
from decimal import Decimal, InvalidOperation

from bot import bodies
from bot.config import MAX_ANSWER_BYTES
from bot.platform import Clock, PlatformCallFailed, PlatformClient, signed_headers
from dialogs.domain import RefundAttempt, RefundStatus
from dialogs.ports import GatewayResult, GatewayUnavailable, Payment

log = logging.getLogger(__name__)

_RETRYABLE = frozenset({401, 403, 404, 408, 409, 425, 429})  # misconfiguration or "busy": nothing was paid
_REFUSED = frozenset({400, 422})  # the platform looked at the request and refused it

class HttpGateway(PlatformClient):
    """POSTs each attempt to `[platform] refund_url`, signed, under its idempotency key.

    - 2xx {"status": "accepted"}: the platform has it; the case waits for the refund callback.
    - 2xx {"status": "succeeded" | "failed"}: settled now.
    - 400 / 422: refused (the attempt fails and the case goes to refund_failed for a person).
    - network errors, timeouts, redirects, over-large answers, 5xx and the other 4xx: GatewayUnavailable, sent again later with
      the same key (a retry never pays twice).
    - a 2xx we cannot trust (not JSON, unknown status, another key, an amount other than the
      attempt's, in particular more): never taken as paid or failed; the attempt is parked as
      requested with the answer in its note, for finance to settle.
    """

    name = "http"

    def __init__(self, url: str, secret: str, timeout: float = 10, *, clock: Clock = time.time,
                 max_answer_bytes: int = MAX_ANSWER_BYTES) -> None:
        super().__init__(url, secret, timeout, clock, 'gateway = "http"', "refund_url", max_answer_bytes)
        self.url = url

    async def query(self, attempt: RefundAttempt, payment: Payment) -> GatewayResult | None:
        """The platform deduplicates by idempotency key: sending the attempt again is the question."""
        return None

    async def refund(self, attempt: RefundAttempt, payment: Payment) -> GatewayResult:
        key = attempt.idempotency_key
        body = json.dumps({"case_no": attempt.case_no, "order_no": payment.order_no, "amount": str(attempt.amount),
                           "currency": "CNY", "idempotency_key": key}, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", "Idempotency-Key": key,
                   **signed_headers(self._secret, body, self._clock())}
        try:
            status, raw = await self._call("POST", self.url, headers, body)
        except PlatformCallFailed as exc:
            raise GatewayUnavailable(f"refund {key}: {exc}") from exc
        text = raw[:300].decode("utf-8", "replace")
        if status in _REFUSED:
            return GatewayResult(RefundStatus.FAILED, reason=f"the platform refused the refund (HTTP {status}): {text}")
        if status >= 300:
            if status not in _RETRYABLE and status < 500:
                log.warning("refund %s: unexpected HTTP %s from the platform; will retry", key, status)
            raise GatewayUnavailable(f"refund {key}: HTTP {status}: {text}")
        return self._read_answer(attempt, raw, text)

    def _read_answer(self, attempt: RefundAttempt, raw: bytes, text: str) -> GatewayResult:
        key = attempt.idempotency_key

        def unclear(why: str) -> GatewayResult:
            log.error("refund %s: untrustworthy answer from the platform (%s): %s; held for finance", key, why, text)
            return GatewayResult(RefundStatus.REQUESTED, reason=f"unclear answer from the platform ({why}): {text}")

        try:
            answer = bodies.loads(raw, parse_float=Decimal)
        except ValueError:
            return unclear("not JSON")
        if not isinstance(answer, dict):
            return unclear("not a JSON object")
        if answer.get("idempotency_key", key) != key:
            return unclear("another idempotency key")
        if answer.get("amount") is not None:
            try:
                amount = Decimal(str(answer["amount"]))
            except InvalidOperation:
                return unclear("amount is not a number")
            if amount > attempt.amount:
                return unclear(f"amount {amount} is more than the {attempt.amount} asked for")
            if amount != attempt.amount:
                return unclear(f"amount {amount} is not the {attempt.amount} asked for")
        reference = answer.get("reference")
        reference = str(reference)[:128] if reference not in (None, "") else None
        outcome = answer.get("status")
        if outcome == "accepted":
            return GatewayResult(RefundStatus.REQUESTED, external_ref=reference)
        if outcome == "succeeded":
            return GatewayResult(RefundStatus.SUCCEEDED, external_ref=reference)
        if outcome == "failed":
            reason = str(answer.get("reason") or "the platform reported the refund failed")[:500]
            return GatewayResult(RefundStatus.FAILED, external_ref=reference, reason=reason)
        return unclear(f"unknown status {outcome!r}")
