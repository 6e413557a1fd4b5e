"""The manual rail: nothing to call; finance pays by hand (from `refundbot cases export`) and confirms."""

from __future__ import annotations

from dialogs.domain import RefundAttempt, RefundStatus
from dialogs.ports import GatewayResult, Payment

WAITING = GatewayResult(RefundStatus.REQUESTED, reason="waiting for finance to pay and confirm")


class ManualGateway:
    """Nothing to call: finance pays the money back by hand and confirms with
    `refundbot cases mark-refunded CASE` (or the refund callback); the case waits in refunding."""

    name = "manual"

    async def refund(self, attempt: RefundAttempt, payment: Payment) -> GatewayResult:
        return WAITING

    async def query(self, attempt: RefundAttempt, payment: Payment) -> GatewayResult | None:
        return WAITING

    async def close(self) -> None:
        return None
