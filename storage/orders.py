"""Orders as the core sees them: one row per order number, tags as comma-joined text."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from dialogs.domain import DeliveryStatus, Order, PaymentChannel, ProductKind
from dialogs.ports import ConcurrentUpdate
from storage.models import OrderRow
from storage.repositories import SessionRepository, execute_core

_ORDERS = cast(Table, OrderRow.__table__)
_GET_ORDER = select(_ORDERS).where(_ORDERS.c.order_no == bindparam("order_no"))
_LOCK_ORDER = _GET_ORDER.with_for_update()


def tags_to_text(tags: Iterable[str]) -> str:
    cleaned = sorted({tag.strip() for tag in tags if tag.strip()})
    for tag in cleaned:
        if "," in tag:
            raise ValueError(f"tag contains a comma: {tag!r}")
    return ",".join(cleaned)


def tags_from_text(text: str) -> frozenset[str]:
    return frozenset(tag for tag in text.split(",") if tag)


def order_values(order: Order, now: datetime) -> dict[str, Any]:
    """Column values of an order row (shared with the bulk importer)."""
    return {
        "order_no": order.order_no,
        "buyer_phone": order.buyer_phone,
        "buyer_telegram_id": order.buyer_telegram_id,
        "product_name": order.product_name,
        "product_kind": order.product_kind.value,
        "tags": tags_to_text(order.tags),
        "amount": order.amount,
        "payment_channel": order.payment_channel.value,
        "paid_at": order.paid_at,
        "delivered_at": order.delivered_at,
        "delivery_status": order.delivery_status.value,
        "card_redeemed": order.card_redeemed,
        "topup_credited": order.topup_credited,
        "trade_no": order.trade_no,
        "buyer_contact": order.buyer_contact,
        "query_secret": order.query_secret,
        "delivered_codes": list(order.delivered_codes) or None,
        "updated_at": now,
    }


def order_from_row(row: Any) -> Order:
    """An OrderRow or a Core row of the orders table (same attribute names)."""
    return Order(
        order_no=row.order_no,
        buyer_phone=row.buyer_phone,
        buyer_telegram_id=row.buyer_telegram_id,
        product_name=row.product_name,
        product_kind=ProductKind(row.product_kind),
        tags=tags_from_text(row.tags),
        amount=row.amount,
        payment_channel=PaymentChannel(row.payment_channel),
        paid_at=row.paid_at,
        delivered_at=row.delivered_at,
        delivery_status=DeliveryStatus(row.delivery_status),
        card_redeemed=row.card_redeemed,
        topup_credited=row.topup_credited,
        trade_no=row.trade_no,
        buyer_contact=row.buyer_contact,
        query_secret=row.query_secret,
        delivered_codes=tuple(row.delivered_codes or ()),
    )


class SqlaOrderStore(SessionRepository):
    async def get(self, order_no: str) -> Order | None:
        row = (await execute_core(self._session, _GET_ORDER, {"order_no": order_no})).first()
        return None if row is None else order_from_row(row)

    async def lock(self, order_no: str) -> Order | None:
        row = (await execute_core(self._session, _LOCK_ORDER, {"order_no": order_no})).first()
        return None if row is None else order_from_row(row)

    async def upsert(self, order: Order) -> bool:
        values = order_values(order, self._clock())
        exists = await self._session.scalar(
            select(OrderRow.order_no).where(OrderRow.order_no == order.order_no)
        )
        if exists is not None:
            await self._session.execute(
                update(OrderRow)
                .where(OrderRow.order_no == order.order_no)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            return False
        try:
            await self._session.execute(insert(OrderRow).values(**values))
        except IntegrityError as exc:
            raise ConcurrentUpdate(f"order {order.order_no} inserted concurrently") from exc
        return True
