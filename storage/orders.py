"""Orders as the core sees them: one row per order number, tags as comma-joined text.

Every upsert path (one order, a bulk batch) applies dialogs.order_facts: an order that has cases keeps
its money and identity facts unless an audited correction changes them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, exists, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from dialogs.domain import DeliveryStatus, Order, PaymentChannel, ProductKind
from dialogs.order_facts import FactsLocked, changed_facts, keep_facts
from dialogs.ports import BulkUpsert, ConcurrentUpdate, FactsMode
from storage.models import CaseRow, OrderRow
from storage.repositories import SessionRepository, execute_core

_ORDERS = cast(Table, OrderRow.__table__)
_GET_ORDER = select(_ORDERS).where(_ORDERS.c.order_no == bindparam("order_no"))
_LOCK_ORDER = _GET_ORDER.with_for_update()
_HAS_CASES = exists().where(CaseRow.order_no == _ORDERS.c.order_no)

log = logging.getLogger(__name__)
_kept_logged: set[tuple[str, tuple[str, ...]]] = set()  # (order_no, facts): say each once per process


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


async def orders_with_cases(session: AsyncSession, order_nos: Iterable[str]) -> dict[str, Order]:
    """The stored orders among `order_nos` that have cases, locked (PostgreSQL: a case filed meanwhile
    locks the order first, so the check and the write see the same cases)."""
    keys = sorted(set(order_nos))
    if not keys:
        return {}
    rows = await session.execute(select(_ORDERS).where(_ORDERS.c.order_no.in_(keys), _HAS_CASES).with_for_update())
    return {row.order_no: order_from_row(row) for row in rows}


def _kept(order_no: str, fields: tuple[str, ...]) -> None:
    # Field names only: the values are a buyer's personal data.
    if (order_no, fields) in _kept_logged:
        return
    if len(_kept_logged) > 10_000:
        _kept_logged.clear()
    _kept_logged.add((order_no, fields))
    log.warning("order %s has refund cases: its source changed %s; the stored facts are kept (an audited "
                "correction changes them)", order_no, ", ".join(fields))


def guard(stored: Order | None, order: Order, facts: FactsMode) -> Order:
    """What an upsert of `order` may store, given the stored order if it has cases."""
    if stored is None or facts == "correct":
        return order
    changed = changed_facts(stored, order)
    if not changed:
        return order
    if facts == "refuse":
        raise FactsLocked(order.order_no, changed)
    _kept(order.order_no, changed)
    return keep_facts(stored, order)


async def bulk_upsert(session: AsyncSession, batch: Sequence[Order], now: datetime) -> BulkUpsert:
    """One SELECT of the batch's existing keys, one bulk INSERT, one bulk UPDATE; a row that would change
    the facts of an order with cases is refused (by its index in the batch) and nothing of it is written."""
    keys = {order.order_no for order in batch}
    existing = set(await session.scalars(select(OrderRow.order_no).where(OrderRow.order_no.in_(keys))))
    locked = await orders_with_cases(session, existing)
    inserts: dict[str, dict[str, Any]] = {}
    updates: dict[str, dict[str, Any]] = {}
    refused: list[tuple[int, tuple[str, ...]]] = []
    inserted = updated = 0
    for index, order in enumerate(batch):
        try:
            guard(locked.get(order.order_no), order, "refuse")
        except FactsLocked as exc:
            refused.append((index, exc.fields))
            continue
        values = order_values(order, now)
        if order.order_no in existing:
            updates[order.order_no] = values
            updated += 1
        elif order.order_no in inserts:  # repeated in this batch: the later row wins
            inserts[order.order_no] = values
            updated += 1
        else:
            inserts[order.order_no] = values
            inserted += 1
    if inserts:
        # render_nulls: otherwise the ORM splits the executemany wherever the set of None
        # values changes (to let server defaults apply), which is ~10x slower here.
        await session.execute(insert(OrderRow).execution_options(render_nulls=True), list(inserts.values()))
    if updates:
        # ORM bulk UPDATE by primary key: one executemany of UPDATE ... WHERE order_no = ?
        await session.execute(update(OrderRow), list(updates.values()))
    return BulkUpsert(inserted, updated, tuple(refused))


class SqlaOrderStore(SessionRepository):
    async def get(self, order_no: str) -> Order | None:
        row = (await execute_core(self._session, _GET_ORDER, {"order_no": order_no})).first()
        return None if row is None else order_from_row(row)

    async def lock(self, order_no: str) -> Order | None:
        row = (await execute_core(self._session, _LOCK_ORDER, {"order_no": order_no})).first()
        return None if row is None else order_from_row(row)

    async def upsert(self, order: Order, *, facts: FactsMode = "refuse") -> bool:
        stored = (await orders_with_cases(self._session, [order.order_no])).get(order.order_no)
        values = order_values(guard(stored, order, facts), self._clock())
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

    async def upsert_many(self, orders: Sequence[Order]) -> BulkUpsert:
        try:
            return await bulk_upsert(self._session, orders, self._clock())
        except IntegrityError as exc:
            raise ConcurrentUpdate("an order of the batch was inserted concurrently") from exc
