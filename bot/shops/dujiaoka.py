"""独角数卡 dujiaoka (Laravel, MySQL): orders read from the shop's own tables, read-only.

Tables and columns as in dujiaoka's database/sql/install.sql: `orders` (order_sn, title, type, goods_id,
actual_price, search_pwd, email, info, pay_id, trade_no, status, created_at, updated_at, deleted_at),
`goods` (id, gd_name), `pays` (id, pay_check, pay_handleroute). Status constants: app/Models/Order.php.

What the customer sees of each status: 1 待支付 and -1 已过期 were never paid, so there is nothing to
refund and the order reads as "not found"; 2 待处理 / 3 处理中 are paid and not yet delivered (pending);
4 已完成 is delivered; 5 处理失败 and 6 异常 are failed deliveries. A soft-deleted order (deleted_at) is
not found either. `info` holds the delivered 卡密 (one per line) for auto-delivered orders, and the
buyer's own form input for orders delivered by hand, so only the former become delivered codes.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, column, select, table
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.config import AppConfig, DujiaokaConfig
from bot.shops import mapping
from bot.shops.sql import guarded, shop_engine
from dialogs.clock import utcnow
from dialogs.domain import DeliveryStatus, Order

SECTION = "orders.dujiaoka"

# orders.status (app/Models/Order.php) → delivery; statuses absent here (1 待支付, -1 过期) are no sale.
STATUSES: dict[int, DeliveryStatus] = {
    2: DeliveryStatus.PENDING,  # STATUS_PENDING 待处理: paid, waiting for delivery
    3: DeliveryStatus.PENDING,  # STATUS_PROCESSING 处理中
    4: DeliveryStatus.DELIVERED,  # STATUS_COMPLETED 已完成
    5: DeliveryStatus.FAILED,  # STATUS_FAILURE 处理失败
    6: DeliveryStatus.FAILED,  # STATUS_ABNORMAL 异常
}
AUTO_DELIVERY = 1  # orders.type / goods.type: 1 自动发货, 2 人工处理


class DujiaokaOrders:
    """dialogs.ports.OrderLookup over a dujiaoka database."""

    name = "dujiaoka"

    def __init__(self, config: DujiaokaConfig, engine: AsyncEngine | None = None) -> None:
        self.config = config
        self.engine = engine or shop_engine(config, SECTION)
        prefix = config.table_prefix
        self.orders = table(f"{prefix}orders", *map(column, (
            "order_sn", "title", "type", "goods_id", "actual_price", "search_pwd", "email", "info", "pay_id",
            "trade_no", "status", "created_at", "updated_at", "deleted_at")))
        self.goods = table(f"{prefix}goods", column("id"), column("gd_name"))
        self.pays = table(f"{prefix}pays", column("id"), column("pay_check"), column("pay_handleroute"))
        self.query = self._query()

    @classmethod
    def from_config(cls, config: AppConfig) -> DujiaokaOrders:
        return cls(config.orders.dujiaoka)

    @property
    def tables(self) -> list[str]:
        return [self.orders.name, self.goods.name, self.pays.name]

    async def get(self, order_no: str) -> Order | None:
        row = await guarded(lambda: self._row(order_no), self.config.query_timeout_seconds,
                            f"dujiaoka order {order_no}")
        return None if row is None else self.to_order(row)

    def _query(self) -> Any:
        """The lookup, built once: SQLAlchemy compiles it once and reuses it for every order number."""
        o, g, p = self.orders.c, self.goods.c, self.pays.c
        return (select(o.order_sn, o.title, o.type, o.goods_id, o.actual_price, o.search_pwd, o.email, o.info,
                       o.trade_no, o.status, o.created_at, o.updated_at, g.gd_name, p.pay_check, p.pay_handleroute)
                .select_from(self.orders.outerjoin(self.goods, g.id == o.goods_id)
                             .outerjoin(self.pays, p.id == o.pay_id))
                .where(o.order_sn == bindparam("order_no"), o.deleted_at.is_(None)))

    async def _row(self, order_no: str) -> dict[str, Any] | None:
        async with self.engine.connect() as connection:
            found = (await connection.execute(self.query, {"order_no": order_no})).mappings().first()
        return dict(found) if found is not None else None

    def to_order(self, row: dict[str, Any]) -> Order | None:
        """The row as refundbot's Order; None for an order that was never paid (nothing to refund)."""
        delivery = STATUSES.get(int(row["status"]))
        if delivery is None:
            return None
        order_no = str(row["order_sn"])
        auto = int(row["type"] or AUTO_DELIVERY) == AUTO_DELIVERY
        zone = self.config.timezone
        placed = mapping.shop_time(row["created_at"], zone) or mapping.shop_time(row["updated_at"], zone)
        name = str(row["gd_name"] or row["title"] or "")
        return Order(
            order_no=order_no,
            buyer_phone="",  # card shops collect no phone numbers
            product_name=str(row["title"] or name),
            product_kind=mapping.product_kind(self.config, row["goods_id"], name, auto),
            amount=Decimal(row["actual_price"]),
            payment_channel=mapping.payment_channel(self.config, row["pay_check"], row["pay_handleroute"]),
            # dujiaoka keeps no payment time: an order is paid within minutes of being placed (it expires otherwise).
            paid_at=placed or utcnow(),
            delivery_status=delivery,
            # A completed order was last touched when it was completed.
            delivered_at=_delivered_at(delivery, mapping.shop_time(row["updated_at"], zone)),
            trade_no=(row["trade_no"] or "").strip() or None,
            buyer_contact=mapping.contact(row["email"]),
            query_secret=mapping.query_secret(order_no, row["search_pwd"]),
            delivered_codes=mapping.codes(row["info"]) if auto and delivery is DeliveryStatus.DELIVERED else (),
        )

    async def check(self) -> str:
        """For `refundbot doctor`: reach the database and read one row of each table (ShopUnavailable if not)."""
        async def probe() -> str:
            async with self.engine.connect() as connection:
                for each in (self.orders, self.goods, self.pays):
                    await connection.execute(select(*each.c).limit(1))
            return f"tables {', '.join(self.tables)} readable"
        return await guarded(probe, self.config.query_timeout_seconds, "dujiaoka database")

    async def close(self) -> None:
        await self.engine.dispose()


def _delivered_at(delivery: DeliveryStatus, touched: datetime | None) -> datetime | None:
    return touched if delivery is DeliveryStatus.DELIVERED else None
