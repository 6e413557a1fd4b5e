"""Builders of valid domain objects for storage tests; override only what a test is about."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from dialogs.domain import (
    Case,
    CaseStatus,
    DeliveryStatus,
    EvidenceItem,
    Order,
    PaymentChannel,
    ProductKind,
    Reason,
    Verdict,
)

CST = timezone(timedelta(hours=8))  # the platform's local offset
T0 = datetime(2026, 11, 24, 10, 30, tzinfo=CST)


def make_order(order_no: str = "A1001", **changes: Any) -> Order:
    order = Order(
        order_no=order_no,
        buyer_phone="13800138000",
        buyer_telegram_id=424242,
        product_name="Steam card 100",
        product_kind=ProductKind.CARD_CODE,
        tags=frozenset({"discount"}),
        amount=Decimal("100.00"),
        payment_channel=PaymentChannel.ALIPAY,
        paid_at=T0,
        delivered_at=T0 + timedelta(minutes=1),
        delivery_status=DeliveryStatus.DELIVERED,
        card_redeemed=False,
        topup_credited=None,
    )
    return replace(order, **changes)


def make_case(case_no: str = "R20261124-0001", order_no: str = "A1001", **changes: Any) -> Case:
    case = Case(
        case_no=case_no,
        order_no=order_no,
        chat_id=424242,
        user_id=424242,
        reason=Reason.CARD_INVALID,
        verdict=Verdict.REVIEW,
        rule_id="card.invalid.review",
        description="The code says invalid",
        amount=Decimal("100.00"),
        locale="zh",
        status=CaseStatus.SUBMITTED,
        created_at=T0,
        review_due=date(2026, 11, 26),
    )
    return replace(case, **changes)


def make_evidence(file_unique_id: str = "AQAD1", **changes: Any) -> EvidenceItem:
    item = EvidenceItem(
        file_unique_id=file_unique_id,
        file_id=f"file-{file_unique_id}",
        path=f"data/evidence/{file_unique_id}.jpg",
        sha256="0" * 64,
        mime_type="image/jpeg",
        width=800,
        height=600,
        size=12345,
    )
    return replace(item, **changes)

